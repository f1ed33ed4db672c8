// AdamW: PyTorch trajectories (with and without amsgrad), option checks,
// state_dict and exact resume, zero padding, and CUDA against the CPU.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <string>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/random.h"
#include "core/serialization.h"
#include "optim/adamw.h"
#include "optim/sgd.h"
#include "optim_problem.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/fixtures.h"

using namespace basin;
using basin::optim::AdamW;
using basin::optim::AdamWOptions;
using basin::testing::equal;
using basin::testing::fixture_tensor;
using basin::testing::load_fixture;
using basin::testing::OptimProblem;
using basin::testing::problem_param_names;
using basin::testing::relative_error;

namespace {

struct AdamWCase {
  const char* name;  // the configuration's name in the fixture
  AdamWOptions options;
};

// The configurations of gen_optim_fixtures.py.
std::vector<AdamWCase> adamw_cases() {
  return {
      {"adamw_default", AdamWOptions(0.05)},
      {"adamw_amsgrad", AdamWOptions(0.05).beta2(0.5).weight_decay(0.1).amsgrad(true)},
  };
}

void train_step(optim::Optimizer& opt, const OptimProblem& problem) {
  opt.zero_grad();
  problem.loss().backward();
  opt.step();
}

}  // namespace

TEST_CASE("AdamW follows torch.optim.AdamW on the fixture problem", "[optim][AdamW]") {
  const TensorMap fixture = load_fixture("optim_trajectories.safetensors");
  for (const AdamWCase& c : adamw_cases()) {
    for (const std::string tag : {"f32", "f64"}) {
      // In float32 the first step is close to lr * sign(g), which amplifies
      // the rounding differences of small gradient elements.
      const double tolerance = tag == "f32" ? 1e-5 : 1e-12;
      SECTION(std::string(c.name) + " " + tag) {
        OptimProblem problem(fixture, tag);
        AdamW opt(problem.params, c.options);
        for (int k = 1; k <= 5; ++k) {
          train_step(opt, problem);
          for (const std::string& name : problem_param_names()) {
            const std::string prefix = tag + "." + c.name + ".step" + std::to_string(k) + ".";
            const Tensor expected = fixture_tensor(fixture, prefix + name);
            const Tensor init = fixture_tensor(fixture, tag + ".init." + name);
            INFO(c.name << " " << tag << " step " << k << " " << name);
            CHECK(relative_error(problem.param(name), expected) < tolerance);
            // The displacement too, so that a small lr could not hide a wrong update.
            CHECK(relative_error(problem.param(name).detach() - init, expected - init) < tolerance);
          }
        }
      }
    }
  }
}

TEST_CASE("AdamW rejects bad options, naming the option and the value", "[optim][AdamW]") {
  manual_seed(31);
  const Tensor w = randn({3, 2}).requires_grad_();
  const auto storage = w.storage();
  auto make = [&](const AdamWOptions& o) { AdamW opt(std::vector<Tensor>{w}, o); };
  CHECK_THROWS_WITH(make(AdamWOptions(-1e-3)), Catch::Contains("AdamW: lr must be finite and >= 0, got -0.001"));
  CHECK_THROWS_WITH(make(AdamWOptions().beta1(1.0)), Catch::Contains("AdamW: beta1 must be in [0, 1), got 1"));
  CHECK_THROWS_WITH(make(AdamWOptions().beta1(-0.1)), Catch::Contains("AdamW: beta1 must be in [0, 1), got -0.1"));
  CHECK_THROWS_WITH(make(AdamWOptions().beta2(1.5)), Catch::Contains("AdamW: beta2 must be in [0, 1), got 1.5"));
  CHECK_THROWS_WITH(make(AdamWOptions().eps(0.0)), Catch::Contains("AdamW: eps must be finite and > 0, got 0"));
  CHECK_THROWS_WITH(make(AdamWOptions().weight_decay(-1.0)),
                    Catch::Contains("AdamW: weight_decay must be finite and >= 0, got -1"));
  CHECK(w.storage() == storage);  // rejected before packing
  CHECK_NOTHROW(make(AdamWOptions().weight_decay(0.0).beta1(0.0)));
}

TEST_CASE("AdamW keeps the arena padding at zero", "[optim][AdamW]") {
  manual_seed(32);
  const std::vector<Tensor> params = testing::random_params({{3, 5}, {7}, {2}}, kFloat32);
  AdamW opt(params, AdamWOptions(0.1).amsgrad(true));
  const Tensor initial = params[2].detach().clone();
  for (int k = 0; k < 3; ++k) {
    // The last tensor never gets a gradient: its elements must still only decay.
    params[0].grad().copy_(randn({3, 5}));
    params[1].grad().copy_(randn({7}));
    opt.step();
  }
  const std::vector<double> flat = opt.arena().params().to_vector<double>();
  std::vector<bool> used(flat.size(), false);
  for (std::size_t i = 0; i < params.size(); ++i) {
    for (std::int64_t j = 0; j < params[i].numel(); ++j) used[opt.arena().offset(i) + j] = true;
  }
  for (std::size_t e = 0; e < flat.size(); ++e) {
    if (!used[e]) REQUIRE(flat[e] == 0.0);
  }
  // m = v = 0 there: the update adds 0 / eps, and only the decoupled decay acts.
  const double decay = std::pow(1.0 - 0.1 * 0.01, 3);
  CHECK(basin::testing::max_abs_diff(params[2], mul(initial, decay)) < 1e-6);
}

