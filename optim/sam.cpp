// SAM and ASAM over a base optimizer: sam_norm and sam_perturb are each one
// pass over the parameter arena (kernels/optim.h), and the second step is the
// base's restore_and_step. No value is read on the host during a step: the
// norm and the scale stay in a small float64 device buffer.
#include "optim/sam.h"

#include <cmath>
#include <optional>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/elementwise.h"
#include "kernels/optim.h"

namespace basin::optim {

namespace {

const SAMOptions& checked(const SAMOptions& o) {
  BASIN_CHECK(std::isfinite(o.rho()) && o.rho() > 0.0, "SAM: rho must be finite and > 0, got ", o.rho());
  BASIN_CHECK(std::isfinite(o.eps()) && o.eps() >= 0.0, "SAM: eps must be finite and >= 0, got ", o.eps());
  BASIN_CHECK(std::isfinite(o.eta()) && o.eta() >= 0.0, "SAM: eta must be finite and >= 0, got ", o.eta());
  return o;
}

// Whether an arena-shaped buffer made earlier still fits the arena (which
// re-packs when the model moves or its gradients are replaced).
bool fits_arena(const Tensor& buffer, const ParameterArena& arena) {
  return buffer.defined() && buffer.shape() == arena.params().shape() && buffer.dtype() == arena.dtype() &&
         buffer.device() == arena.device();
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
  if (!fits_arena(saved_, arena)) saved_ = arena.make_buffer();

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

void SAM::sync_gradients() {
  if (sync_) sync_();
}

Tensor SAM::step(const Closure& closure) {
  BASIN_CHECK(closure != nullptr,
              "SAM: step() needs a closure (it evaluates the model twice); without one, call first_step() and "
              "second_step() around your own second forward and backward");
  Tensor loss = closure();
  if (options_.mode() == SamMode::Global) sync_gradients();
  first_step();
  base_->zero_grad();
  try {
    {
      std::optional<nn::RunningStatsFreeze> freeze;
      if (model_ != nullptr) freeze.emplace(*model_);
      closure();
    }
    sync_gradients();
  } catch (...) {
    // Leave the model at its own weights, not the perturbed ones.
    restore();
    perturbed_ = false;
    throw;
  }
  second_step();
  return loss;
}

namespace {

void check_chunk_weights(const std::vector<double>& weights) {
  BASIN_CHECK(!weights.empty(), "SAM: step_chunks() needs at least one chunk weight, got none");
  double total = 0.0;
  for (std::size_t c = 0; c < weights.size(); ++c) {
    BASIN_CHECK(std::isfinite(weights[c]) && weights[c] > 0.0, "SAM: step_chunks(): the weight of chunk ", c,
                " must be finite and > 0 (its share of the batch), got ", weights[c]);
    total += weights[c];
  }
  BASIN_CHECK(std::abs(total - 1.0) <= 1e-9, "SAM: step_chunks(): the ", weights.size(),
              " chunk weights are the chunks' shares of the batch and must sum to 1, but they sum to ", total,
              " (1 ", total > 1.0 ? "+ " : "- ", std::abs(total - 1.0), ")");
}

}  // namespace

void SAM::accumulate_chunk(std::size_t chunk, const std::vector<double>& weights) {
  NoGradGuard no_grad;
  const ParameterArena& arena = base_->arena();
  Tensor grads = arena.grads();
  if (chunk + 1 == weights.size()) {
    // The last chunk turns the gradients into the total in place: no final
    // copy, and one chunk of weight 1 leaves g' exactly as step() would.
    grads.mul_(weights[chunk]);
    if (chunk > 0) grads.add_(chunk_total_);
    return;
  }
  if (chunk == 0) {
    if (!fits_arena(chunk_total_, arena)) chunk_total_ = arena.make_buffer();
    chunk_total_.copy_(grads);
    chunk_total_.mul_(weights[chunk]);
  } else {
    chunk_total_.add_(grads, weights[chunk]);
  }
}

Tensor SAM::step_chunks(const ChunkClosure& closure, const std::vector<double>& weights) {
  BASIN_CHECK(closure != nullptr, "SAM: step_chunks() needs a closure (closure(c) computes chunk c's loss and "
                                  "calls backward())");
  check_chunk_weights(weights);
  BASIN_CHECK(!(sync_ && options_.mode() == SamMode::Global),
              "SAM: step_chunks() perturbs each chunk by its own gradient, but this SAM has a gradient sync in "
              "mode Global, which perturbs every replica by the one global gradient; use SamMode::Replica to "
              "chunk each replica's shard, or step() for Global");
  BASIN_CHECK(!perturbed_, "SAM: step_chunks() between first_step() and second_step(): the weights are perturbed "
                           "(call second_step() first)");

  Tensor total_loss;
  try {
    for (std::size_t c = 0; c < weights.size(); ++c) {
      base_->zero_grad();
      Tensor loss;
      {
        // A data-parallel run keeps rank 0's running statistics, which only
        // its own shard's first pass moved: chunk 0's here.
        std::optional<nn::RunningStatsFreeze> freeze;
        if (model_ != nullptr && c > 0) freeze.emplace(*model_);
        loss = closure(c);
      }
      BASIN_CHECK(loss.defined(), "SAM: step_chunks(): the closure returned no loss for chunk ", c);
      {
        NoGradGuard no_grad;
        if (c == 0) {
          total_loss = mul(loss.detach(), weights[0]);
        } else {
          total_loss.add_(loss.detach(), weights[c]);
        }
      }
      first_step();
      base_->zero_grad();
      {
        std::optional<nn::RunningStatsFreeze> freeze;
        if (model_ != nullptr) freeze.emplace(*model_);
        closure(c);
      }
      accumulate_chunk(c, weights);
      // The last chunk stays perturbed: second_step() restores w itself.
      if (c + 1 < weights.size()) {
        restore();
        perturbed_ = false;
      }
    }
    sync_gradients();
  } catch (...) {
    if (perturbed_) {
      restore();
      perturbed_ = false;
    }
    throw;
  }
  second_step();
  return total_loss;
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
