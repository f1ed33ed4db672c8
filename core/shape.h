// Shapes and strides are plain vectors of int64, in elements (not bytes).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace basin {

using Shape = std::vector<std::int64_t>;
using Strides = std::vector<std::int64_t>;

// Product of the sizes; 1 for a scalar (empty shape).
std::int64_t shape_numel(const Shape& shape);
// Row-major strides: the last dimension is contiguous.
Strides contiguous_strides(const Shape& shape);
// "[2, 3, 4]"
std::string shape_str(const Shape& shape);
// Wraps a possibly negative dimension into [0, ndim) or throws naming the op.
std::int64_t wrap_dim(std::int64_t dim, std::int64_t ndim, const char* op);
// The shape both operands broadcast to (NumPy rules) or throws naming the op and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace basin
