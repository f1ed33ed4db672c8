// SAM and ASAM sharpness and m-sharpness: closed forms on a quadratic, and
// the same perturbation as optim::SAM's own first step on a CNN.
#include <catch2/catch.hpp>

#include <cmath>

#include "analysis/sharpness.h"
#include "core/autograd.h"
#include "core/random.h"
#include "core/loss.h"
#include "nn/models/models.h"
#include "optim/sgd.h"
#include "problems.h"
#include "support/compare.h"
#include "support/cuda.h"

using namespace basin;
using namespace basin::analysis;
using basin::testing::host_dot;
using basin::testing::make_quadratic;
using basin::testing::quadratic_options;

namespace {

// L(w + e) - L(w) = g.e + e^T H e / 2 on the quadratic.
double rise(const testing::QuadraticProblem& p, const std::vector<double>& g, const std::vector<double>& e) {
  return host_dot(g, e) + 0.5 * host_dot(e, p.hessian_times(e));
}

// The exact max of g.e + e^T H e / 2 over ||e|| <= rho (H positive definite):
// e = (mu I - H)^-1 g on the sphere, mu > lambda_max found by bisection in
// H's eigenbasis.
double trust_region_max(const testing::QuadraticProblem& p, const std::vector<double>& g, double rho) {
  std::vector<double> gq(p.d());
  for (std::size_t k = 0; k < p.d(); ++k) gq[k] = host_dot(p.q[k], g);
  const auto length = [&](double mu) {
    double s = 0;
    for (std::size_t k = 0; k < p.d(); ++k) s += gq[k] * gq[k] / ((mu - p.lambdas[k]) * (mu - p.lambdas[k]));
    return std::sqrt(s);
  };
  double lo = p.lambdas[0] + 1e-12, hi = p.lambdas[0] + 1.0;
  while (length(hi) > rho) hi *= 2.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (length(mid) > rho ? lo : hi) = mid;
  }
  double value = 0;
  for (std::size_t k = 0; k < p.d(); ++k) {
    const double e = gq[k] / (hi - p.lambdas[k]);
    value += gq[k] * e + 0.5 * p.lambdas[k] * e * e;
  }
  return value;
}

}  // namespace

TEST_CASE("one ascent step gives SAM's first-order sharpness of a quadratic", "[analysis][sharpness]") {
  const auto problem = make_quadratic(testing::kQuadraticLambdas, true, 4);
  const Objective objective(problem.model, problem.batches, quadratic_options());
  const double rho = 0.05;
  const std::vector<double> w = problem.weights();
  const std::vector<double> g = problem.gradient_at(w);
  const double g_norm = std::sqrt(host_dot(g, g));
  std::vector<double> e(g.size());
  for (std::size_t i = 0; i < g.size(); ++i) e[i] = rho * g[i] / (g_norm + 1e-12);

  const SharpnessEstimate s = sharpness(objective, SharpnessOptions().rho(rho));
  CHECK(s.sharpness == Approx(rise(problem, g, e)).epsilon(1e-10));
  CHECK(s.loss == Approx(problem.loss_at(w)).epsilon(1e-12));
  CHECK(s.perturbed_loss == Approx(s.loss + s.sharpness).epsilon(1e-12));
  CHECK(s.perturbation_norm == Approx(rho).epsilon(1e-9));
  CHECK(s.scaled_norm == Approx(rho).epsilon(1e-9));
  CHECK(s.best_step == 1);
  CHECK(s.step_sharpness.size() == 1);
  CHECK(problem.weights() == w);  // put back exactly
  // One gradient and one loss.
  CHECK(objective.gradient_evaluations() == 1);
  CHECK(objective.loss_evaluations() == 1);
}

TEST_CASE("projected ascent converges to the exact maximum over the ball", "[analysis][sharpness]") {
  const auto problem = make_quadratic(testing::kQuadraticLambdas, true, 6);
  const Objective objective(problem.model, problem.batches, quadratic_options());
  const std::vector<double> g = problem.gradient_at(problem.weights());
  for (const double rho : {0.05, 0.5}) {
    INFO("rho " << rho);
    const double exact = trust_region_max(problem, g, rho);
    const SharpnessEstimate one = sharpness(objective, SharpnessOptions().rho(rho));
    const SharpnessEstimate many = sharpness(objective, SharpnessOptions().rho(rho).ascent_steps(100));
    INFO("K = 1: " << one.sharpness << ", K = 100: " << many.sharpness << ", exact " << exact);
    CHECK(one.sharpness <= exact + 1e-12);
    CHECK(many.sharpness >= one.sharpness);
    CHECK(many.sharpness <= exact + 1e-12);
    CHECK(many.sharpness == Approx(exact).epsilon(1e-4));
    CHECK(many.step_sharpness.size() == 100);
    CHECK(many.perturbation_norm <= rho * (1 + 1e-12));
  }
}

