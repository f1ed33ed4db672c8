// SAM and ASAM: five-step trajectories against the PyTorch reference
// (tests/reference/gen_sam_fixtures.py), the fused path against the
// per-tensor oracle (sam_oracle.h), the invariants ||e|| = rho (SAM) and ||e / T|| = rho (ASAM),
// the exact restore, BatchNorm running statistics, zero and non-finite
// gradients, a deterministic norm, the launch count of a fused step, and
// errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/autograd.h"
#include "core/cpu_engine.h"
#include "core/device.h"
#include "core/loss.h"
#include "core/random.h"
#include "nn/layers.h"
#include "optim/sam.h"
#include "optim/sam_oracle.h"
#include "optim/sgd.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/fixtures.h"

using namespace basin;
using namespace basin::optim;
using basin::testing::describe;
using basin::testing::equal;
using basin::testing::fixture_tensor;
using basin::testing::option_cases;
using basin::testing::relative_error;

namespace {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

const TensorMap& fixture() {
  static const TensorMap f = basin::testing::load_fixture("sam_trajectories.safetensors");
  return f;
}

// ---------------------------------------------------------------- the reference network

// The generator's torch.nn.Sequential, layer for layer, at its stored initial state.
std::shared_ptr<nn::Sequential> make_net(Device device) {
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 4, 3).padding(1).bias(false)),
      std::make_shared<nn::BatchNorm2d>(4), std::make_shared<nn::ReLU>(), std::make_shared<nn::GlobalAvgPool2d>(),
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(4, 3)});
  TensorMap init;
  for (const auto& [key, value] : fixture()) {
    if (key.starts_with("init/")) init[key.substr(5)] = value;
  }
  net->load_state_dict(init);
  net->to(device);
  net->train();
  return net;
}

struct RunCase {
  std::string name;  // the generator's run name
  SAMOptions options;
  bool nesterov = false;
};

std::vector<RunCase> run_cases() {
  return {
      {"sam", SAMOptions().rho(0.05), false},
      {"asam", SAMOptions().rho(0.5).adaptive(true).eta(0.01), false},
      {"asam_all", SAMOptions().rho(0.5).adaptive(true).scope(AsamScope::AllTensors), false},
      {"sam_nesterov", SAMOptions().rho(0.05), true},
  };
}

Tensor host_copy(const Tensor& t) { return t.detach().to(Device::cpu()).clone(); }

struct Trajectory {
  std::vector<TensorMap> states;  // parameters and buffers (on the host) after each step
  std::vector<double> losses;     // the first-pass loss of each step
  TensorMap perturbed;            // the weights of the first step's second pass
  double first_norm = 0.0;        // last_grad_norm() in the first step
};

Trajectory train(const RunCase& run, bool fused, Device device, int steps = 5) {
  auto net = make_net(device);
  auto base = std::make_shared<SGD>(net->named_parameters(),
                                    SGDOptions(0.1).momentum(0.9).weight_decay(5e-4).nesterov(run.nesterov));
  const auto sam = testing::make_sam(fused, base, run.options, net.get());
  const Tensor x = fixture_tensor(fixture(), "input").to(device);
  const Tensor labels = fixture_tensor(fixture(), "labels").to(device);

  Trajectory out;
  int calls = 0;
  const Closure closure = [&] {
    if (++calls == 2) {  // the first step's second pass: the weights are w + e now
      for (const auto& [name, p] : net->named_parameters()) out.perturbed[name] = host_copy(p);
      out.first_norm = sam->last_grad_norm().item();
    }
    Tensor loss = cross_entropy((*net)(x), labels);
    loss.backward();
    return loss;
  };
  for (int step = 0; step < steps; ++step) {
    sam->zero_grad();
    const Tensor loss = sam->step(closure);
    out.losses.push_back(loss.item());
    TensorMap state;
    for (const auto& [name, t] : net->state_dict()) state[name] = host_copy(t);
    out.states.push_back(std::move(state));
  }
  return out;
}

const std::vector<std::string> kParamNames = {"0.weight", "1.weight", "1.bias", "5.weight", "5.bias"};
const std::vector<std::string> kStatNames = {"1.running_mean", "1.running_var"};

