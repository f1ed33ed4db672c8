// Planted faults in copies of real kernels (planted_kernels.cuh) that the
// tests themselves catch: a missing barrier shows as a difference between two
// schedules, and a 2048-thread block is refused at launch. The faults that a
// sanitizer catches run in planted_faults_main.cu, one per process.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/cuda/emulator/emulator.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/runtime.h"
#include "tests/emulate/planted_kernels.cuh"

namespace {

namespace cuda = basin::kernels::cuda;
namespace emulator = basin::emulator;
using Catch::Matchers::Contains;

constexpr long long kRows = 4;
constexpr long long kRowLength = 300;  // more than a block of 128, and not a multiple of it

std::vector<double> rows() {
  std::vector<double> values(static_cast<std::size_t>(kRows * kRowLength));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = std::sin(0.37 * static_cast<double>(i)) * 4.0;
  return values;
}

// The max and exp-sum of each row, computed on the host.
std::vector<double> expected(const std::vector<double>& values) {
  std::vector<double> out;
  for (long long r = 0; r < kRows; ++r) {
    const double* x = values.data() + r * kRowLength;
    double m = -INFINITY;
    for (long long i = 0; i < kRowLength; ++i) m = std::max(m, x[i]);
    double s = 0.0;
    for (long long i = 0; i < kRowLength; ++i) s += std::exp(x[i] - m);
    out.push_back(m);
    out.push_back(s);
  }
  return out;
}

// Runs the row kernel (faulty or basin's combine) under one schedule and
// returns the largest relative difference from the host's values.
template <bool kFaulty>
double worst_error(const std::string& schedule) {
  const emulator::Schedule saved = emulator::schedule();
  emulator::set_schedule(emulator::parse_schedule(schedule));
  const std::vector<double> values = rows();
  const std::size_t in_bytes = values.size() * sizeof(double);
  auto* in = static_cast<double*>(cuda::allocate(in_bytes));
  auto* out = static_cast<double*>(cuda::allocate(2 * kRows * sizeof(double)));
  cuda::copy_host_to_device(in, values.data(), in_bytes);
  cuda::launch(row_max_and_exp_sum<kFaulty>, static_cast<unsigned>(kRows), 128, static_cast<const double*>(in), out,
               kRowLength);
  std::vector<double> got(static_cast<std::size_t>(2 * kRows));
  cuda::copy_device_to_host(got.data(), out, got.size() * sizeof(double));
  cuda::deallocate(in);
  cuda::deallocate(out);
  emulator::set_schedule(saved);
  const std::vector<double> want = expected(values);
  double worst = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i])));
  }
  return worst;
}

}  // namespace

TEST_CASE("a missing barrier in a block reduction shows as a schedule mismatch", "[emulator][planted]") {
  // basin's block_combine: right under both orders.
  CHECK(worst_error<false>("forward") < 1e-12);
  CHECK(worst_error<false>("reverse") < 1e-12);
  // Without its last barrier: the forward order lets thread 0 overwrite
  // shared[0] before the others read it; the reverse order happens to hide it,
  // which is why the emulator's CI runs two orders.
  const double forward = worst_error<true>("forward");
  const double reverse = worst_error<true>("reverse");
  INFO("faulty combine: forward error " << forward << ", reverse error " << reverse);
  CHECK(forward > 1e-3);
  CHECK(reverse < 1e-12);
  CHECK(std::max(forward, reverse) > 1e-3);  // caught by at least one of the two orders
}

TEST_CASE("a 2048-thread block is refused as an invalid configuration", "[emulator][planted]") {
  const long long n = 5000;
  auto* data = static_cast<float*>(cuda::allocate(n * sizeof(float)));
  TensorArg dst;
  dst.data = data;
  dst.numel = n;
  dst.ndim = 1;
  dst.sizes[0] = n;
  dst.strides[0] = 1;
  // The real configuration works...
  cuda::launch(fill_kernel_copy<float>, cuda::grid_for(n, 256), 256, dst, 1.0f);
  // ...the planted one is refused before anything runs, with CUDA's error.
  CHECK_THROWS_WITH(cuda::launch(fill_kernel_copy<float>, cuda::grid_for(n, 2048), 2048, dst, 2.0f),
                    Contains("invalid configuration argument") && Contains("fill_kernel_copy<float>") &&
                        Contains("block [2048, 1, 1]"));
  std::vector<float> values(static_cast<std::size_t>(n));
  cuda::copy_device_to_host(values.data(), data, n * sizeof(float));
  for (float v : values) REQUIRE(v == 1.0f);
  cuda::deallocate(data);
}
