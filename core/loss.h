// Losses computed by fused kernels.
#pragma once

#include "core/tensor.h"

namespace basin {

enum class Reduction { Mean, Sum, None };

// Cross-entropy from logits [N, C] and integer class labels [N] (int32 or int64),
// with label smoothing as in PyTorch: the target is (1 - s) on the true class
// plus s / C on every class, and row n's loss is
//   logsumexp(x[n]) - sum_c target[n, c] * x[n, c].
// Mean divides the summed loss by N; None returns the N row losses. One fused
// kernel computes the loss per row, one fused kernel its gradient with respect
// to the logits. Labels get no gradient, and there is no ignore_index: every
// label must lie in [0, C).
//
// An out-of-range label is reported differently by device, because checking
// CUDA labels on the host would stall the stream on every step:
//  - CPU: a basin::Error naming the label, its row and C;
//  - CUDA: no error; that row's loss is NaN (so a Mean or Sum is NaN) and its
//    gradient row is NaN.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, double label_smoothing = 0.0,
                     Reduction reduction = Reduction::Mean);

}  // namespace basin
