// basin's CUDA emulator seen from the host: how a launch reaches it, what it
// knows about device memory, how it reports a fault, and the switches a test
// or a user can turn (the thread order between barriers).
//
// Present only in builds configured with -DBASIN_CUDA=EMULATE. The CUDA
// runtime, cuBLAS and cuDNN entry points it implements are declared in
// include/ under their real names; this header is what those
// implementations, basin's launch helper (kernels/cuda/launch.cuh) and the
// emulator's own tests share.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace basin::emulator {

// ---------------------------------------------------------------- the schedule
// The order in which the threads of a block resume after a barrier (and start
// at the beginning). A kernel that is correct gives the same bits in every
// order; a missing barrier usually shows in one of them.
enum class Order { Forward, Reverse, Random };

struct Schedule {
  Order order = Order::Forward;
  std::uint64_t seed = 0;  // Random only
};

// "forward", "reverse" or "random:SEED" (SEED a decimal integer); throws
// basin::Error naming the text otherwise.
Schedule parse_schedule(std::string_view text);
std::string schedule_name(const Schedule& schedule);
// The schedule starts as BASIN_EMULATE_SCHEDULE says (forward when unset).
Schedule schedule();
void set_schedule(const Schedule& schedule);

// ---------------------------------------------------------------- launching
// One kernel launch as the launch helper hands it over. run_thread(context)
// runs the kernel's body for the CUDA thread the built-ins describe.
struct KernelLaunch {
  const void* kernel = nullptr;  // the kernel's address: its name and static shared memory
  dim3 grid;
  dim3 block;
  const void* const* pointers = nullptr;  // the pointer arguments the helper could see
  std::size_t pointer_count = 0;
  void (*run_thread)(const void* context) = nullptr;
  const void* context = nullptr;
};

// Runs the whole grid before returning. The outcome is what cudaGetLastError
// then returns: cudaSuccess, a launch error (invalid configuration, too much
// shared memory), or the sticky error of a fault during the run.
void launch(const KernelLaunch& launch);

// ---------------------------------------------------------------- device memory and faults
// The limits a launch is checked against (those of every GPU basin targets).
inline constexpr int kMultiprocessors = 2;  // small, so grid-stride loops really loop
inline constexpr unsigned kMaxThreadsPerBlock = 1024;
inline constexpr std::size_t kMaxStaticSharedBytes = 48 * 1024;

// True when [ptr, ptr + bytes) lies inside one live device allocation (or a
// mapped host allocation, which kernels may read). With bytes 0, ptr itself
// must be inside one: one past the end is not.
bool is_device_range(const void* ptr, std::size_t bytes);

// A fault while the device runs work (a kernel, a cuBLAS or cuDNN call):
// `code` becomes the device's sticky error, as on a real GPU, and every later
// runtime call returns it. `detail` says what happened; error_detail() keeps it.
void device_fault(cudaError_t code, std::string detail);
// The sticky error, or cudaSuccess.
cudaError_t sticky_error();
// The emulator's explanation of the last error it raised with this code, or ""
// (appended to basin's CUDA error messages in emulated builds).
std::string error_detail(cudaError_t code);

// ---------------------------------------------------------------- kernels
// The kernel's mangled symbol, or "" when the binary has no symbol table.
std::string kernel_symbol(const void* kernel);
// Bytes of static __shared__ memory the kernel declares (its function-local
// statics, from the symbol table); 0 when unknown.
std::size_t static_shared_bytes(const void* kernel);

// ---------------------------------------------------------------- for tests
// Clears the sticky error and the last error. A real GPU cannot do this (its
// process must exit); the emulator's tests use it to go on after a planted fault.
void reset();

// What the emulator has run since the process started.
struct Counters {
  long long launches = 0;
  long long blocks = 0;
  long long threads = 0;
  long long switches = 0;  // fiber switches: each start, wait and resumption
};
Counters counters();

}  // namespace basin::emulator
