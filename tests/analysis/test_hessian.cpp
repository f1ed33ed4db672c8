// Hessian-vector products, top eigenvalues and the Hutchinson trace: exact on
// a quadratic whose Hessian is known, and against PyTorch's double-backward
// values on a small CNN (tests/reference/gen_analysis_fixtures.py).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "analysis/hessian.h"
#include "core/random.h"
#include "nn/layers.h"
#include "problems.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/fixtures.h"

using namespace basin;
using namespace basin::analysis;
using basin::testing::make_quadratic;
using basin::testing::quadratic_options;

namespace {

// A vector of the objective's layout holding `values` in its only tensor.
Tensor vector_of(const Objective& objective, const std::vector<double>& values) {
  Tensor v = objective.new_vector();
  objective.view(v, 0).copy_(from_vector(values, objective.view(v, 0).shape()));
  return v;
}

std::vector<double> values_of(const Objective& objective, const Tensor& v) {
  return objective.view(v, 0).to_vector<double>();
}

// ---- the small CNN of gen_analysis_fixtures.py, with PyTorch's Sequential names
nn::ModulePtr fixture_cnn(const TensorMap& fixture) {
  using namespace basin::nn;
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Conv2d>(Conv2dOptions(3, 4, 3).padding(1)));
  net->push_back(std::make_shared<BatchNorm2d>(4));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<MaxPool2d>(MaxPool2dOptions(2)));
  net->push_back(std::make_shared<Conv2d>(Conv2dOptions(4, 6, 3).padding(1).bias(false)));
  net->push_back(std::make_shared<BatchNorm2d>(6));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<GlobalAvgPool2d>());
  net->push_back(std::make_shared<Flatten>());
  net->push_back(std::make_shared<Linear>(6, 3));
  net->to(kFloat64);
  TensorMap state;
  const std::string prefix = "model.";
  for (const auto& [key, tensor] : fixture) {
    if (key.rfind(prefix, 0) == 0) state[key.substr(prefix.size())] = tensor;
  }
  net->load_state_dict(state);
  return net;
}

Objective fixture_objective(const TensorMap& fixture, BatchNormMode mode, Device device = Device::cpu()) {
  nn::ModulePtr model = fixture_cnn(fixture);
  model->to(device);
  std::vector<LabelledBatch> batches = {
      {basin::testing::fixture_tensor(fixture, "images"), basin::testing::fixture_tensor(fixture, "labels")}};
  return Objective(model, batches, ObjectiveOptions().batchnorm(mode));
}

// A fixture's per-parameter tensors "<prefix><name>" as one vector of the objective's layout.
Tensor fixture_vector(const Objective& objective, const TensorMap& fixture, const std::string& prefix) {
  Tensor v = objective.new_vector();
  const auto& names = objective.parameter_names();
  for (std::size_t i = 0; i < names.size(); ++i) {
    objective.view(v, i).copy_(basin::testing::fixture_tensor(fixture, prefix + names[i]));
  }
  return v;
}

}  // namespace

TEST_CASE("Hessian-vector products of a quadratic are H v", "[analysis][hessian]") {
  const auto problem = make_quadratic(testing::kQuadraticLambdas, true, 4);
  const Objective objective(problem.model, problem.batches, quadratic_options());
  HessianVectorProduct hvp(objective);
  const std::vector<double> v = {0.3, -1.2, 0.7, 2.0, -0.4, 0.9};
  const std::vector<double> weights_before = problem.weights();
  const std::vector<double> got = values_of(objective, hvp(vector_of(objective, v)));
  const std::vector<double> want = problem.hessian_times(v);
  for (std::size_t i = 0; i < v.size(); ++i) CHECK(got[i] == Approx(want[i]).epsilon(1e-8).margin(1e-10));
  // The products leave the weights exactly where they were.
  CHECK(problem.weights() == weights_before);
  CHECK(hvp.products() == 1);
  CHECK(objective.gradient_evaluations() == 2);
  // The zero vector costs nothing.
  CHECK(testing::all_equal_to(hvp(objective.new_vector()), 0.0));
  CHECK(objective.gradient_evaluations() == 2);
}

