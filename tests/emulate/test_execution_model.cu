// The CUDA emulator's execution model, exercised by small kernels launched
// through basin's launch helper: built-ins, shared memory, barriers, warp
// operations, atomics, and the launches a GPU refuses. Built only with
// -DBASIN_CUDA=EMULATE (tests/CMakeLists.txt).
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <unistd.h>
#include <vector>

#include "core/device.h"
#include "kernels/batchnorm.h"
#include "kernels/cuda/emulator/emulator.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/runtime.h"
#include "support/run_program.h"

namespace {

namespace cuda = basin::kernels::cuda;
namespace emulator = basin::emulator;
using Catch::Matchers::Contains;

// Device memory for a test, freed at the end of the scope.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(std::size_t n) : n_(n), ptr_(static_cast<T*>(cuda::allocate(n * sizeof(T)))) {}
  explicit DeviceArray(const std::vector<T>& values) : DeviceArray(values.size()) {
    cuda::copy_host_to_device(ptr_, values.data(), n_ * sizeof(T));
  }
  ~DeviceArray() {
    try {
      cuda::deallocate(ptr_);
    } catch (const basin::Error&) {
      // after a planted sticky fault: the test has already checked what it wanted
    }
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return ptr_; }
  std::vector<T> read() const {
    std::vector<T> values(n_);
    cuda::copy_device_to_host(values.data(), ptr_, n_ * sizeof(T));
    return values;
  }

 private:
  std::size_t n_;
  T* ptr_;
};

// Sets a schedule for the scope of a test and restores the previous one.
class ScheduleScope {
 public:
  explicit ScheduleScope(const std::string& name) : saved_(emulator::schedule()) {
    emulator::set_schedule(emulator::parse_schedule(name));
  }
  ~ScheduleScope() { emulator::set_schedule(saved_); }

 private:
  emulator::Schedule saved_;
};

// Clears a planted sticky fault when the test ends, whatever happened.
struct ResetAfter {
  ~ResetAfter() { emulator::reset(); }
};

const std::vector<std::string> kSchedules = {"forward", "reverse", "random:7", "random:12345"};

// ---------------------------------------------------------------- kernels

__global__ void record_builtins(unsigned* out) {
  const unsigned block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const unsigned thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  unsigned* slot = out + 6 * (block * blockDim.x * blockDim.y * blockDim.z + thread);
  slot[0] = threadIdx.x;
  slot[1] = threadIdx.y;
  slot[2] = threadIdx.z;
  slot[3] = blockIdx.x;
  slot[4] = blockIdx.y;
  slot[5] = blockIdx.z;
}

// Thread 0 publishes the block's number in shared memory; after the barrier
// every thread reads it. Two blocks share nothing but the kernel.
__global__ void broadcast_block_number(unsigned* out) {
  __shared__ unsigned number;
  if (threadIdx.x == 0) number = blockIdx.x;
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = number;
}

__global__ void block_sum(const double* in, double* out, int n) {
  __shared__ double partial[256];
  double acc = 0.0;
  for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x)) acc += in[blockIdx.x * n + i];
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

__global__ void barrier_votes(const int* predicate, int* out) {
  const int p = predicate[threadIdx.x];
  const int count = __syncthreads_count(p);
  const int all = __syncthreads_and(p);
  const int any = __syncthreads_or(p);
  if (threadIdx.x == 0) {
    out[0] = count;
    out[1] = all;
    out[2] = any;
  }
}

// Per lane: shfl from lane 3 of its group of 8, up by 1, down by 2, xor 5,
// the warp's ballot, all/any of (value odd), then a __syncwarp.
__global__ void warp_operations(const int* in, int* out, unsigned mask) {
  const int v = in[threadIdx.x];
  int* o = out + 8 * threadIdx.x;
  o[0] = __shfl_sync(mask, v, 3, 8);
  o[1] = __shfl_up_sync(mask, v, 1);
  o[2] = __shfl_down_sync(mask, v, 2);
  o[3] = __shfl_xor_sync(mask, v, 5);
  o[4] = static_cast<int>(__ballot_sync(mask, v % 2 != 0));
  o[5] = __all_sync(mask, v % 2 != 0);
  o[6] = __any_sync(mask, v % 2 != 0);
  __syncwarp(mask);
  o[7] = 1;  // every lane got past __syncwarp
}

__global__ void warp_reduce_double(const double* in, double* out) {
  double v = in[blockIdx.x * blockDim.x + threadIdx.x];
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  if (threadIdx.x % 32 == 0) out[(blockIdx.x * blockDim.x + threadIdx.x) / 32] = v;
}

