// Elementwise ops: one table of cases (support/op_table.h) drives the gradient
// checks and the CUDA-vs-CPU parity checks; then broadcasting, eq, strided
// CUDA input and the errors.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/random.h"
#include "core/reduce.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/op_table.h"

using namespace basin;
using basin::testing::OpCase;
using basin::testing::away_from;
using basin::testing::input;
using basin::testing::max_abs_diff;
using basin::testing::positive;
using basin::testing::uniform;

namespace {

// Odd sizes and broadcasting on purpose; each shape serves both the gradient
// check and CUDA parity (forward and backward, float32 and float64, with
// max |cuda - cpu| <= tol * (1 + max |cpu|), tol 1e-5 and 1e-12: the default).
// The default domain here is uniform in [-2, 2); ops with kinks keep their
// inputs away from them, ops with poles or a restricted domain stay positive.
std::vector<OpCase> elementwise_cases() {
  const auto u = uniform(-2.0, 2.0);
  const auto away = [](std::vector<double> kinks) { return away_from(std::move(kinks), 0.01); };
  std::vector<OpCase> cases = {
      {"add", [](const auto& x) { return add(x[0], x[1]); }, {input({3, 5}, u), input({3, 5}, u)}},
      {"add broadcast", [](const auto& x) { return add(x[0], x[1]); }, {input({2, 3, 5}, u), input({3, 1}, u)}},
      {"sub broadcast", [](const auto& x) { return sub(x[0], x[1]); }, {input({7}, u), input({3, 1}, u)}},
      {"mul broadcast", [](const auto& x) { return mul(x[0], x[1]); }, {input({4, 1, 3}, u), input({5, 1}, u)}},
      {"div", [](const auto& x) { return div(x[0], x[1]); },
       {input({3, 7}, positive(0.5, 2.0)), input({7}, positive(0.5, 2.0))}},
      {"add scalar", [](const auto& x) { return add(x[0], 1.5); }, {input({5, 3}, u)}},
      {"mul scalar", [](const auto& x) { return mul(x[0], -2.5); }, {input({5, 3}, u)}},
      {"scalar minus tensor", [](const auto& x) { return 3.0 - x[0]; }, {input({4}, u)}},
      {"scalar over tensor", [](const auto& x) { return 3.0 / x[0]; }, {input({4}, positive(0.5, 2.0))}},
      {"neg", [](const auto& x) { return neg(x[0]); }, {input({3, 3}, u)}},
      {"exp", [](const auto& x) { return exp(x[0]); }, {input({3, 5}, u)}},
      {"log", [](const auto& x) { return log(x[0]); }, {input({3, 5}, positive(0.1, 3.0))}},
      {"sqrt", [](const auto& x) { return sqrt(x[0]); }, {input({3, 5}, positive(0.1, 3.0))}},
      {"pow 3", [](const auto& x) { return pow(x[0], 3.0); }, {input({3, 5}, u)}},
      {"pow -0.5", [](const auto& x) { return pow(x[0], -0.5); }, {input({3, 5}, positive(0.2, 3.0))}},
      {"abs", [](const auto& x) { return abs(x[0]); }, {input({4, 5}, away({0.0}))}},
      {"relu", [](const auto& x) { return relu(x[0]); }, {input({4, 5}, away({0.0}))}},
      {"sigmoid", [](const auto& x) { return sigmoid(x[0]); }, {input({4, 5}, u)}},
      {"tanh", [](const auto& x) { return tanh(x[0]); }, {input({4, 5}, u)}},
      {"clamp", [](const auto& x) { return clamp(x[0], -0.5, 0.7); }, {input({4, 5}, away({-0.5, 0.7}))}},
      {"composite", [](const auto& x) { return tanh(x[0] * x[1] + exp(x[1])) / (1.0 + x[0] * x[0]); },
       {input({2, 3}, u), input({3}, u)}},
  };
  // Smooth on every domain above: no element may be skipped as a kink.
  for (OpCase& c : cases) c.all_compared = true;
  return cases;
}

}  // namespace

