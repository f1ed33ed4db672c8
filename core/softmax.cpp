// Softmax and log-softmax: the input is made contiguous and viewed as
// [outer, dim, inner] (the reduction layout, kernels/reduce.h), a fused kernel
// normalizes along the middle axis, and the backward is one fused kernel over
// the saved output.
#include "core/softmax.h"

#include "core/autograd.h"
#include "core/dispatch.h"
#include "kernels/softmax.h"

namespace basin {

namespace {

using kernels::SoftmaxKind;

Tensor softmax_op(const char* op, SoftmaxKind kind, const Tensor& x, std::int64_t dim) {
  check_same_floating_dtype(op, {&x});
  // A scalar (dim 0 or -1) is one row of one element, as in PyTorch.
  const std::int64_t d = wrap_dim(dim, x.dim(), op);
  kernels::ReduceShape layout;
  for (std::int64_t k = 0; k < x.dim(); ++k) {
    if (k < d) layout.outer *= x.shape()[k];
    if (k == d) layout.reduce = x.shape()[k];
    if (k > d) layout.inner *= x.shape()[k];
  }
  const Tensor source = x.detach().contiguous();
  Tensor out = empty(x.shape(), TensorOptions(x.dtype()).device(x.device()));
  BASIN_RUN_KERNEL(x.device(), softmax_forward, kind, arg(out), arg(source), layout);
  // The backward needs only the output: softmax's derivative is a function of y.
  return record(op, out, {x}, [kind, layout, y = out.detach()](const Tensor& g, const GradNeeds&) {
    const Tensor g_dense = g.contiguous();
    Tensor gx = empty_like(y);
    BASIN_RUN_KERNEL(y.device(), softmax_backward, kind, arg(gx), arg(g_dense), arg(y), layout);
    return TensorList{gx};
  });
}

}  // namespace

Tensor softmax(const Tensor& x, std::int64_t dim) { return softmax_op("softmax", SoftmaxKind::Softmax, x, dim); }

Tensor log_softmax(const Tensor& x, std::int64_t dim) {
  return softmax_op("log_softmax", SoftmaxKind::LogSoftmax, x, dim);
}

}  // namespace basin