TEST_CASE("the gradient sums the batches' shares of the mean loss", "[analysis][hessian]") {
  const auto problem = make_quadratic(testing::kQuadraticLambdas, true, 4);  // batches of 4 and 2
  const Objective objective(problem.model, problem.batches, quadratic_options());
  Tensor g = objective.new_vector().fill_(7.0);  // poison, padding included
  const double loss = objective.gradient(g);
  CHECK(loss == Approx(problem.loss_at(problem.weights())).epsilon(1e-12));
  const std::vector<double> want = problem.gradient_at(problem.weights());
  const std::vector<double> got = values_of(objective, g);
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(got[i] == Approx(want[i]).epsilon(1e-12).margin(1e-14));
  // The padding after the tensor is zero again: dot products over the buffer are exact.
  CHECK(norm(g) == Approx(std::sqrt(testing::host_dot(want, want))).epsilon(1e-12));
  CHECK(std::isnan(objective.evaluate().accuracy));  // not a classifier
}

TEST_CASE("power iteration with deflation finds the top eigenvalues of a quadratic", "[analysis][hessian]") {
  const auto problem = make_quadratic(testing::kQuadraticLambdas, true, 6);
  const Objective objective(problem.model, problem.batches, quadratic_options());
  HessianVectorProduct hvp(objective);
  std::int64_t reported = 0;
  const auto pairs = top_eigenpairs(hvp, EigenOptions().top_k(3).max_iterations(300).tolerance(1e-13).seed(3),
                                    [&](std::int64_t, std::int64_t, const std::string&) { ++reported; });
  REQUIRE(pairs.size() == 3);
  for (std::size_t k = 0; k < 3; ++k) {
    INFO("eigenvalue " << k + 1 << " after " << pairs[k].iterations << " iterations");
    CHECK(pairs[k].converged);
    CHECK(pairs[k].value == Approx(testing::kQuadraticLambdas[k]).epsilon(1e-9));
    CHECK(pairs[k].history.size() == static_cast<std::size_t>(pairs[k].iterations));
    // The vector is +-q_k.
    const std::vector<double> v = values_of(objective, pairs[k].vector);
    CHECK(std::abs(testing::host_dot(v, problem.q[k])) == Approx(1.0).epsilon(1e-6));
  }
  CHECK(reported == pairs[0].iterations + pairs[1].iterations + pairs[2].iterations);
  // The tolerance stops the iteration early, and a run that hits the cap says it did not converge.
  const auto loose = top_eigenpairs(hvp, EigenOptions().tolerance(1e-2).seed(3));
  CHECK(loose[0].converged);
  CHECK(loose[0].iterations < pairs[0].iterations);
  CHECK(loose[0].relative_change <= 1e-2);
  const auto capped = top_eigenpairs(hvp, EigenOptions().max_iterations(2).tolerance(0.0).seed(3));
  CHECK_FALSE(capped[0].converged);
  CHECK(capped[0].iterations == 2);
  // The same seed gives the same run.
  CHECK(top_eigenpairs(hvp, EigenOptions().tolerance(1e-2).seed(3))[0].history == loose[0].history);
}

