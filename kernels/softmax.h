// Softmax kernels over a contiguous input viewed as [outer, dim, inner], the
// reduction layout (kernels/reduce.h), normalizing along the middle axis:
//
//   softmax:      y[o, r, i] = exp(x[o, r, i] - m) / s
//   log_softmax:  y[o, r, i] = x[o, r, i] - m - log(s)
//     with m = max_r x[o, r, i] and s = sum_r exp(x[o, r, i] - m)
//
// Subtracting the row maximum keeps every exp() in (0, 1], so large logits
// neither overflow nor lose the small terms. The backward kernels take the
// saved output y and the upstream gradient g (both contiguous, same layout):
//
//   softmax:      gx = y * (g - sum_r g * y)
//   log_softmax:  gx = g - exp(y) * sum_r g
//
// Sums accumulate in double in a fixed order, so results are reproducible
// run to run. core/softmax.cpp brings any dim into this layout.
#pragma once

#include "kernels/reduce.h"
#include "kernels/tensor_arg.h"

namespace basin::kernels {

enum class SoftmaxKind { Softmax, LogSoftmax };

namespace reference {
void softmax_forward(SoftmaxKind kind, const TensorArg& out, const TensorArg& in, ReduceShape shape);
void softmax_backward(SoftmaxKind kind, const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& out,
                      ReduceShape shape);
}  // namespace reference

// The CPU engine (kernels/fast/softmax.cpp): contiguous float32 on several
// threads, accumulating in float32; anything else runs the reference.
namespace fast {
void softmax_forward(SoftmaxKind kind, const TensorArg& out, const TensorArg& in, ReduceShape shape);
void softmax_backward(SoftmaxKind kind, const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& out,
                      ReduceShape shape);
}  // namespace fast

namespace cuda {
void softmax_forward(SoftmaxKind kind, const TensorArg& out, const TensorArg& in, ReduceShape shape);
void softmax_backward(SoftmaxKind kind, const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& out,
                      ReduceShape shape);
}  // namespace cuda

}  // namespace basin::kernels
