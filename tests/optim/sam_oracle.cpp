#include "optim/sam_oracle.h"

#include <cmath>
#include <optional>
#include <vector>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/reduce.h"

namespace basin::testing {

namespace {

class FusedSam final : public SamUnderTest {
 public:
  FusedSam(std::shared_ptr<optim::Optimizer> base, const optim::SAMOptions& options, nn::Module* model)
      : sam_(std::move(base), options, model) {}
  void first_step() override { sam_.first_step(); }
  void second_step() override { sam_.second_step(); }
  Tensor step(const optim::Closure& closure) override { return sam_.step(closure); }
  void zero_grad() override { sam_.zero_grad(); }
  Tensor last_grad_norm() const override { return sam_.last_grad_norm(); }
  bool last_step_finite() const override { return sam_.last_step_finite(); }

 private:
  optim::SAM sam_;
};

// SAM and ASAM with a few core ops per parameter tensor:
//   norm = || T g ||  (float64, tensor by tensor)
//   s    = rho / (norm + eps), or 0 when that is not finite
//   e    = s * T^2 g,  w += e   (T = |w| + eta on the adaptive tensors, else 1)
// and the second step restores w from per-tensor copies, then base.step().
class PerTensorSam final : public SamUnderTest {
 public:
  PerTensorSam(std::shared_ptr<optim::Optimizer> base, const optim::SAMOptions& options, nn::Module* model)
      : base_(std::move(base)), options_(options), model_(model) {
    optim::SAM checks(base_, options_, model_);  // the same option and base checks as the library's
  }

  void first_step() override {
    BASIN_CHECK(!perturbed_, "SAM: first_step() called twice without second_step(): the weights are already "
                             "perturbed (call second_step() to restore them and update)");
    const std::vector<Tensor>& params = base_->params();
    const Device device = params[0].device();
    const DType dtype = params[0].dtype();
    NoGradGuard no_grad;
    const TensorOptions f64 = TensorOptions(kFloat64).device(device);

    std::vector<Tensor> t_squared(params.size());
    Tensor squares = zeros({}, f64);
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Tensor g = params[i].grad();
      if (!g.defined()) continue;  // no gradient reached it: e = 0, as a zero arena gradient
      Tensor tg = g;
      if (adaptive_tensor(i)) {
        const double eta = options_.scope() == optim::AsamScope::WeightsOnly ? options_.eta() : 0.0;
        const Tensor t = add(abs(params[i].detach()), eta);  // T from w before anything moves
        t_squared[i] = mul(t, t);
        tg = mul(t, g);
      }
      const Tensor tg64 = tg.to(kFloat64);
      squares = add(squares, sum(mul(tg64, tg64)));
    }
    norm_ = sqrt(squares);
    // Read on the host: this is the oracle, not the fast path.
    const double norm = norm_.item();
    finite_ = std::isfinite(norm);
    const double raw = options_.rho() / (norm + options_.eps());
    const double scale = finite_ && std::isfinite(raw) ? raw : 0.0;

    saved_.clear();
    for (std::size_t i = 0; i < params.size(); ++i) {
      saved_.push_back(params[i].detach().clone());
      const Tensor g = params[i].grad();
      if (!g.defined() || scale == 0.0) continue;
      Tensor e = mul(g, full({}, scale, f64).to(dtype));
      if (t_squared[i].defined()) e = mul(e, t_squared[i]);
      Tensor w = params[i];
      w.add_(e);
    }
    perturbed_ = true;
  }

  void second_step() override {
    BASIN_CHECK(perturbed_, "SAM: second_step() without first_step(): there are no saved weights to restore");
    restore();
    base_->step();
  }

  Tensor step(const optim::Closure& closure) override {
    BASIN_CHECK(closure != nullptr, "SAM: step() needs a closure (it evaluates the model twice)");
    Tensor loss = closure();
    first_step();
    base_->zero_grad();
    try {
      std::optional<nn::RunningStatsFreeze> freeze;
      if (model_ != nullptr) freeze.emplace(*model_);
      closure();
    } catch (...) {
      restore();
      throw;
    }
    second_step();
    return loss;
  }

  void zero_grad() override { base_->zero_grad(); }

  Tensor last_grad_norm() const override {
    BASIN_CHECK(norm_.defined(), "SAM: last_grad_norm() before any first_step()");
    return norm_;
  }
  bool last_step_finite() const override {
    BASIN_CHECK(norm_.defined(), "SAM: last_step_finite() before any first_step()");
    return finite_;
  }

 private:
  // The arena placed the "weight" tensors in its adaptive run; asking it keeps
  // the oracle on the library's definition of which tensors ASAM scales.
  bool adaptive_tensor(std::size_t index) const {
    if (!options_.adaptive()) return false;
    if (options_.scope() == optim::AsamScope::AllTensors) return true;
    const optim::ParameterArena& arena = base_->arena();
    return arena.offset(index) < arena.adaptive_end();
  }

  void restore() {
    NoGradGuard no_grad;
    const std::vector<Tensor>& params = base_->params();
    for (std::size_t i = 0; i < params.size(); ++i) {
      Tensor w = params[i];
      w.copy_(saved_[i]);
    }
    perturbed_ = false;
  }

  std::shared_ptr<optim::Optimizer> base_;
  optim::SAMOptions options_;
  nn::Module* model_;
  std::vector<Tensor> saved_;
  Tensor norm_;
  bool finite_ = true;
  bool perturbed_ = false;
};

}  // namespace

std::unique_ptr<SamUnderTest> make_sam(bool fused, std::shared_ptr<optim::Optimizer> base,
                                       const optim::SAMOptions& options, nn::Module* model) {
  if (fused) return std::make_unique<FusedSam>(std::move(base), options, model);
  return std::make_unique<PerTensorSam>(std::move(base), options, model);
}

}  // namespace basin::testing
