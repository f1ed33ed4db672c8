// cat, index_select and gather: check, run the kernel, record the backward.
//
// cat needs no kernel of its own: each input is copied into its slice of the
// output, and backward hands each input the matching slice of the gradient.
// The index ops' backward passes are deterministic scatter-adds
// (kernels/indexing.h explains how, without atomics).
#include "core/indexing.h"

#include <vector>

#include "core/dispatch.h"
#include "kernels/indexing.h"

namespace basin {

namespace {

void check_index(const char* op, const Tensor& x, const Tensor& index) {
  BASIN_CHECK(x.defined() && index.defined(), op, ": x and index must be defined");
  BASIN_CHECK(x.dim() > 0, op, ": x must have at least one dimension, got a scalar");
  BASIN_CHECK(index.dtype() == kInt32 || index.dtype() == kInt64, op, ": index must be int32 or int64, got ",
              dtype_name(index.dtype()));
  check_same_device(op, {&x, &index});
}

// Throws unless every value of the (contiguous) index lies in [0, size). On
// CUDA this reads the index's min and max back to the host: the op waits for
// the device here.
void check_index_range(const char* op, const Tensor& index, std::int64_t dim, std::int64_t size) {
  if (index.numel() == 0) return;
  Tensor range = empty({2}, TensorOptions(kInt64).device(index.device()));
  BASIN_RUN_KERNEL(index.device(), index_range, arg(range), arg(index));
  const std::vector<std::int64_t> bounds = range.to_vector<std::int64_t>();
  const std::int64_t bad = bounds[0] < 0 ? bounds[0] : bounds[1];
  BASIN_CHECK(bounds[0] >= 0 && bounds[1] < size, op, ": index ", bad, " is out of range for dimension ", dim,
              " of size ", size);
}

}  // namespace

Tensor cat(const TensorList& tensors, std::int64_t dim) {
  BASIN_CHECK(!tensors.empty(), "cat: expected at least one tensor");
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    BASIN_CHECK(tensors[i].defined(), "cat: tensor ", i, " is undefined");
  }
  const Tensor& first = tensors[0];
  BASIN_CHECK(first.dim() > 0, "cat: tensor 0 is a scalar; only tensors with dimensions can be joined");
  const std::int64_t d = wrap_dim(dim, first.dim(), "cat");

  Shape shape = first.shape();
  shape[d] = 0;
  std::vector<std::int64_t> starts;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    BASIN_CHECK(t.dtype() == first.dtype(), "cat: tensor ", i, " is ", dtype_name(t.dtype()), " but tensor 0 is ",
                dtype_name(first.dtype()));
    BASIN_CHECK(t.device() == first.device(), "cat: tensor ", i, " is on ", t.device().str(), " but tensor 0 is on ",
                first.device().str());
    bool fits = t.dim() == first.dim();
    for (std::int64_t k = 0; fits && k < first.dim(); ++k) fits = k == d || t.shape()[k] == first.shape()[k];
    BASIN_CHECK(fits, "cat: tensor ", i, " has shape ", shape_str(t.shape()), " but tensor 0 has shape ",
                shape_str(first.shape()), "; they must agree in every dimension except ", d);
    starts.push_back(shape[d]);
    shape[d] += t.shape()[d];
  }

  Tensor out = empty(shape, TensorOptions(first.dtype()).device(first.device()));
  {
    NoGradGuard no_grad;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const std::int64_t size = tensors[i].shape()[d];
      if (size > 0) out.slice(d, starts[i], starts[i] + size).copy_(tensors[i]);
    }
  }
  return record("cat", out, tensors, [d, starts, shape](const Tensor& g, const GradNeeds& needs) {
    TensorList grads(needs.size());
    for (std::size_t i = 0; i < needs.size(); ++i) {
      const std::int64_t end = i + 1 < starts.size() ? starts[i + 1] : shape[d];
      if (needs[i]) grads[i] = g.slice(d, starts[i], end);
    }
    return grads;
  });
}

Tensor index_select(const Tensor& x, std::int64_t dim, const Tensor& index) {
  check_index("index_select", x, index);
  const std::int64_t d = wrap_dim(dim, x.dim(), "index_select");
  BASIN_CHECK(index.dim() == 1, "index_select: index must be 1-D, got shape ", shape_str(index.shape()));
  const Tensor positions = index.detach().contiguous();
  check_index_range("index_select", positions, d, x.shape()[d]);

  // x as [outer, in_size, inner], the output as [outer, len(index), inner].
  kernels::SelectShape layout;
  for (std::int64_t k = 0; k < d; ++k) layout.outer *= x.shape()[k];
  for (std::int64_t k = d + 1; k < x.dim(); ++k) layout.inner *= x.shape()[k];
  layout.in_size = x.shape()[d];
  layout.out_size = positions.numel();
  const Tensor source = x.detach().contiguous();
  Shape shape = x.shape();
  shape[d] = positions.numel();
  Tensor out = empty(shape, TensorOptions(x.dtype()).device(x.device()));
  BASIN_RUN_KERNEL(x.device(), index_select, arg(out), arg(source), arg(positions), layout);

  return record(
      "index_select", out, {x}, [positions, layout, input_shape = x.shape()](const Tensor& g, const GradNeeds&) {
        const Tensor grad_out = g.contiguous();
        Tensor grad_in = empty(input_shape, TensorOptions(g.dtype()).device(g.device()));
        BASIN_RUN_KERNEL(g.device(), index_select_backward, arg(grad_in), arg(grad_out), arg(positions), layout);
        return TensorList{grad_in};
      });
}

Tensor gather(const Tensor& x, std::int64_t dim, const Tensor& index) {
  check_index("gather", x, index);
  const std::int64_t d = wrap_dim(dim, x.dim(), "gather");
  BASIN_CHECK(index.dim() == x.dim(), "gather: index has shape ", shape_str(index.shape()), " but x has shape ",
              shape_str(x.shape()), "; they must have the same number of dimensions");
  for (std::int64_t k = 0; k < x.dim(); ++k) {
    BASIN_CHECK(k == d || index.shape()[k] <= x.shape()[k], "gather: index has shape ", shape_str(index.shape()),
                ", larger than x's shape ", shape_str(x.shape()), " in dimension ", k);
  }
  const Tensor positions = index.detach().contiguous();
  check_index_range("gather", positions, d, x.shape()[d]);

  const Tensor source = x.detach();  // any strides: the kernel addresses x through them
  Tensor out = empty(index.shape(), TensorOptions(x.dtype()).device(x.device()));
  const int axis = static_cast<int>(d);
  BASIN_RUN_KERNEL(x.device(), gather, arg(out), arg(source), arg(positions), axis);

  return record("gather", out, {x}, [positions, axis, input_shape = x.shape()](const Tensor& g, const GradNeeds&) {
    const Tensor grad_out = g.contiguous();
    Tensor grad_in = empty(input_shape, TensorOptions(g.dtype()).device(g.device()));
    BASIN_RUN_KERNEL(g.device(), gather_backward, arg(grad_in), arg(grad_out), arg(positions), axis);
    return TensorList{grad_in};
  });
}

}  // namespace basin
