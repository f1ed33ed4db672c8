// SGD and the Optimizer base: PyTorch trajectories, option and parameter
// checks, gradients as arena views, state_dict and exact resume, and the
// CUDA update against the CPU one.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/random.h"
#include "core/serialization.h"
#include "optim/adamw.h"
#include "nn/module.h"
#include "optim/sgd.h"
#include "optim_problem.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/fixtures.h"

using namespace basin;
using basin::optim::SGD;
using basin::optim::SGDOptions;
using basin::testing::equal;
using basin::testing::fixture_tensor;
using basin::testing::load_fixture;
using basin::testing::max_abs_diff;
using basin::testing::OptimProblem;
using basin::testing::problem_param_names;
using basin::testing::relative_error;

namespace {

struct SgdCase {
  const char* name;  // the configuration's name in the fixture
  SGDOptions options;
};

// The configurations of gen_optim_fixtures.py.
std::vector<SgdCase> sgd_cases() {
  return {
      {"sgd_plain", SGDOptions(0.1)},
      {"sgd_momentum_wd", SGDOptions(0.1).momentum(0.9).weight_decay(5e-4)},
      {"sgd_nesterov", SGDOptions(0.1).momentum(0.9).nesterov(true).weight_decay(1e-3)},
      {"sgd_dampening", SGDOptions(0.1).momentum(0.9).dampening(0.1)},
  };
}

// One step of the fixture problem: zero_grad, forward, backward, step.
Tensor train_step(optim::Optimizer& opt, const OptimProblem& problem) {
  opt.zero_grad();
  Tensor loss = problem.loss();
  loss.backward();
  opt.step();
  return loss;
}

}  // namespace

TEST_CASE("SGD follows torch.optim.SGD on the fixture problem", "[optim][SGD]") {
  const TensorMap fixture = load_fixture("optim_trajectories.safetensors");
  for (const SgdCase& c : sgd_cases()) {
    for (const std::string tag : {"f32", "f64"}) {
      // float32 differs from PyTorch only by the rounding of the forward and
      // backward passes; float64 shows the update rule itself.
      const double tolerance = tag == "f32" ? 1e-6 : 1e-12;
      SECTION(std::string(c.name) + " " + tag) {
        OptimProblem problem(fixture, tag);
        SGD opt(problem.params, c.options);
        const std::vector<double> losses = fixture_tensor(fixture, tag + "." + c.name + ".loss").to_vector<double>();
        for (int k = 1; k <= 5; ++k) {
          const Tensor loss = train_step(opt, problem);
          // The loss is a sum with cancellation: an absolute bound.
          CHECK(std::abs(loss.item() - losses[k - 1]) <= tolerance);
          for (const std::string& name : problem_param_names()) {
            const Tensor expected = fixture_tensor(fixture, tag + "." + c.name + ".step" + std::to_string(k) + "." + name);
            INFO(c.name << " " << tag << " step " << k << " " << name);
            CHECK(relative_error(problem.param(name), expected) < tolerance);
          }
        }
      }
    }
  }
}

TEST_CASE("SGD step(closure) calls the closure first and returns its loss", "[optim][SGD]") {
  const TensorMap fixture = load_fixture("optim_trajectories.safetensors");
  OptimProblem problem(fixture, "f64");
  SGD opt(problem.params, SGDOptions(0.1).momentum(0.9).weight_decay(5e-4));
  int calls = 0;
  for (int k = 1; k <= 5; ++k) {
    const Tensor loss = opt.step([&] {
      ++calls;
      opt.zero_grad();
      Tensor l = problem.loss();
      l.backward();
      return l;
    });
    REQUIRE(loss.defined());
    CHECK(loss.item() == Approx(fixture_tensor(fixture, "f64.sgd_momentum_wd.loss").to_vector<double>()[k - 1]).epsilon(1e-12));
  }
  CHECK(calls == 5);
  CHECK(relative_error(problem.param("w2"), fixture_tensor(fixture, "f64.sgd_momentum_wd.step5.w2")) < 1e-12);
  CHECK_FALSE(opt.step().defined());  // no closure, no loss
}

