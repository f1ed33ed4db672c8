// Strided addressing on the GPU: the element offset of linear index i in a
// tensor of any strides, by dividing i through the sizes from the last
// dimension. Kernels take the contiguous fast path when they can.
#pragma once

#include <cstdint>

#include "kernels/tensor_arg.h"

namespace basin::kernels::cuda {

__host__ __device__ inline std::int64_t strided_offset(const TensorArg& t, std::int64_t linear) {
  if (t.contiguous) return linear;
  std::int64_t offset = 0;
  for (int d = t.ndim - 1; d >= 0; --d) {
    const std::int64_t size = t.sizes[d];
    offset += (linear % size) * t.strides[d];
    linear /= size;
  }
  return offset;
}

}  // namespace basin::kernels::cuda
