// SAM and ASAM: sharpness-aware minimization as a wrapper over a base optimizer.
//
//   SAM  (Foret et al. 2020):  e = rho * g / (||g|| + eps)
//   ASAM (Kwon et al. 2021):   e = rho * T^2 g / (||T g|| + eps),  T = |w| + eta
//
// A step: gradients g at w -> first_step() moves to w + e (saving w) -> the
// caller computes gradients g' at w + e -> second_step() restores w exactly
// from the saved copy and lets the base optimizer step with g'.
// step(closure) runs the whole sequence, calling the closure for g'. SAM is
// an Optimizer, so a training loop treats SGD, SAM and ASAM alike.
//
// Data parallelism: each replica (rank) computes gradients on its shard of
// the global batch, and a gradient sync averages them across the replicas.
// SamMode::Global syncs the first-pass gradient too, so every replica
// perturbs by the same e (single-device SAM on the global batch);
// SamMode::Replica perturbs each replica by its own shard's gradient (the SAM
// paper's m-sharpness, m = the local batch) and saves that communication. The
// second-pass gradients are synced in both modes. step_chunks() gives
// Replica's meaning on one device: each chunk of the batch is perturbed by
// its own gradient and the chunks' second-pass gradients are averaged.
//
// Conventions (each a choice that changes results; the defaults follow
// davda54/sam and SamsungLabs/ASAM; docs/sam.md explains each):
//   eps = 1e-12 in rho / (||g|| + eps);
//   restore from a saved copy (bit-exact), not w - e;
//   weight decay and momentum only in the base optimizer;
//   BatchNorm running statistics move in the first pass only: give SAM the
//   model and step(closure) freezes them around the second closure call
//   (step_chunks: in chunk 0's first pass only, as rank 0's statistics are
//   the ones a data-parallel run keeps);
//   mode Global: with a gradient sync, every replica perturbs by the global
//   batch's gradient (davda54/sam's single-device meaning);
//   ASAM scales "weight" tensors only (names containing "weight": conv and
//   linear weights, BN scale) with T = |w| + eta, other tensors with T = 1;
//   AsamScope::AllTensors is davda54's variant (T = |w| on every tensor, eta 0).
//
// The norm, the perturbation and the restore + update are each one pass over
// the parameter arena (kernels/optim.h): with an SGD base, 4 kernel launches
// per SAM step (two for the norm) plus the two zero_grad fills, whatever the
// number of tensors, and no host synchronization. tests/optim/sam_oracle.cpp
// holds the same math written tensor by tensor with core ops, the independent
// oracle the tests hold this path to.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "core/options.h"
#include "nn/module.h"
#include "optim/optimizer.h"

namespace basin::optim {

enum class AsamScope { WeightsOnly, AllTensors };

// Which gradient perturbs the weights when the batch is split across data-
// parallel replicas (or into chunks by step_chunks()).
enum class SamMode {
  Global,   // the gradient of the whole batch: the first pass is synced as well
  Replica,  // each replica's own gradient (m-sharpness); only the second pass is synced
};

// Averages the arena's gradients over the data-parallel replicas, in place
// (an all-reduce); a data-parallel trainer sets it. Every replica must call
// it at the same points, which step() guarantees.
using GradientSync = std::function<void()>;

// Computes the loss of chunk `chunk` of the batch (its mean over the chunk)
// and calls backward(); step_chunks() calls it twice per chunk.
using ChunkClosure = std::function<Tensor(std::size_t chunk)>;

struct SAMOptions {
  BASIN_OPTION(double, rho) = 0.05;
  BASIN_OPTION(double, eps) = 1e-12;
  BASIN_OPTION(bool, adaptive) = false;  // ASAM
  BASIN_OPTION(double, eta) = 0.01;      // ASAM, WeightsOnly scope
  BASIN_OPTION(AsamScope, scope) = AsamScope::WeightsOnly;
  BASIN_OPTION(SamMode, mode) = SamMode::Global;  // matters only with a gradient sync
};

// An Optimizer over another: step(closure) is a whole SAM step, and lr,
// zero_grad and the state belong to the base (a checkpoint holds the base's
// state; SAM has none of its own between steps).
class SAM : public Optimizer {
 public:
  // `model`, when given, is the module whose running statistics step(closure)
  // freezes during the second pass. Checks the options (rho > 0, eps >= 0,
  // eta >= 0); ASAM with the WeightsOnly scope needs a base optimizer built
  // from named parameters (model.named_parameters()).
  SAM(std::shared_ptr<Optimizer> base, const SAMOptions& options, nn::Module* model = nullptr);