// Checks a trajectory against the reference: every parameter and running
// statistic after every step, the losses, and the first step's norm and
// perturbed weights. Returns the worst relative error after the last step.
double check_against_reference(const RunCase& run, const Trajectory& got, double tolerance) {
  double worst_final = 0.0;
  std::string worst_name;
  for (std::size_t step = 0; step < got.states.size(); ++step) {
    const std::string prefix = run.name + "/step" + std::to_string(step + 1) + "/";
    for (const auto& names : {kParamNames, kStatNames}) {
      for (const std::string& name : names) {
        const double err = relative_error(got.states[step].at(name), fixture_tensor(fixture(), prefix + name));
        INFO(run.name << " step " << step + 1 << " " << name << ": relative error " << err);
        CHECK(err < tolerance);
        if (step + 1 == got.states.size() && err >= worst_final) {
          worst_final = err;
          worst_name = name;
        }
      }
    }
    const double ref_loss = fixture_tensor(fixture(), run.name + "/loss" + std::to_string(step + 1)).item();
    INFO(run.name << " step " << step + 1 << " loss " << got.losses[step] << " vs " << ref_loss);
    CHECK(std::abs(got.losses[step] - ref_loss) <= tolerance * std::abs(ref_loss));
  }
  const double ref_norm = fixture_tensor(fixture(), run.name + "/grad_norm").item();
  INFO(run.name << " first-step norm " << got.first_norm << " vs " << ref_norm);
  CHECK(std::abs(got.first_norm - ref_norm) <= 1e-6 * ref_norm);
  for (const std::string& name : kParamNames) {
    const Tensor reference = fixture_tensor(fixture(), run.name + "/perturbed/" + name);
    const double err = relative_error(got.perturbed.at(name), reference);
    INFO(run.name << " perturbed " << name << ": relative error " << err);
    CHECK(err < 1e-6);
  }
  INFO(run.name << ": worst relative error after 5 steps " << worst_final << " (" << worst_name << ")");
  CHECK(worst_final < tolerance);
  return worst_final;
}

// ---------------------------------------------------------------- small direct problems

// Named leaves of odd sizes; "weight" and other tensors interleaved, so the
// arena's weights-first order differs from the given one.
NamedTensors make_params(DType dtype, Device device) {
  const std::vector<std::pair<std::string, Shape>> spec = {
      {"conv.weight", {5, 3, 3}}, {"conv.bias", {5}}, {"bn.weight", {7}}, {"bn.bias", {7}},
      {"gain", {13}},             {"fc.weight", {3, 11}}, {"fc.bias", {3}},
  };
  NamedTensors out;
  for (const auto& [name, shape] : spec) {
    out.emplace_back(name, randn(shape, TensorOptions(dtype).device(device)).requires_grad_());
  }
  return out;
}

// Gives every parameter a fresh random gradient (the gradients are arena views).
void set_random_grads(const Optimizer& opt) {
  NoGradGuard no_grad;
  for (const Tensor& p : opt.params()) p.grad().copy_(randn(p.shape(), TensorOptions(p.dtype())).to(p.device()));
}

bool all_equal(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!equal(host_copy(a[i]), host_copy(b[i]))) return false;
  }
  return true;
}

// T of ASAM for one tensor (on the host, in float64), or empty for T = 1.
std::vector<double> t_of(const SAMOptions& o, const std::string& name, const std::vector<double>& w) {
  if (!o.adaptive()) return {};
  const bool all = o.scope() == AsamScope::AllTensors;
  if (!all && name.find("weight") == std::string::npos) return {};
  std::vector<double> t;
  for (double x : w) t.push_back(std::abs(x) + (all ? 0.0 : o.eta()));
  return t;
}

// A base optimizer that is not SGD, so SAM takes its generic second step (a
// copy restore, then base.step()): plain w -= lr * g with one core op per tensor.
class PlainDescent : public Optimizer {
 public:
  PlainDescent(const ParamList& params, double lr) : Optimizer(params, "PlainDescent") { set_lr(lr); }
  Tensor step(const Closure& closure = nullptr) override {
    Tensor loss;
    if (closure) loss = closure();
    ensure_bound();
    NoGradGuard no_grad;
    for (const Tensor& p : params()) p.detach().add_(p.grad(), -lr_);
    return loss;
  }
  TensorMap state_dict() const override { return state_header(0); }
  void load_state_dict(const TensorMap& state) override { check_state(state, {}); }
};


}  // namespace

