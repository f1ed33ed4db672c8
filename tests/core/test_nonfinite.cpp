// NaN and infinity through every op, forward and backward, against what
// PyTorch gives (tests/reference/gen_nonfinite_fixtures.py), on each device.
// A NaN must stay a NaN: an op that turned it into a number would let a
// diverged run report a plausible loss.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/loss.h"
#include "core/reduce.h"
#include "core/softmax.h"
#include "support/cuda.h"
#include "support/fixtures.h"

using namespace basin;

namespace {

using Unary = std::function<Tensor(const Tensor&)>;
using Binary = std::function<Tensor(const Tensor&, const Tensor&)>;

// Equal as IEEE values: both NaN, the same infinity, or finite and within
// float64 rounding (the GPU's exp and log may differ in the last bits).
bool same_value(double got, double want) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::isfinite(got) && std::abs(got - want) <= 1e-12 * (1.0 + std::abs(want));
}

void check_same(const std::string& what, const Tensor& got, const Tensor& want) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  const std::vector<double> g = got.to(Device::cpu()).to(kFloat64).contiguous().to_vector<double>();
  const std::vector<double> w = want.to(kFloat64).contiguous().to_vector<double>();
  for (std::size_t i = 0; i < w.size(); ++i) {
    INFO("element " << i << ": basin " << g[i] << ", PyTorch " << w[i]);
    CHECK(same_value(g[i], w[i]));
  }
}

// The gradient of sum(f(inputs)) with respect to each input.
std::vector<Tensor> gradients(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                              const std::vector<Tensor>& inputs) {
  std::vector<Tensor> leaves;
  for (const Tensor& input : inputs) leaves.push_back(input.clone().requires_grad_());
  sum(f(leaves)).backward();
  std::vector<Tensor> grads;
  for (const Tensor& leaf : leaves) grads.push_back(leaf.grad());
  return grads;
}

void check_device(Device device) {
  const TensorMap fixture = testing::load_fixture("core_nonfinite.safetensors");
  const Tensor x = testing::fixture_tensor(fixture, "x").to(device);
  const Tensor y = testing::fixture_tensor(fixture, "y").to(device);
  const Tensor rows = testing::fixture_tensor(fixture, "rows").to(device);
  const Tensor labels = testing::fixture_tensor(fixture, "labels").to(device);
  const auto want = [&](const std::string& key) { return testing::fixture_tensor(fixture, key); };

  struct UnaryCase {
    const char* name;
    Unary f;
    bool differentiable = true;
  };
  const std::vector<UnaryCase> unary = {
      {"neg", [](const Tensor& t) { return neg(t); }},
      {"exp", [](const Tensor& t) { return exp(t); }},
      {"log", [](const Tensor& t) { return log(t); }},
      {"sqrt", [](const Tensor& t) { return sqrt(t); }},
      {"abs", [](const Tensor& t) { return abs(t); }},
      {"sign", [](const Tensor& t) { return sign(t); }, false},
      {"relu", [](const Tensor& t) { return relu(t); }},
      {"sigmoid", [](const Tensor& t) { return sigmoid(t); }},
      {"tanh", [](const Tensor& t) { return tanh(t); }},
      {"pow2", [](const Tensor& t) { return pow(t, 2.0); }},
      {"pow_half", [](const Tensor& t) { return pow(t, 0.5); }},
      {"clamp", [](const Tensor& t) { return clamp(t, -1.0, 1.0); }},
      {"add_scalar", [](const Tensor& t) { return add(t, 1.0); }},
      {"mul_scalar", [](const Tensor& t) { return mul(t, 2.0); }},
  };
  for (const UnaryCase& op : unary) {
    check_same(std::string(op.name) + " forward", op.f(x), want(std::string(op.name) + ".out"));
    if (!op.differentiable) continue;
    const auto grads = gradients([&](const std::vector<Tensor>& in) { return op.f(in[0]); }, {x});
    check_same(std::string(op.name) + " gradient", grads[0], want(std::string(op.name) + ".grad"));
  }

  const std::vector<std::pair<const char*, Binary>> binary = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
  };
  for (const auto& [name, f] : binary) {
    check_same(std::string(name) + " forward", f(x, y), want(std::string(name) + ".out"));
    const auto grads = gradients([&](const std::vector<Tensor>& in) { return f(in[0], in[1]); }, {x, y});
    check_same(std::string(name) + " gradient of a", grads[0], want(std::string(name) + ".grad_a"));
    check_same(std::string(name) + " gradient of b", grads[1], want(std::string(name) + ".grad_b"));
  }

  struct RowCase {
    const char* name;
    Unary f;
    bool differentiable = true;
  };
  const std::vector<RowCase> row_ops = {
      {"sum_rows", [](const Tensor& r) { return sum(r, {1}); }},
      {"mean_rows", [](const Tensor& r) { return mean(r, {1}); }},
      {"max_rows", [](const Tensor& r) { return max(r, {1}); }, false},
      {"softmax", [](const Tensor& r) { return softmax(r, 1); }},
      {"log_softmax", [](const Tensor& r) { return log_softmax(r, 1); }},
      {"cross_entropy", [&](const Tensor& r) { return cross_entropy(r, labels, 0.0, Reduction::None); }},
  };
  for (const RowCase& op : row_ops) {
    check_same(std::string(op.name) + " forward", op.f(rows), want(std::string(op.name) + ".out"));
    if (!op.differentiable) continue;
    const auto grads = gradients([&](const std::vector<Tensor>& in) { return op.f(in[0]); }, {rows});
    check_same(std::string(op.name) + " gradient", grads[0], want(std::string(op.name) + ".grad"));
  }
  check_same("argmax over rows", argmax(rows, 1), want("argmax_rows.out"));
  check_same("sum of all", sum(x), want("sum_all.out"));
  check_same("max of all", max(x), want("max_all.out"));
}

}  // namespace

TEST_CASE("ops treat NaN and infinity as PyTorch does, on the CPU", "[nonfinite][fixture]") {
  check_device(Device::cpu());
}

TEST_CASE("ops treat NaN and infinity as PyTorch does, on CUDA", "[nonfinite][fixture][cuda]") {
  BASIN_REQUIRE_CUDA();
  check_device(Device::cuda());
}
