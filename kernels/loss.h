// Cross-entropy with label smoothing, fused: one kernel for the loss of every
// row, one for the gradient with respect to the logits.
//
// With logits x [N, C] (contiguous), labels y [N] (contiguous, int32 or int64),
// smoothing s and the target q[n, c] = (1 - s) [c == y_n] + s / C:
//
//   forward:   lse[n]   = log sum_c exp(x[n, c])          (float64, computed stably)
//              loss[n]  = lse[n] - sum_c q[n, c] x[n, c]
//                       = lse[n] - (1 - s) x[n, y_n] - (s / C) sum_c x[n, c]
//   backward:  gx[n, c] = scale * g[n] * (exp(x[n, c] - lse[n]) - q[n, c])
//
// lse is saved by the forward so that the backward needs no reduction. g is
// read through its stride, so the scalar gradient of a mean or sum arrives
// expanded to [N] with stride 0 and is never copied or read on the host.
// A label outside [0, C): the CPU kernels throw basin::Error naming it; the
// CUDA kernels cannot throw without stalling the host, so they write NaN as
// that row's loss and gradient.
#pragma once

#include "kernels/tensor_arg.h"

namespace basin::kernels {

namespace reference {
void cross_entropy_forward(const TensorArg& loss, const TensorArg& lse, const TensorArg& logits,
                           const TensorArg& labels, double smoothing);
void cross_entropy_backward(const TensorArg& grad_logits, const TensorArg& grad_loss, double scale,
                            const TensorArg& logits, const TensorArg& lse, const TensorArg& labels, double smoothing);
}  // namespace reference

// The CPU engine (kernels/fast/loss.cpp): contiguous float32 logits on several
// threads, accumulating in float32 (lse is still written as float64); anything
// else runs the reference. A bad label throws before any output is written.
namespace fast {
void cross_entropy_forward(const TensorArg& loss, const TensorArg& lse, const TensorArg& logits,
                           const TensorArg& labels, double smoothing);
void cross_entropy_backward(const TensorArg& grad_logits, const TensorArg& grad_loss, double scale,
                            const TensorArg& logits, const TensorArg& lse, const TensorArg& labels, double smoothing);
}  // namespace fast

namespace cuda {
void cross_entropy_forward(const TensorArg& loss, const TensorArg& lse, const TensorArg& logits,
                           const TensorArg& labels, double smoothing);
void cross_entropy_backward(const TensorArg& grad_logits, const TensorArg& grad_loss, double scale,
                            const TensorArg& logits, const TensorArg& lse, const TensorArg& labels, double smoothing);
}  // namespace cuda

}  // namespace basin::kernels
