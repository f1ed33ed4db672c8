// AdamW over the flat parameter arena, with torch.optim.AdamW's arithmetic:
//   w *= 1 - lr * wd
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g^2;   amsgrad: v_max = max(v_max, v), used below for v
//   w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// Each line is a core elementwise op over the whole arena, so a step costs
// about a dozen launches (fifteen with amsgrad) whatever the number of tensors.
// A fused kernel would do it in one pass; AdamW is not on basin's hot path
// (SAM over SGD is), so the readable version stays until a benchmark asks.
// The bias corrections come from the host step counter: nothing synchronizes.
// Padding elements stay zero: m = v = 0 there, so the update adds 0 / eps.
#include "optim/adamw.h"

#include <cmath>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/indexing.h"
#include "core/reduce.h"

namespace basin::optim {

namespace {

// Runs before the base class packs the parameters, so that a bad option
// leaves the model untouched.
const ParamList& checked(const ParamList& params, const AdamWOptions& o) {
  BASIN_CHECK(std::isfinite(o.lr()) && o.lr() >= 0.0, "AdamW: lr must be finite and >= 0, got ", o.lr());
  BASIN_CHECK(o.beta1() >= 0.0 && o.beta1() < 1.0, "AdamW: beta1 must be in [0, 1), got ", o.beta1());
  BASIN_CHECK(o.beta2() >= 0.0 && o.beta2() < 1.0, "AdamW: beta2 must be in [0, 1), got ", o.beta2());
  // PyTorch allows eps = 0; here the arena's padding (m = v = 0) would become
  // 0 / 0 = NaN and poison every norm over the arena (SAM's, clipping's).
  BASIN_CHECK(std::isfinite(o.eps()) && o.eps() > 0.0, "AdamW: eps must be finite and > 0, got ", o.eps());
  BASIN_CHECK(std::isfinite(o.weight_decay()) && o.weight_decay() >= 0.0,
              "AdamW: weight_decay must be finite and >= 0, got ", o.weight_decay());
  return params;
}

}  // namespace

AdamW::AdamW(const ParamList& params, const AdamWOptions& options)
    : Optimizer(checked(params, options), "AdamW"), options_(options) {
  set_lr(options.lr());
  exp_avg_ = arena_->make_buffer();
  exp_avg_sq_ = arena_->make_buffer();
  if (options_.amsgrad()) max_exp_avg_sq_ = arena_->make_buffer();
}

Tensor AdamW::step(const Closure& closure) {
  Tensor loss;
  if (closure) loss = closure();
  if (options_.amsgrad()) {
    ensure_bound({&exp_avg_, &exp_avg_sq_, &max_exp_avg_sq_});
  } else {
    ensure_bound({&exp_avg_, &exp_avg_sq_});
  }

  NoGradGuard no_grad;
  ++steps_;
  const double lr = lr_, beta1 = options_.beta1(), beta2 = options_.beta2();
  const double t = static_cast<double>(steps_);
  Tensor w = arena_->params();  // a handle: in-place ops need a non-const one
  const Tensor& g = arena_->grads();

  if (options_.weight_decay() != 0.0) w.mul_(1.0 - lr * options_.weight_decay());
  exp_avg_.mul_(beta1).add_(g, 1.0 - beta1);
  exp_avg_sq_.mul_(beta2).add_(mul(g, g), 1.0 - beta2);

  Tensor second = exp_avg_sq_;
  if (options_.amsgrad()) {
    // An elementwise maximum as a max over a stacked pair: exact, two passes.
    max_exp_avg_sq_.copy_(max(cat({max_exp_avg_sq_.unsqueeze(0), exp_avg_sq_.unsqueeze(0)}, 0), {0}));
    second = max_exp_avg_sq_;
  }
  const double bias_correction1 = 1.0 - std::pow(beta1, t);
  const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(beta2, t));
  const Tensor denom = add(div(sqrt(second), bias_correction2_sqrt), options_.eps());
  w.add_(div(exp_avg_, denom), -lr / bias_correction1);
  return loss;
}

TensorMap AdamW::state_dict() const {
  TensorMap state = state_header(steps_);
  state["exp_avg"] = exp_avg_.detach().clone();
  state["exp_avg_sq"] = exp_avg_sq_.detach().clone();
  if (options_.amsgrad()) state["max_exp_avg_sq"] = max_exp_avg_sq_.detach().clone();
  return state;
}

void AdamW::load_state_dict(const TensorMap& state) {
  std::vector<std::string> buffers{"exp_avg", "exp_avg_sq"};
  if (options_.amsgrad()) buffers.push_back("max_exp_avg_sq");
  const std::int64_t steps = check_state(state, buffers);
  exp_avg_.copy_(state.at("exp_avg"));
  exp_avg_sq_.copy_(state.at("exp_avg_sq"));
  if (options_.amsgrad()) max_exp_avg_sq_.copy_(state.at("max_exp_avg_sq"));
  steps_ = steps;
}

}  // namespace basin::optim
