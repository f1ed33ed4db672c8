// Batch normalization kernels over a contiguous NCHW input viewed as
// [N, C, HW]. Channel c owns the n = N * HW elements x[b, c, s]; every
// per-channel tensor below (mean, invstd, weight, bias, running statistics,
// sums) is a contiguous [C] vector of the input's dtype.
//
//   stats:            mean[c]   = (1/n) sum x
//                     var       = (1/n) sum (x - mean[c])^2          (biased)
//                     invstd[c] = 1 / sqrt(var + eps)
//                     and, when running_mean.data is not null, in place:
//                     running_mean[c] = (1 - momentum) running_mean[c] + momentum mean[c]
//                     running_var[c]  = (1 - momentum) running_var[c]  + momentum n/(n-1) var
//   invstd:           invstd[c] = 1 / sqrt(var[c] + eps)       (eval: from the running variance)
//   normalize:        y = (x - mean[c]) invstd[c] weight[c] + bias[c]
//   backward_reduce:  sum_dy[c]      = sum dy
//                     sum_dy_xhat[c] = sum dy xhat,    xhat = (x - mean[c]) invstd[c]
//   backward_input:   training (sums given):
//                       dx = weight[c] invstd[c] / n (n dy - sum_dy[c] - xhat sum_dy_xhat[c])
//                     eval (sum_dy.data == null): dx = dy weight[c] invstd[c]
//
// A null weight means 1 and a null bias means 0 (affine=false). xhat is never
// stored: the kernels that need it recompute it from x, mean and invstd.
// stats needs n >= 1, and n >= 2 when it updates the running variance (the
// caller checks). Results are reproducible run to run: every sum has a fixed
// order that depends on the shape alone (no atomics).
#pragma once

#include <cstdint>

#include "core/error.h"
#include "kernels/tensor_arg.h"

namespace basin::kernels {

struct BatchNormShape {
  std::int64_t batch = 0;     // N
  std::int64_t channels = 0;  // C
  std::int64_t spatial = 0;   // H * W
};

// The checks both backends' batch_norm_stats runs before any work.
inline void check_batch_norm_stats(const BatchNormShape& shape) {
  BASIN_CHECK(shape.batch * shape.spatial > 0, "batch_norm: no values per channel to compute statistics from");
}

namespace reference {
void batch_norm_stats(const TensorArg& mean, const TensorArg& invstd, const TensorArg& input, BatchNormShape shape,
                      double eps, const TensorArg& running_mean, const TensorArg& running_var, double momentum);
void batch_norm_invstd(const TensorArg& invstd, const TensorArg& var, double eps);
void batch_norm_normalize(const TensorArg& out, const TensorArg& input, const TensorArg& mean, const TensorArg& invstd,
                          const TensorArg& weight, const TensorArg& bias, BatchNormShape shape);
void batch_norm_backward_reduce(const TensorArg& sum_dy, const TensorArg& sum_dy_xhat, const TensorArg& grad_out,
                                const TensorArg& input, const TensorArg& mean, const TensorArg& invstd,
                                BatchNormShape shape);
void batch_norm_backward_input(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& input,
                               const TensorArg& mean, const TensorArg& invstd, const TensorArg& weight,
                               const TensorArg& sum_dy, const TensorArg& sum_dy_xhat, BatchNormShape shape);
}  // namespace reference

// The CPU engine: float32, channels across threads, each row summed in float32
// SIMD lanes and the rows in double. batch_norm_invstd (C elements) is the reference's.
namespace fast {
void batch_norm_stats(const TensorArg& mean, const TensorArg& invstd, const TensorArg& input, BatchNormShape shape,
                      double eps, const TensorArg& running_mean, const TensorArg& running_var, double momentum);
void batch_norm_normalize(const TensorArg& out, const TensorArg& input, const TensorArg& mean, const TensorArg& invstd,
                          const TensorArg& weight, const TensorArg& bias, BatchNormShape shape);
void batch_norm_backward_reduce(const TensorArg& sum_dy, const TensorArg& sum_dy_xhat, const TensorArg& grad_out,
                                const TensorArg& input, const TensorArg& mean, const TensorArg& invstd,
                                BatchNormShape shape);
void batch_norm_backward_input(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& input,
                               const TensorArg& mean, const TensorArg& invstd, const TensorArg& weight,
                               const TensorArg& sum_dy, const TensorArg& sum_dy_xhat, BatchNormShape shape);
}  // namespace fast

namespace cuda {
void batch_norm_stats(const TensorArg& mean, const TensorArg& invstd, const TensorArg& input, BatchNormShape shape,
                      double eps, const TensorArg& running_mean, const TensorArg& running_var, double momentum);
void batch_norm_invstd(const TensorArg& invstd, const TensorArg& var, double eps);
void batch_norm_normalize(const TensorArg& out, const TensorArg& input, const TensorArg& mean, const TensorArg& invstd,
                          const TensorArg& weight, const TensorArg& bias, BatchNormShape shape);
void batch_norm_backward_reduce(const TensorArg& sum_dy, const TensorArg& sum_dy_xhat, const TensorArg& grad_out,
                                const TensorArg& input, const TensorArg& mean, const TensorArg& invstd,
                                BatchNormShape shape);
void batch_norm_backward_input(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& input,
                               const TensorArg& mean, const TensorArg& invstd, const TensorArg& weight,
                               const TensorArg& sum_dy, const TensorArg& sum_dy_xhat, BatchNormShape shape);
}  // namespace cuda

}  // namespace basin::kernels
