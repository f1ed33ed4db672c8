// Reductions. Every reduction is brought to one kernel layout: the input as a
// contiguous [outer, reduce, inner] block (kernels/reduce.h).
#include "core/reduce.h"

#include <algorithm>
#include <numeric>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/elementwise.h"
#include "kernels/reduce.h"

namespace basin {

namespace {

// Sorted, wrapped, duplicate-free dims; empty means "all dims".
Dims normalize_dims(const Dims& dims, std::int64_t ndim, const char* op) {
  Dims out;
  if (dims.empty()) {
    out.resize(static_cast<std::size_t>(ndim));
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  for (std::int64_t d : dims) out.push_back(wrap_dim(d, ndim, op));
  std::sort(out.begin(), out.end());
  BASIN_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), op, ": a dimension is listed twice");
  return out;
}

Shape reduced_shape(const Shape& shape, const Dims& dims, bool keepdim) {
  Shape out;
  for (std::int64_t d = 0; d < static_cast<std::int64_t>(shape.size()); ++d) {
    const bool reduced = std::binary_search(dims.begin(), dims.end(), d);
    if (!reduced) {
      out.push_back(shape[d]);
    } else if (keepdim) {
      out.push_back(1);
    }
  }
  return out;
}

// The input laid out as [outer, reduce, inner], contiguous. When the reduced
// dims are one consecutive run this is a free view; otherwise they are moved
// to the end first (one copy), and `order` receives that permutation (it is
// left empty when the layout keeps x's dim order).
Tensor as_reduce_layout(const Tensor& x, const Dims& dims, kernels::ReduceShape& layout, Dims* order = nullptr) {
  const bool consecutive = dims.empty() || dims.back() - dims.front() + 1 == static_cast<std::int64_t>(dims.size());
  Tensor source = x;
  Dims run = dims;
  if (order) order->clear();
  if (!consecutive) {
    std::vector<std::int64_t> permutation;
    for (std::int64_t d = 0; d < x.dim(); ++d) {
      if (!std::binary_search(dims.begin(), dims.end(), d)) permutation.push_back(d);
    }
    permutation.insert(permutation.end(), dims.begin(), dims.end());
    source = x.permute(permutation);
    run.resize(dims.size());
    std::iota(run.begin(), run.end(), x.dim() - static_cast<std::int64_t>(dims.size()));
    if (order) *order = permutation;
  }
  source = source.contiguous();
  layout = {};
  for (std::int64_t d = 0; d < source.dim(); ++d) {
    const std::int64_t size = source.shape()[d];
    if (!run.empty() && d < run.front()) {
      layout.outer *= size;
    } else if (!run.empty() && d <= run.back()) {
      layout.reduce *= size;
    } else {
      layout.inner *= size;
    }
  }
  return source;
}

Tensor sum_kernel(const Tensor& x, const Dims& dims, bool keepdim, double scale) {
  kernels::ReduceShape layout;
  const Tensor source = as_reduce_layout(x.detach(), dims, layout);
  Tensor out = empty(reduced_shape(x.shape(), dims, keepdim), TensorOptions(x.dtype()).device(x.device()));
  BASIN_RUN_KERNEL(x.device(), sum, arg(out), arg(source), layout, scale);
  return out;
}

// Gradient of a reduction: grad_output (reduced shape) broadcast back to the input.
Tensor expand_back(const Tensor& grad, const Shape& input_shape, const Dims& dims, bool keepdim) {
  Tensor g = grad;
  if (!keepdim) {
    for (std::int64_t d : dims) g = g.unsqueeze(d);  // dims are sorted, so each insert lands in place
  }
  return g.expand(input_shape);
}

Tensor reduce_sum(const char* op, const Tensor& x, const Dims& requested, bool keepdim, bool average) {
  check_same_floating_dtype(op, {&x});
  const Dims dims = normalize_dims(requested, x.dim(), op);
  std::int64_t count = 1;
  for (std::int64_t d : dims) count *= x.shape()[d];
  const double scale = average ? 1.0 / static_cast<double>(count) : 1.0;
  BASIN_CHECK(!average || count > 0, op, ": mean over zero elements");
  Tensor out = sum_kernel(x, dims, keepdim, scale);
  return record(op, out, {x}, [input_shape = x.shape(), dims, keepdim, scale](const Tensor& g, const GradNeeds&) {
    Tensor spread = expand_back(g, input_shape, dims, keepdim);
    return TensorList{scale == 1.0 ? spread.contiguous() : mul(spread, scale)};
  });
}

// max over `dims` (normalized): the values and, for backward and argmax, the
// int64 index of the first maximum within each group of the layout.
struct MaxResult {
  Tensor values;
  Tensor indices;
  kernels::ReduceShape layout;
  Shape source_shape;  // the shape of x as laid out (x's, or permuted)
  Dims order;          // the permutation applied to x; empty for none
};

MaxResult max_kernel(const char* op, const Tensor& x, const Dims& dims, bool keepdim) {
  check_same_floating_dtype(op, {&x});
  std::int64_t count = 1;
  for (std::int64_t d : dims) count *= x.shape()[d];
  BASIN_CHECK(count > 0, op, ": cannot reduce over zero elements (x is ", shape_str(x.shape()), ", reducing dims ",
              shape_str(dims), ")");
  MaxResult result;
  const Tensor source = as_reduce_layout(x.detach(), dims, result.layout, &result.order);
  result.source_shape = source.shape();
  const Shape shape = reduced_shape(x.shape(), dims, keepdim);
  result.values = empty(shape, TensorOptions(x.dtype()).device(x.device()));
  result.indices = empty(shape, TensorOptions(kInt64).device(x.device()));
  BASIN_RUN_KERNEL(x.device(), max, arg(result.values), arg(result.indices), arg(source), result.layout);
  return result;
}

Tensor reduce_max(const Tensor& x, const Dims& requested, bool keepdim) {
  MaxResult result = max_kernel("max", x, normalize_dims(requested, x.dim(), "max"), keepdim);
  // The gradient lands on the element each index names (one kernel writes
  // every element of the layout, zero elsewhere), then the layout's
  // permutation, if any, is undone.
  return record("max", result.values, {x},
                [indices = result.indices, layout = result.layout, source_shape = result.source_shape,
                 order = result.order](const Tensor& g, const GradNeeds&) {
                  const Tensor grad_out = g.contiguous();
                  Tensor grad_in = empty(source_shape, TensorOptions(g.dtype()).device(g.device()));
                  BASIN_RUN_KERNEL(g.device(), max_backward, arg(grad_in), arg(grad_out), arg(indices), layout);
                  if (order.empty()) return TensorList{grad_in};
                  Dims inverse(order.size());
                  for (std::size_t i = 0; i < order.size(); ++i) inverse[order[i]] = static_cast<std::int64_t>(i);
                  return TensorList{grad_in.permute(inverse)};
                });
}

}  // namespace

