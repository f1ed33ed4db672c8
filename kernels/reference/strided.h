// Walking strided tensors on the CPU.
//
// for_each_offset visits the elements of N same-shaped tensors in row-major
// order and hands the callback each tensor's element offset. It keeps an
// odometer of indices instead of dividing, so the cost per element is one
// addition per tensor in the common case.
#pragma once

#include <array>
#include <cstdint>

#include "kernels/tensor_arg.h"

namespace basin::kernels::reference {

template <std::size_t N, class Fn>
void for_each_offset(const std::array<const TensorArg*, N>& args, Fn&& fn) {
  const TensorArg& shape = *args[0];
  if (shape.numel == 0) return;
  bool all_contiguous = true;
  for (const TensorArg* arg : args) all_contiguous = all_contiguous && arg->contiguous;
  std::array<std::int64_t, N> offsets{};
  if (all_contiguous) {
    for (std::int64_t i = 0; i < shape.numel; ++i) {
      offsets.fill(i);
      fn(offsets);
    }
    return;
  }
  std::int64_t index[kMaxDims] = {};
  for (std::int64_t i = 0; i < shape.numel; ++i) {
    fn(offsets);
    // Advance the odometer: bump the last dimension, carry into earlier ones.
    for (int d = shape.ndim - 1; d >= 0; --d) {
      if (++index[d] < shape.sizes[d]) {
        for (std::size_t t = 0; t < N; ++t) offsets[t] += args[t]->strides[d];
        break;
      }
      for (std::size_t t = 0; t < N; ++t) offsets[t] -= (shape.sizes[d] - 1) * args[t]->strides[d];
      index[d] = 0;
    }
  }
}

}  // namespace basin::kernels::reference
