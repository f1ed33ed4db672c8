// The sanitizer hooks the CUDA emulator calls, and no-ops in builds without
// the sanitizer. GCC says which sanitizer is on with __SANITIZE_ADDRESS__ and
// __SANITIZE_THREAD__; clang only through __has_feature. The scheduler's own
// files are built without ThreadSanitizer's instrumentation but with its
// annotations: the build defines BASIN_EMULATOR_TSAN for them.
#pragma once

#include <cstddef>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BASIN_EMULATOR_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define BASIN_EMULATOR_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(BASIN_EMULATOR_ASAN)
#define BASIN_EMULATOR_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(BASIN_EMULATOR_TSAN)
#define BASIN_EMULATOR_TSAN 1
#endif

#if BASIN_EMULATOR_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if BASIN_EMULATOR_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace basin::emulator::sanitizer {

// ---------------------------------------------------------------- AddressSanitizer
inline void start_switch(void** fake_stack_save, const void* bottom, std::size_t size) {
#if BASIN_EMULATOR_ASAN
  __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#else
  (void)fake_stack_save, (void)bottom, (void)size;
#endif
}
inline void finish_switch(void* fake_stack_save, const void** bottom_old, std::size_t* size_old) {
#if BASIN_EMULATOR_ASAN
  __sanitizer_finish_switch_fiber(fake_stack_save, bottom_old, size_old);
#else
  (void)fake_stack_save, (void)bottom_old, (void)size_old;
#endif
}
inline void unpoison(void* address, std::size_t size) {
#if BASIN_EMULATOR_ASAN
  __asan_unpoison_memory_region(address, size);
#else
  (void)address, (void)size;
#endif
}

// ---------------------------------------------------------------- ThreadSanitizer
inline void* current_fiber() {
#if BASIN_EMULATOR_TSAN
  return __tsan_get_current_fiber();
#else
  return nullptr;
#endif
}
inline void* create_fiber() {
#if BASIN_EMULATOR_TSAN
  return __tsan_create_fiber(0);
#else
  return nullptr;
#endif
}
inline void destroy_fiber(void* fiber) {
#if BASIN_EMULATOR_TSAN
  if (fiber != nullptr) __tsan_destroy_fiber(fiber);
#else
  (void)fiber;
#endif
}
// Called right before the switch; the switch itself orders nothing.
inline void switch_to_fiber(void* fiber) {
#if BASIN_EMULATOR_TSAN
  __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync);
#else
  (void)fiber;
#endif
}
// Happens-before edges: everything before release(x) happens before everything
// after a later acquire(x).
inline void release(const void* sync_object) {
#if BASIN_EMULATOR_TSAN
  __tsan_release(const_cast<void*>(sync_object));
#else
  (void)sync_object;
#endif
}
inline void acquire(const void* sync_object) {
#if BASIN_EMULATOR_TSAN
  __tsan_acquire(const_cast<void*>(sync_object));
#else
  (void)sync_object;
#endif
}

}  // namespace basin::emulator::sanitizer
