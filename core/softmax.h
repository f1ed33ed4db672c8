// Softmax and log-softmax over one dimension, differentiable.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace basin {

// exp(x - max) / sum exp(x - max) along `dim` (negative counts from the end),
// for any rank and either floating dtype. Subtracting the maximum keeps large
// inputs from overflowing; the sums accumulate in double. The result is
// contiguous with x's shape.
Tensor softmax(const Tensor& x, std::int64_t dim);
// x - max - log(sum exp(x - max)) along `dim`: the log of softmax without
// forming softmax, so very negative log-probabilities stay finite.
Tensor log_softmax(const Tensor& x, std::int64_t dim);

}  // namespace basin
