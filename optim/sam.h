// SAM and ASAM: sharpness-aware minimization as a wrapper over a base optimizer.
//
//   SAM  (Foret et al. 2020):  e = rho * g / (||g|| + eps)
//   ASAM (Kwon et al. 2021):   e = rho * T^2 g / (||T g|| + eps),  T = |w| + eta
//
// A step: gradients g at w -> first_step() moves to w + e (saving w) -> the
// caller computes gradients g' at w + e -> second_step() restores w exactly
// from the saved copy and lets the base optimizer step with g'.
// step(closure) runs the whole sequence, calling the closure for g'.
//
// Conventions (each a choice that changes results; the defaults follow
// davda54/sam and SamsungLabs/ASAM; docs/sam.md explains each):
//   eps = 1e-12 in rho / (||g|| + eps);
//   restore from a saved copy (bit-exact), not w - e;
//   weight decay and momentum only in the base optimizer;
//   BatchNorm running statistics move in the first pass only: give SAM the
//   model and step(closure) freezes them around the second closure call;
//   ASAM scales "weight" tensors only (names containing "weight": conv and
//   linear weights, BN scale) with T = |w| + eta, other tensors with T = 1;
//   AsamScope::AllTensors is davda54's variant (T = |w| on every tensor, eta 0).
//
// With the fused path (the default) the norm, the perturbation and the
// restore + SGD update are each one pass over the parameter arena
// (kernels/optim.h): with an SGD base, 4 kernel launches per SAM step (two
// for the norm) plus the two zero_grad fills, whatever the number of tensors,
// and no host synchronization.
#pragma once

#include <memory>
#include <vector>

#include "nn/module.h"
#include "core/options.h"
#include "optim/optimizer.h"

namespace basin::optim {

enum class AsamScope { WeightsOnly, AllTensors };

struct SAMOptions {
  BASIN_OPTION(double, rho) = 0.05;
  BASIN_OPTION(double, eps) = 1e-12;
  BASIN_OPTION(bool, adaptive) = false;  // ASAM
  BASIN_OPTION(double, eta) = 0.01;      // ASAM, WeightsOnly scope
  BASIN_OPTION(AsamScope, scope) = AsamScope::WeightsOnly;
  // false: the per-tensor path (one small op per tensor, as eager frameworks
  // do), kept for comparison and for benchmarks.
  BASIN_OPTION(bool, fused) = true;
};

class SAM {
 public:
  // `model`, when given, is the module whose BatchNorm running statistics
  // step(closure) freezes during the second pass. Checks the options (rho > 0,
  // eps >= 0, eta >= 0); ASAM with the WeightsOnly scope needs a base
  // optimizer built from named parameters (model.named_parameters()).
  SAM(std::shared_ptr<Optimizer> base, const SAMOptions& options, nn::Module* model = nullptr);

  // Perturbs the weights along the current gradients (saving them first).
  // Throws when the weights are already perturbed (first_step twice), and on
  // the fused path when the model moved to another device after the base
  // optimizer packed it (only the base could move its own state along).
  void first_step();
  // Restores the saved weights and steps the base optimizer with the current
  // gradients: one fused pass when the base is SGD, else a copy then base.step().
  // Throws without a first_step before it.
  void second_step();
  // closure() -> first_step -> zero_grad -> closure() (running stats frozen)
  // -> second_step; returns the first closure's loss. The closure computes the
  // loss and calls backward(); gradients are zeroed before its second call
  // only, so zero them before step() as with any optimizer. If the second
  // call throws, the saved weights are restored before the error propagates.
  Tensor step(const Closure& closure);
  void zero_grad() { base_->zero_grad(); }

  // ||T g|| of the last first_step, as a 0-dim float64 tensor on the device
  // (reading it synchronizes; the step itself never does).
  Tensor last_grad_norm() const;
  // False when the last first_step saw a non-finite gradient norm: it then
  // left the weights unperturbed. Reading it synchronizes.
  bool last_step_finite() const;

  TensorMap state_dict() const { return base_->state_dict(); }
  void load_state_dict(const TensorMap& state) { base_->load_state_dict(state); }
  Optimizer& base() { return *base_; }
  const SAMOptions& options() const { return options_; }

 private:
  void check_arena();
  void allocate(Device device);
  void fused_first_step();
  void per_tensor_first_step();
  void restore();
  bool adaptive_tensor(std::size_t index) const;

  std::shared_ptr<Optimizer> base_;
  SAMOptions options_;
  nn::Module* model_ = nullptr;
  Tensor saved_;     // arena-shaped copy of w taken by first_step
  Tensor scale_;     // float64 [kSamScaleSlots] on the device
  Tensor partials_;  // float64 [kNormPartials] scratch for the norm
  std::vector<Tensor> saved_per_tensor_;  // the per-tensor path's copies of w
  bool perturbed_ = false;
};

}  // namespace basin::optim
