#include "kernels/cuda/emulator/fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <boost/context/detail/fcontext.hpp>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "core/error.h"

namespace basin::emulator {

namespace ctx = boost::context::detail;

namespace {

// Passed as the data of a fiber's last switch, so the host side can tell a
// finished fiber from a suspended one.
char finished_marker;

std::size_t page_size() {
  static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace

// ---------------------------------------------------------------- FiberStack

FiberStack::FiberStack(std::size_t bytes) {
  const std::size_t page = page_size();
  size_ = (bytes + page - 1) / page * page;
  mapping_bytes_ = size_ + page;
  mapping_ = mmap(nullptr, mapping_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  BASIN_CHECK(mapping_ != MAP_FAILED, "CUDA emulator: could not map a ", size_, "-byte fiber stack");
  // Stacks grow down: the guard page is the lowest one.
  BASIN_CHECK(mprotect(mapping_, page, PROT_NONE) == 0, "CUDA emulator: could not protect a fiber stack's guard page");
  usable_ = static_cast<char*>(mapping_) + page;
}

FiberStack::~FiberStack() {
  if (mapping_ != nullptr) munmap(mapping_, mapping_bytes_);
}

FiberStack::FiberStack(FiberStack&& other) noexcept
    : mapping_(std::exchange(other.mapping_, nullptr)),
      mapping_bytes_(std::exchange(other.mapping_bytes_, 0)),
      usable_(std::exchange(other.usable_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

// ---------------------------------------------------------------- Fiber

Fiber::Fiber(std::size_t stack_bytes) : stack(stack_bytes), tsan_fiber(sanitizer::create_fiber()) {}

Fiber::~Fiber() { sanitizer::destroy_fiber(tsan_fiber); }

Fiber::Fiber(Fiber&& other) noexcept
    : stack(std::move(other.stack)),
      context(std::exchange(other.context, nullptr)),
      asan_fake_stack(std::exchange(other.asan_fake_stack, nullptr)),
      tsan_fiber(std::exchange(other.tsan_fiber, nullptr)) {}

// ---------------------------------------------------------------- Switchboard

struct FiberEntry {
  // The bottom frame of a fiber: `from` is the host side that started it.
  static void main(ctx::transfer_t from) {
    Switchboard& board = *static_cast<Switchboard*>(from.data);
    board.host_context_ = from.fctx;
    sanitizer::finish_switch(nullptr, &board.host_stack_bottom_, &board.host_stack_size_);
    board.entry_(board.argument_);  // noexcept by contract: nothing may unwind past this frame
    board.finish();
  }
};

Switchboard::Outcome Switchboard::start(Fiber& fiber, Entry entry, void* argument) {
  entry_ = entry;
  argument_ = argument;
  fiber.context = ctx::make_fcontext(fiber.stack.top(), fiber.stack.size(), &FiberEntry::main);
  return jump_to(fiber);
}

Switchboard::Outcome Switchboard::resume(Fiber& fiber) { return jump_to(fiber); }

Switchboard::Outcome Switchboard::jump_to(Fiber& fiber) {
  host_tsan_fiber_ = sanitizer::current_fiber();
  sanitizer::start_switch(&host_fake_stack_, fiber.stack.bottom(), fiber.stack.size());
  sanitizer::switch_to_fiber(fiber.tsan_fiber);
  const ctx::transfer_t back = ctx::jump_fcontext(fiber.context, this);
  sanitizer::finish_switch(host_fake_stack_, nullptr, nullptr);
  if (back.data == &finished_marker) {
    fiber.context = nullptr;
    return Outcome::Finished;
  }
  fiber.context = back.fctx;
  return Outcome::Suspended;
}

void Switchboard::suspend(Fiber& self) {
  sanitizer::start_switch(&self.asan_fake_stack, host_stack_bottom_, host_stack_size_);
  sanitizer::switch_to_fiber(host_tsan_fiber_);
  const ctx::transfer_t back = ctx::jump_fcontext(host_context_, nullptr);
  host_context_ = back.fctx;
  sanitizer::finish_switch(self.asan_fake_stack, &host_stack_bottom_, &host_stack_size_);
}

void Switchboard::finish() {
  // A null save slot tells AddressSanitizer this stack is done for.
  sanitizer::start_switch(nullptr, host_stack_bottom_, host_stack_size_);
  sanitizer::switch_to_fiber(host_tsan_fiber_);
  ctx::jump_fcontext(host_context_, &finished_marker);
  // Nothing resumes a finished fiber.
  std::fputs("basin CUDA emulator: a finished fiber was resumed\n", stderr);
  std::abort();
}

void Switchboard::abandon(Fiber& fiber) {
  fiber.context = nullptr;
  fiber.asan_fake_stack = nullptr;
  // Frames that never returned leave their red zones poisoned.
  sanitizer::unpoison(fiber.stack.bottom(), fiber.stack.size());
}

}  // namespace basin::emulator