  // Perturbs the weights along the current gradients (saving them first).
  // Throws when the weights are already perturbed (first_step twice), and
  // when the model moved to another device after the base optimizer packed
  // it (only the base could move its own state along).
  void first_step();
  // Restores the saved weights and steps the base optimizer with the current
  // gradients (Optimizer::restore_and_step: one fused pass for SGD). Throws
  // without a first_step before it.
  void second_step();
  // closure() -> first_step -> zero_grad -> closure() (running stats frozen)
  // -> second_step; returns the first closure's loss. The closure computes the
  // loss and calls backward(); gradients are zeroed before its second call
  // only, so zero them before step() as with any optimizer. If the second
  // call throws, the saved weights are restored before the error propagates.
  // Without a closure, throws: SAM evaluates the model twice. With a
  // gradient sync, the first closure's gradients are synced before
  // first_step (Global mode only) and the second's before second_step.
  Tensor step(const Closure& closure = nullptr) override;

  // With a sync, step() and step_chunks() call it where the mode says (see
  // step()); nullptr removes it. first_step() and second_step() never call it:
  // who drives them syncs the gradients themselves.
  void set_gradient_sync(GradientSync sync) { sync_ = std::move(sync); }

  // m-sharpness on one device: one SAM step over chunks of the batch, each
  // perturbed by its own gradient. weights[c] is chunk c's share of the batch
  // (n_c / n): positive, summing to 1 within 1e-9. For each chunk: zero the
  // gradients, closure(c), first_step, zero the gradients, closure(c) again
  // (running statistics frozen), add weights[c] * g' to the total, restore w.
  // The total becomes the gradient, is synced if a sync is set (Replica
  // mode), and the base optimizer steps from w. Running statistics move in
  // chunk 0's first pass only (when the model was given), so N chunks on one
  // device and N replicas in Replica mode, of which rank 0's statistics are
  // kept, give the same model. One chunk of weight 1 is exactly step().
  // Returns sum_c weights[c] * loss_c on the device. Throws before any work
  // on bad weights, a null closure, or a sync in Global mode (whose one
  // shared perturbation per step contradicts one per chunk; each replica may
  // chunk its own shard in Replica mode). If a closure throws, the weights
  // are restored before the error propagates.
  Tensor step_chunks(const ChunkClosure& closure, const std::vector<double>& weights);

  // ||T g|| of the last first_step, as a 0-dim float64 tensor on the device
  // (reading it synchronizes; the step itself never does).
  Tensor last_grad_norm() const;
  // False when the last first_step saw a non-finite gradient norm: it then
  // left the weights unperturbed. Reading it synchronizes.
  bool last_step_finite() const;

  void set_lr(double lr) override;
  TensorMap state_dict() const override { return base_->state_dict(); }
  void load_state_dict(const TensorMap& state) override { base_->load_state_dict(state); }
  Optimizer& base() { return *base_; }
  const SAMOptions& options() const { return options_; }

 private:
  void check_arena();
  void allocate(Device device);
  void restore();
  void sync_gradients();
  // Adds weights[chunk] * the current gradients to the chunks' total; the
  // last chunk's gradients take the total in place (see step_chunks).
  void accumulate_chunk(std::size_t chunk, const std::vector<double>& weights);

  std::shared_ptr<Optimizer> base_;
  SAMOptions options_;
  nn::Module* model_ = nullptr;
  Tensor saved_;        // arena-shaped copy of w taken by first_step
  Tensor scale_;        // float64 [kSamScaleSlots] on the device
  Tensor partials_;     // float64 [kNormPartials] scratch for the norm
  Tensor chunk_total_;  // arena-shaped: step_chunks' sum of weights[c] * g'_c so far
  GradientSync sync_;
  bool perturbed_ = false;
};

}  // namespace basin::optim
