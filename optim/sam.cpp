// SAM and ASAM over a base optimizer: sam_norm and sam_perturb are each one
// pass over the parameter arena (kernels/optim.h), and the second step is the
// base's restore_and_step. No value is read on the host during a step: the
// norm and the scale stay in a small float64 device buffer.
#include "optim/sam.h"

#include <cmath>
#include <optional>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "kernels/optim.h"

namespace basin::optim {

namespace {

const SAMOptions& checked(const SAMOptions& o) {
  BASIN_CHECK(std::isfinite(o.rho()) && o.rho() > 0.0, "SAM: rho must be finite and > 0, got ", o.rho());
  BASIN_CHECK(std::isfinite(o.eps()) && o.eps() >= 0.0, "SAM: eps must be finite and >= 0, got ", o.eps());
  BASIN_CHECK(std::isfinite(o.eta()) && o.eta() >= 0.0, "SAM: eta must be finite and >= 0, got ", o.eta());
  return o;
}

// The base, checked before the Optimizer part of SAM shares its arena.
Optimizer& checked_base(const std::shared_ptr<Optimizer>& base) {
  BASIN_CHECK(base != nullptr, "SAM: the base optimizer is null");
  return *base;
}

}  // namespace

SAM::SAM(std::shared_ptr<Optimizer> base, const SAMOptions& options, nn::Module* model)
    : Optimizer(checked_base(base), "SAM"), base_(std::move(base)), options_(checked(options)), model_(model) {
  // The arena puts "weight" tensors first only when it knows the names; without
  // them ASAM would silently treat every tensor as a bias (T = 1), i.e. plain SAM.
  BASIN_CHECK(!options_.adaptive() || options_.scope() != AsamScope::WeightsOnly || !base_->param_names().empty(),
              "SAM: ASAM (adaptive, scope WeightsOnly) finds the \"weight\" tensors by name, but the base optimizer ",
              base_->name(), " was given ", base_->params().size(),
              " unnamed parameters; build it from model.named_parameters() (or use AsamScope::AllTensors)");
}

void SAM::check_arena() {
  ParameterArena& arena = base_->arena();
  if (arena.is_bound()) return;
  // Re-packing here on another device would leave the base optimizer's own
  // buffers (momentum) behind on the old one: only the base can move them.
  for (const Tensor& p : arena.tensors()) {
    BASIN_CHECK(p.device() == arena.device(), "SAM: first_step: a parameter is on ", p.device().str(),
                " but the optimizer packed the parameters on ", arena.device().str(),
                "; move the model before making the base optimizer and SAM");
  }
  // Same device, so only gradients were replaced (set_grad, or dropped and
  // then allocated anew by backward). Re-packing the same tensors in
  // the same order gives the same layout, so the base's buffers stay valid.
  arena.rebind();
}

void SAM::allocate(Device device) {
  if (scale_.defined() && scale_.device() == device) return;
  const TensorOptions f64 = TensorOptions(kFloat64).device(device);
  scale_ = zeros({kernels::kSamScaleSlots}, f64);
  partials_ = zeros({kernels::kNormPartials}, f64);
  saved_ = Tensor();
}

void SAM::first_step() {
  BASIN_CHECK(!perturbed_, "SAM: first_step() called twice without second_step(): the weights are already "
                           "perturbed (call second_step() to restore them and update)");
  check_arena();
  const ParameterArena& arena = base_->arena();
  allocate(arena.device());
  if (!saved_.defined() || saved_.shape() != arena.params().shape() || saved_.dtype() != arena.dtype()) {
    saved_ = arena.make_buffer();
  }

  kernels::SamArgs args;
  args.rho = options_.rho();
  args.eps = options_.eps();
  args.adaptive = options_.adaptive();
  if (options_.scope() == AsamScope::WeightsOnly) {
    args.eta = options_.eta();
    args.adaptive_end = arena.adaptive_end();
  } else {
    // davda54's variant: T = |w| on every element. Padding is zero in w and
    // g alike, so it contributes nothing either way.
    args.eta = 0.0;
    args.adaptive_end = arena.padded_numel();
  }

  const kernels::TensorArg scale = arg(scale_), partials = arg(partials_), w = arg(arena.params()),
                           g = arg(arena.grads()), saved = arg(saved_);
  BASIN_RUN_KERNEL(arena.device(), sam_norm, scale, partials, w, g, args);
  BASIN_RUN_KERNEL(arena.device(), sam_perturb, w, saved, g, scale, args);
  perturbed_ = true;
}

void SAM::restore() {
  NoGradGuard no_grad;
  Tensor flat = base_->arena().params();
  flat.copy_(saved_);
}

void SAM::second_step() {
  BASIN_CHECK(perturbed_, "SAM: second_step() without first_step(): there are no saved weights to restore");
  base_->restore_and_step(saved_);  // w = saved, then the base's update
  perturbed_ = false;
}

void SAM::set_lr(double lr) {
  base_->set_lr(lr);
  lr_ = lr;
}

Tensor SAM::step(const Closure& closure) {
  BASIN_CHECK(closure != nullptr,
              "SAM: step() needs a closure (it evaluates the model twice); without one, call first_step() and "
              "second_step() around your own second forward and backward");
  Tensor loss = closure();
  first_step();
  base_->zero_grad();
  try {
    std::optional<nn::RunningStatsFreeze> freeze;
    if (model_ != nullptr) freeze.emplace(*model_);
    closure();
  } catch (...) {
    // Leave the model at its own weights, not the perturbed ones.
    restore();
    perturbed_ = false;
    throw;
  }
  second_step();
  return loss;
}

Tensor SAM::last_grad_norm() const {
  BASIN_CHECK(scale_.defined(), "SAM: last_grad_norm() before any first_step()");
  return scale_.select(0, kernels::kSamNorm);
}

bool SAM::last_step_finite() const {
  BASIN_CHECK(scale_.defined(), "SAM: last_step_finite() before any first_step()");
  return scale_.select(0, kernels::kSamFinite).item() != 0.0;
}

}  // namespace basin::optim
