// SAM and ASAM over a base optimizer, two ways:
//  - fused (the default): sam_norm, sam_perturb and the restore + SGD update
//    are each one pass over the parameter arena (kernels/optim.h);
//  - per tensor: the same math written with core ops, a few small ops per
//    parameter tensor, the way an eager framework runs it.
// Neither reads a value on the host during a step: the norm and the scale
// stay in a small float64 device buffer.
#include "optim/sam.h"

#include <cmath>
#include <optional>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/elementwise.h"
#include "core/reduce.h"
#include "kernels/optim.h"
#include "nn/layers.h"
#include "optim/sgd.h"

namespace basin::optim {

namespace {

const SAMOptions& checked(const SAMOptions& o) {
  BASIN_CHECK(std::isfinite(o.rho()) && o.rho() > 0.0, "SAM: rho must be finite and > 0, got ", o.rho());
  BASIN_CHECK(std::isfinite(o.eps()) && o.eps() >= 0.0, "SAM: eps must be finite and >= 0, got ", o.eps());
  BASIN_CHECK(std::isfinite(o.eta()) && o.eta() >= 0.0, "SAM: eta must be finite and >= 0, got ", o.eta());
  return o;
}

}  // namespace

SAM::SAM(std::shared_ptr<Optimizer> base, const SAMOptions& options, nn::Module* model)
    : base_(std::move(base)), options_(checked(options)), model_(model) {
  BASIN_CHECK(base_ != nullptr, "SAM: the base optimizer is null");
  // The arena puts "weight" tensors first only when it knows the names; without
  // them ASAM would silently treat every tensor as a bias (T = 1), i.e. plain SAM.
  BASIN_CHECK(!options_.adaptive() || options_.scope() != AsamScope::WeightsOnly || !base_->param_names().empty(),
              "SAM: ASAM (adaptive, scope WeightsOnly) finds the \"weight\" tensors by name, but the base optimizer ",
              base_->name(), " was given ", base_->params().size(),
              " unnamed parameters; build it from model.named_parameters() (or use AsamScope::AllTensors)");
}

bool SAM::adaptive_tensor(std::size_t index) const {
  if (!options_.adaptive()) return false;
  if (options_.scope() == AsamScope::AllTensors) return true;
  // The arena placed the "weight" tensors in its adaptive run; asking it
  // keeps both paths on one definition.
  const ParameterArena& arena = base_->arena();
  return arena.offset(index) < arena.adaptive_end();
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
  // Same device, so only gradients were replaced (Module::zero_grad() drops
  // them, backward then allocates new ones). Re-packing the same tensors in
  // the same order gives the same layout, so the base's buffers stay valid.
  arena.rebind();
}

void SAM::allocate(Device device) {
  if (scale_.defined() && scale_.device() == device) return;
  const TensorOptions f64 = TensorOptions(kFloat64).device(device);
  scale_ = zeros({kernels::kSamScaleSlots}, f64);
  partials_ = options_.fused() ? zeros({kernels::kNormPartials}, f64) : Tensor();
  saved_ = Tensor();
  saved_per_tensor_.clear();
}

void SAM::first_step() {
  BASIN_CHECK(!perturbed_, "SAM: first_step() called twice without second_step(): the weights are already "
                           "perturbed (call second_step() to restore them and update)");
  if (options_.fused()) {
    fused_first_step();
  } else {
    per_tensor_first_step();
  }
  perturbed_ = true;
}

void SAM::fused_first_step() {
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
  run_kernel(
      arena.device(),
      [&] {
        kernels::cpu::sam_norm(scale, partials, w, g, args);
        kernels::cpu::sam_perturb(w, saved, g, scale, args);
      },
      [&] {
        kernels::cuda::sam_norm(scale, partials, w, g, args);
        kernels::cuda::sam_perturb(w, saved, g, scale, args);
      });
}

void SAM::per_tensor_first_step() {
  const std::vector<Tensor>& params = base_->params();
  const Device device = params[0].device();
  const DType dtype = params[0].dtype();
  allocate(device);
  if (saved_per_tensor_.size() != params.size()) {
    saved_per_tensor_.clear();
    for (const Tensor& p : params) saved_per_tensor_.push_back(empty_like(p.detach()));
  }

  NoGradGuard no_grad;
  const TensorOptions f64 = TensorOptions(kFloat64).device(device);
  // ||T g||^2 summed tensor by tensor, accumulated in float64 as the fused kernel does.
  std::vector<Tensor> t_squared(params.size());
  Tensor squares = zeros({}, f64);
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Tensor g = params[i].grad();
    if (!g.defined()) continue;  // no gradient reached it: e = 0, as a zero arena gradient
    Tensor tg = g;
    if (adaptive_tensor(i)) {
      const double eta = options_.scope() == AsamScope::WeightsOnly ? options_.eta() : 0.0;
      const Tensor t = add(abs(params[i].detach()), eta);  // T from w before anything moves
      t_squared[i] = mul(t, t);
      tg = mul(t, g);
    }
    const Tensor tg64 = tg.to(kFloat64);
    squares = add(squares, sum(mul(tg64, tg64)));
  }
  const Tensor norm = sqrt(squares);
  // The kernel's rules: s = rho / (norm + eps), but 0 when that is not finite
  // (a NaN or infinite norm, or a zero norm with eps = 0), and then nothing
  // moves. Unlike the fused kernels this path reads the norm on the host: it
  // is the independent oracle the tests hold the fused path to, not the fast one.
  const double norm_value = norm.item();
  const bool finite = std::isfinite(norm_value);
  const double raw = options_.rho() / (norm_value + options_.eps());  // the kernel's float64 arithmetic
  const double scale = finite && std::isfinite(raw) ? raw : 0.0;
  scale_.select(0, kernels::kSamScale).fill_(scale);
  scale_.select(0, kernels::kSamNorm).copy_(norm);
  scale_.select(0, kernels::kSamFinite).fill_(finite ? 1.0 : 0.0);

  for (std::size_t i = 0; i < params.size(); ++i) {
    saved_per_tensor_[i].copy_(params[i].detach());
    const Tensor g = params[i].grad();
    if (!g.defined() || scale == 0.0) continue;
    Tensor e = mul(g, full({}, scale, f64).to(dtype));
    if (t_squared[i].defined()) e = mul(e, t_squared[i]);
    Tensor w = params[i];
    w.add_(e);
  }
}

void SAM::restore() {
  NoGradGuard no_grad;
  if (options_.fused()) {
    Tensor flat = base_->arena().params();
    flat.copy_(saved_);
  } else {
    const std::vector<Tensor>& params = base_->params();
    for (std::size_t i = 0; i < params.size(); ++i) {
      Tensor w = params[i];
      w.copy_(saved_per_tensor_[i]);
    }
  }
}

void SAM::second_step() {
  BASIN_CHECK(perturbed_, "SAM: second_step() without first_step(): there are no saved weights to restore");
  if (options_.fused()) {
    if (auto* sgd = dynamic_cast<SGD*>(base_.get())) {
      sgd->restore_and_step(saved_);  // one pass: w = saved, then the SGD update
      perturbed_ = false;
      return;
    }
  }
  restore();
  perturbed_ = false;
  base_->step();
}

Tensor SAM::step(const Closure& closure) {
  BASIN_CHECK(closure != nullptr,
              "SAM: step() needs a closure (it evaluates the model twice); without one, call first_step() and "
              "second_step() around your own second forward and backward");
  Tensor loss = closure();
  first_step();
  zero_grad();
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
