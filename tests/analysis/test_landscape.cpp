// Loss landscapes: filter-normalized directions (Li et al. 2018), lines and surfaces.
#include <catch2/catch.hpp>

#include <cmath>

#include "analysis/landscape.h"
#include "core/elementwise.h"
#include "core/reduce.h"
#include "core/random.h"
#include "nn/models/models.h"
#include "problems.h"
#include "support/compare.h"
#include "support/cuda.h"

using namespace basin;
using namespace basin::analysis;
using basin::testing::make_quadratic;
using basin::testing::quadratic_options;

namespace {

// A float64 cnn-small on a few images: convolutions, BatchNorm and a linear head.
Objective small_cnn_objective(Device device = Device::cpu()) {
  manual_seed(21);
  nn::ModulePtr model = nn::create_model("cnn-small", 10);
  model->to(kFloat64);
  model->to(device);
  const Tensor images = randn({5, 3, 8, 8}, kFloat64);
  const Tensor labels = from_vector(std::vector<std::int64_t>{2, 7, 7, 0, 4}, {5});
  return Objective(model, {{images, labels}});
}

std::vector<double> filter_norms(const Tensor& t) {
  const Tensor rows = t.reshape({t.size(0), -1});
  return sqrt(sum(mul(rows, rows), {1})).to_vector<double>();
}

}  // namespace

TEST_CASE("filter normalization gives each filter of a direction its weight filter's norm",
          "[analysis][landscape]") {
  const Objective objective = small_cnn_objective();
  const Tensor d = random_direction(objective, DirectionOptions().seed(4));
  std::size_t matrices = 0, vectors = 0;
  for (std::size_t i = 0; i < objective.arena().size(); ++i) {
    const std::string& name = objective.parameter_names()[i];
    INFO(name);
    const Tensor w = objective.view(objective.weights(), i);
    const Tensor part = objective.view(d, i);
    if (w.dim() >= 2) {
      ++matrices;
      const std::vector<double> want = filter_norms(w), got = filter_norms(part);
      REQUIRE(got.size() == want.size());
      for (std::size_t f = 0; f < got.size(); ++f) CHECK(got[f] == Approx(want[f]).epsilon(1e-12));
      // Not merely a copy of the weights.
      CHECK_FALSE(testing::equal(part, w));
    } else {
      ++vectors;
      CHECK(testing::all_equal_to(part, 0.0));  // biases and BatchNorm parameters are ignored
    }
  }
  CHECK(matrices == 5);  // four convolutions and the linear layer
  CHECK(vectors > 0);
  // Kept, the 1-D tensors take the weights' values (Li et al.'s code).
  const Tensor kept = random_direction(objective, DirectionOptions().seed(4).ignore_bias_and_bn(false));
  for (std::size_t i = 0; i < objective.arena().size(); ++i) {
    const Tensor w = objective.view(objective.weights(), i);
    if (w.dim() <= 1) CHECK(testing::equal(objective.view(kept, i), w));
  }
  // The same seed gives the same direction; another seed another one.
  CHECK(testing::equal(random_direction(objective, DirectionOptions().seed(4)), d));
  CHECK_FALSE(testing::equal(random_direction(objective, DirectionOptions().seed(5)), d));
  // A zero filter of the weights gives a zero filter of the direction.
  Tensor conv = objective.view(objective.weights(), 0);
  conv.select(0, 1).zero_();
  Tensor again = random_direction(objective, DirectionOptions().seed(4));
  CHECK(testing::all_equal_to(objective.view(again, 0).select(0, 1), 0.0));
  CHECK(testing::all_finite(again));
}