// ---------------------------------------------------------------- trajectories

TEST_CASE("SAM and ASAM trajectories match the PyTorch reference", "[sam]") {
  // The acceptance bar: after 5 float32 steps, every parameter tensor
  // within ||w - w_ref|| / ||w_ref|| < 1e-5 (float32 rounding alone gives ~1e-7).
  for (const RunCase& run : run_cases()) {
    for (bool fused : {true, false}) {
      INFO(run.name << (fused ? " (fused)" : " (per tensor)"));
      const Trajectory got = train(run, fused, Device::cpu());
      const double worst = check_against_reference(run, got, 1e-5);
      WARN(run.name << (fused ? " fused" : " per-tensor") << ": worst relative error after 5 steps " << worst);
    }
  }
}

TEST_CASE("the fused and per-tensor SAM paths agree", "[sam]") {
  SECTION("on the reference network, over 5 steps") {
    for (const RunCase& run : run_cases()) {
      const Trajectory fused = train(run, true, Device::cpu());
      const Trajectory per_tensor = train(run, false, Device::cpu());
      for (const auto& [name, value] : fused.states.back()) {
        if (value.dtype() != kFloat32) continue;  // num_batches_tracked: checked below
        const double err = relative_error(per_tensor.states.back().at(name), value);
        INFO(run.name << " " << name << ": relative error " << err);
        CHECK(err < 1e-6);
      }
      const std::string count = "1.num_batches_tracked";
      CHECK(equal(per_tensor.states.back().at(count), fused.states.back().at(count)));
    }
  }
  SECTION("on one float64 first step, every option") {
    manual_seed(11);
    for (const SAMOptions& options : option_cases()) {
      INFO(describe(options));
      std::vector<std::vector<Tensor>> perturbed;
      std::vector<double> norms;
      for (bool fused : {true, false}) {
        manual_seed(12);  // the same parameters and gradients for both paths
        const NamedTensors params = make_params(kFloat64, Device::cpu());
        auto base = std::make_shared<SGD>(params, SGDOptions(0.1));
        set_random_grads(*base);
        SAMOptions o = options;
        const auto sam = testing::make_sam(fused, base, o);
        sam->first_step();
        perturbed.push_back(testing::host_copies(base->params()));
        norms.push_back(sam->last_grad_norm().item());
      }
      CHECK(std::abs(norms[0] - norms[1]) <= 1e-14 * norms[0]);
      for (std::size_t i = 0; i < perturbed[0].size(); ++i) {
        CHECK(testing::max_abs_diff(perturbed[0][i], perturbed[1][i]) <= 1e-14);
      }
    }
  }
}

TEST_CASE("SAM with a base that is not SGD restores by copy and then steps", "[sam]") {
  // PlainDescent(lr) and SGD(lr) without momentum or decay make the same update,
  // so the generic second step must land where the fused restore + SGD does.
  for (bool fused : {true, false}) {
    std::vector<std::vector<Tensor>> results;
    for (bool plain : {true, false}) {
      manual_seed(21);
      const NamedTensors params = make_params(kFloat32, Device::cpu());
      std::shared_ptr<Optimizer> base;
      if (plain) {
        base = std::make_shared<PlainDescent>(params, 0.1);
      } else {
        base = std::make_shared<SGD>(params, SGDOptions(0.1));
      }
      const auto sam = testing::make_sam(fused, base, SAMOptions().rho(0.1));
      for (int step = 0; step < 3; ++step) {
        set_random_grads(*base);
        sam->first_step();
        set_random_grads(*base);
        sam->second_step();
      }
      results.push_back(testing::host_copies(base->params()));
    }
    for (std::size_t i = 0; i < results[0].size(); ++i) {
      INFO((fused ? "fused" : "per tensor") << ", parameter " << i);
      CHECK(relative_error(results[0][i], results[1][i]) < 1e-6);
    }
  }
}

// ---------------------------------------------------------------- invariants