TEST_CASE("the Hutchinson trace is exact for a diagonal Hessian and unbiased otherwise", "[analysis][hessian]") {
  double trace = 0;
  for (double l : testing::kQuadraticLambdas) trace += l;
  {
    // z^T H z = sum_i H_ii z_i^2 = tr(H) for every Rademacher z when H is diagonal.
    const auto problem = make_quadratic(testing::kQuadraticLambdas, false, 6);
    const Objective objective(problem.model, problem.batches, quadratic_options());
    HessianVectorProduct hvp(objective);
    const TraceEstimate estimate = hutchinson_trace(hvp, TraceOptions().samples(5).seed(1));
    REQUIRE(estimate.samples.size() == 5);
    for (double s : estimate.samples) CHECK(s == Approx(trace).epsilon(1e-9));
    CHECK(estimate.standard_error < 1e-8);
  }
  const auto problem = make_quadratic(testing::kQuadraticLambdas, true, 6);
  const Objective objective(problem.model, problem.batches, quadratic_options());
  HessianVectorProduct hvp(objective);
  const TraceEstimate estimate = hutchinson_trace(hvp, TraceOptions().samples(400).seed(2));
  INFO("mean " << estimate.mean << " +- " << estimate.standard_error << ", trace " << trace);
  CHECK(estimate.standard_error > 0.0);
  CHECK(std::abs(estimate.mean - trace) < 4.0 * estimate.standard_error);
  // Each sample is z^T H z for a +-1 vector z.
  CHECK(hutchinson_trace(hvp, TraceOptions().samples(3).seed(2)).samples ==
        std::vector<double>(estimate.samples.begin(), estimate.samples.begin() + 3));
}

TEST_CASE("second-order measurements reject bad options", "[analysis][hessian][errors]") {
  const auto problem = make_quadratic(testing::kQuadraticLambdas, true, 6);
  const Objective objective(problem.model, problem.batches, quadratic_options());
  CHECK_THROWS_WITH(HessianVectorProduct(objective, HessianOptions().step(0.0)),
                    Catch::Contains("step must be positive"));
  HessianVectorProduct hvp(objective);
  CHECK_THROWS_WITH(top_eigenpairs(hvp, EigenOptions().top_k(0)), Catch::Contains("top_k must be at least 1"));
  CHECK_THROWS_WITH(top_eigenpairs(hvp, EigenOptions().top_k(7)), Catch::Contains("exceeds the 6 parameters"));
  CHECK_THROWS_WITH(hutchinson_trace(hvp, TraceOptions().samples(0)), Catch::Contains("samples must be at least 1"));
  CHECK_THROWS_WITH(hvp(zeros({3}, kFloat64)), Catch::Contains("arena layout"));
  CHECK_THROWS_WITH(Objective(problem.model, {}, quadratic_options()), Catch::Contains("no batches"));
  CHECK_THROWS_WITH(parse_batchnorm_mode("training"), Catch::Contains("eval or train, got 'training'"));
}

TEST_CASE("an Objective sets the BatchNorm mode and puts the model's modes back", "[analysis][hessian]") {
  const TensorMap fixture = testing::load_fixture("analysis_hessian.safetensors");
  nn::ModulePtr model = fixture_cnn(fixture);
  model->train();
  const std::vector<LabelledBatch> batches = {
      {testing::fixture_tensor(fixture, "images"), testing::fixture_tensor(fixture, "labels")}};
  {
    const Objective objective(model, batches);
    CHECK_FALSE(model->is_training());
    CHECK(objective.describe_batchnorm().find("eval mode") != std::string::npos);
  }
  CHECK(model->is_training());
  const TensorMap before = model->state_dict();
  {
    Objective objective(model, batches, ObjectiveOptions().batchnorm(BatchNormMode::Train));
    CHECK(model->is_training());
    Tensor g = objective.new_vector();
    objective.gradient(g);
  }
  // Train mode measured with batch statistics but never moved the running ones.
  for (const auto& [name, tensor] : model->state_dict()) {
    INFO(name);
    CHECK(testing::equal(tensor, before.at(name)));
  }
}

TEST_CASE("losses, gradients and Hessian-vector products of a small CNN match PyTorch's double backward",
          "[analysis][hessian][reference]") {
  const TensorMap fixture = testing::load_fixture("analysis_hessian.safetensors");
  for (const BatchNormMode mode : {BatchNormMode::Eval, BatchNormMode::Train}) {
    const std::string key = batchnorm_mode_name(mode);
    INFO("BatchNorm in " << key << " mode");
    const Objective objective = fixture_objective(fixture, mode);
    Tensor g = objective.new_vector();
    const double loss = objective.gradient(g);
    CHECK(loss == Approx(testing::fixture_tensor(fixture, key + ".loss").item()).epsilon(1e-12));
    CHECK(testing::relative_error(g, fixture_vector(objective, fixture, key + ".grad.")) < 1e-11);
    HessianVectorProduct hvp(objective);
    const Tensor hv = hvp(fixture_vector(objective, fixture, "v."));
    const double error = testing::relative_error(hv, fixture_vector(objective, fixture, key + ".hv."));
    INFO("relative error of H v: " << error << " (finite-difference step h = " << hvp.step_length() << ")");
    CHECK(error < 1e-8);  // measured: 9e-11 (eval), 4e-10 (train)
  }
}

