// How the CPU engine splits a loop across threads.
//
// parallel_for(n, body) calls body(begin, end) on disjoint ranges that cover
// [0, n), one range per OpenMP thread, and runs on the calling thread alone
// when n is below kMinPerThread: starting a parallel region costs a few
// microseconds, more than a small loop takes. A build without OpenMP runs
// body(0, n). The ranges depend only on n and the thread count, so a kernel
// that reduces per range and then combines the ranges in order gives the same
// result on every run with the same thread count.
#pragma once

#include <algorithm>
#include <cstdint>

#if BASIN_WITH_OPENMP
#include <omp.h>
#endif

namespace basin::kernels::fast {

// Elements (or rows) below which a loop stays on one thread.
inline constexpr std::int64_t kMinPerThread = 32768;

// The number of ranges parallel_for(n, ...) uses with `grain` elements at least per range.
inline int parallel_ranges(std::int64_t n, std::int64_t grain = kMinPerThread) {
#if BASIN_WITH_OPENMP
  const std::int64_t useful = std::max<std::int64_t>(1, n / std::max<std::int64_t>(grain, 1));
  return static_cast<int>(std::min<std::int64_t>(omp_get_max_threads(), useful));
#else
  (void)n;
  (void)grain;
  return 1;
#endif
}

template <class Body>
void parallel_for(std::int64_t n, Body&& body, std::int64_t grain = kMinPerThread) {
  if (n <= 0) return;
  const int ranges = parallel_ranges(n, grain);
  if (ranges == 1) {
    body(std::int64_t{0}, n);
    return;
  }
#if BASIN_WITH_OPENMP
#pragma omp parallel for num_threads(ranges) schedule(static, 1)
  for (int range = 0; range < ranges; ++range) {
    body(n * range / ranges, n * (range + 1) / ranges);
  }
#endif
}

}  // namespace basin::kernels::fast
