// Reductions: sum, mean and max over all elements or over given dims, and argmax.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace basin {

using Dims = std::vector<std::int64_t>;

Tensor sum(const Tensor& x);  // a scalar (shape [])
Tensor sum(const Tensor& x, const Dims& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const Dims& dims, bool keepdim = false);

// The largest element, over all elements (a scalar) or over `dims`. NaN
// propagates: a group holding a NaN gives NaN, as in PyTorch. The gradient
// goes to the first maximal element of each group (first in row-major order
// over the reduced dims). PyTorch's amax splits it evenly among tied maxima
// instead, so the two differ only at ties.
Tensor max(const Tensor& x);
Tensor max(const Tensor& x, const Dims& dims, bool keepdim = false);
// The index along `dim` of the first maximum (int64). NaN counts as the
// maximum, so a slice holding one gives the index of its first NaN. Not
// differentiable.
Tensor argmax(const Tensor& x, std::int64_t dim, bool keepdim = false);

// Sums `grad` down to `shape`: the adjoint of broadcasting `shape` up to
// grad's shape. Leading dims are summed away, size-1 dims summed with keepdim.
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace basin
