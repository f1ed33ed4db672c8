// SGD with PyTorch's semantics exactly (torch.optim.SGD): momentum,
// dampening, Nesterov momentum and L2 weight decay added to the gradient.
// One fused kernel per step over the parameter arena (kernels/optim.h sgd_update).
#pragma once

#include "core/options.h"
#include "optim/optimizer.h"

namespace basin::optim {

struct SGDOptions {
  explicit SGDOptions(double lr) : lr_(lr) {}
  BASIN_OPTION(double, lr);
  BASIN_OPTION(double, momentum) = 0.0;
  BASIN_OPTION(double, dampening) = 0.0;
  BASIN_OPTION(double, weight_decay) = 0.0;
  BASIN_OPTION(bool, nesterov) = false;
};

class SGD : public Optimizer {
 public:
  // Validates the options with messages naming the value ("SGD: lr must be
  // finite and >= 0, got -1"; nesterov needs momentum > 0 and dampening 0, as
  // in PyTorch), before the parameters are packed.
  SGD(const ParamList& params, const SGDOptions& options);

  Tensor step(const Closure& closure = nullptr) override;
  TensorMap state_dict() const override;
  void load_state_dict(const TensorMap& state) override;

  // SAM's second step in one pass: parameters restored from `saved` (an
  // arena-shaped buffer), then the SGD update with the current gradients.
  // Counts as a step, like step().
  void restore_and_step(const Tensor& saved) override;

  const SGDOptions& options() const { return options_; }

 private:
  SGDOptions options_;
  void update(const Tensor* saved);  // saved: restore from it first; nullptr: a plain step

  Tensor momentum_;  // arena-shaped; undefined when momentum == 0
  std::int64_t steps_ = 0;
};

}  // namespace basin::optim
