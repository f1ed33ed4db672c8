// Elementwise ops: one table of cases drives the gradient checks and the
// CUDA-vs-CPU parity checks.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/random.h"
#include "core/reduce.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/gradcheck.h"

using namespace basin;
using basin::testing::gradcheck;
using basin::testing::max_abs_diff;

namespace {

struct OpCase {
  const char* name;
  std::function<Tensor(const std::vector<Tensor>&)> fn;
  std::vector<Shape> shapes;  // one per input; odd sizes and broadcasting on purpose
  double low = -2.0, high = 2.0;  // input domain
};

std::vector<OpCase> op_cases() {
  return {
      {"add", [](const auto& x) { return add(x[0], x[1]); }, {{3, 5}, {3, 5}}},
      {"add broadcast", [](const auto& x) { return add(x[0], x[1]); }, {{2, 3, 5}, {3, 1}}},
      {"sub broadcast", [](const auto& x) { return sub(x[0], x[1]); }, {{7}, {3, 1}}},
      {"mul broadcast", [](const auto& x) { return mul(x[0], x[1]); }, {{4, 1, 3}, {5, 1}}},
      {"div", [](const auto& x) { return div(x[0], x[1]); }, {{3, 7}, {7}}, 0.5, 2.0},
      {"add scalar", [](const auto& x) { return add(x[0], 1.5); }, {{5, 3}}},
      {"mul scalar", [](const auto& x) { return mul(x[0], -2.5); }, {{5, 3}}},
      {"scalar minus tensor", [](const auto& x) { return 3.0 - x[0]; }, {{4}}},
      {"scalar over tensor", [](const auto& x) { return 3.0 / x[0]; }, {{4}}, 0.5, 2.0},
      {"neg", [](const auto& x) { return neg(x[0]); }, {{3, 3}}},
      {"exp", [](const auto& x) { return exp(x[0]); }, {{3, 5}}},
      {"log", [](const auto& x) { return log(x[0]); }, {{3, 5}}, 0.1, 3.0},
      {"sqrt", [](const auto& x) { return sqrt(x[0]); }, {{3, 5}}, 0.1, 3.0},
      {"pow 3", [](const auto& x) { return pow(x[0], 3.0); }, {{3, 5}}},
      {"pow -0.5", [](const auto& x) { return pow(x[0], -0.5); }, {{3, 5}}, 0.2, 3.0},
      {"abs", [](const auto& x) { return abs(x[0]); }, {{4, 5}}},
      {"relu", [](const auto& x) { return relu(x[0]); }, {{4, 5}}},
      {"sigmoid", [](const auto& x) { return sigmoid(x[0]); }, {{4, 5}}},
      {"tanh", [](const auto& x) { return tanh(x[0]); }, {{4, 5}}},
      {"clamp", [](const auto& x) { return clamp(x[0], -0.5, 0.7); }, {{4, 5}}},
      {"composite", [](const auto& x) { return tanh(x[0] * x[1] + exp(x[1])) / (1.0 + x[0] * x[0]); },
       {{2, 3}, {3}}},
  };
}

std::vector<Tensor> random_inputs(const OpCase& c, DType dtype, Device device) {
  std::vector<Tensor> inputs;
  for (const Shape& shape : c.shapes) inputs.push_back(rand(shape, TensorOptions(dtype).device(device), c.low, c.high));
  return inputs;
}

}  // namespace

TEST_CASE("elementwise ops match finite differences", "[elementwise][gradcheck]") {
  manual_seed(1);
  for (const OpCase& c : op_cases()) {
    SECTION(c.name) {
      const auto result = gradcheck(c.fn, random_inputs(c, kFloat64, Device::cpu()));
      INFO(c.name << ": " << result.report);
      CHECK(result.ok);
      CHECK(result.compared > 0);
    }
  }
}

TEST_CASE("elementwise CUDA kernels match the CPU kernels", "[elementwise][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(2);
  for (const OpCase& c : op_cases()) {
    for (DType dtype : {kFloat32, kFloat64}) {
      const std::vector<Tensor> cpu_inputs = random_inputs(c, dtype, Device::cpu());
      std::vector<Tensor> cuda_inputs;
      for (const Tensor& t : cpu_inputs) cuda_inputs.push_back(t.to(Device::cuda()).requires_grad_());
      std::vector<Tensor> cpu_leaves;
      for (const Tensor& t : cpu_inputs) cpu_leaves.push_back(t.clone().requires_grad_());

      const Tensor expected = c.fn(cpu_leaves);
      const Tensor got = c.fn(cuda_inputs);
      const double tolerance = dtype == kFloat32 ? 1e-5 : 1e-12;
      INFO(c.name << " " << dtype_name(dtype));
      CHECK(got.device().is_cuda());
      CHECK(max_abs_diff(got, expected) <= tolerance * (1.0 + max_abs_diff(expected, zeros_like(expected))));

      // The backward kernels too: same upstream gradient on both sides.
      const Tensor upstream = randn(expected.shape(), dtype);
      expected.backward(upstream);
      got.backward(upstream.to(Device::cuda()));
      for (std::size_t i = 0; i < cpu_leaves.size(); ++i) {
        CHECK(max_abs_diff(cuda_inputs[i].grad(), cpu_leaves[i].grad()) <=
              tolerance * (1.0 + max_abs_diff(cpu_leaves[i].grad(), zeros_like(cpu_leaves[i].grad()))));
      }
    }
  }
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