TEST_CASE("SAM keeps ||e|| = rho and ASAM keeps ||e / T|| = rho", "[sam]") {
  manual_seed(31);
  for (const SAMOptions& options : option_cases()) {
    for (bool fused : {true, false}) {
      INFO(describe(options) << (fused ? ", fused" : ", per tensor"));
      const NamedTensors params = make_params(kFloat64, Device::cpu());
      auto base = std::make_shared<SGD>(params, SGDOptions(0.1));
      set_random_grads(*base);
      SAMOptions o = options;
      const auto sam = testing::make_sam(fused, base, o);

      // Walks the tensors by the names given here, whatever order the arena keeps them in.
      std::vector<Tensor> before;
      for (const auto& [name, p] : params) before.push_back(host_copy(p));
      sam->first_step();
      double scaled_e = 0.0, tg = 0.0;
      for (std::size_t i = 0; i < params.size(); ++i) {
        const auto& [name, p] = params[i];
        const std::vector<double> w0 = before[i].to_vector<double>();
        const std::vector<double> w1 = p.to_vector<double>();
        const std::vector<double> g = p.grad().to_vector<double>();
        const std::vector<double> t = t_of(options, name, w0);
        for (std::size_t k = 0; k < w0.size(); ++k) {
          const double tk = t.empty() ? 1.0 : t[k];
          scaled_e += std::pow((w1[k] - w0[k]) / tk, 2);
          tg += std::pow(tk * g[k], 2);
        }
      }
      const double rho = options.rho();
      CHECK(std::abs(std::sqrt(scaled_e) - rho) <= 1e-12 * rho);
      CHECK(std::abs(sam->last_grad_norm().item() - std::sqrt(tg)) <= 1e-13 * std::sqrt(tg));
      CHECK(sam->last_step_finite());
    }
  }
}

TEST_CASE("SAM restores the weights exactly from its saved copy", "[sam]") {
  // With lr 0 the base update is w = saved - 0 * d = saved, so after
  // first_step and second_step the weights must equal the originals bit for
  // bit; restoring by w - e would miss by rounding.
  manual_seed(41);
  for (const SAMOptions& options : option_cases()) {
    for (bool fused : {true, false}) {
      for (bool sgd : {true, false}) {
        INFO(describe(options) << (fused ? ", fused" : ", per tensor") << (sgd ? ", SGD" : ", generic base"));
        const NamedTensors params = make_params(kFloat32, Device::cpu());
        std::shared_ptr<Optimizer> base;
        if (sgd) {
          base = std::make_shared<SGD>(params, SGDOptions(0.0).momentum(0.9).weight_decay(5e-4));
        } else {
          base = std::make_shared<PlainDescent>(params, 0.0);
        }
        SAMOptions o = options;
        const auto sam = testing::make_sam(fused, base, o);
        set_random_grads(*base);
        const std::vector<Tensor> before = testing::host_copies(base->params());
        sam->first_step();
        CHECK_FALSE(all_equal(base->params(), before));  // the perturbation moved them
        set_random_grads(*base);
        sam->second_step();
        CHECK(all_equal(base->params(), before));
      }
    }
  }
}

// ---------------------------------------------------------------- BatchNorm running statistics

TEST_CASE("SAM moves BatchNorm running statistics in the first pass only", "[sam]") {
  const Tensor x = fixture_tensor(fixture(), "input");
  const Tensor labels = fixture_tensor(fixture(), "labels");
  auto stats_of = [](nn::Sequential& net) {
    auto& bn = dynamic_cast<nn::BatchNorm2d&>(*net[1]);
    return std::vector<Tensor>{host_copy(bn.running_mean), host_copy(bn.running_var)};
  };

  // What one training forward of the initial network does to the statistics.
  auto once = make_net(Device::cpu());
  const std::vector<Tensor> initial = stats_of(*once);
  (*once)(x);
  const std::vector<Tensor> after_one_pass = stats_of(*once);
  REQUIRE_FALSE(all_equal(after_one_pass, initial));

  for (bool fused : {true, false}) {
    for (bool give_model : {true, false}) {
      INFO((fused ? "fused" : "per tensor") << (give_model ? ", model given" : ", no model"));
      auto net = make_net(Device::cpu());
      auto base = std::make_shared<SGD>(net->named_parameters(), SGDOptions(0.1).momentum(0.9));
      const auto sam = testing::make_sam(fused, base, SAMOptions(), give_model ? net.get() : nullptr);
      sam->zero_grad();
      sam->step([&] {
        Tensor loss = cross_entropy((*net)(x), labels);
        loss.backward();
        return loss;
      });
      auto& bn = dynamic_cast<nn::BatchNorm2d&>(*(*net)[1]);
      if (give_model) {
        // The second pass (at other weights, so other batch statistics) left them alone.
        CHECK(all_equal(stats_of(*net), after_one_pass));
        CHECK(bn.num_batches_tracked.item() == 1.0);
        CHECK(bn.update_running_stats);  // the freeze ended with the step
      } else {
        // Without the model SAM cannot freeze them: both passes count. This
        // shows the check above can fail.
        CHECK_FALSE(all_equal(stats_of(*net), after_one_pass));
        CHECK(bn.num_batches_tracked.item() == 2.0);
      }
    }
  }
}