TEST_CASE("AdamW resumes exactly: 2 steps == 1 step, save, load into a fresh optimizer, 1 step", "[optim][AdamW]") {
  const TensorMap fixture = load_fixture("optim_trajectories.safetensors");
  const AdamWOptions options = AdamWOptions(0.05).beta2(0.5).weight_decay(0.1).amsgrad(true);
  for (const std::string tag : {"f32", "f64"}) {
    OptimProblem straight(fixture, tag);
    AdamW a(straight.params, options);
    train_step(a, straight);
    train_step(a, straight);

    OptimProblem first(fixture, tag);
    AdamW b(first.params, options);
    train_step(b, first);
    const TensorMap saved = b.state_dict();
    CHECK(saved.size() == 5);  // exp_avg, exp_avg_sq, max_exp_avg_sq, step, type
    const std::string path = "test_adamw_resume_" + tag + ".safetensors";
    save_safetensors(path, saved);

    OptimProblem resumed(fixture, tag);
    {
      NoGradGuard no_grad;
      for (const std::string& name : problem_param_names()) resumed.param(name).copy_(first.param(name));
    }
    AdamW c(resumed.params, options);
    c.load_state_dict(load_safetensors(path));
    std::remove(path.c_str());
    train_step(c, resumed);

    for (const std::string& name : problem_param_names()) {
      INFO(tag << " " << name);
      CHECK(equal(resumed.param(name), straight.param(name)));
    }
    const TensorMap end_a = a.state_dict(), end_c = c.state_dict();
    for (const char* key : {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}) CHECK(equal(end_c.at(key), end_a.at(key)));
    CHECK(end_c.at("step").item() == 2.0);
  }
}

TEST_CASE("AdamW load_state_dict says what does not fit", "[optim][AdamW]") {
  manual_seed(33);
  AdamW opt(testing::random_params({{3, 5}, {7}}, kFloat32), AdamWOptions().amsgrad(true));
  const TensorMap good = opt.state_dict();
  CHECK_NOTHROW(opt.load_state_dict(good));

  optim::SGD sgd(testing::random_params({{3, 5}, {7}}, kFloat32), optim::SGDOptions(0.1).momentum(0.9));
  CHECK_THROWS_WITH(opt.load_state_dict(sgd.state_dict()),
                    Catch::Contains("AdamW: load_state_dict: the state was saved by SGD, not AdamW"));

  TensorMap missing = good;
  missing.erase("max_exp_avg_sq");
  CHECK_THROWS_WITH(opt.load_state_dict(missing),
                    Catch::Contains("AdamW: load_state_dict: the state has no \"max_exp_avg_sq\" entry"));

  AdamW plain(testing::random_params({{3, 5}, {7}}, kFloat32), AdamWOptions());
  CHECK_THROWS_WITH(plain.load_state_dict(good),
                    Catch::Contains("AdamW: load_state_dict: unexpected entry \"max_exp_avg_sq\""));

  TensorMap negative = good;
  negative["step"] = from_vector<std::int64_t>({-3}, {});
  CHECK_THROWS_WITH(opt.load_state_dict(negative), Catch::Contains("AdamW: load_state_dict: \"step\" is negative (-3)"));
}

TEST_CASE("AdamW on CUDA matches AdamW on the CPU over 5 steps", "[optim][AdamW][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(34);
  const std::vector<Shape> shapes{{37, 13}, {129}, {5, 3, 7}, {1}};
  const std::vector<AdamWOptions> configs{AdamWOptions(0.01), AdamWOptions(0.01).beta2(0.5).amsgrad(true)};
  for (DType dtype : {kFloat32, kFloat64}) {
    const double tolerance = dtype == kFloat32 ? 1e-6 : 1e-13;
    for (std::size_t config = 0; config < configs.size(); ++config) {
      const std::vector<Tensor> cpu = testing::random_params(shapes, dtype);
      std::vector<Tensor> gpu;
      for (const Tensor& p : cpu) gpu.push_back(p.detach().to(Device::cuda()).requires_grad_());
      AdamW opt_cpu(cpu, configs[config]), opt_gpu(gpu, configs[config]);
      for (int k = 0; k < 5; ++k) {
        for (std::size_t i = 0; i < cpu.size(); ++i) {
          const Tensor g = randn(cpu[i].shape(), dtype);
          cpu[i].grad().copy_(g);
          gpu[i].grad().copy_(g);
        }
        opt_cpu.step();
        opt_gpu.step();
        INFO("config " << config << " dtype " << dtype_name(dtype) << " step " << k);
        CHECK(relative_error(opt_gpu.arena().params(), opt_cpu.arena().params()) < tolerance);
        const TensorMap s_cpu = opt_cpu.state_dict(), s_gpu = opt_gpu.state_dict();
        for (const auto& [key, value] : s_cpu) {
          if (key == "type" || key == "step") continue;
          CHECK(relative_error(s_gpu.at(key), value) < tolerance);
        }
      }
    }
  }
}
