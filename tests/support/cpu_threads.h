// Thread counts for the CPU engine's tests ([engine]): the engine splits work
// into one range per thread, so a test runs its kernels at more than one count.
#pragma once

#include <catch2/catch.hpp>

#include "core/cpu_engine.h"

namespace basin::testing {

// Sets the engine's thread count for one scope and restores the previous one.
class CpuThreadsScope {
 public:
  explicit CpuThreadsScope(int threads) : previous_(cpu_threads()) { set_cpu_threads(threads); }
  ~CpuThreadsScope() { set_cpu_threads(previous_); }
  CpuThreadsScope(const CpuThreadsScope&) = delete;
  CpuThreadsScope& operator=(const CpuThreadsScope&) = delete;

 private:
  int previous_;
};

// Runs fn on 1 engine thread and on 3 (ranges of uneven length, none a
// multiple of a SIMD width), naming the count in a failure.
template <class Fn>
void for_engine_thread_counts(Fn&& fn) {
  for (int threads : {1, 3}) {
    INFO(threads << " engine threads");
    const CpuThreadsScope scope(threads);
    fn();
  }
}

}  // namespace basin::testing