// ---------------------------------------------------------------- degenerate gradients

TEST_CASE("SAM turns a zero gradient into a zero perturbation, not NaN", "[sam]") {
  manual_seed(51);
  for (const SAMOptions& options : option_cases()) {
    for (bool fused : {true, false}) {
      for (double eps : {1e-12, 0.0}) {
        INFO(describe(options) << (fused ? ", fused" : ", per tensor") << ", eps " << eps);
        const NamedTensors params = make_params(kFloat32, Device::cpu());
        auto base = std::make_shared<SGD>(params, SGDOptions(0.1));
        SAMOptions o = options;
        const auto sam = testing::make_sam(fused, base, o.eps(eps));
        base->zero_grad();
        const std::vector<Tensor> before = testing::host_copies(base->params());
        sam->first_step();
        CHECK(all_equal(base->params(), before));
        CHECK(sam->last_grad_norm().item() == 0.0);
        CHECK(sam->last_step_finite());
        sam->second_step();
        CHECK(testing::all_finite(base->params()));
      }
    }
  }
}

TEST_CASE("SAM reports a non-finite gradient and leaves the weights unperturbed", "[sam]") {
  manual_seed(61);
  for (const SAMOptions& options : option_cases()) {
    for (bool fused : {true, false}) {
      for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
        INFO(describe(options) << (fused ? ", fused" : ", per tensor") << ", gradient entry " << bad);
        const NamedTensors params = make_params(kFloat32, Device::cpu());
        auto base = std::make_shared<SGD>(params, SGDOptions(0.0));
        SAMOptions o = options;
        const auto sam = testing::make_sam(fused, base, o);
        set_random_grads(*base);
        {
          NoGradGuard no_grad;
          base->params()[3].grad().view({base->params()[3].numel()}).slice(0, 2, 3).fill_(bad);
        }
        const std::vector<Tensor> before = testing::host_copies(base->params());
        sam->first_step();
        CHECK_FALSE(sam->last_step_finite());
        CHECK(all_equal(base->params(), before));
        base->zero_grad();
        sam->second_step();

        // The next, finite step is reported as such and perturbs again.
        set_random_grads(*base);
        sam->first_step();
        CHECK(sam->last_step_finite());
        CHECK_FALSE(all_equal(base->params(), before));
        sam->second_step();
      }
    }
  }
}

// ---------------------------------------------------------------- determinism

namespace {

// One first_step over a large arena (more elements than the norm's first
// stage has threads, so every partial sums several groups), on `device`.
std::pair<double, std::vector<Tensor>> large_first_step(Device device, const SAMOptions& options) {
  manual_seed(71);
  NamedTensors params;
  params.emplace_back("big.weight", randn({1000003}).to(device).requires_grad_());
  params.emplace_back("big.bias", randn({300007}).to(device).requires_grad_());
  params.emplace_back("small.weight", randn({17}).to(device).requires_grad_());
  auto base = std::make_shared<SGD>(params, SGDOptions(0.1));
  set_random_grads(*base);
  SAM sam(base, options);
  sam.first_step();
  return {sam.last_grad_norm().item(), testing::host_copies(base->params())};
}

}  // namespace

TEST_CASE("the SAM norm is deterministic and accurate", "[sam]") {
  for (const SAMOptions& options : option_cases()) {
    INFO(describe(options));
    const auto [norm_a, weights_a] = large_first_step(Device::cpu(), options);
    const auto [norm_b, weights_b] = large_first_step(Device::cpu(), options);
    CHECK(norm_a == norm_b);
    CHECK(all_equal(weights_a, weights_b));
    // ~1.3M squares of N(0, 1) gradients: the norm is about 1140.
    CHECK(norm_a > 1000.0);
  }
  // Against a plain float64 sum on the host.
  manual_seed(72);
  const NamedTensors params = make_params(kFloat32, Device::cpu());
  auto base = std::make_shared<SGD>(params, SGDOptions(0.1));
  set_random_grads(*base);
  double squares = 0.0;
  for (const Tensor& p : base->params()) {
    for (double g : p.grad().to_vector<double>()) squares += g * g;
  }
  SAM sam(base, SAMOptions());
  sam.first_step();
  CHECK(std::abs(sam.last_grad_norm().item() - std::sqrt(squares)) <= 1e-14 * std::sqrt(squares));
}