Tensor sum(const Tensor& x) { return reduce_sum("sum", x, {}, false, false); }
Tensor sum(const Tensor& x, const Dims& dims, bool keepdim) { return reduce_sum("sum", x, dims, keepdim, false); }
Tensor mean(const Tensor& x) { return reduce_sum("mean", x, {}, false, true); }
Tensor mean(const Tensor& x, const Dims& dims, bool keepdim) { return reduce_sum("mean", x, dims, keepdim, true); }

Tensor max(const Tensor& x) { return reduce_max(x, {}, false); }
Tensor max(const Tensor& x, const Dims& dims, bool keepdim) { return reduce_max(x, dims, keepdim); }

Tensor argmax(const Tensor& x, std::int64_t dim, bool keepdim) {
  const std::int64_t d = wrap_dim(dim, x.dim(), "argmax");
  // A scalar has nothing to reduce: its only index is 0.
  const Dims dims = x.dim() == 0 ? Dims{} : Dims{d};
  return max_kernel("argmax", x, dims, keepdim).indices;
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  BASIN_CHECK(grad.dim() >= static_cast<std::int64_t>(shape.size()), "sum_to: cannot sum ",
              shape_str(grad.shape()), " to ", shape_str(shape));
  const std::int64_t lead = grad.dim() - static_cast<std::int64_t>(shape.size());
  Dims dims;
  for (std::int64_t d = 0; d < grad.dim(); ++d) {
    if (d < lead || (shape[d - lead] == 1 && grad.shape()[d] != 1)) dims.push_back(d);
  }
  Tensor out = dims.empty() ? grad : sum(grad, dims, /*keepdim=*/true);
  return out.reshape(shape);
}

}  // namespace basin
