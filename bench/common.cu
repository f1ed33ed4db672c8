// CUDA half of bench/common.h: event timing on basin's stream, the L2 flush,
// and the device-to-device copy ceiling.
//
// Timing. Each repetition is bracketed by two CUDA events, so the figure is
// device time. To keep the host's launch cost out of it (a variant that
// launches 250 small kernels would otherwise be timed on how fast the host
// enqueues), every repetition first queues a "gate" kernel that spins until
// the host has queued the whole body and opens it: the events then bracket
// the body's kernels back to back, as in a training step whose host runs
// ahead of the GPU (nvbench times the same way). The gate has a timeout, so
// a body too long for the launch queue degrades to host-paced timing instead
// of hanging; the timer then says so. time_wall() measures the other view:
// host enqueue plus device work, from an idle stream.
//
// Copy ceiling. A grid-stride float4 copy (16-byte loads and stores, the
// widest a thread issues) in several launch shapes, with 1 or 4 loads in
// flight per thread before its stores (more bytes in flight per SM is what
// hides DRAM latency), and cudaMemcpyAsync. The best is the bandwidth a
// memory-bound kernel can hope for on this GPU.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include <cuda_runtime.h>
#if BASIN_BENCH_WITH_CUDNN
#include <cudnn.h>
#endif

#include "bench/common.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/runtime.h"

namespace basin::bench {

namespace {

constexpr int kBlock = 256;

// ---------------------------------------------------------------- small RAII helpers

using kernels::cuda::DeviceBuffer;  // stream-ordered device memory from basin's pool

class EventList {
 public:
  explicit EventList(std::size_t count) : events_(count, nullptr) {
    for (cudaEvent_t& e : events_) BASIN_CUDA_CHECK(cudaEventCreate(&e));
  }
  ~EventList() {
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
  }
  EventList(const EventList&) = delete;
  EventList& operator=(const EventList&) = delete;
  cudaEvent_t operator[](std::size_t i) const { return events_[i]; }

 private:
  std::vector<cudaEvent_t> events_;
};

// ---------------------------------------------------------------- kernels

// Reads every float4 of the buffer. The store can never happen (the buffer is
// zero), but the compiler cannot know that, so the loads stay.
__global__ void read_all_kernel(const float4* __restrict__ data, long long n, float* sink) {
  float acc = 0.0f;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float4 v = data[i];
    acc += v.x + v.y + v.z + v.w;
  }
  if (acc == 1234.5f) *sink = acc;
}

__device__ unsigned long long global_timer_ns() {
#if BASIN_CUDA_EMULATED
  return static_cast<unsigned long long>(clock64());  // host nanoseconds; the emulator never times a body anyway
#else
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
#endif
}

// Holds the stream until the host writes a value >= target into the mapped
// flag, or until timeout_ns passes (then *timed_out is set).
__global__ void gate_kernel(const volatile int* flag, int target, unsigned long long timeout_ns, int* timed_out) {
  const unsigned long long start = global_timer_ns();
  while (*flag < target) {
    if (global_timer_ns() - start > timeout_ns) {
      *timed_out = 1;
      return;
    }
    __nanosleep(1000);
  }
}

// dst = src over n float4s. Each pass of the loop issues kUnroll loads before
// any store, so a thread keeps kUnroll x 16 bytes in flight.
template <int kUnroll>
__global__ void copy_kernel(float4* __restrict__ dst, const float4* __restrict__ src, long long n) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
    float4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = src[i + u * stride];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) dst[i + u * stride] = v[u];
  }
  for (; i < n; i += stride) dst[i] = src[i];
}

// A pattern no two nearby words share, so a misplaced or missing block shows.
__global__ void pattern_kernel(unsigned* data, long long n) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    data[i] = static_cast<unsigned>(i * 2654435761ull) ^ 0x5bd1e995u;
  }
}