// ---------------------------------------------------------------- errors and edge cases

TEST_CASE("SAM rejects bad options and misuse with clear errors", "[sam][errors]") {
  auto make_base = [] {
    return std::make_shared<SGD>(make_params(kFloat32, Device::cpu()), SGDOptions(0.1));
  };
  CHECK_THROWS_WITH(SAM(make_base(), SAMOptions().rho(0.0)), Catch::Contains("SAM: rho must be finite and > 0, got 0"));
  CHECK_THROWS_WITH(SAM(make_base(), SAMOptions().rho(-0.5)), Catch::Contains("rho must be finite and > 0, got -0.5"));
  CHECK_THROWS_WITH(SAM(make_base(), SAMOptions().rho(std::nan(""))), Catch::Contains("rho must be finite"));
  CHECK_THROWS_WITH(SAM(make_base(), SAMOptions().eps(-1e-3)),
                    Catch::Contains("SAM: eps must be finite and >= 0, got -0.001"));
  CHECK_THROWS_WITH(SAM(make_base(), SAMOptions().adaptive(true).eta(-0.25)),
                    Catch::Contains("SAM: eta must be finite and >= 0, got -0.25"));
  CHECK_THROWS_WITH(SAM(nullptr, SAMOptions()), Catch::Contains("SAM: the base optimizer is null"));

  for (bool fused : {true, false}) {
    INFO((fused ? "fused" : "per tensor"));
    auto base = make_base();
    set_random_grads(*base);
    const auto sam = testing::make_sam(fused, base, SAMOptions());
    CHECK_THROWS_WITH(sam->last_grad_norm(), Catch::Contains("last_grad_norm() before any first_step()"));
    CHECK_THROWS_WITH(sam->second_step(), Catch::Contains("SAM: second_step() without first_step()"));
    sam->first_step();
    const std::vector<Tensor> perturbed = testing::host_copies(base->params());
    CHECK_THROWS_WITH(sam->first_step(), Catch::Contains("SAM: first_step() called twice"));
    CHECK(all_equal(base->params(), perturbed));  // the refused call changed nothing
    sam->second_step();
    CHECK_THROWS_WITH(sam->second_step(), Catch::Contains("second_step() without first_step()"));
    CHECK_THROWS_WITH(sam->step(nullptr), Catch::Contains("SAM: step() needs a closure"));
  }
}

TEST_CASE("ASAM without parameter names says to pass named_parameters()", "[sam][errors]") {
  auto net = make_net(Device::cpu());
  auto unnamed = std::make_shared<SGD>(net->parameters(), SGDOptions(0.1));
  CHECK_THROWS_WITH(SAM(unnamed, SAMOptions().adaptive(true)),
                    Catch::Contains("finds the \"weight\" tensors by name") &&
                        Catch::Contains("model.named_parameters()"));
  // Plain SAM and davda54's all-tensor ASAM need no names.
  CHECK_NOTHROW(SAM(unnamed, SAMOptions()));
  CHECK_NOTHROW(SAM(unnamed, SAMOptions().adaptive(true).scope(AsamScope::AllTensors)));
  auto named = std::make_shared<SGD>(net->named_parameters(), SGDOptions(0.1));
  CHECK_NOTHROW(SAM(named, SAMOptions().adaptive(true)));
}

TEST_CASE("SAM puts the weights back when the second closure call throws", "[sam]") {
  for (bool fused : {true, false}) {
    INFO((fused ? "fused" : "per tensor"));
    manual_seed(81);
    const NamedTensors params = make_params(kFloat32, Device::cpu());
    auto base = std::make_shared<SGD>(params, SGDOptions(0.1));
    const auto sam = testing::make_sam(fused, base, SAMOptions());
    const std::vector<Tensor> before = testing::host_copies(base->params());
    int calls = 0;
    const Closure closure = [&] {
      if (++calls == 2) throw Error("out of memory in the second pass");
      set_random_grads(*base);
      return zeros({});
    };
    CHECK_THROWS_WITH(sam->step(closure), Catch::Contains("out of memory in the second pass"));
    CHECK(all_equal(base->params(), before));
    CHECK_NOTHROW(sam->first_step());  // not left half-way through a step
    sam->second_step();
  }
}

