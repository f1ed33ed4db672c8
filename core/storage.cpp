#include "core/storage.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "core/error.h"
#if BASIN_WITH_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace basin {

namespace {

struct Counters {
  std::atomic<std::int64_t> current{0};
  std::atomic<std::int64_t> peak{0};

  void add(std::int64_t nbytes) {
    const std::int64_t now = current += nbytes;
    std::int64_t seen = peak.load();
    while (now > seen && !peak.compare_exchange_weak(seen, now)) {
    }
  }
  void remove(std::int64_t nbytes) { current -= nbytes; }
};

Counters& counters(Device device) {
  static Counters cpu, cuda;
  return device.is_cpu() ? cpu : cuda;
}

constexpr std::size_t kCpuAlignment = 64;  // a cache line, and enough for any SIMD load

}  // namespace

MemoryStats memory_stats(Device device) {
  const Counters& c = counters(device);
  return {c.current.load(), c.peak.load()};
}

void reset_peak_memory(Device device) {
  Counters& c = counters(device);
  c.peak = c.current.load();
}

Storage::Storage(std::size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  // Zero-byte tensors still get a distinct, valid pointer.
  const std::size_t request = std::max<std::size_t>(nbytes, 1);
  if (device.is_cpu()) {
    const std::size_t rounded = (request + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    data_ = std::aligned_alloc(kCpuAlignment, rounded);
    BASIN_CHECK(data_ != nullptr, "out of host memory: could not allocate ", nbytes, " bytes");
  } else {
#if BASIN_WITH_CUDA
    data_ = kernels::cuda::allocate(request);
#else
    BASIN_FAIL("cannot allocate on ", device.str(), ": this build of basin has no CUDA backend");
#endif
  }
  counters(device).add(static_cast<std::int64_t>(nbytes));
}

Storage::~Storage() {
  if (device_.is_cpu()) {
    std::free(data_);
  } else {
#if BASIN_WITH_CUDA
    // A destructor must not throw; a failing free here means the context is
    // already gone (process exit), where there is nothing left to do.
    try {
      kernels::cuda::deallocate(data_);
    } catch (const Error&) {
    }
#endif
  }
  counters(device_).remove(static_cast<std::int64_t>(nbytes_));
}

}  // namespace basin