TEST_CASE("SGD rejects bad options, naming the option and the value", "[optim][SGD]") {
  manual_seed(11);
  const Tensor w = randn({3, 2}).requires_grad_();
  const auto storage = w.storage();
  auto make = [&](const SGDOptions& o) { SGD opt(std::vector<Tensor>{w}, o); };
  CHECK_THROWS_WITH(make(SGDOptions(-1.0)), Catch::Contains("SGD: lr must be finite and >= 0, got -1"));
  CHECK_THROWS_WITH(make(SGDOptions(std::nan(""))), Catch::Contains("SGD: lr must be finite and >= 0, got nan"));
  CHECK_THROWS_WITH(make(SGDOptions(0.1).momentum(-0.5)), Catch::Contains("SGD: momentum must be finite and >= 0, got -0.5"));
  CHECK_THROWS_WITH(make(SGDOptions(0.1).dampening(1.5)), Catch::Contains("SGD: dampening must be in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(make(SGDOptions(0.1).weight_decay(-0.01)),
                    Catch::Contains("SGD: weight_decay must be finite and >= 0, got -0.01"));
  CHECK_THROWS_WITH(make(SGDOptions(0.1).nesterov(true)),
                    Catch::Contains("SGD: nesterov needs momentum > 0 and dampening 0, got momentum 0 and dampening 0"));
  CHECK_THROWS_WITH(make(SGDOptions(0.1).momentum(0.9).dampening(0.1).nesterov(true)),
                    Catch::Contains("nesterov needs momentum > 0 and dampening 0, got momentum 0.9 and dampening 0.1"));
  // A rejected option leaves the parameter where it was (not packed into an arena).
  CHECK(w.storage() == storage);
  CHECK_NOTHROW(make(SGDOptions(0.0)));  // lr 0 is allowed, as in PyTorch
}

TEST_CASE("optimizer base rejects bad parameter lists, naming the culprit", "[optim][optimizer]") {
  manual_seed(12);
  const SGDOptions o(0.1);
  CHECK_THROWS_WITH(SGD(std::vector<Tensor>{}, o), Catch::Contains("SGD: the parameter list is empty"));

  const Tensor a = randn({3}).requires_grad_();
  const Tensor frozen = randn({2});
  CHECK_THROWS_WITH(SGD(std::vector<Tensor>{a, frozen}, o), Catch::Contains("SGD: parameter 1 does not require grad"));
  CHECK_THROWS_WITH(SGD(nn::Named<Tensor>{{"fc.weight", a}, {"fc.bias", frozen}}, o),
                    Catch::Contains("SGD: parameter 1 ('fc.bias') does not require grad"));

  const Tensor computed = mul(a, 2.0);
  CHECK_THROWS_WITH(SGD(std::vector<Tensor>{computed}, o), Catch::Contains("SGD: parameter 0 is not a leaf"));

  const Tensor wide = randn({4}, kFloat64).requires_grad_();
  CHECK_THROWS_WITH(SGD(std::vector<Tensor>{a, wide}, o),
                    Catch::Contains("SGD: parameter 1 is float64 but parameter 0 is float32"));

  CHECK_THROWS_WITH(SGD(std::vector<Tensor>{a, randn({2}).requires_grad_(), a}, o),
                    Catch::Contains("SGD: parameter 2 is the same tensor as parameter 0"));
  CHECK_THROWS_WITH(SGD(std::vector<Tensor>{a, Tensor()}, o), Catch::Contains("SGD: parameter 1 is undefined"));

  optim::ParamList mismatched(std::vector<Tensor>{a});
  mismatched.names = {"x", "y"};
  CHECK_THROWS_WITH(SGD(mismatched, o), Catch::Contains("SGD: 2 names for 1 parameters"));
}

TEST_CASE("optimizer set_lr accepts finite lr >= 0 only", "[optim][optimizer]") {
  manual_seed(13);
  SGD opt(std::vector<Tensor>{randn({3}).requires_grad_()}, SGDOptions(0.1));
  CHECK(opt.lr() == 0.1);
  opt.set_lr(0.025);
  CHECK(opt.lr() == 0.025);
  opt.set_lr(0.0);
  CHECK(opt.lr() == 0.0);
  CHECK_THROWS_WITH(opt.set_lr(-0.5), Catch::Contains("SGD: lr must be finite and >= 0, got -0.5"));
  CHECK_THROWS_WITH(opt.set_lr(std::numeric_limits<double>::infinity()),
                    Catch::Contains("SGD: lr must be finite and >= 0, got inf"));
  CHECK(opt.lr() == 0.0);  // a rejected value changes nothing
}

TEST_CASE("SGD uses the lr given to set_lr from the next step on", "[optim][SGD]") {
  manual_seed(14);
  const Tensor w = randn({5}).requires_grad_();
  SGD opt(std::vector<Tensor>{w}, SGDOptions(0.1));
  const Tensor before = w.detach().clone();
  sum(mul(w, w)).backward();  // g = 2w
  opt.set_lr(0.25);
  opt.step();
  CHECK(max_abs_diff(w, mul(before, 0.5)) < 1e-6);  // w - 0.25 * 2w
}

TEST_CASE("optimizer packs named parameters with the weights first in memory", "[optim][optimizer]") {
  const TensorMap fixture = load_fixture("optim_trajectories.safetensors");
  OptimProblem problem(fixture, "f32");
  SGD named(problem.params, SGDOptions(0.1));
  REQUIRE(named.param_names() == problem_param_names());  // no "weight" among them: the order holds
  for (std::size_t i = 0; i < 3; ++i) CHECK(named.params()[i].impl() == problem.param(named.param_names()[i]).impl());

  manual_seed(15);
  const Tensor bias = randn({7}).requires_grad_();
  const Tensor weight = randn({3, 5}).requires_grad_();
  SGD opt(nn::Named<Tensor>{{"fc.bias", bias}, {"fc.weight", weight}}, SGDOptions(0.1));
  // params() keeps the given order; the arena places the weight first in memory.
  REQUIRE(opt.param_names() == std::vector<std::string>{"fc.bias", "fc.weight"});
  CHECK(opt.params()[0].impl() == bias.impl());
  CHECK(opt.params()[1].impl() == weight.impl());
  CHECK(opt.arena().offset(1) == 0);
  CHECK(opt.arena().adaptive_end() > 0);
  CHECK(opt.arena().offset(0) >= opt.arena().adaptive_end());

  // Without names nothing is adaptive and the given order holds.
  const Tensor b2 = randn({7}).requires_grad_();
  const Tensor w2 = randn({3, 5}).requires_grad_();
  SGD unnamed(std::vector<Tensor>{b2, w2}, SGDOptions(0.1));
  CHECK(unnamed.param_names().empty());
  CHECK(unnamed.arena().adaptive_end() == 0);
  CHECK(unnamed.params()[0].impl() == b2.impl());
  CHECK(unnamed.arena().offset(0) == 0);
}

TEST_CASE("optimizer zero_grad zeroes the gradients in place: they stay views of the arena", "[optim][optimizer]") {
  const TensorMap fixture = load_fixture("optim_trajectories.safetensors");
  OptimProblem problem(fixture, "f64");
  SGD opt(problem.params, SGDOptions(0.1).momentum(0.9));
  const auto grad_storage = opt.arena().grads().storage();
  const auto param_storage = opt.arena().params().storage();
  for (const Tensor& p : problem.tensors()) {
    REQUIRE(p.grad().defined());
    CHECK(p.grad().storage() == grad_storage);
    CHECK(p.storage() == param_storage);
  }
  for (int round = 0; round < 2; ++round) {
    problem.loss().backward();
    // backward accumulated into the arena buffer itself
    double norm = 0.0;
    for (double v : opt.arena().grads().to_vector<double>()) norm += v * v;
    CHECK(norm > 1e-6);
    opt.zero_grad();
    for (double v : opt.arena().grads().to_vector<double>()) REQUIRE(v == 0.0);
    for (const Tensor& p : problem.tensors()) {
      CHECK(p.grad().storage() == grad_storage);
      CHECK(p.storage() == param_storage);
    }
    opt.step();
  }
}

TEST_CASE("SGD state_dict: names, step count, and a type marker", "[optim][SGD]") {
  manual_seed(16);
  const std::vector<Tensor> params = testing::random_params({{3, 5}, {7}}, kFloat32);
  SGD opt(params, SGDOptions(0.1).momentum(0.9));
  for (const Tensor& p : params) p.grad().copy_(randn(p.shape()));
  opt.step();
  opt.step();
  const TensorMap state = opt.state_dict();
  CHECK(state.size() == 3);
  REQUIRE(state.count("momentum_buffer") == 1);
  CHECK(state.at("momentum_buffer").shape() == Shape{opt.arena().padded_numel()});
  CHECK(state.at("step").dtype() == kInt64);
  CHECK(state.at("step").dim() == 0);
  CHECK(state.at("step").item() == 2.0);
  CHECK(state.count("type") == 1);
  // A copy: stepping on does not change a state already taken.
  const std::vector<double> momentum = state.at("momentum_buffer").to_vector<double>();
  opt.step();
  CHECK(state.at("momentum_buffer").to_vector<double>() == momentum);

  SGD plain(testing::random_params({{4}}, kFloat32), SGDOptions(0.1));
  const TensorMap plain_state = plain.state_dict();
  CHECK(plain_state.size() == 2);
  CHECK(plain_state.count("momentum_buffer") == 0);
  CHECK(plain_state.at("step").item() == 0.0);
}

TEST_CASE("SGD resumes exactly: 2 steps == 1 step, save, load into a fresh optimizer, 1 step", "[optim][SGD]") {
  const TensorMap fixture = load_fixture("optim_trajectories.safetensors");
  const SGDOptions options = SGDOptions(0.1).momentum(0.9).nesterov(true).weight_decay(1e-3);
  for (const std::string tag : {"f32", "f64"}) {
    OptimProblem straight(fixture, tag);
    SGD a(straight.params, options);
    train_step(a, straight);
    train_step(a, straight);

    OptimProblem first(fixture, tag);
    SGD b(first.params, options);
    train_step(b, first);
    const std::string path = "test_sgd_resume_" + tag + ".safetensors";
    save_safetensors(path, b.state_dict());

    // A fresh model at the saved weights and a fresh optimizer loaded from the file.
    OptimProblem resumed(fixture, tag);
    {
      NoGradGuard no_grad;
      for (const std::string& name : problem_param_names()) resumed.param(name).copy_(first.param(name));
    }
    SGD c(resumed.params, options);
    c.load_state_dict(load_safetensors(path));
    std::remove(path.c_str());
    train_step(c, resumed);

    for (const std::string& name : problem_param_names()) {
      INFO(tag << " " << name);
      CHECK(equal(resumed.param(name), straight.param(name)));
    }
    CHECK(equal(c.state_dict().at("momentum_buffer"), a.state_dict().at("momentum_buffer")));
    CHECK(c.state_dict().at("step").item() == 2.0);
  }
}

TEST_CASE("SGD load_state_dict says what does not fit and changes nothing", "[optim][SGD]") {
  manual_seed(17);
  const std::vector<Tensor> params = testing::random_params({{3, 5}, {7}}, kFloat32);
  SGD opt(params, SGDOptions(0.1).momentum(0.9));
  for (const Tensor& p : params) p.grad().copy_(randn(p.shape()));
  opt.step();
  const TensorMap good = opt.state_dict();

  optim::AdamW adamw(testing::random_params({{3, 5}, {7}}, kFloat32), optim::AdamWOptions());
  CHECK_THROWS_WITH(opt.load_state_dict(adamw.state_dict()),
                    Catch::Contains("SGD: load_state_dict: the state was saved by AdamW, not SGD"));

  TensorMap no_type = good;
  no_type.erase("type");
  CHECK_THROWS_WITH(opt.load_state_dict(no_type), Catch::Contains("SGD: load_state_dict: the state has no \"type\""));

  TensorMap no_momentum = good;
  no_momentum.erase("momentum_buffer");
  CHECK_THROWS_WITH(opt.load_state_dict(no_momentum),
                    Catch::Contains("SGD: load_state_dict: the state has no \"momentum_buffer\" entry"));

  SGD other_model(testing::random_params({{4, 4}}, kFloat32), SGDOptions(0.1).momentum(0.9));
  CHECK_THROWS_WITH(opt.load_state_dict(other_model.state_dict()),
                    Catch::Contains("\"momentum_buffer\" is float32 [" +
                                    std::to_string(other_model.arena().padded_numel()) +
                                    "] but this optimizer's arena is float32 [" +
                                    std::to_string(opt.arena().padded_numel()) + "]"));

  TensorMap wrong_dtype = good;
  wrong_dtype["momentum_buffer"] = good.at("momentum_buffer").to(kFloat64);
  CHECK_THROWS_WITH(opt.load_state_dict(wrong_dtype), Catch::Contains("\"momentum_buffer\" is float64"));

  TensorMap bad_step = good;
  bad_step["step"] = full({}, 1.0);
  CHECK_THROWS_WITH(opt.load_state_dict(bad_step), Catch::Contains("\"step\" must be one int64, got float32"));

  SGD plain(testing::random_params({{3, 5}, {7}}, kFloat32), SGDOptions(0.1));
  CHECK_THROWS_WITH(plain.load_state_dict(good), Catch::Contains("SGD: load_state_dict: unexpected entry \"momentum_buffer\""));

  // None of the failed loads changed the optimizer.
  const TensorMap after = opt.state_dict();
  CHECK(equal(after.at("momentum_buffer"), good.at("momentum_buffer")));
  CHECK(after.at("step").item() == 1.0);
}

TEST_CASE("SGD restore_and_step restores the saved weights, then steps", "[optim][SGD]") {
  manual_seed(18);
  const SGDOptions options = SGDOptions(0.05).momentum(0.9).weight_decay(1e-2);
  const std::vector<Tensor> a = testing::random_params({{5, 3}, {9}}, kFloat64);
  std::vector<Tensor> b;
  for (const Tensor& p : a) b.push_back(p.detach().clone().requires_grad_());
  SGD opt_a(a, options), opt_b(b, options);

  for (int k = 0; k < 3; ++k) {
    for (std::size_t i = 0; i < a.size(); ++i) {
      const Tensor g = randn(a[i].shape(), kFloat64);
      a[i].grad().copy_(g);
      b[i].grad().copy_(g);
    }
    // a: save, perturb, restore_and_step. b: a plain step from the saved weights.
    const Tensor saved = opt_a.arena().params().detach().clone();
    {
      NoGradGuard no_grad;
      for (Tensor p : a) p.add_(ones_like(p), 0.3);
    }
    opt_a.restore_and_step(saved);
    opt_b.step();
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(equal(a[i], b[i]));
  }
  CHECK(opt_a.state_dict().at("step").item() == 3.0);

  CHECK_THROWS_WITH(opt_a.restore_and_step(zeros({4}, kFloat64)),
                    Catch::Contains("SGD: restore_and_step: the saved buffer is float64 [4] on cpu but the arena is"));
  CHECK_THROWS_WITH(opt_a.restore_and_step(Tensor()), Catch::Contains("SGD: restore_and_step: the saved buffer is undefined"));
}

TEST_CASE("SGD re-packs parameters whose gradient was replaced", "[optim][SGD]") {
  manual_seed(19);
  const SGDOptions options = SGDOptions(0.1).momentum(0.9);
  const std::vector<Tensor> a = testing::random_params({{4, 3}, {5}}, kFloat64);
  std::vector<Tensor> b;
  for (const Tensor& p : a) b.push_back(p.detach().clone().requires_grad_());
  SGD opt_a(a, options), opt_b(b, options);
  for (int k = 0; k < 3; ++k) {
    for (std::size_t i = 0; i < a.size(); ++i) {
      const Tensor g = randn(a[i].shape(), kFloat64);
      b[i].grad().copy_(g);
      if (k == 1) {
        a[i].set_grad(g.clone());  // no longer a view of the arena
      } else {
        a[i].grad().copy_(g);
      }
    }
    opt_a.step();
    opt_b.step();
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(equal(a[i], b[i]));
    CHECK(opt_a.arena().is_bound());
  }
}

TEST_CASE("SGD on CUDA matches SGD on the CPU over 5 steps", "[optim][SGD][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(20);
  // Odd sizes, so the arena has padding and the flat length is no multiple of a block.
  const std::vector<Shape> shapes{{37, 13}, {129}, {5, 3, 7}, {1}};
  const std::vector<SGDOptions> configs{
      SGDOptions(0.1),
      SGDOptions(0.1).momentum(0.9).weight_decay(5e-4),
      SGDOptions(0.05).momentum(0.8).nesterov(true).weight_decay(1e-3),
      SGDOptions(0.1).momentum(0.9).dampening(0.1),
  };
  for (DType dtype : {kFloat32, kFloat64}) {
    const double tolerance = dtype == kFloat32 ? 1e-6 : 1e-13;
    for (std::size_t config = 0; config < configs.size(); ++config) {
      const std::vector<Tensor> cpu = testing::random_params(shapes, dtype);
      std::vector<Tensor> gpu;
      for (const Tensor& p : cpu) gpu.push_back(p.detach().to(Device::cuda()).requires_grad_());
      SGD opt_cpu(cpu, configs[config]), opt_gpu(gpu, configs[config]);
      for (int k = 0; k < 5; ++k) {
        for (std::size_t i = 0; i < cpu.size(); ++i) {
          const Tensor g = randn(cpu[i].shape(), dtype);
          cpu[i].grad().copy_(g);
          gpu[i].grad().copy_(g);
        }
        if (k == 3) {
          // The fused restore + update, as SAM's second step uses it.
          const Tensor saved_cpu = opt_cpu.arena().params().detach().clone();
          const Tensor saved_gpu = saved_cpu.to(Device::cuda());
          {
            NoGradGuard no_grad;
            Tensor(opt_cpu.arena().params()).fill_(7.0);  // poison: the restore must undo it
            Tensor(opt_gpu.arena().params()).fill_(7.0);
          }
          opt_cpu.restore_and_step(saved_cpu);
          opt_gpu.restore_and_step(saved_gpu);
        } else {
          opt_cpu.step();
          opt_gpu.step();
        }
        INFO("config " << config << " dtype " << dtype_name(dtype) << " step " << k);
        CHECK(relative_error(opt_gpu.arena().params(), opt_cpu.arena().params()) < tolerance);
        if (configs[config].momentum() != 0.0) {
          CHECK(relative_error(opt_gpu.state_dict().at("momentum_buffer"), opt_cpu.state_dict().at("momentum_buffer")) <
                tolerance);
        }
      }
    }
  }
}

TEST_CASE("SGD follows parameters moved to CUDA after packing, momentum included", "[optim][SGD][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(21);
  const SGDOptions options = SGDOptions(0.1).momentum(0.9).weight_decay(1e-3);
  const std::vector<Tensor> moving = testing::random_params({{7, 3}, {11}}, kFloat32);
  std::vector<Tensor> staying;
  for (const Tensor& p : moving) staying.push_back(p.detach().clone().requires_grad_());
  SGD opt_moving(moving, options), opt_staying(staying, options);
  for (int k = 0; k < 4; ++k) {
    if (k == 2) {
      // What Module::to(device) does: re-point each parameter, handles stay valid.
      for (const Tensor& p : moving) {
        p.set_data(p.detach().to(Device::cuda()));
        p.set_grad(p.grad().to(Device::cuda()));
      }
    }
    for (std::size_t i = 0; i < moving.size(); ++i) {
      const Tensor g = randn(moving[i].shape());
      moving[i].grad().copy_(g);
      staying[i].grad().copy_(g);
    }
    opt_moving.step();
    opt_staying.step();
    for (std::size_t i = 0; i < moving.size(); ++i) CHECK(relative_error(moving[i], staying[i]) < 1e-6);
  }
  CHECK(opt_moving.arena().device().is_cuda());
  CHECK(opt_moving.state_dict().at("momentum_buffer").device().is_cuda());
}

TEST_CASE("optimizer zero_grad on an unbound arena zeroes the gradients the tensors hold", "[optim][optimizer]") {
  manual_seed(22);
  const std::vector<Tensor> params = testing::random_params({{4, 3}, {5}}, kFloat64);
  SGD opt(params, SGDOptions(0.1));
  params[0].set_grad(randn({4, 3}, kFloat64));  // replaced by hand: the arena is unbound
  params[1].grad().copy_(randn({5}, kFloat64));
  REQUIRE_FALSE(opt.arena().is_bound());
  opt.zero_grad();
  for (const Tensor& p : params) {
    for (double v : p.grad().to_vector<double>()) CHECK(v == 0.0);
  }
  const std::vector<double> before = params[0].to_vector<double>();
  opt.step();  // re-packs; zero gradients move nothing
  CHECK(params[0].to_vector<double>() == before);
  CHECK(opt.arena().is_bound());
}
