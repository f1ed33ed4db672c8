// The one way basin launches a kernel:
//
//   launch(sum_rows_kernel<T>, grid, block, out.ptr<T>(), in.ptr<T>(), n, scale);
//
// in place of `sum_rows_kernel<T><<<grid, block, 0, stream()>>>(...)`. The
// launch is queued on basin's stream, counted (launch_count(), which the tests
// use to state what an operation costs), and checked: a launch error becomes a
// basin::Error that names the kernel and its grid and block.
//
// The arguments convert to the kernel's parameter types as in a call. In a
// build with the CUDA emulator (-DBASIN_CUDA=EMULATE) the helper also hands
// the emulator the pointer arguments it can see (raw pointers and TensorArg
// data), so a host pointer given to a kernel is refused as the fault a GPU
// would raise.
#pragma once

#include <tuple>
#include <type_traits>
#include <utility>

#include "kernels/cuda/check.cuh"
#include "kernels/tensor_arg.h"

#if BASIN_CUDA_EMULATED
#include <array>

#include "kernels/cuda/emulator/emulator.h"
#endif

namespace basin::kernels::cuda {

// Throws basin::Error when the launch just queued failed (cudaGetLastError).
void check_launch(const void* kernel, dim3 grid, dim3 block);

#if BASIN_CUDA_EMULATED
namespace launch_detail {

template <class T>
const void* device_pointer_of(const T& value) {
  if constexpr (std::is_pointer_v<T>) {
    return const_cast<const void*>(static_cast<const volatile void*>(value));  // volatile flags too
  } else if constexpr (std::is_same_v<T, TensorArg>) {
    return value.data;
  } else {
    return nullptr;
  }
}

template <class T>
constexpr bool may_point_to_device = std::is_pointer_v<T> || std::is_same_v<T, TensorArg>;

}  // namespace launch_detail
#endif

template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "launch: the kernel takes a different number of arguments");
#if BASIN_CUDA_EMULATED
  // Converted once, as the real launch copies the arguments into the kernel's
  // parameter space; every CUDA thread then gets its own copies of them.
  using Values = std::tuple<std::decay_t<Params>...>;
  const Values values(std::forward<Args>(args)...);
  struct Call {
    void (*kernel)(Params...);
    const Values* values;
  } call{kernel, &values};

  std::array<const void*, sizeof...(Params) + 1> pointers{};
  std::size_t count = 0;
  std::apply(
      [&](const auto&... value) {
        ((launch_detail::may_point_to_device<std::decay_t<decltype(value)>> &&
                  launch_detail::device_pointer_of(value) != nullptr
              ? static_cast<void>(pointers[count++] = launch_detail::device_pointer_of(value))
              : static_cast<void>(0)),
         ...);
      },
      values);

  emulator::KernelLaunch request;
  request.kernel = reinterpret_cast<const void*>(kernel);
  request.grid = grid;
  request.block = block;
  request.pointers = pointers.data();
  request.pointer_count = count;
  request.context = &call;
  request.run_thread = [](const void* context) {
    const Call& c = *static_cast<const Call*>(context);
    std::apply(c.kernel, *c.values);
  };
  emulator::launch(request);
#else
  kernel<<<grid, block, 0, stream()>>>(std::forward<Args>(args)...);
#endif
  note_launch();
  check_launch(reinterpret_cast<const void*>(kernel), grid, block);
}

}  // namespace basin::kernels::cuda