// Counts words that differ (an integer count: exact whatever the order).
__global__ void count_mismatches_kernel(const unsigned* a, const unsigned* b, long long n,
                                        unsigned long long* mismatches) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  unsigned long long local = 0;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    local += a[i] != b[i] ? 1 : 0;
  }
  if (local != 0) atomicAdd(mismatches, local);
}

// ---------------------------------------------------------------- device facts

struct DeviceFacts {
  cudaDeviceProp prop{};
  int driver = 0;
  int runtime = 0;
};

const DeviceFacts& facts() {
  static const DeviceFacts f = [] {
    DeviceFacts d;
    BASIN_CUDA_CHECK(cudaGetDeviceProperties(&d.prop, 0));
    BASIN_CUDA_CHECK(cudaDriverGetVersion(&d.driver));
    BASIN_CUDA_CHECK(cudaRuntimeGetVersion(&d.runtime));
    return d;
  }();
  return f;
}

std::string cuda_version(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

std::string cudnn_version() {
#if BASIN_BENCH_WITH_CUDNN
  const std::size_t v = cudnnGetVersion();  // 9.19.0 is 91900
  return std::to_string(v / 10000) + "." + std::to_string((v % 10000) / 100) + "." + std::to_string(v % 100);
#else
  return "none";
#endif
}

// ---------------------------------------------------------------- L2 flush and gate

class Flusher {
 public:
  Flusher() {
    // Four times the L2: whatever a body left there is gone afterwards.
    const std::size_t l2 = static_cast<std::size_t>(facts().prop.l2CacheSize);
    const std::size_t bytes = std::max<std::size_t>(4 * l2, std::size_t(64) << 20);
    buffer_ = std::make_unique<DeviceBuffer>(bytes);
    sink_ = std::make_unique<DeviceBuffer>(sizeof(float));
    BASIN_CUDA_CHECK(cudaMemsetAsync(buffer_->get(), 0, bytes, kernels::cuda::stream()));
  }
  void flush() const {
    const long long n = static_cast<long long>(buffer_->bytes() / sizeof(float4));
    kernels::cuda::launch(read_all_kernel, multiprocessor_count() * 4, kBlock, buffer_->as<float4>(), n,
                          sink_->as<float>());
  }

 private:
  std::unique_ptr<DeviceBuffer> buffer_, sink_;
};

// The flusher and the gate live until the process ends and are never
// destroyed: their destructors would free device memory after the CUDA
// runtime may already have shut down.
const Flusher& flusher() {
  static const Flusher* f = new Flusher();
  return *f;
}

class Gate {
 public:
  Gate() {
    void* host = nullptr;
    void* device = nullptr;
    BASIN_CUDA_CHECK(cudaHostAlloc(&host, sizeof(int), cudaHostAllocMapped));
    flag_ = static_cast<volatile int*>(host);
    *flag_ = 0;
    BASIN_CUDA_CHECK(cudaHostGetDevicePointer(&device, host, 0));
    device_flag_ = static_cast<int*>(device);
    timed_out_ = std::make_unique<DeviceBuffer>(sizeof(int));
    BASIN_CUDA_CHECK(cudaMemsetAsync(timed_out_->as<int>(), 0, sizeof(int), kernels::cuda::stream()));
  }
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  // Queues a gate that opens at open(); the flag only grows, so a gate and the
  // open of the repetition before it can never be confused.
  void close() {
    ++target_;
    kernels::cuda::launch(gate_kernel, 1, 1, device_flag_, target_, kTimeoutNs, timed_out_->as<int>());
  }
  void open() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    *flag_ = target_;
  }
  // Whether a gate gave up waiting since the last call (which clears the flag).
  // Call only after the gates' stream work is complete.
  bool timed_out() {
    int value = 0;
    BASIN_CUDA_CHECK(
        cudaMemcpyAsync(&value, timed_out_->as<int>(), sizeof(int), cudaMemcpyDeviceToHost, kernels::cuda::stream()));
    BASIN_CUDA_CHECK(cudaMemsetAsync(timed_out_->as<int>(), 0, sizeof(int), kernels::cuda::stream()));
    BASIN_CUDA_CHECK(cudaStreamSynchronize(kernels::cuda::stream()));
    return value != 0;
  }

 private:
  static constexpr unsigned long long kTimeoutNs = 200'000'000ull;  // 0.2 s
  volatile int* flag_ = nullptr;
  int* device_flag_ = nullptr;
  int target_ = 0;
  std::unique_ptr<DeviceBuffer> timed_out_;
};

}  // namespace