TEST_CASE("a line along a direction is L(w + t d) and leaves the weights in place", "[analysis][landscape]") {
  const auto problem = make_quadratic(testing::kQuadraticLambdas, true, 4);
  const Objective objective(problem.model, problem.batches, quadratic_options());
  const std::vector<double> w = problem.weights();
  const std::vector<double> dv = {1.0, -0.5, 0.25, 0.0, 2.0, -1.0};
  Tensor d = objective.new_vector();
  objective.view(d, 0).copy_(from_vector(dv, {1, 6}));
  const std::vector<double> ts = linspace(-1.0, 1.0, 5);
  REQUIRE(ts == std::vector<double>{-1.0, -0.5, 0.0, 0.5, 1.0});
  std::int64_t reported = 0;
  const auto line = line_along(objective, d, ts, [&](std::int64_t done, std::int64_t total, const std::string&) {
    CHECK(total == 5);
    reported = done;
  });
  CHECK(reported == 5);
  REQUIRE(line.size() == 5);
  for (const LinePoint& p : line) {
    std::vector<double> at(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) at[i] = w[i] + p.t * dv[i];
    CHECK(p.value.loss == Approx(problem.loss_at(at)).epsilon(1e-12));
  }
  CHECK(problem.weights() == w);
  // Between two points: t = 0 and t = 1 are the points themselves.
  const Tensor a = objective.copy_of_weights();
  Tensor b = objective.copy_of_weights();
  b.add_(d, 0.7);
  const auto between = line_between(objective, a, b, {0.0, 1.0, 2.0});
  CHECK(between[0].value.loss == Approx(problem.loss_at(w)).epsilon(1e-12));
  std::vector<double> at_b(w.size()), at_2(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) {
    at_b[i] = w[i] + 0.7 * dv[i];
    at_2[i] = w[i] + 1.4 * dv[i];
  }
  CHECK(between[1].value.loss == Approx(problem.loss_at(at_b)).epsilon(1e-12));
  CHECK(between[2].value.loss == Approx(problem.loss_at(at_2)).epsilon(1e-12));
  CHECK(problem.weights() == w);
}

TEST_CASE("a surface is L(w + x d1 + y d2) with x varying fastest", "[analysis][landscape]") {
  const auto problem = make_quadratic(testing::kQuadraticLambdas, true, 6);
  const Objective objective(problem.model, problem.batches, quadratic_options());
  const std::vector<double> w = problem.weights();
  const std::vector<double> d1v = {1, 0, 0, 0, 0, 1}, d2v = {0, 1, -1, 0, 0, 0};
  Tensor d1 = objective.new_vector(), d2 = objective.new_vector();
  objective.view(d1, 0).copy_(from_vector(d1v, {1, 6}));
  objective.view(d2, 0).copy_(from_vector(d2v, {1, 6}));
  const auto points = surface(objective, d1, d2, {-1.0, 0.0, 1.0}, {0.0, 2.0});
  REQUIRE(points.size() == 6);
  CHECK(points[1].x == 0.0);
  CHECK(points[1].y == 0.0);
  CHECK(points[3].x == -1.0);
  CHECK(points[3].y == 2.0);
  for (const SurfacePoint& p : points) {
    std::vector<double> at(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) at[i] = w[i] + p.x * d1v[i] + p.y * d2v[i];
    CHECK(p.value.loss == Approx(problem.loss_at(at)).epsilon(1e-12));
  }
  CHECK(problem.weights() == w);
  const std::string csv = to_csv(points);
  CHECK(csv.rfind("x,y,loss,accuracy\n-1,0,", 0) == 0);
  CHECK(csv.find(",nan\n") != std::string::npos);  // a regression has no accuracy
  CHECK(to_csv(std::vector<LinePoint>{{0.5, {1.25, 0.75}}}) == "t,loss,accuracy\n0.5,1.25,0.75\n");
  CHECK_THROWS_WITH(surface(objective, zeros({6}, kFloat64), d2, {0.0}, {0.0}), Catch::Contains("arena layout"));
  CHECK_THROWS_WITH(linspace(0, 1, 0), Catch::Contains("at least 1"));
}

TEST_CASE("a classifier's landscape reports accuracy", "[analysis][landscape]") {
  const Objective objective = small_cnn_objective();
  const Tensor d = random_direction(objective);
  const auto line = line_along(objective, d, {0.0});
  const Evaluation here = objective.evaluate();
  CHECK(line[0].value.loss == here.loss);
  CHECK(line[0].value.accuracy == here.accuracy);
  CHECK(here.accuracy >= 0.0);
  CHECK(here.accuracy <= 1.0);
}

TEST_CASE("landscapes on CUDA match the CPU", "[analysis][landscape][cuda]") {
  BASIN_REQUIRE_CUDA();
  const Objective cpu = small_cnn_objective();
  const Objective cuda = small_cnn_objective(Device::cuda());
  const Tensor d_cpu = random_direction(cpu, DirectionOptions().seed(8));
  const Tensor d_cuda = random_direction(cuda, DirectionOptions().seed(8));
  CHECK(testing::relative_error(d_cuda.cpu(), d_cpu) < 1e-12);
  const auto a = line_along(cpu, d_cpu, {-0.5, 0.5}), b = line_along(cuda, d_cuda, {-0.5, 0.5});
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(b[i].value.loss == Approx(a[i].value.loss).epsilon(1e-9));
    CHECK(b[i].value.accuracy == a[i].value.accuracy);
  }
}