TEST_CASE("elementwise ops match finite differences", "[elementwise][gradcheck]") {
  testing::run_gradient_checks(elementwise_cases());
}

TEST_CASE("elementwise CUDA kernels match the CPU kernels", "[elementwise][cuda]") {
  testing::run_cuda_parity(elementwise_cases());
}

TEST_CASE("elementwise CUDA kernels handle strided and odd-sized tensors", "[elementwise][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(3);
  const Tensor base = randn({37, 129});
  const Tensor other = randn({129, 37}).t();  // transposed: not contiguous
  const Tensor expected = mul(base.slice(1, 1, 128, 3), other.slice(1, 1, 128, 3));
  const Tensor got = mul(base.to(Device::cuda()).slice(1, 1, 128, 3), other.to(Device::cuda()).slice(1, 1, 128, 3));
  CHECK(max_abs_diff(got, expected) == 0.0);
}

TEST_CASE("broadcasting follows NumPy rules", "[elementwise]") {
  const Tensor a = from_vector<double>({1, 2, 3}, {3, 1});
  const Tensor b = from_vector<double>({10, 20}, {2});
  const Tensor c = add(a, b);
  CHECK(c.shape() == Shape{3, 2});
  CHECK(c.to_vector<double>() == std::vector<double>{11, 21, 12, 22, 13, 23});
}

TEST_CASE("eq compares floating and integer tensors", "[elementwise]") {
  const Tensor a = from_vector<std::int64_t>({3, 1, 4, 1}, {4});
  const Tensor b = from_vector<std::int64_t>({3, 2, 4, 0}, {4});
  const Tensor e = eq(a, b);
  CHECK(e.dtype() == kFloat64);
  CHECK(e.to_vector<double>() == std::vector<double>{1, 0, 1, 0});
  CHECK(eq(from_vector<float>({1.5f, 2.0f}, {2}), full({1}, 2.0)).to_vector<float>() == std::vector<float>{0, 1});
  CHECK_FALSE(eq(ones({2}).requires_grad_(), ones({2})).requires_grad());
}

TEST_CASE("eq runs on CUDA", "[elementwise][cuda]") {
  BASIN_REQUIRE_CUDA();
  const Tensor a = from_vector<std::int64_t>({3, 1, 4, 1, 5}, {5}).to(Device::cuda());
  const Tensor b = from_vector<std::int64_t>({3, 2, 4, 0, 5}, {5}).to(Device::cuda());
  CHECK(eq(a, b).to_vector<double>() == std::vector<double>{1, 0, 1, 0, 1});
}

TEST_CASE("elementwise ops reject mismatched inputs with clear errors", "[elementwise][errors]") {
  const Tensor a = zeros({2, 3});
  CHECK_THROWS_WITH(add(a, zeros({4})), Catch::Contains("add: shapes [2, 3] and [4] cannot be broadcast"));
  CHECK_THROWS_WITH(mul(a, zeros({2, 3}, kFloat64)), Catch::Contains("mul: dtypes differ (float32 and float64)"));
  CHECK_THROWS_WITH(exp(zeros({2}, kInt64)), Catch::Contains("exp: expected a floating tensor, got int64"));
  CHECK_THROWS_WITH(clamp(a, 1.0, -1.0), Catch::Contains("clamp: min 1 is greater than max -1"));
}

TEST_CASE("in-place updates refuse to corrupt the graph", "[elementwise][errors]") {
  Tensor w = ones({3}).requires_grad_();
  CHECK_THROWS_WITH(w.add_(ones({3})), Catch::Contains("wrap it in NoGradGuard"));
  NoGradGuard no_grad;
  w.add_(ones({3}), 2.0);
  CHECK(w.to_vector<float>() == std::vector<float>{3, 3, 3});
  w.mul_(0.5);
  CHECK(w.to_vector<float>() == std::vector<float>{1.5f, 1.5f, 1.5f});
}

TEST_CASE("elementwise CPU engine kernels match the reference", "[elementwise][engine]") {
  testing::run_engine_parity(elementwise_cases());
}