// ---------------------------------------------------------------- public

int multiprocessor_count() { return facts().prop.multiProcessorCount; }

std::string cuda_environment() {
  const DeviceFacts& f = facts();
  std::ostringstream out;
  out.precision(1);
  out << f.prop.name << " (sm_" << f.prop.major << f.prop.minor << ", " << std::fixed
      << static_cast<double>(f.prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0) << " GiB, "
      << f.prop.multiProcessorCount << " SMs, L2 " << f.prop.l2CacheSize / (1024 * 1024) << " MiB), driver "
      << cuda_version(f.driver) << ", CUDA runtime " << cuda_version(f.runtime) << ", cuDNN " << cudnn_version();
  return out.str();
}

Record cuda_environment_record() {
  const DeviceFacts& f = facts();
  Record r;
  r.set("gpu", std::string(f.prop.name))
      .set("sm", std::to_string(f.prop.major) + std::to_string(f.prop.minor))
      .set("driver", cuda_version(f.driver))
      .set("cuda_runtime", cuda_version(f.runtime))
      .set("cudnn", cudnn_version());
  return r;
}

Stats time_cuda(const std::function<void()>& body, const TimingOptions& options) {
  BASIN_CHECK(options.repeats >= 1 && options.warmup >= 0, "time_cuda: repeats must be >= 1 and warmup >= 0");
  BASIN_CHECK(!cuda_device_emulated(), "time_cuda: the emulated CUDA device has no clock; time on a GPU");
  const cudaStream_t stream = kernels::cuda::stream();
  for (int i = 0; i < options.warmup; ++i) body();
  if (options.flush_l2) flusher();  // allocate before the timed loop

  static Gate& gate = *new Gate();
  EventList events(2 * static_cast<std::size_t>(options.repeats));
  for (int r = 0; r < options.repeats; ++r) {
    if (options.flush_l2) flusher().flush();
    gate.close();
    BASIN_CUDA_CHECK(cudaEventRecord(events[2 * r], stream));
    body();
    BASIN_CUDA_CHECK(cudaEventRecord(events[2 * r + 1], stream));
    gate.open();
  }
  BASIN_CUDA_CHECK(cudaEventSynchronize(events[2 * options.repeats - 1]));
  if (gate.timed_out()) {
    std::cerr << "note: the launch queue filled before a timed body was queued; those repetitions include the "
                 "host's launch time\n";
  }
  std::vector<double> samples(static_cast<std::size_t>(options.repeats));
  for (int r = 0; r < options.repeats; ++r) {
    float ms = 0.0f;
    BASIN_CUDA_CHECK(cudaEventElapsedTime(&ms, events[2 * r], events[2 * r + 1]));
    samples[static_cast<std::size_t>(r)] = ms;
  }
  return summarize(std::move(samples));
}

