// Reduction kernels over a contiguous input viewed as [outer, reduce, inner]:
//
//   sum:          out[o, i] = scale * sum_r in[o, r, i]
//   max:          values[o, i]  = max_r in[o, r, i]
//                 indices[o, i] = the first r where that maximum occurs (int64)
//   max_backward: grad_in[o, r, i] = r == indices[o, i] ? grad_out[o, i] : 0
//
// out, values, indices and grad_out are contiguous [outer, inner]; grad_in is
// contiguous [outer, reduce, inner] and every element of it is written.
// Summation order is fixed by the shape alone, so results are bit-identical
// from run to run (no atomics). max propagates NaN: a group holding a NaN
// gives NaN, and its index is that of the first NaN (as PyTorch). max needs
// reduce >= 1. core/reduce.cpp brings any set of reduced dims into this layout.
#pragma once

#include <cstdint>

#include "core/error.h"
#include "kernels/tensor_arg.h"

namespace basin::kernels {

struct ReduceShape {
  std::int64_t outer = 1;
  std::int64_t reduce = 1;
  std::int64_t inner = 1;
};

// The checks both backends' max runs before any work.
inline void check_max(const ReduceShape& shape) {
  BASIN_CHECK(shape.reduce > 0, "max: cannot reduce over zero elements");
}

namespace reference {
void sum(const TensorArg& out, const TensorArg& in, ReduceShape shape, double scale);
void max(const TensorArg& values, const TensorArg& indices, const TensorArg& in, ReduceShape shape);
void max_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& indices, ReduceShape shape);
}  // namespace reference

// The CPU engine (kernels/fast/reduce.cpp): float32 on several threads; float64
// and other cases run the reference. sum accumulates in float32 in lanes
// (kernels/fast/lanes.h); max and max_backward give the reference's results
// bit for bit.
namespace fast {
void sum(const TensorArg& out, const TensorArg& in, ReduceShape shape, double scale);
void max(const TensorArg& values, const TensorArg& indices, const TensorArg& in, ReduceShape shape);
void max_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& indices, ReduceShape shape);
}  // namespace fast

namespace cuda {
void sum(const TensorArg& out, const TensorArg& in, ReduceShape shape, double scale);
void max(const TensorArg& values, const TensorArg& indices, const TensorArg& in, ReduceShape shape);
void max_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& indices, ReduceShape shape);
}  // namespace cuda

}  // namespace basin::kernels
