// SGD: option checks, then one fused sgd_update launch per step over the
// whole arena (kernels/optim.h), with PyTorch's update rule.
#include "optim/sgd.h"

#include <cmath>

#include "core/dispatch.h"
#include "kernels/optim.h"

namespace basin::optim {

namespace {

// Runs before the base class packs the parameters, so that a bad option
// leaves the model untouched.
const ParamList& checked(const ParamList& params, const SGDOptions& o) {
  BASIN_CHECK(std::isfinite(o.lr()) && o.lr() >= 0.0, "SGD: lr must be finite and >= 0, got ", o.lr());
  BASIN_CHECK(std::isfinite(o.momentum()) && o.momentum() >= 0.0, "SGD: momentum must be finite and >= 0, got ",
              o.momentum());
  BASIN_CHECK(std::isfinite(o.dampening()) && o.dampening() >= 0.0 && o.dampening() <= 1.0,
              "SGD: dampening must be in [0, 1], got ", o.dampening());
  BASIN_CHECK(std::isfinite(o.weight_decay()) && o.weight_decay() >= 0.0,
              "SGD: weight_decay must be finite and >= 0, got ", o.weight_decay());
  BASIN_CHECK(!o.nesterov() || (o.momentum() > 0.0 && o.dampening() == 0.0),
              "SGD: nesterov needs momentum > 0 and dampening 0, got momentum ", o.momentum(), " and dampening ",
              o.dampening());
  return params;
}

}  // namespace

SGD::SGD(const ParamList& params, const SGDOptions& options)
    : Optimizer(checked(params, options), "SGD"), options_(options) {
  set_lr(options.lr());
  if (options_.momentum() != 0.0) momentum_ = arena_->make_buffer();
}

Tensor SGD::step(const Closure& closure) {
  Tensor loss;
  if (closure) loss = closure();
  update(nullptr);
  return loss;
}

void SGD::restore_and_step(const Tensor& saved) {
  update(&saved);
}

void SGD::update(const Tensor* saved) {
  if (momentum_.defined()) {
    ensure_bound({&momentum_});
  } else {
    ensure_bound();
  }
  const Tensor& params = arena_->params();
  if (saved != nullptr) check_saved_buffer(*saved);  // after a re-pack: against the arena as it is now
  kernels::SgdArgs args;
  args.lr = lr_;
  args.momentum = options_.momentum();
  args.dampening = options_.dampening();
  args.weight_decay = options_.weight_decay();
  args.nesterov = options_.nesterov();
  // PyTorch starts the momentum buffer at the first d_p itself (no dampening).
  args.first_step = steps_ == 0;
  const kernels::TensorArg w = arg(params), g = arg(arena_->grads());
  const kernels::TensorArg s = saved != nullptr ? arg(*saved) : kernels::TensorArg{}, m = optional_arg(momentum_);
  BASIN_RUN_KERNEL(params.device(), sgd_update, w, s, g, m, args);
  ++steps_;
}

TensorMap SGD::state_dict() const {
  TensorMap state = state_header(steps_);
  if (momentum_.defined()) state["momentum_buffer"] = momentum_.detach().clone();
  return state;
}

void SGD::load_state_dict(const TensorMap& state) {
  std::vector<std::string> buffers;
  if (momentum_.defined()) buffers.push_back("momentum_buffer");
  const std::int64_t steps = check_state(state, buffers);
  if (momentum_.defined()) momentum_.copy_(state.at("momentum_buffer"));
  steps_ = steps;
}

}  // namespace basin::optim
