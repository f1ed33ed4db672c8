// Concatenation and index-based selection, differentiable in their data input.
#pragma once

#include <cstdint>

#include "core/autograd.h"

namespace basin {

// Joins tensors along `dim`. All must share dtype, device and ndim, and agree
// in every other dim. Each input's gradient is its slice of the output's.
Tensor cat(const TensorList& tensors, std::int64_t dim);

// Picks the slices x.select(dim, index[i]) for each i of a 1-D int32/int64
// index on x's device: out has x's shape with size(dim) = len(index).
// Indices may repeat; the gradient of a repeated slice is summed.
Tensor index_select(const Tensor& x, std::int64_t dim, const Tensor& index);

// As torch.gather: out[i][j] = x[index[i][j]][j] for dim 0 (and likewise for
// other dims). index is int32/int64 with x's ndim and index.size(d) <= x.size(d)
// for d != dim; out has index's shape. The gradient scatter-adds into x.
Tensor gather(const Tensor& x, std::int64_t dim, const Tensor& index);

// Both index ops reject an index value outside [0, x.size(dim)). On CUDA that
// check copies the index's min and max to the host, so these ops synchronize
// with the device; they are bookkeeping ops, not on the training hot path.

}  // namespace basin
