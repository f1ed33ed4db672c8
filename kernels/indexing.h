// Indexing kernels: index_select and gather, their backward passes (which
// scatter-add), and the range of an index tensor for bounds checking.
//
//   index_select:          out[o, j, i] = in[o, index[j], i]
//   index_select_backward: grad_in[o, k, i] = sum over j with index[j] == k of grad_out[o, j, i]
//                          (in and grad_in are [outer, in_size, inner],
//                           out and grad_out are [outer, out_size, inner], index is [out_size])
//   gather:                out[p] = in[p with its coordinate along dim replaced by index[p]]
//                          (out and index have one shape, in has the same ndim)
//   gather_backward:       grad_in[q] = sum over p with gather(p) reading q of grad_out[p]
//   index_range:           range[0] = min(index), range[1] = max(index) (int64; index non-empty)
//
// Contract (checked by core/indexing.cpp, not here): index is int32 or int64
// and every value lies in [0, size of the indexed dim); all tensors are
// contiguous except `in` of gather, which may have any strides. The backward
// kernels write every element of grad_in, so it needs no zero-fill. Each
// grad_in element sums its contributions in increasing order of the index
// position, on both devices, so the two agree bit for bit and no atomics are
// needed.
#pragma once

#include <cstdint>

#include "core/error.h"
#include "kernels/tensor_arg.h"

namespace basin::kernels {

struct SelectShape {
  std::int64_t outer = 1;
  std::int64_t in_size = 1;   // size of the indexed dim in the input
  std::int64_t out_size = 1;  // number of indices
  std::int64_t inner = 1;
};

// The checks both backends' index_range runs before any work.
inline void check_index_range(const TensorArg& index) { BASIN_CHECK(index.numel > 0, "index_range: empty index"); }

namespace reference {
void index_select(const TensorArg& out, const TensorArg& in, const TensorArg& index, SelectShape shape);
void index_select_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& index,
                           SelectShape shape);
void gather(const TensorArg& out, const TensorArg& in, const TensorArg& index, int dim);
void gather_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& index, int dim);
void index_range(const TensorArg& range, const TensorArg& index);
}  // namespace reference

namespace cuda {
void index_select(const TensorArg& out, const TensorArg& in, const TensorArg& index, SelectShape shape);
void index_select_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& index,
                           SelectShape shape);
void gather(const TensorArg& out, const TensorArg& in, const TensorArg& index, int dim);
void gather_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& index, int dim);
void index_range(const TensorArg& range, const TensorArg& index);
}  // namespace cuda

}  // namespace basin::kernels