TEST_CASE("SAM re-packs the arena after the gradients were dropped", "[sam]") {
  // Gradients dropped by hand (set_grad(Tensor())) make backward allocate new
  // ones outside the arena; the step must still be the same.
  const RunCase run = run_cases()[1];  // ASAM: depends on the arena's weights-first layout
  const Tensor x = fixture_tensor(fixture(), "input");
  const Tensor labels = fixture_tensor(fixture(), "labels");
  std::vector<std::vector<Tensor>> results;
  for (bool drop_gradients : {false, true}) {
    auto net = make_net(Device::cpu());
    auto base = std::make_shared<SGD>(net->named_parameters(), SGDOptions(0.1).momentum(0.9).weight_decay(5e-4));
    SAM sam(base, run.options, net.get());
    for (int step = 0; step < 3; ++step) {
      sam.zero_grad();
      if (drop_gradients) {
        for (const Tensor& p : net->parameters()) p.set_grad(Tensor());
      }
      sam.step([&] {
        Tensor loss = cross_entropy((*net)(x), labels);
        loss.backward();
        return loss;
      });
    }
    results.push_back(testing::host_copies(net->parameters()));
  }
  CHECK(all_equal(results[0], results[1]));
}

TEST_CASE("Module::zero_grad zeroes in place, keeping the optimizer's arena views", "[sam]") {
  auto net = make_net(Device::cpu());
  auto base = std::make_shared<SGD>(net->named_parameters(), SGDOptions(0.1));
  set_random_grads(*base);
  REQUIRE(base->arena().is_bound());
  net->zero_grad();
  CHECK(base->arena().is_bound());
  for (const Tensor& p : net->parameters()) CHECK(testing::max_abs_diff(p.grad(), zeros_like(p)) == 0.0);
}

// ---------------------------------------------------------------- CUDA

TEST_CASE("SAM and ASAM on CUDA follow the CPU trajectories", "[sam][cuda]") {
  BASIN_REQUIRE_CUDA();
  for (const RunCase& run : run_cases()) {
    const Trajectory cpu = train(run, true, Device::cpu());
    for (bool fused : {true, false}) {
      const Trajectory gpu = train(run, fused, Device::cuda());
      for (const auto& [name, value] : cpu.states.back()) {
        INFO(run.name << (fused ? " (fused) " : " (per tensor) ") << name);
        if (value.dtype() != kFloat32) {
          CHECK(equal(gpu.states.back().at(name), value));  // num_batches_tracked
          continue;
        }
        const double err = relative_error(gpu.states.back().at(name), value);
        INFO("CUDA vs CPU relative error " << err);
        CHECK(err < 1e-5);
      }
      INFO(run.name << (fused ? " (fused)" : " (per tensor)") << " on CUDA");
      const double worst = check_against_reference(run, gpu, 1e-5);
      WARN(run.name << (fused ? " fused" : " per-tensor") << " on CUDA: worst relative error after 5 steps " << worst);
    }
  }
}

TEST_CASE("the SAM norm on CUDA is deterministic and matches the CPU", "[sam][cuda]") {
  BASIN_REQUIRE_CUDA();
  for (const SAMOptions& options : option_cases()) {
    INFO(describe(options));
    const auto [cpu_norm, cpu_weights] = large_first_step(Device::cpu(), options);
    const auto [norm_a, weights_a] = large_first_step(Device::cuda(), options);
    const auto [norm_b, weights_b] = large_first_step(Device::cuda(), options);
    CHECK(norm_a == norm_b);  // no float atomics: the same bits every run
    CHECK(all_equal(weights_a, weights_b));
    CHECK(std::abs(norm_a - cpu_norm) <= 1e-12 * cpu_norm);
    for (std::size_t i = 0; i < cpu_weights.size(); ++i) CHECK(relative_error(weights_a[i], cpu_weights[i]) < 1e-6);
  }
}

