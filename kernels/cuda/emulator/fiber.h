// Fibers for the CUDA emulator: each CUDA thread of a block runs on one, so a
// thread that reaches __syncthreads() can stop where it is and let the others
// catch up, all on the host thread that launched the kernel.
//
// The switch itself is Boost.Context's fcontext (jump_fcontext: a few
// instructions that save the callee-saved registers and swap stacks, about
// 10 ns; glibc's swapcontext also saves the signal mask with a system call and
// was 60 times slower). Around each switch the sanitizers are told what
// happens, or they would misread it:
//  - AddressSanitizer must know which stack is live (start/finish_switch_fiber),
//    or it reports stack accesses on a fiber stack as wild;
//  - ThreadSanitizer must know which "thread" runs (a TSan fiber per CUDA
//    thread slot), and is told not to order the fibers at a switch: ordering
//    between CUDA threads comes only from what orders them on a GPU
//    (barriers, warp operations, atomics), so a missing barrier is a race it
//    reports. The scheduler adds those orderings (scheduler.cpp). The
//    emulator's own bookkeeping, which every fiber touches, is not part of
//    the program under test: fiber.cpp and scheduler.cpp are compiled without
//    ThreadSanitizer's instrumentation (CMakeLists.txt).
#pragma once

#include <cstddef>

#include "kernels/cuda/emulator/sanitizers.h"

namespace basin::emulator {

// A fiber's stack: anonymous memory with an inaccessible guard page below it,
// so an overflow stops at once with a fault instead of overwriting a neighbour.
class FiberStack {
 public:
  explicit FiberStack(std::size_t bytes);
  ~FiberStack();
  FiberStack(FiberStack&& other) noexcept;
  FiberStack& operator=(FiberStack&&) = delete;
  FiberStack(const FiberStack&) = delete;
  FiberStack& operator=(const FiberStack&) = delete;

  void* bottom() const { return usable_; }  // lowest usable address
  std::size_t size() const { return size_; }
  void* top() const { return static_cast<char*>(usable_) + size_; }

 private:
  void* mapping_ = nullptr;
  std::size_t mapping_bytes_ = 0;
  void* usable_ = nullptr;
  std::size_t size_ = 0;
};

// One CUDA thread slot of a block: its stack, its ThreadSanitizer fiber, and
// where it stopped. The slot is reused by the thread with the same index in
// every block (blocks run one after another).
struct Fiber {
  explicit Fiber(std::size_t stack_bytes);
  ~Fiber();
  Fiber(Fiber&& other) noexcept;
  Fiber& operator=(Fiber&&) = delete;

  FiberStack stack;
  void* context = nullptr;          // where it continues; valid while suspended
  void* asan_fake_stack = nullptr;  // AddressSanitizer's bookkeeping across a switch
  void* tsan_fiber = nullptr;
};

// Switching between the host side of a launch (the scheduler) and the fibers.
// One Switchboard serves one launch at a time, on the host thread running it.
class Switchboard {
 public:
  using Entry = void (*)(void* argument);

  // Host side. Starts `entry(argument)` on the fiber from the top of its
  // stack, or continues it where it stopped; returns when the fiber suspends
  // or finishes, telling which.
  enum class Outcome { Suspended, Finished };
  Outcome start(Fiber& fiber, Entry entry, void* argument);
  Outcome resume(Fiber& fiber);

  // Fiber side: back to the host side until resume() continues this fiber.
  void suspend(Fiber& self);

  // Forgets a fiber that stopped for good in the middle (a failed launch): its
  // stack will be started afresh, and AddressSanitizer's poison on it is cleared.
  static void abandon(Fiber& fiber);

 private:
  friend struct FiberEntry;  // the first frame on every fiber's stack (fiber.cpp)
  Outcome jump_to(Fiber& fiber);
  [[noreturn]] void finish();

  void* host_context_ = nullptr;  // where the host side continues
  const void* host_stack_bottom_ = nullptr;
  std::size_t host_stack_size_ = 0;
  void* host_fake_stack_ = nullptr;
  void* host_tsan_fiber_ = nullptr;
  Entry entry_ = nullptr;
  void* argument_ = nullptr;
};

}  // namespace basin::emulator
