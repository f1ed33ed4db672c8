// Pooling over [N, C, H, W] and dropout, differentiable.
//
// Pooling follows PyTorch (floor mode): the output is
// [N, C, (H + 2*padding - kernel) / stride + 1, likewise for W]. kernel and
// stride must be at least 1, padding at most half the kernel, and the kernel
// no larger than the padded input; anything else throws naming the values.
#pragma once

#include "core/conv.h"

namespace basin {

// Padding counts as -inf. The gradient of each output goes to the maximum of
// its window; at a tie, to the first in row-major window order (as PyTorch).
// A NaN in a window wins, so NaN propagates.
Tensor max_pool2d(const Tensor& input, Pair kernel, Pair stride, Pair padding = {0, 0});
// Padding counts as zeros in the average (PyTorch's count_include_pad=True),
// so every output divides by kernel[0] * kernel[1].
Tensor avg_pool2d(const Tensor& input, Pair kernel, Pair stride, Pair padding = {0, 0});
// The mean over H and W: [N, C, H, W] -> [N, C, 1, 1].
Tensor global_avg_pool2d(const Tensor& input);

// Zeroes each element with probability p and scales the rest by 1 / (1 - p).
// The mask comes from the default Philox generator, so a seed fixes it, and
// the CPU and CUDA draw the same mask. Without training, or with p == 0, it
// returns input itself. p must be in [0, 1).
Tensor dropout(const Tensor& input, double p, bool training);

}  // namespace basin