TEST_CASE("a fused SAM step costs the same launches whatever the number of tensors", "[sam][cuda]") {
  BASIN_REQUIRE_CUDA();
  // Counts basin's own kernel launches (core/device.h) around each part of a
  // step, for 3 and for 60 parameter tensors, after a warm-up step that
  // allocates SAM's buffers.
  auto launches = [](int tensors, const SAMOptions& options) {
    manual_seed(91);
    NamedTensors params;
    for (int i = 0; i < tensors; ++i) {
      params.emplace_back("layer" + std::to_string(i) + (i % 2 ? ".bias" : ".weight"),
                          randn({3 + 7 * i}, Device::cuda()).requires_grad_());
    }
    auto base = std::make_shared<SGD>(params, SGDOptions(0.1).momentum(0.9).weight_decay(5e-4));
    SAM sam(base, options);
    set_random_grads(*base);
    sam.first_step();
    sam.second_step();
    set_random_grads(*base);

    std::vector<long long> counts;
    long long mark = cuda_kernel_launches();
    auto lap = [&] {
      const long long now = cuda_kernel_launches();
      counts.push_back(now - mark);
      mark = now;
    };
    sam.first_step();
    lap();
    sam.zero_grad();
    lap();
    sam.second_step();
    lap();
    synchronize(Device::cuda());
    return counts;
  };
  for (const SAMOptions& options : option_cases()) {
    INFO(describe(options));
    const std::vector<long long> few = launches(3, options);
    const std::vector<long long> many = launches(60, options);
    CHECK(few == many);
    // first_step: the two-stage norm and the perturbation; zero_grad: one
    // fill; second_step: the fused restore + SGD update.
    CHECK(few == std::vector<long long>{3, 1, 1});
  }
}

// ---------------------------------------------------------------- checkpoints from before SAM was an Optimizer

TEST_CASE("a checkpoint written before SAM became an Optimizer resumes bit for bit", "[sam]") {
  // Written once by tests/reference/gen_legacy_checkpoint.cpp with basin at
  // 71e44c7: the network after two SAM steps, its SGD state under
  // "optimizer.", and under "expected." the network after two more steps.
  // Those came from the reference kernels, which bit for bit needs here too.
  const CpuKernelsScope reference(CpuKernels::reference);
  const TensorMap file = basin::testing::load_fixture("legacy_sam_checkpoint.safetensors");
  TensorMap model_state, optimizer_state, expected;
  for (const auto& [name, tensor] : file) {
    if (name.starts_with("optimizer.")) {
      optimizer_state[name.substr(10)] = tensor;
    } else if (name.starts_with("expected.")) {
      expected[name.substr(9)] = tensor;
    } else {
      model_state[name] = tensor;
    }
  }
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 4, 3).padding(1).bias(false)),
      std::make_shared<nn::BatchNorm2d>(4), std::make_shared<nn::ReLU>(), std::make_shared<nn::GlobalAvgPool2d>(),
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(4, 3)});
  net->load_state_dict(model_state);
  net->train();
  auto sgd = std::make_shared<SGD>(net->named_parameters(), SGDOptions(0.1).momentum(0.9).weight_decay(5e-4));
  std::shared_ptr<Optimizer> sam = std::make_shared<SAM>(sgd, SAMOptions().rho(0.05), net.get());
  sam->load_state_dict(optimizer_state);  // through the Optimizer interface, as the trainer does
  for (int step = 2; step < 4; ++step) {
    manual_seed(100 + step);  // the generator's batches
    const Tensor x = randn({6, 3, 5, 5});
    const Tensor labels = from_vector<std::int64_t>({0, 1, 2, 0, 1, 2}, {6});
    sam->zero_grad();
    sam->step([&] {
      Tensor loss = cross_entropy((*net)(x), labels);
      loss.backward();
      return loss;
    });
  }
  const TensorMap state = net->state_dict();
  REQUIRE(state.size() == expected.size());
  for (const auto& [name, tensor] : expected) {
    INFO(name);
    CHECK(equal(state.at(name), tensor));
  }
  // And the state written back has the layout the old code wrote.
  const TensorMap saved = sam->state_dict();
  CHECK(saved.size() == optimizer_state.size());
  for (const auto& [name, tensor] : optimizer_state) CHECK(saved.count(name) == 1);
}