__global__ void atomics(int* counter, float* sum, unsigned long long* largest, int* swapped) {
  const int id = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  atomicAdd(counter, 1);
  atomicAdd(sum, 0.5f);
  atomicMax(largest, static_cast<unsigned long long>(id) * 3);
  atomicCAS(swapped, id, id + 1);  // only the thread whose id equals the value moves it on
  __threadfence();
}

__global__ void grid_stride_count(int* visits, long long n) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n; i += stride) visits[i] += 1;
}

__global__ void exits_before_barrier(int* out) {
  if (threadIdx.x >= 16) return;  // the classic bug: half the block never reaches the barrier
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void barrier_in_branches(int* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void lane_outside_mask(int* out) {
  out[threadIdx.x] = __shfl_sync(0x0000ffffu, 1, 0);  // lanes 16 to 31 are not in the mask
}

__global__ void too_much_shared(int* out) {
  __shared__ char tile[48 * 1024 + 16];
  tile[threadIdx.x] = static_cast<char>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = tile[(threadIdx.x + 1) % blockDim.x];  // another thread's value: the array is really shared
}

__global__ void write_one(int* out) { out[threadIdx.x] = 1; }

__global__ void traps(int* out) {
  if (threadIdx.x == 5) __trap();
  out[threadIdx.x] = 1;
}

std::vector<double> ramp(std::size_t n) {
  std::vector<double> values(n);
  for (std::size_t i = 0; i < n; ++i) values[i] = static_cast<double>((i * 7919) % 1013) * 0.25 - 60.0;
  return values;
}

}  // namespace

TEST_CASE("the emulator is one CUDA device with 2 multiprocessors", "[emulator]") {
  REQUIRE(basin::cuda_is_available());
  CHECK(basin::cuda_device_count() == 1);
  CHECK_THAT(basin::describe(basin::Device::cuda()), Contains("basin CUDA emulator"));
  int sms = 0;
  REQUIRE(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0) == cudaSuccess);
  CHECK(sms == emulator::kMultiprocessors);
  // So a grid-stride loop over many elements gets 16 blocks and really loops.
  CHECK(cuda::grid_for(1 << 20, 256) == 16);
  DeviceArray<int> visits(std::vector<int>(100003, 0));
  cuda::launch(grid_stride_count, cuda::grid_for(100003, 256), 256, visits.get(), 100003LL);
  for (int v : visits.read()) REQUIRE(v == 1);
}