TEST_CASE("lambda_max, lambda_2 and the trace of a small CNN match PyTorch's", "[analysis][hessian][reference]") {
  const TensorMap fixture = testing::load_fixture("analysis_hessian.safetensors");
  for (const BatchNormMode mode : {BatchNormMode::Eval, BatchNormMode::Train}) {
    const std::string key = batchnorm_mode_name(mode);
    INFO("BatchNorm in " << key << " mode");
    const Objective objective = fixture_objective(fixture, mode);
    HessianVectorProduct hvp(objective);
    // Power iteration finds the eigenvalues of largest magnitude.
    std::vector<double> all = testing::fixture_tensor(fixture, key + ".eigenvalues").to_vector<double>();
    std::sort(all.begin(), all.end(), [](double a, double b) { return std::abs(a) > std::abs(b); });
    // In eval mode |lambda_3| is within 5% of lambda_2, so the second run
    // converges slowly: it is capped, and checked more loosely.
    const auto pairs = top_eigenpairs(hvp, EigenOptions().top_k(2).max_iterations(100).tolerance(1e-10).seed(5));
    INFO("basin " << pairs[0].value << ", " << pairs[1].value << " after " << pairs[0].iterations << " and "
                  << pairs[1].iterations << " iterations; PyTorch " << all[0] << ", " << all[1]);
    CHECK(pairs[0].converged);
    CHECK(pairs[0].value == Approx(all[0]).epsilon(1e-6));
    CHECK(pairs[1].value == Approx(all[1]).epsilon(1e-3));
    const double trace = testing::fixture_tensor(fixture, key + ".trace").item();
    const TraceEstimate estimate = hutchinson_trace(hvp, TraceOptions().samples(100).seed(6));
    INFO("trace " << estimate.mean << " +- " << estimate.standard_error << ", PyTorch " << trace);
    CHECK(std::abs(estimate.mean - trace) < 4.0 * estimate.standard_error);
  }
}

TEST_CASE("Hessian measurements on CUDA match the CPU", "[analysis][hessian][cuda]") {
  BASIN_REQUIRE_CUDA();
  const TensorMap fixture = testing::load_fixture("analysis_hessian.safetensors");
  const Objective cpu = fixture_objective(fixture, BatchNormMode::Eval);
  const Objective cuda = fixture_objective(fixture, BatchNormMode::Eval, Device::cuda());
  HessianVectorProduct cpu_hvp(cpu), cuda_hvp(cuda);
  const Tensor v_cpu = fixture_vector(cpu, fixture, "v.");
  const Tensor v_cuda = fixture_vector(cuda, fixture, "v.");
  CHECK(testing::relative_error(cuda_hvp(v_cuda).cpu(), cpu_hvp(v_cpu)) < 1e-7);
  const auto options = EigenOptions().max_iterations(60).tolerance(1e-8).seed(5);
  const auto a = top_eigenpairs(cpu_hvp, options), b = top_eigenpairs(cuda_hvp, options);
  CHECK(b[0].value == Approx(a[0].value).epsilon(1e-6));
  const auto trace_options = TraceOptions().samples(4).seed(6);
  const auto ta = hutchinson_trace(cpu_hvp, trace_options), tb = hutchinson_trace(cuda_hvp, trace_options);
  for (std::size_t s = 0; s < ta.samples.size(); ++s) CHECK(tb.samples[s] == Approx(ta.samples[s]).epsilon(1e-6));
}