TEST_CASE("ASAM's adaptive sharpness scales the step by T = |w| + eta", "[analysis][sharpness]") {
  const auto problem = make_quadratic(testing::kQuadraticLambdas, true, 6);
  const Objective objective(problem.model, problem.batches, quadratic_options());
  const double rho = 0.5, eta = 0.01;
  const std::vector<double> w = problem.weights();
  const std::vector<double> g = problem.gradient_at(w);
  std::vector<double> t(w.size()), tg(w.size()), e(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) {
    t[i] = std::abs(w[i]) + eta;  // the Linear's "weight": an adaptive tensor
    tg[i] = t[i] * g[i];
  }
  const double tg_norm = std::sqrt(host_dot(tg, tg));
  for (std::size_t i = 0; i < w.size(); ++i) e[i] = rho * t[i] * t[i] * g[i] / (tg_norm + 1e-12);
  const SharpnessEstimate s = sharpness(objective, SharpnessOptions().rho(rho).adaptive(true).eta(eta));
  CHECK(s.sharpness == Approx(rise(problem, g, e)).epsilon(1e-10));
  CHECK(s.scaled_norm == Approx(rho).epsilon(1e-9));  // ||T^-1 e|| = rho
  CHECK(s.perturbation_norm == Approx(std::sqrt(host_dot(e, e))).epsilon(1e-9));
  // More steps climb higher, within the same scaled ball.
  const SharpnessEstimate many = sharpness(objective, SharpnessOptions().rho(rho).adaptive(true).ascent_steps(20));
  CHECK(many.sharpness >= s.sharpness);
  CHECK(many.scaled_norm <= rho * (1 + 1e-12));
}

TEST_CASE("m-sharpness averages the sharpness of each group of m examples", "[analysis][sharpness]") {
  const auto problem = make_quadratic(testing::kQuadraticLambdas, true, 4);  // batches of 4 and 2
  const Objective objective(problem.model, problem.batches, quadratic_options());
  const SharpnessOptions options = SharpnessOptions().rho(0.1);
  // m = N is the sharpness of the whole set.
  const MSharpnessEstimate whole = m_sharpness(objective, 6, options);
  REQUIRE(whole.groups.size() == 1);
  CHECK(whole.mean == Approx(sharpness(objective, options).sharpness).epsilon(1e-12));
  CHECK(whole.standard_error == 0.0);
  // m = 3: examples 0-2 and 3-5 (the second group straddles the two batches).
  const MSharpnessEstimate halves = m_sharpness(objective, 3, options);
  REQUIRE(halves.groups.size() == 2);
  for (std::int64_t group = 0; group < 2; ++group) {
    const Tensor inputs = problem.inputs.slice(0, 3 * group, 3 * group + 3);
    const Tensor targets = problem.targets.slice(0, 3 * group, 3 * group + 3);
    const Objective alone(problem.model, {{inputs, targets}}, quadratic_options());
    CHECK(halves.groups[static_cast<std::size_t>(group)] == Approx(sharpness(alone, options).sharpness).epsilon(1e-12));
  }
  CHECK(halves.mean == Approx(0.5 * (halves.groups[0] + halves.groups[1])).epsilon(1e-14));
  // m = 4: one group; the last two examples are left out.
  CHECK(m_sharpness(objective, 4, options).groups.size() == 1);
  CHECK_THROWS_WITH(m_sharpness(objective, 7, options), Catch::Contains("m must be in [1, 6]"));
  CHECK_THROWS_WITH(sharpness(objective, SharpnessOptions().rho(0.0)), Catch::Contains("rho must be positive"));
  CHECK_THROWS_WITH(sharpness(objective, SharpnessOptions().ascent_steps(0)),
                    Catch::Contains("ascent_steps must be at least 1"));
}

TEST_CASE("one-step sharpness climbs to the weights of SAM's and ASAM's own first step", "[analysis][sharpness]") {
  for (const bool adaptive : {false, true}) {
    INFO((adaptive ? "ASAM" : "SAM"));
    manual_seed(11);
    nn::ModulePtr model = nn::create_model("cnn-small", 10);
    model->to(kFloat64);
    const Tensor images = randn({6, 3, 16, 16}, kFloat64);
    const Tensor labels = from_vector(std::vector<std::int64_t>{0, 3, 9, 1, 1, 5}, {6});
    const double rho = adaptive ? 0.5 : 0.05;
    double sam_loss = 0;
    {
      // SAM's step on a model in eval mode: the perturbed weights after first_step.
      model->eval();
      auto sgd = std::make_shared<optim::SGD>(model->named_parameters(), optim::SGDOptions(0.1));
      optim::SAM sam(sgd, optim::SAMOptions().rho(rho).adaptive(adaptive), model.get());
      sam.zero_grad();
      cross_entropy((*model)(images), labels).backward();
      sam.first_step();
      NoGradGuard no_grad;
      sam_loss = cross_entropy((*model)(images), labels).item();
      sam.second_step();  // restores w (and takes an SGD step we undo below)
    }
    // Back to fresh weights of the same seed.
    manual_seed(11);
    model = nn::create_model("cnn-small", 10);
    model->to(kFloat64);
    const Objective objective(model, {{images, labels}});
    const SharpnessEstimate s = sharpness(objective, SharpnessOptions().rho(rho).adaptive(adaptive));
    CHECK(s.perturbed_loss == Approx(sam_loss).epsilon(1e-12));
  }
}

TEST_CASE("sharpness on CUDA matches the CPU", "[analysis][sharpness][cuda]") {
  BASIN_REQUIRE_CUDA();
  const auto cpu_problem = make_quadratic(testing::kQuadraticLambdas, true, 4);
  const auto cuda_problem = make_quadratic(testing::kQuadraticLambdas, true, 4, Device::cuda());
  const Objective cpu(cpu_problem.model, cpu_problem.batches, quadratic_options());
  const Objective cuda(cuda_problem.model, cuda_problem.batches, quadratic_options());
  for (const bool adaptive : {false, true}) {
    const SharpnessOptions options = SharpnessOptions().rho(0.2).adaptive(adaptive).ascent_steps(5);
    CHECK(sharpness(cuda, options).sharpness == Approx(sharpness(cpu, options).sharpness).epsilon(1e-10));
    CHECK(m_sharpness(cuda, 3, options).mean == Approx(m_sharpness(cpu, 3, options).mean).epsilon(1e-10));
  }
}
