#include "analysis/objective.h"

#include <cmath>
#include <limits>
#include <utility>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/loss.h"
#include "core/random.h"
#include "core/reduce.h"
#include "optim/optimizer.h"

namespace basin::analysis {

BatchNormMode parse_batchnorm_mode(const std::string& text) {
  if (text == "eval") return BatchNormMode::Eval;
  if (text == "train") return BatchNormMode::Train;
  BASIN_FAIL("BatchNorm mode must be eval or train, got '", text, "'");
}

const char* batchnorm_mode_name(BatchNormMode mode) { return mode == BatchNormMode::Eval ? "eval" : "train"; }

// What every copy and subset of one Objective shares: the model, its arena,
// the options and the work counters. The model's modes come back when it goes.
struct Objective::State {
  nn::ModulePtr model;
  std::vector<std::string> names;
  std::unique_ptr<optim::ParameterArena> arena;
  ObjectiveOptions options;
  std::vector<std::pair<nn::Module*, bool>> modes;  // every module's training flag before
  std::unique_ptr<nn::RunningStatsFreeze> freeze;
  std::int64_t loss_evaluations = 0;
  std::int64_t gradient_evaluations = 0;

  ~State() {
    freeze.reset();
    for (auto& [module, training] : modes) {
      // train() reaches the children too; parents come first, so each module ends with its own flag.
      module->train(training);
    }
  }
};

Objective::Objective(nn::ModulePtr model, std::vector<LabelledBatch> batches, const ObjectiveOptions& options) {
  BASIN_CHECK(model != nullptr, "Objective: the model is null");
  BASIN_CHECK(!batches.empty(), "Objective: no batches: a measurement needs at least one example");
  auto state = std::make_shared<State>();
  state->model = std::move(model);
  state->options = options;
  const nn::Named<Tensor> named = state->model->named_parameters();
  BASIN_CHECK(!named.empty(), "Objective: the model has no parameters");
  std::vector<Tensor> params;
  for (const auto& [name, tensor] : named) {
    state->names.push_back(name);
    params.push_back(tensor);
  }
  optim::check_parameter_list(params, state->names, "Objective");
  // ASAM's tensors first, as an optimizer lays them out: sharpness() finds
  // them with one boundary index.
  state->arena = std::make_unique<optim::ParameterArena>(
      params, [&names = state->names](std::size_t i, const Tensor&) { return optim::is_weight_tensor(names[i]); });

  state->modes.emplace_back(state->model.get(), state->model->is_training());
  for (auto& [name, module] : state->model->named_modules()) state->modes.emplace_back(module.get(), module->is_training());
  if (options.batchnorm() == BatchNormMode::Eval) {
    state->model->eval();
  } else {
    state->model->train();
    state->freeze = std::make_unique<nn::RunningStatsFreeze>(*state->model);
    // Dropout would draw new masks at every evaluation: L would not be a function of w.
    state->model->apply([](nn::Module& m) {
      if (m.type_name() == "Dropout") m.train(false);
    });
  }

  const Device device = state->arena->device();
  const DType dtype = state->arena->dtype();
  for (std::size_t i = 0; i < batches.size(); ++i) {
    LabelledBatch& b = batches[i];
    BASIN_CHECK(b.inputs.defined() && b.targets.defined(), "Objective: batch ", i, " lacks inputs or targets");
    BASIN_CHECK(b.inputs.dim() >= 1 && b.inputs.size(0) > 0, "Objective: batch ", i, " is empty");
    BASIN_CHECK(b.targets.dim() >= 1 && b.targets.size(0) == b.inputs.size(0), "Objective: batch ", i, " has ",
                b.inputs.size(0), " inputs but ", b.targets.dim() ? b.targets.size(0) : 0, " targets");
    b.inputs = b.inputs.detach().to(device);
    if (is_floating(b.inputs.dtype())) b.inputs = b.inputs.to(dtype);
    b.targets = b.targets.detach().to(device);
    if (is_floating(b.targets.dtype())) b.targets = b.targets.to(dtype);
  }
  *this = Objective(std::move(state), std::move(batches));
}

Objective::Objective(std::shared_ptr<State> state, std::vector<LabelledBatch> batches)
    : state_(std::move(state)), batches_(std::move(batches)) {
  for (const LabelledBatch& b : batches_) examples_ += b.inputs.size(0);
}

nn::Module& Objective::model() const { return *state_->model; }
const optim::ParameterArena& Objective::arena() const {
  // Another arena (an optimizer's, another Objective's) may have taken the
  // parameters since: take them back, with their current values.
  if (!state_->arena->is_bound()) state_->arena->rebind();
  return *state_->arena;
}
const ObjectiveOptions& Objective::options() const { return state_->options; }
const std::vector<std::string>& Objective::parameter_names() const { return state_->names; }

std::int64_t Objective::parameter_count() const {
  std::int64_t count = 0;
  for (const Tensor& t : arena().tensors()) count += t.numel();
  return count;
}

std::string Objective::describe_batchnorm() const {
  return options().batchnorm() == BatchNormMode::Eval
             ? "BatchNorm in eval mode (running statistics)"
             : "BatchNorm in train mode (each batch's own statistics; running statistics frozen)";
}

Tensor Objective::weights() const { return arena().params(); }
Tensor Objective::copy_of_weights() const { return weights().detach().clone(); }

void Objective::set_weights(const Tensor& flat) const {
  BASIN_CHECK(flat.defined() && flat.shape() == weights().shape(), "Objective::set_weights: expected a vector of ",
              weights().numel(), " elements (the arena's layout), got ",
              flat.defined() ? shape_str(flat.shape()) : std::string("an undefined tensor"));
  NoGradGuard no_grad;
  Tensor w = weights();
  w.copy_(flat);
}

Tensor Objective::new_vector() const { return arena().make_buffer(); }

void Objective::check_vector(const Tensor& v, const char* who) const {
  const Tensor w = weights();
  BASIN_CHECK(v.defined() && v.shape() == w.shape() && v.dtype() == w.dtype() && v.device() == w.device(), who,
              ": the vector must have the objective's arena layout (", dtype_name(w.dtype()), " ",
              shape_str(w.shape()), " on ", w.device().str(), "; make one with Objective::new_vector())");
}

Tensor Objective::batch_loss(const LabelledBatch& batch, Tensor* logits) const {
  Tensor output = model()(batch.inputs);
  if (logits != nullptr) *logits = output;
  if (options().criterion()) return options().criterion()(output, batch.targets);
  return cross_entropy(output, batch.targets, options().label_smoothing());
}

Evaluation Objective::evaluate() const {
  NoGradGuard no_grad;
  double loss_sum = 0;
  double correct = 0;
  bool classified = true;
  for (const LabelledBatch& b : batches_) {
    Tensor logits;
    const Tensor loss = batch_loss(b, &logits);
    const auto n = static_cast<double>(b.inputs.size(0));
    loss_sum += loss.item() * n;
    classified = classified && logits.dim() == 2 && b.targets.dim() == 1 && !is_floating(b.targets.dtype());
    if (classified) correct += sum(eq(argmax(logits, 1), b.targets)).item();
  }
  ++state_->loss_evaluations;
  const auto n = static_cast<double>(examples_);
  return {loss_sum / n, classified ? correct / n : std::numeric_limits<double>::quiet_NaN()};
}

double Objective::gradient(Tensor& gradient) const {
  (void)arena();  // bound to the parameters
  optim::ParameterArena& arena = *state_->arena;
  check_vector(gradient, "Objective::gradient");
  arena.zero_grad();
  double loss_sum = 0;
  for (const LabelledBatch& b : batches_) {
    const Tensor loss = batch_loss(b, nullptr);
    const auto n = static_cast<double>(b.inputs.size(0));
    // Each batch adds its share of the mean over all examples.
    mul(loss, n / static_cast<double>(examples_)).backward();
    loss_sum += loss.item() * n;
  }
  BASIN_CHECK(arena.is_bound(), "Objective::gradient: a parameter or its gradient no longer views the arena "
                                "(was the model moved, or a gradient replaced, after the Objective was made?)");
  NoGradGuard no_grad;
  gradient.copy_(arena.grads());
  ++state_->gradient_evaluations;
  return loss_sum / static_cast<double>(examples_);
}

Objective Objective::subset(std::int64_t first, std::int64_t count) const {
  BASIN_CHECK(first >= 0 && count > 0 && first + count <= examples_, "Objective::subset: examples [", first, ", ",
              first + count, ") are not inside the ", examples_, " examples");
  std::vector<LabelledBatch> cut;
  std::int64_t start = 0;  // of the current batch
  for (const LabelledBatch& b : batches_) {
    const std::int64_t n = b.inputs.size(0);
    const std::int64_t lo = std::max(first, start), hi = std::min(first + count, start + n);
    if (lo < hi) cut.push_back({b.inputs.slice(0, lo - start, hi - start), b.targets.slice(0, lo - start, hi - start)});
    start += n;
  }
  return Objective(state_, std::move(cut));
}

std::int64_t Objective::loss_evaluations() const { return state_->loss_evaluations; }
std::int64_t Objective::gradient_evaluations() const { return state_->gradient_evaluations; }

double dot(const Tensor& a, const Tensor& b) {
  NoGradGuard no_grad;
  return sum(mul(a.to(kFloat64), b.to(kFloat64))).item();
}

double norm(const Tensor& a) { return std::sqrt(dot(a, a)); }

SampleMean sample_mean(const std::vector<double>& values) {
  SampleMean result;
  if (values.empty()) return result;
  const auto n = static_cast<double>(values.size());
  double sum = 0;
  for (double x : values) sum += x;
  result.mean = sum / n;
  if (values.size() > 1) {
    double squares = 0;
    for (double x : values) squares += (x - result.mean) * (x - result.mean);
    result.standard_error = std::sqrt(squares / (n - 1.0) / n);
  }
  return result;
}

SeededDraws::SeededDraws(std::uint64_t seed)
    : seed_(default_generator().seed()), offset_(default_generator().offset()) {
  default_generator().manual_seed(seed);
}

SeededDraws::~SeededDraws() { default_generator().set_state(seed_, offset_); }

}  // namespace basin::analysis
