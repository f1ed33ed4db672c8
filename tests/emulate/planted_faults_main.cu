// basin_emulator_faults FAULT: runs one planted fault from planted_kernels.cuh
// on the emulated device, for a sanitizer to catch. ctest runs each fault in
// its own process (a sanitizer report ends the process) and passes when the
// expected report names the planted kernel's file (tests/CMakeLists.txt):
//
//   global-overflow  an off-by-one write past a device allocation (AddressSanitizer)
//   shared-overflow  a write past a __shared__ array (AddressSanitizer)
//   missing-barrier  a block reduction without its last barrier (ThreadSanitizer)
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/runtime.h"
#include "tests/emulate/planted_kernels.cuh"

namespace {

namespace cuda = basin::kernels::cuda;

int global_overflow() {
  const long long n = 1000;  // 4 blocks of 256: thread 1000 exists
  auto* data = static_cast<float*>(cuda::allocate(n * sizeof(float)));
  TensorArg dst;
  dst.data = data;
  dst.numel = n;
  dst.ndim = 1;
  dst.sizes[0] = n;
  dst.strides[0] = 1;
  cuda::launch(fill_off_by_one<float>, cuda::grid_for(n, 256), 256, dst, 1.0f);
  cuda::deallocate(data);
  return 0;
}

int shared_overflow() {
  const long long rows = 2, length = 700;
  const std::vector<double> values(static_cast<std::size_t>(rows * length), 1.0);
  auto* in = static_cast<double*>(cuda::allocate(values.size() * sizeof(double)));
  auto* out = static_cast<double*>(cuda::allocate(rows * sizeof(double)));
  cuda::copy_host_to_device(in, values.data(), values.size() * sizeof(double));
  cuda::launch(sum_rows_shared_overflow<double>, static_cast<unsigned>(rows), kRowBlock, out,
               static_cast<const double*>(in), length);
  cuda::deallocate(in);
  cuda::deallocate(out);
  return 0;
}

int missing_barrier() {
  const long long rows = 2, length = 300;
  std::vector<double> values(static_cast<std::size_t>(rows * length));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(i % 17) * 0.5;
  auto* in = static_cast<double*>(cuda::allocate(values.size() * sizeof(double)));
  auto* out = static_cast<double*>(cuda::allocate(2 * rows * sizeof(double)));
  cuda::copy_host_to_device(in, values.data(), values.size() * sizeof(double));
  cuda::launch(row_max_and_exp_sum<true>, static_cast<unsigned>(rows), 128, static_cast<const double*>(in), out,
               length);
  cuda::synchronize();
  cuda::deallocate(in);
  cuda::deallocate(out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: basin_emulator_faults global-overflow|shared-overflow|missing-barrier\n");
    return 2;
  }
  try {
    if (std::strcmp(argv[1], "global-overflow") == 0) return global_overflow();
    if (std::strcmp(argv[1], "shared-overflow") == 0) return shared_overflow();
    if (std::strcmp(argv[1], "missing-barrier") == 0) return missing_barrier();
  } catch (const basin::Error& error) {
    std::fprintf(stderr, "basin_emulator_faults: %s\n", error.what());
    return 1;
  }
  std::fprintf(stderr, "basin_emulator_faults: unknown fault '%s'\n", argv[1]);
  return 2;
}