TEST_CASE("the emulator sets threadIdx and blockIdx in x, y and z", "[emulator]") {
  const dim3 grid(3, 2, 2);
  const dim3 block(4, 3, 2);
  const unsigned threads = 3 * 2 * 2 * 4 * 3 * 2;
  DeviceArray<unsigned> out(std::vector<unsigned>(6 * threads, 0xdeadu));
  cuda::launch(record_builtins, grid, block, out.get());
  const std::vector<unsigned> seen = out.read();
  unsigned i = 0;
  for (unsigned bz = 0; bz < 2; ++bz) {
    for (unsigned by = 0; by < 2; ++by) {
      for (unsigned bx = 0; bx < 3; ++bx) {
        for (unsigned tz = 0; tz < 2; ++tz) {
          for (unsigned ty = 0; ty < 3; ++ty) {
            for (unsigned tx = 0; tx < 4; ++tx, ++i) {
              INFO("thread " << i);
              const std::vector<unsigned> expected = {tx, ty, tz, bx, by, bz};
              REQUIRE(std::vector<unsigned>(seen.begin() + 6 * i, seen.begin() + 6 * i + 6) == expected);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("each block sees its own static shared memory", "[emulator]") {
  for (const std::string& schedule : kSchedules) {
    ScheduleScope scope(schedule);
    DeviceArray<unsigned> out(std::vector<unsigned>(7 * 96, 0u));
    cuda::launch(broadcast_block_number, 7, 96, out.get());
    const std::vector<unsigned> seen = out.read();
    for (unsigned i = 0; i < seen.size(); ++i) REQUIRE(seen[i] == i / 96);
  }
}

TEST_CASE("a barrier-correct reduction gives the same bits under every schedule", "[emulator]") {
  const int rows = 5, n = 1001;
  const std::vector<double> values = ramp(static_cast<std::size_t>(rows * n));
  DeviceArray<double> in(values);
  std::vector<double> first;
  for (const std::string& schedule : kSchedules) {
    ScheduleScope scope(schedule);
    DeviceArray<double> out(std::vector<double>(rows, NAN));
    cuda::launch(block_sum, rows, 256, static_cast<const double*>(in.get()), out.get(), n);
    const std::vector<double> sums = out.read();
    for (int r = 0; r < rows; ++r) {
      double expected = 0.0;
      for (int i = 0; i < n; ++i) expected += values[static_cast<std::size_t>(r * n + i)];
      CHECK(sums[static_cast<std::size_t>(r)] == Approx(expected).epsilon(1e-12));
    }
    if (first.empty()) first = sums;
    CHECK(sums == first);
  }
}

TEST_CASE("__syncthreads_count, _and and _or vote over the block", "[emulator]") {
  std::vector<int> predicate(75, 0);
  for (std::size_t i = 0; i < predicate.size(); i += 3) predicate[i] = 1;
  DeviceArray<int> p(predicate);
  DeviceArray<int> out(std::vector<int>(3, -1));
  cuda::launch(barrier_votes, 1, 75, static_cast<const int*>(p.get()), out.get());
  CHECK(out.read() == std::vector<int>{25, 0, 1});
  DeviceArray<int> ones(std::vector<int>(75, 1));
  cuda::launch(barrier_votes, 1, 75, static_cast<const int*>(ones.get()), out.get());
  CHECK(out.read() == std::vector<int>{75, 1, 1});
}

TEST_CASE("warp shuffles and votes follow CUDA's lane rules", "[emulator]") {
  // 40 threads: a full warp and a partial one of 8 lanes.
  std::vector<int> values(40);
  for (int i = 0; i < 40; ++i) values[static_cast<std::size_t>(i)] = 100 + 3 * i;
  for (const std::string& schedule : kSchedules) {
    ScheduleScope scope(schedule);
    DeviceArray<int> in(values);
    DeviceArray<int> out(std::vector<int>(8 * 40, -1));
    // The full warp with mask 0xffffffff; the partial warp names its 8 lanes.
    cuda::launch(warp_operations, 1, 32, static_cast<const int*>(in.get()), out.get(), 0xffffffffu);
    const std::vector<int> full = out.read();
    for (int lane = 0; lane < 32; ++lane) {
      INFO(schedule << " lane " << lane);
      const int* o = &full[static_cast<std::size_t>(8 * lane)];
      auto v = [&](int l) { return values[static_cast<std::size_t>(l)]; };
      CHECK(o[0] == v((lane & ~7) + 3));
      CHECK(o[1] == (lane >= 1 ? v(lane - 1) : v(lane)));
      CHECK(o[2] == (lane + 2 < 32 ? v(lane + 2) : v(lane)));
      CHECK(o[3] == v(lane ^ 5));
      unsigned ballot = 0;
      for (int l = 0; l < 32; ++l) ballot |= (v(l) % 2 != 0 ? 1u : 0u) << l;
      CHECK(static_cast<unsigned>(o[4]) == ballot);
      CHECK(o[5] == 0);
      CHECK(o[6] == 1);
      CHECK(o[7] == 1);
    }
  }
  DeviceArray<int> in(values);
  DeviceArray<int> out(std::vector<int>(8 * 40, -1));
  // A full mask in a warp of 8 lanes (threads 32 to 39) names lanes that do not exist.
  ResetAfter reset;
  CHECK_THROWS_WITH(cuda::launch(warp_operations, 1, 40, static_cast<const int*>(in.get()), out.get(), 0xffffffffu),
                    Contains("unspecified launch failure") && Contains("names lanes that do not exist"));
  CHECK(emulator::sticky_error() == cudaErrorLaunchFailure);
}

TEST_CASE("a warp reduction with __shfl_down_sync sums doubles exactly as a tree", "[emulator]") {
  const std::vector<double> values = ramp(256);
  DeviceArray<double> in(values);
  DeviceArray<double> out(std::vector<double>(8, NAN));
  cuda::launch(warp_reduce_double, 2, 128, static_cast<const double*>(in.get()), out.get());
  const std::vector<double> sums = out.read();
  for (int w = 0; w < 8; ++w) {
    // The same tree on the host: offsets 16, 8, 4, 2, 1.
    std::vector<double> lane(values.begin() + 32 * w, values.begin() + 32 * w + 32);
    for (std::size_t offset = 16; offset > 0; offset /= 2) {
      for (std::size_t l = 0; l + offset < 32; ++l) lane[l] += lane[l + offset];
    }
    CHECK(sums[static_cast<std::size_t>(w)] == lane[0]);
  }
}

TEST_CASE("atomics give the totals of every thread of the grid", "[emulator]") {
  ScheduleScope forward("forward");  // the compare-and-swap chain below needs threads in order
  DeviceArray<int> counter(std::vector<int>{0});
  DeviceArray<float> sum(std::vector<float>{0.0f});
  DeviceArray<unsigned long long> largest(std::vector<unsigned long long>{0});
  DeviceArray<int> swapped(std::vector<int>{0});
  cuda::launch(atomics, 9, 100, counter.get(), sum.get(), largest.get(), swapped.get());
  CHECK(counter.read()[0] == 900);
  CHECK(sum.read()[0] == 450.0f);
  CHECK(largest.read()[0] == 899ull * 3);
  // Threads run in order in a block, and blocks in order, so the chain of
  // compare-and-swaps advances through every thread.
  CHECK(swapped.read()[0] == 900);
}

TEST_CASE("the emulator refuses the launch configurations CUDA refuses", "[emulator][errors]") {
  ResetAfter reset;
  DeviceArray<int> out(1024);
  const auto refuses = [&](dim3 grid, dim3 block) {
    INFO("grid " << grid.x << "x" << grid.y << "x" << grid.z << ", block " << block.x << "x" << block.y << "x"
                 << block.z);
    CHECK_THROWS_WITH(cuda::launch(write_one, grid, block, out.get()),
                      Contains("invalid configuration argument") && Contains("write_one"));
  };
  refuses(1, 1025);
  refuses(1, dim3(32, 33, 1));
  refuses(1, dim3(1, 1, 65));
  refuses(1, 0);
  refuses(0, 32);
  refuses(dim3(1, 65536, 1), 32);
  refuses(dim3(1, 1, 65536), 32);
  // A refused launch is not a fault: the device goes on.
  CHECK(emulator::sticky_error() == cudaSuccess);
  cuda::launch(write_one, 1, 1024, out.get());
  CHECK_THROWS_WITH(cuda::launch(too_much_shared, 1, 32, out.get()),
                    Contains("invalid argument") && Contains("static __shared__"));
  CHECK(emulator::static_shared_bytes(reinterpret_cast<const void*>(&too_much_shared)) == 48 * 1024 + 16);
}

TEST_CASE("a barrier not reached by every thread stops the launch with a sticky error", "[emulator][errors]") {
  ResetAfter reset;
  DeviceArray<int> out(64);
  CHECK_THROWS_WITH(cuda::launch(exits_before_barrier, 1, 32, out.get()),
                    Contains("unspecified launch failure") && Contains("16 threads wait in __syncthreads()") &&
                        Contains("test_execution_model.cu:") && Contains("exited without reaching it"));
  // Sticky: the next call fails too, as on a GPU.
  CHECK_THROWS_WITH(cuda::synchronize(), Contains("unspecified launch failure"));
  emulator::reset();
  CHECK_THROWS_WITH(cuda::launch(barrier_in_branches, 1, 32, out.get()), Contains("wait at different barriers"));
  emulator::reset();
  CHECK_THROWS_WITH(cuda::launch(lane_outside_mask, 1, 32, out.get()), Contains("leaves out the calling lane"));
  emulator::reset();
  CHECK_THROWS_WITH(cuda::launch(traps, 1, 32, out.get()), Contains("executed __trap()"));
}

TEST_CASE("a host pointer given to a kernel is an illegal address", "[emulator][errors]") {
  ResetAfter reset;
  std::vector<int> host(32, 0);
  CHECK_THROWS_WITH(cuda::launch(write_one, 1, 32, host.data()),
                    Contains("an illegal memory access was encountered") && Contains("not device memory"));
  CHECK(host == std::vector<int>(32, 0));  // refused before anything ran
  CHECK(emulator::sticky_error() == cudaErrorIllegalAddress);
}

TEST_CASE("a sticky fault inside an op reaches the caller with its own message", "[emulator][errors]") {
  // batch_norm_stats holds a scratch buffer while it launches; the launch
  // faults (its input is host memory), and the buffer's free then fails too.
  // That second failure must not end the process while the first unwinds.
  ResetAfter reset;
  const basin::kernels::BatchNormShape shape{4, 3, 1500};  // 6,000 values per channel: several chunks, so scratch
  std::vector<float> host_input(static_cast<std::size_t>(4 * 3 * 1500), 1.0f);
  DeviceArray<float> mean(3);
  DeviceArray<float> invstd(3);
  const auto arg = [](void* data, std::int64_t n) {
    basin::kernels::TensorArg t;
    t.data = data;
    t.numel = n;
    t.ndim = 1;
    t.sizes[0] = n;
    t.strides[0] = 1;
    return t;
  };
  CHECK_THROWS_WITH(cuda::batch_norm_stats(arg(mean.get(), 3), arg(invstd.get(), 3), arg(host_input.data(), 18000),
                                           shape, 1e-5, basin::kernels::TensorArg{}, basin::kernels::TensorArg{}, 0.1),
                    Contains("an illegal memory access was encountered") && Contains("stats_kernel<float>"));
}

TEST_CASE("device memory is checked like a GPU's", "[emulator][errors]") {
  void* p = nullptr;
  REQUIRE(cudaMalloc(&p, 10) == cudaSuccess);
  unsigned char fresh[10];
  REQUIRE(cudaMemcpy(fresh, p, 10, cudaMemcpyDeviceToHost) == cudaSuccess);
  for (unsigned char b : fresh) CHECK(b == 0xff);  // never zeroed: reads of unwritten memory show as NaN
  CHECK(reinterpret_cast<std::uintptr_t>(p) % 256 == 0);
  char host[16] = {};
  CHECK(cudaMemcpy(p, host, 11, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);  // past the end
  CHECK(cudaMemcpy(host, p, 10, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);   // direction swapped
  CHECK_THAT(emulator::error_detail(cudaErrorInvalidValue), Contains("cudaMemcpyHostToDevice"));
  CHECK(cudaMemcpy(p, host, 10, cudaMemcpyDeviceToDevice) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(p, host, 10, cudaMemcpyDefault) == cudaSuccess);
  CHECK(cudaMemset(host, 0, 4) == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);  // kept for cudaGetLastError, then cleared
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(emulator::is_device_range(p, 10));
  CHECK(!emulator::is_device_range(p, 11));
  // One past the end is where the host allocator may put a host buffer.
  CHECK(!emulator::is_device_range(static_cast<char*>(p) + 10, 0));
  CHECK(emulator::is_device_range(static_cast<char*>(p) + 9, 0));
  CHECK(cudaFree(p) == cudaSuccess);
  CHECK(cudaFree(p) == cudaErrorInvalidValue);  // twice
  CHECK(!emulator::is_device_range(p, 1));
  cudaGetLastError();

  cudaEvent_t start = nullptr;
  cudaEvent_t end = nullptr;
  REQUIRE(cudaEventCreate(&start) == cudaSuccess);
  REQUIRE(cudaEventCreate(&end) == cudaSuccess);
  CHECK(cudaEventRecord(start, cuda::stream()) == cudaSuccess);
  CHECK(cudaEventRecord(end, cuda::stream()) == cudaSuccess);
  float ms = -1.0f;
  CHECK(cudaEventElapsedTime(&ms, start, end) == cudaErrorNotSupported);
  CHECK_THAT(emulator::error_detail(cudaErrorNotSupported), Contains("measure nothing"));
  cudaEventDestroy(start);
  cudaEventDestroy(end);
  cudaGetLastError();
  int bogus = 0;
  CHECK(cudaStreamSynchronize(reinterpret_cast<cudaStream_t>(&bogus)) == cudaErrorInvalidResourceHandle);
  cudaGetLastError();
}

TEST_CASE("a CUDA installation that cannot start fails the CUDA tests and says why", "[emulator][errors]") {
  // A bad BASIN_EMULATE_SCHEDULE makes the emulated runtime fail to start, as
  // a driver too old for the runtime makes the real one fail: neither may pass
  // for a machine without a GPU, where the [cuda] tests would skip.
  const basin::testing::ProgramOutcome outcome =
      basin::testing::run_program("BASIN_EMULATE_SCHEDULE=backwards /proc/" + std::to_string(::getpid()) +
                                  "/exe 'the emulator is one CUDA device with 2 multiprocessors'");
  const std::string& output = outcome.output;
  INFO(output);
  CHECK(outcome.status > 0);
  CHECK_THAT(output, Contains("CUDA is installed but unusable: initialization error") &&
                         Contains("'backwards' is not a schedule"));
  CHECK_THAT(output, !Contains("BASIN_TEST_SKIPPED"));
}

TEST_CASE("schedules are named forward, reverse or random:SEED", "[emulator][errors]") {
  CHECK(emulator::schedule_name(emulator::parse_schedule("forward")) == "forward");
  CHECK(emulator::schedule_name(emulator::parse_schedule("reverse")) == "reverse");
  CHECK(emulator::schedule_name(emulator::parse_schedule("random:42")) == "random:42");
  for (const char* bad : {"", "backward", "random", "random:", "random:-1", "random:x1", "Forward"}) {
    INFO("'" << bad << "'");
    CHECK_THROWS_WITH(emulator::parse_schedule(bad), Contains("is not a schedule"));
  }
}
