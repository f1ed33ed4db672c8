// AdamW (Loshchilov & Hutter), PyTorch's torch.optim.AdamW semantics:
// decoupled weight decay w -= lr * wd * w, bias-corrected moments, optional amsgrad.
// The update runs as core elementwise ops over the flat arena buffers (about a
// dozen launches per step, whatever the number of tensors; no host sync).
#pragma once

#include "core/options.h"
#include "optim/optimizer.h"

namespace basin::optim {

struct AdamWOptions {
  explicit AdamWOptions(double lr = 1e-3) : lr_(lr) {}
  BASIN_OPTION(double, lr);
  BASIN_OPTION(double, beta1) = 0.9;
  BASIN_OPTION(double, beta2) = 0.999;
  BASIN_OPTION(double, eps) = 1e-8;
  BASIN_OPTION(double, weight_decay) = 1e-2;
  BASIN_OPTION(bool, amsgrad) = false;
};

class AdamW : public Optimizer {
 public:
  // Validates the options as PyTorch does (lr >= 0, betas in [0, 1),
  // weight_decay >= 0), with messages naming the value, except that eps must
  // be > 0: with eps = 0 the arena's padding would turn into 0 / 0.
  AdamW(const ParamList& params, const AdamWOptions& options);

  Tensor step(const Closure& closure = nullptr) override;
  TensorMap state_dict() const override;
  void load_state_dict(const TensorMap& state) override;

  const AdamWOptions& options() const { return options_; }

 private:
  AdamWOptions options_;
  Tensor exp_avg_, exp_avg_sq_, max_exp_avg_sq_;  // arena-shaped; the last only with amsgrad
  std::int64_t steps_ = 0;
};

}  // namespace basin::optim
