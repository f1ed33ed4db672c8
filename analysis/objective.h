// Objective: the loss a sharpness measurement looks at.
//
// Every measurement in analysis/ is about one function of the weights,
//
//   L(w) = (1/N) sum over the N examples of a fixed set of batches of loss(model_w(x), y),
//
// the model's mean training loss on those examples. Objective holds the model,
// the batches and the criterion (cross-entropy by default), and gives
// everything the measurements need: L(w), its gradient, and the weights as
// one flat vector that can be read, moved and put back.
//
// The flat vector is an optim::ParameterArena: the model's parameters become
// views into one buffer (as under an optimizer), so a point in weight space,
// a gradient, a direction or an eigenvector is one tensor of the arena's
// layout (new_vector()), and w + h v is one add. Padding elements between
// the tensors are zero in every such vector, so dot products and norms over
// the whole buffer are exact.
//
// BatchNorm. In eval mode (the default) BatchNorm normalizes with its running
// statistics, so L is a fixed function of the weights: the usual choice
// (PyHessian, the loss-landscape code of Li et al.). In train mode every
// batch is normalized with its own statistics, as during training; the
// running statistics stay frozen (nn::RunningStatsFreeze) and Dropout is kept
// off, so L is still a deterministic function of w. Then the batches matter:
// the same examples cut into other batches give another function.
//
// Measurements are usually taken in float64 (convert the model first with
// Module::to(kFloat64)): a Hessian-vector product here is a finite difference
// of two gradients, which float32 rounding would swamp (docs/sharpness.md).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/options.h"
#include "core/tensor.h"
#include "nn/module.h"
#include "optim/arena.h"

namespace basin::analysis {

enum class BatchNormMode { Eval, Train };

// "eval" or "train"; anything else is an error naming the value.
BatchNormMode parse_batchnorm_mode(const std::string& text);
const char* batchnorm_mode_name(BatchNormMode mode);

// The mean loss of one batch, as a scalar tensor recorded by autograd.
using Criterion = std::function<Tensor(const Tensor& output, const Tensor& target)>;

// Reports work done: `done` of `total` units (a total may be an upper bound,
// as for an iteration that stops when it converges), and a short status.
using ProgressFn = std::function<void(std::int64_t done, std::int64_t total, const std::string& status)>;

struct ObjectiveOptions {
  BASIN_OPTION(BatchNormMode, batchnorm) = BatchNormMode::Eval;
  // For the default criterion, cross-entropy.
  BASIN_OPTION(double, label_smoothing) = 0.0;
  // Replaces cross-entropy (a test's quadratic, say). Accuracy is then reported only
  // when the outputs are [B, C] logits and the targets integer labels.
  BASIN_OPTION(Criterion, criterion) = nullptr;
};

// Inputs and targets of one batch.
struct LabelledBatch {
  Tensor inputs;   // [B, ...]; converted to the model's dtype and device
  Tensor targets;  // [B, ...]; class labels for cross-entropy; moved to the model's device
};

// The loss, and the fraction of examples whose largest logit is the label
// (NaN when the outputs are not logits of class labels).
struct Evaluation {
  double loss = 0;
  double accuracy = 0;
};

class Objective {
 public:
  // Packs the model's parameters (one floating dtype and device) into an
  // arena; they stay views of it for the Objective's life and after. If
  // something else packs them meanwhile (an optimizer, another Objective),
  // the next use takes them back with their current values. Sets the
  // model's mode for BatchNorm and puts the previous mode back when the last
  // copy of this Objective (and of its subsets) goes away.
  Objective(nn::ModulePtr model, std::vector<LabelledBatch> batches, const ObjectiveOptions& options = {});

  nn::Module& model() const;
  const optim::ParameterArena& arena() const;
  const ObjectiveOptions& options() const;
  const std::vector<LabelledBatch>& batches() const { return batches_; }
  std::int64_t examples() const { return examples_; }
  // Parameter elements, without the arena's padding.
  std::int64_t parameter_count() const;
  DType dtype() const { return arena().dtype(); }
  Device device() const { return arena().device(); }
  // "BatchNorm in eval mode (running statistics)" or "... train mode (batch statistics, ...)".
  std::string describe_batchnorm() const;

  // ---- points and vectors of weight space (the arena's layout)
  // The live weights: writing into this tensor moves the model.
  Tensor weights() const;
  Tensor copy_of_weights() const;
  void set_weights(const Tensor& flat) const;
  // Zeros of the arena's layout (dtype, device, padding).
  Tensor new_vector() const;
  // Throws, naming `who`, unless v has the arena's layout.
  void check_vector(const Tensor& v, const char* who) const;
  // Parameter i's part of a vector of the arena's layout.
  Tensor view(const Tensor& vector, std::size_t index) const { return arena().view(vector, index); }
  // Parameter names in arena index order.
  const std::vector<std::string>& parameter_names() const;

  // ---- the function
  // L and the accuracy at the current weights (no graph is recorded).
  Evaluation evaluate() const;
  // L at the current weights; its gradient is written into `gradient` (a
  // vector of the arena's layout, overwritten). The model's .grad holds it too.
  double gradient(Tensor& gradient) const;

  // The same objective over examples [first, first + count) of this one's,
  // sharing the model and its arena; in train mode the batches are this
  // one's, cut to the range. For m-sharpness.
  Objective subset(std::int64_t first, std::int64_t count) const;

  // Work done so far by this Objective and every subset of it: calls of
  // evaluate() and of gradient(), each counted once whatever the examples it
  // covers (a subset's call covers fewer).
  std::int64_t loss_evaluations() const;
  std::int64_t gradient_evaluations() const;

 private:
  struct State;
  Objective(std::shared_ptr<State> state, std::vector<LabelledBatch> batches);
  Tensor batch_loss(const LabelledBatch& batch, Tensor* logits) const;

  std::shared_ptr<State> state_;
  std::vector<LabelledBatch> batches_;
  std::int64_t examples_ = 0;
};

// ---- vector algebra over the arena's layout (double results)
double dot(const Tensor& a, const Tensor& b);
double norm(const Tensor& a);

// The mean of repeated estimates and its standard error (the sample standard
// deviation over sqrt(n); 0 for fewer than two values).
struct SampleMean {
  double mean = 0;
  double standard_error = 0;
};
SampleMean sample_mean(const std::vector<double>& values);

// While alive, the default generator draws from `seed` (core/random.h); its
// previous state comes back on destruction. Measurements draw their random
// vectors inside one, so they neither depend on nor disturb the caller's stream.
class SeededDraws {
 public:
  explicit SeededDraws(std::uint64_t seed);
  ~SeededDraws();
  SeededDraws(const SeededDraws&) = delete;
  SeededDraws& operator=(const SeededDraws&) = delete;

 private:
  std::uint64_t seed_, offset_;
};

}  // namespace basin::analysis
