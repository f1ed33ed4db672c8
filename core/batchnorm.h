// Batch normalization over [N, C, H, W] per channel, differentiable in input,
// weight and bias.
#pragma once

#include "core/tensor.h"

namespace basin {

struct BatchNormState {
  Tensor running_mean;  // [C], updated in place when training and update_running_stats
  Tensor running_var;   // [C], unbiased batch variance blended in, as PyTorch does
  double momentum = 0.1;
  double eps = 1e-5;
};

// y = (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c] over input
// [N, C, H, W], with PyTorch's semantics:
// training: mean and biased variance of the batch, per channel over (N, H, W);
// when update_running_stats is also true, they are blended into the running
// ones in place, on the input's device and without a host synchronization:
//   running_mean = (1 - momentum) running_mean + momentum mean
//   running_var  = (1 - momentum) running_var  + momentum n / (n - 1) var,  n = N H W.
// SAM's second pass sets it false, so only the first pass moves the running
// statistics; the running tensors are then left bitwise unchanged.
// Not training: normalize with the running statistics (left unchanged).
// weight and bias may be undefined (affine = false); the running statistics
// may be undefined in training (nothing is tracked), not in eval. Every tensor
// must share the input's device and floating dtype, the vectors must be [C],
// and training needs more than one value per channel; otherwise basin::Error.
Tensor batch_norm(const Tensor& input, const Tensor& weight, const Tensor& bias, BatchNormState& state,
                  bool training, bool update_running_stats = true);

}  // namespace basin
