// Reduction kernels over a contiguous input viewed as [outer, reduce, inner]:
//
//   sum:  out[o, i] = scale * sum_r in[o, r, i]
//
// out is contiguous [outer, inner]. Summation order is fixed by the shape
// alone, so results are bit-identical from run to run (no atomics).
// core/reduce.cpp brings any set of reduced dims into this layout.
#pragma once

#include <cstdint>

#include "kernels/tensor_arg.h"

namespace basin::kernels {

struct ReduceShape {
  std::int64_t outer = 1;
  std::int64_t reduce = 1;
  std::int64_t inner = 1;
};

namespace cpu {
void sum(const TensorArg& out, const TensorArg& in, ReduceShape shape, double scale);
}  // namespace cpu

namespace cuda {
void sum(const TensorArg& out, const TensorArg& in, ReduceShape shape, double scale);
}  // namespace cuda

}  // namespace basin::kernels
