// Loss modules: thin, configured wrappers over the fused loss ops in core/loss.h.
#pragma once

#include "core/loss.h"
#include "core/options.h"

namespace basin::nn {

struct CrossEntropyLossOptions {
  BASIN_OPTION(double, label_smoothing) = 0.0;
  BASIN_OPTION(Reduction, reduction) = Reduction::Mean;
};

// loss(logits [N, C], labels [N]) as torch.nn.CrossEntropyLoss(label_smoothing=...).
class CrossEntropyLoss {
 public:
  explicit CrossEntropyLoss(const CrossEntropyLossOptions& options = {});
  Tensor operator()(const Tensor& logits, const Tensor& labels) const {
    return cross_entropy(logits, labels, options.label_smoothing(), options.reduction());
  }
  CrossEntropyLossOptions options;
};

}  // namespace basin::nn
