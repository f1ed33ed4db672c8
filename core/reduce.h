// Reductions: sum, mean and max over all elements or over given dims.
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

// Sums `grad` down to `shape`: the adjoint of broadcasting `shape` up to
// grad's shape. Leading dims are summed away, size-1 dims summed with keepdim.
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace basin