Stats time_wall(const std::function<void()>& body, const TimingOptions& options) {
  BASIN_CHECK(options.repeats >= 1 && options.warmup >= 0, "time_wall: repeats must be >= 1 and warmup >= 0");
  for (int i = 0; i < options.warmup; ++i) body();
  std::vector<double> samples(static_cast<std::size_t>(options.repeats));
  for (int r = 0; r < options.repeats; ++r) {
    if (options.flush_l2) flusher().flush();
    kernels::cuda::synchronize();
    const auto start = std::chrono::steady_clock::now();
    body();
    kernels::cuda::synchronize();
    samples[static_cast<std::size_t>(r)] =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  return summarize(std::move(samples));
}

double CopyMeasurement::gbps() const { return 2.0 * static_cast<double>(bytes) / (stats.median_ms * 1e-3) / 1e9; }

std::vector<CopyMeasurement> measure_copies(std::int64_t bytes, const TimingOptions& options, bool time) {
  BASIN_CHECK(bytes > 0 && bytes % 16 == 0, "measure_copies: the size must be a positive multiple of 16 bytes, got ",
              bytes);
  const cudaStream_t stream = kernels::cuda::stream();
  const std::size_t nbytes = static_cast<std::size_t>(bytes);
  DeviceBuffer src(nbytes), dst(nbytes);
  DeviceBuffer mismatches(sizeof(unsigned long long));
  const long long words = bytes / 4;
  const long long vectors = bytes / 16;
  kernels::cuda::launch(pattern_kernel, multiprocessor_count() * 4, kBlock, src.as<unsigned>(), words);

  struct Method {
    std::string name;
    std::function<void()> run;
  };
  std::vector<Method> methods;
  const int sms = multiprocessor_count();
  for (const int per_sm : {2, 4, 8}) {
    const int grid = sms * per_sm;
    methods.push_back(
        {"float4 kernel (grid " + std::to_string(grid) + " x " + std::to_string(kBlock) + ", 1 load in flight)",
         [=, &src, &dst] {
           kernels::cuda::launch(copy_kernel<1>, grid, kBlock, dst.as<float4>(), src.as<float4>(), vectors);
         }});
    methods.push_back(
        {"float4 kernel (grid " + std::to_string(grid) + " x " + std::to_string(kBlock) + ", 4 loads in flight)",
         [=, &src, &dst] {
           kernels::cuda::launch(copy_kernel<4>, grid, kBlock, dst.as<float4>(), src.as<float4>(), vectors);
         }});
  }
  const long long one_each = (vectors + kBlock - 1) / kBlock;
  if (one_each <= 0x7fffffffLL) {
    methods.push_back({"float4 kernel (one float4 per thread)", [=, &src, &dst] {
                         kernels::cuda::launch(copy_kernel<1>, static_cast<unsigned>(one_each), kBlock,
                                               dst.as<float4>(), src.as<float4>(), vectors);
                       }});
  }
  methods.push_back({"cudaMemcpyAsync", [=, &src, &dst] {
                       BASIN_CUDA_CHECK(
                           cudaMemcpyAsync(dst.get(), src.get(), nbytes, cudaMemcpyDeviceToDevice, stream));
                     }});

  std::vector<CopyMeasurement> out;
  for (const Method& m : methods) {
    // Check before timing: poison the destination, copy once, count wrong words.
    BASIN_CUDA_CHECK(cudaMemsetAsync(dst.get(), 0xff, nbytes, stream));
    BASIN_CUDA_CHECK(cudaMemsetAsync(mismatches.get(), 0, sizeof(unsigned long long), stream));
    m.run();
    kernels::cuda::launch(count_mismatches_kernel, sms * 4, kBlock, dst.as<unsigned>(), src.as<unsigned>(), words,
                          mismatches.as<unsigned long long>());
    unsigned long long wrong = 0;
    BASIN_CUDA_CHECK(cudaMemcpyAsync(&wrong, mismatches.get(), sizeof wrong, cudaMemcpyDeviceToHost, stream));
    BASIN_CUDA_CHECK(cudaStreamSynchronize(stream));
    BASIN_CHECK(wrong == 0, "copy check: ", m.name, " left ", wrong, " of ", words, " words wrong at ", bytes,
                " bytes");
    CopyMeasurement result;
    result.method = m.name;
    result.bytes = bytes;
    if (time) result.stats = time_cuda(m.run, options);
    out.push_back(result);
  }
  return out;
}

CopyMeasurement copy_bandwidth(std::int64_t bytes, const TimingOptions& options) {
  const std::vector<CopyMeasurement> all = measure_copies(bytes, options);
  const CopyMeasurement* best = &all.front();
  for (const CopyMeasurement& m : all) {
    if (m.gbps() > best->gbps()) best = &m;
  }
  return *best;
}

}  // namespace basin::bench
