// Reductions: sum, mean, max and argmax. Values, finite-difference gradients,
// CUDA-vs-CPU parity (values, indices and backward), NaN handling, errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/elementwise.h"
#include "core/random.h"
#include "core/reduce.h"
#include "kernels/reduce.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/gradcheck.h"

using namespace basin;
using basin::testing::gradcheck;
using basin::testing::max_abs_diff;

namespace {

// Element-by-element equality where NaN equals NaN (max propagates NaN).
bool same_values(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const std::vector<double> x = a.to_vector<double>();
  const std::vector<double> y = b.to_vector<double>();
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!(x[i] == y[i] || (std::isnan(x[i]) && std::isnan(y[i])))) return false;
  }
  return true;
}

std::vector<std::int64_t> indices_of(const Tensor& t) {
  REQUIRE(t.dtype() == kInt64);
  return t.to_vector<std::int64_t>();
}

}  // namespace

TEST_CASE("sum and mean give the right values", "[reduce]") {
  const Tensor x = arange(24, kFloat64).reshape({2, 3, 4});
  CHECK(sum(x).item() == 276.0);
  CHECK(sum(x).dim() == 0);
  CHECK(mean(x).item() == 11.5);
  CHECK(sum(x, {1}).to_vector<double>() == std::vector<double>{12, 15, 18, 21, 48, 51, 54, 57});
  CHECK(sum(x, {0, 2}).to_vector<double>() == std::vector<double>{60, 92, 124});
  CHECK(sum(x, {-1}, true).shape() == Shape{2, 3, 1});
  CHECK(mean(x, {0, 1}).to_vector<double>() == std::vector<double>{10, 11, 12, 13});
  CHECK(sum_to(ones({2, 3, 4}, kFloat64), {3, 1}).to_vector<double>() == std::vector<double>{8, 8, 8});
}

TEST_CASE("reductions match finite differences", "[reduce][gradcheck]") {
  manual_seed(21);
  const Tensor x = randn({3, 4, 5}, kFloat64);
  const std::vector<std::pair<const char*, testing::TensorFn>> cases = {
      {"sum all", [](const auto& v) { return sum(v[0]); }},
      {"sum dim 1", [](const auto& v) { return sum(v[0], {1}); }},
      {"sum dims 0,2 keepdim", [](const auto& v) { return sum(v[0], {0, 2}, true); }},
      {"mean all", [](const auto& v) { return mean(v[0]); }},
      {"mean dim -1", [](const auto& v) { return mean(v[0], {-1}); }},
      {"mean of transposed", [](const auto& v) { return mean(v[0].transpose(0, 2), {1}); }},
  };
  for (const auto& [name, fn] : cases) {
    const auto result = gradcheck(fn, {x});
    INFO(name << ": " << result.report);
    CHECK(result.ok);
  }
}

TEST_CASE("reductions are deterministic", "[reduce]") {
  manual_seed(22);
  const Tensor x = randn({1000, 37});
  CHECK(testing::equal(sum(x, {0}), sum(x, {0})));
  CHECK(sum(x).item() == sum(x).item());
}

TEST_CASE("reduction CUDA kernels match the CPU kernels", "[reduce][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(23);
  for (DType dtype : {kFloat32, kFloat64}) {
    const Tensor x = randn({7, 33, 65}, dtype);
    const Tensor d = x.to(Device::cuda());
    const double tolerance = dtype == kFloat32 ? 1e-4 : 1e-10;
    for (const Dims& dims : std::vector<Dims>{{}, {0}, {1}, {2}, {0, 2}, {1, 2}}) {
      INFO(dtype_name(dtype) << " dims " << shape_str(dims));
      CHECK(max_abs_diff(sum(d, dims), sum(x, dims)) <= tolerance);
      CHECK(max_abs_diff(mean(d, dims, true), mean(x, dims, true)) <= tolerance);
    }
    const Tensor big = randn({1 << 20}, dtype);
    CHECK(max_abs_diff(sum(big.to(Device::cuda())), sum(big)) <= tolerance * 100);
    // Run to run, the GPU sum is bit-identical.
    const Tensor dbig = big.to(Device::cuda());
    CHECK(sum(dbig).item() == sum(dbig).item());
  }
}

TEST_CASE("reductions reject bad dims", "[reduce][errors]") {
  const Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH(sum(x, {2}), Catch::Contains("sum: dimension 2 is out of range"));
  CHECK_THROWS_WITH(sum(x, {1, -1}), Catch::Contains("sum: a dimension is listed twice"));
  CHECK_THROWS_WITH(mean(zeros({2}, kInt64)), Catch::Contains("mean: expected a floating tensor"));
}

// ---------------------------------------------------------------- max and argmax

TEST_CASE("max and argmax give the right values", "[reduce][max]") {
  // No ties, maxima at scattered positions, so every index is checked.
  const Tensor x = from_vector<double>({3, 9, 1, 4, 7, 2, 8, 5, 6, 0, 11, 10,  //
                                        -1, 12, -5, 2, 20, -3, 4, 4.5, 0.5, 13, 14, -2},
                                       {2, 3, 4});
  CHECK(max(x).item() == 20.0);
  CHECK(max(x).dim() == 0);
  CHECK(max(x, {2}).to_vector<double>() == std::vector<double>{9, 8, 11, 12, 20, 14});
  CHECK(max(x, {1}).to_vector<double>() == std::vector<double>{7, 9, 11, 10, 20, 13, 14, 4.5});
  CHECK(max(x, {0}).to_vector<double>() == std::vector<double>{3, 12, 1, 4, 20, 2, 8, 5, 6, 13, 14, 10});
  CHECK(max(x, {0, 2}).to_vector<double>() == std::vector<double>{12, 20, 14});
  CHECK(max(x, {2, 0}).to_vector<double>() == std::vector<double>{12, 20, 14});
  CHECK(max(x, {0, 1}).to_vector<double>() == std::vector<double>{20, 13, 14, 10});
  CHECK(max(x, {-1}, true).shape() == Shape{2, 3, 1});
  CHECK(max(x, {0, 2}, true).shape() == Shape{1, 3, 1});
  CHECK(max(x, {0, 2}, true).to_vector<double>() == std::vector<double>{12, 20, 14});
  CHECK(max(x.transpose(0, 2), {2}).to_vector<double>() ==
        std::vector<double>{3, 20, 6, 12, 2, 13, 1, 8, 14, 4, 5, 10});
  CHECK(max(full({}, 2.5, kFloat64)).item() == 2.5);

  CHECK(indices_of(argmax(x, 2)) == std::vector<std::int64_t>{1, 2, 2, 1, 0, 2});
  CHECK(indices_of(argmax(x, 1)) == std::vector<std::int64_t>{1, 0, 2, 2, 1, 2, 2, 1});
  CHECK(indices_of(argmax(x, 0)) == std::vector<std::int64_t>{0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0});
  CHECK(indices_of(argmax(x, -1)) == indices_of(argmax(x, 2)));
  CHECK(argmax(x, 1, true).shape() == Shape{2, 1, 4});
  CHECK(argmax(x, 1).shape() == Shape{2, 4});
  CHECK(argmax(x.to(kFloat32), 0).dtype() == kInt64);
}

TEST_CASE("argmax picks the first of tied maxima", "[reduce][max]") {
  CHECK(indices_of(argmax(from_vector<double>({1, 3, 3, 2}, {4}), 0)) == std::vector<std::int64_t>{1});
  CHECK(indices_of(argmax(from_vector<float>({5, 1, 5, 2, 0, 2}, {3, 2}), 0)) == std::vector<std::int64_t>{0, 1});
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(indices_of(argmax(from_vector<double>({-inf, -inf, -inf}, {3}), 0)) == std::vector<std::int64_t>{0});
  CHECK(max(from_vector<double>({-inf, -inf}, {2})).item() == -inf);
}

TEST_CASE("max propagates NaN", "[reduce][max]") {
  const Tensor v = from_vector<double>({1, NAN, 3, NAN}, {4});
  CHECK(std::isnan(max(v).item()));
  CHECK(indices_of(argmax(v, 0)) == std::vector<std::int64_t>{1});
  // NaN first, then a larger number: the NaN still wins.
  CHECK(std::isnan(max(from_vector<float>({NAN, 5}, {2})).item()));
  const Tensor m = from_vector<double>({1, 2, NAN, 0}, {2, 2});
  const std::vector<double> rows = max(m, {1}).to_vector<double>();
  CHECK(rows[0] == 2.0);
  CHECK(std::isnan(rows[1]));
  CHECK(indices_of(argmax(m, 1)) == std::vector<std::int64_t>{1, 0});
  const std::vector<double> columns = max(m, {0}).to_vector<double>();
  CHECK(std::isnan(columns[0]));
  CHECK(columns[1] == 2.0);
  CHECK(indices_of(argmax(m, 0)) == std::vector<std::int64_t>{1, 0});
}

TEST_CASE("max sends the gradient to the first maximal element", "[reduce][max]") {
  Tensor v = from_vector<double>({2, 5, 5, 1}, {4}).requires_grad_();
  max(v).backward();
  CHECK(v.grad().to_vector<double>() == std::vector<double>{0, 1, 0, 0});

  Tensor m = from_vector<double>({5, 1, 5, 2}, {2, 2}).requires_grad_();
  max(m, {0}).backward(from_vector<double>({3, 4}, {2}));
  CHECK(m.grad().to_vector<double>() == std::vector<double>{3, 0, 0, 4});

  // Non-consecutive dims go through a permuted layout; the gradient must come back in x's order.
  Tensor x = from_vector<double>({3, 9, 1, 4, 7, 2, 8, 5, 6, 0, 11, 10,  //
                                  -1, 12, -5, 2, 20, -3, 4, 4.5, 0.5, 13, 14, -2},
                                 {2, 3, 4})
                 .requires_grad_();
  max(x, {0, 2}).backward(from_vector<double>({1, 2, 3}, {3}));
  CHECK(x.grad().to_vector<double>() ==
        std::vector<double>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //
                            0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 3, 0});
}

TEST_CASE("max matches finite differences", "[reduce][max][gradcheck]") {
  manual_seed(24);
  const Tensor x = randn({3, 4, 5}, kFloat64);  // continuous random values: no ties
  const std::vector<std::pair<const char*, testing::TensorFn>> cases = {
      {"max all", [](const auto& v) { return max(v[0]); }},
      {"max dim 1", [](const auto& v) { return max(v[0], {1}); }},
      {"max dim -1 keepdim", [](const auto& v) { return max(v[0], {-1}, true); }},
      {"max dims 0,2 keepdim", [](const auto& v) { return max(v[0], {0, 2}, true); }},
      {"max dims 1,2", [](const auto& v) { return max(v[0], {1, 2}); }},
      {"max of transposed", [](const auto& v) { return max(v[0].transpose(0, 2), {1}); }},
      {"max times mean", [](const auto& v) { return mul(max(v[0], {0}), mean(v[0], {0})); }},
  };
  for (const auto& [name, fn] : cases) {
    const auto result = gradcheck(fn, {x});
    INFO(name << ": " << result.report);
    CHECK(result.ok);
    CHECK(result.compared > 0);
  }
}

TEST_CASE("max CPU backward kernel writes every element", "[reduce][max]") {
  manual_seed(25);
  const kernels::ReduceShape layout{3, 5, 7};
  const Tensor x = randn({3, 5, 7}, kFloat64);
  Tensor values = full({3, 7}, NAN, kFloat64);
  Tensor indices = full({3, 7}, -1, kInt64);
  kernels::cpu::max(arg(values), arg(indices), arg(x), layout);
  CHECK(max_abs_diff(values, max(x, {1})) == 0.0);
  const Tensor g = randn({3, 7}, kFloat64);
  Tensor grad_in = full({3, 5, 7}, NAN, kFloat64);
  kernels::cpu::max_backward(arg(grad_in), arg(g), arg(indices), layout);
  CHECK(sum(grad_in, {1}).to_vector<double>() == g.to_vector<double>());  // no NaN left, one non-zero per group
}

TEST_CASE("max CUDA kernels match the CPU kernels", "[reduce][max][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(26);
  for (DType dtype : {kFloat32, kFloat64}) {
    // floor(4 * randn) has many ties, which checks the first-index rule across
    // threads; a few NaNs check propagation. Shapes are odd on purpose: rows of
    // 4099 run the block-per-row kernel with a ragged tail.
    for (const Shape& shape : std::vector<Shape>{{7, 33, 65}, {5, 4099}, {3, 1, 517}}) {
      Tensor x = mul(randn(shape, kFloat64), 4.0);
      std::vector<double> values = x.to_vector<double>();
      for (double& v : values) v = std::floor(v);
      for (std::size_t i = 17; i < values.size(); i += 1013) values[i] = NAN;
      x = from_vector<double>(values, shape).to(dtype);
      const Tensor d = x.to(Device::cuda());
      std::vector<Dims> dim_lists = {{}, {0}, {-1}, {0, -1}};
      if (shape.size() == 3) dim_lists.insert(dim_lists.end(), {{1}, {1, 2}, {0, 1}});
      for (const Dims& dims : dim_lists) {
        INFO(dtype_name(dtype) << " shape " << shape_str(shape) << " dims " << shape_str(dims));
        const Tensor got = max(d, dims);
        CHECK(got.device().is_cuda());
        CHECK(same_values(got, max(x, dims)));
        CHECK(same_values(max(d, dims, true), max(x, dims, true)));
      }
      for (std::int64_t dim = 0; dim < static_cast<std::int64_t>(shape.size()); ++dim) {
        INFO(dtype_name(dtype) << " shape " << shape_str(shape) << " argmax dim " << dim);
        CHECK(indices_of(argmax(d, dim)) == indices_of(argmax(x, dim)));
      }
    }

    // Backward on random data (ties included) with a random upstream gradient.
    for (const Dims& dims : std::vector<Dims>{{}, {1}, {2}, {0, 2}}) {
      INFO(dtype_name(dtype) << " backward dims " << shape_str(dims));
      std::vector<double> values = mul(randn({7, 33, 65}, kFloat64), 4.0).to_vector<double>();
      for (double& v : values) v = std::floor(v);
      Tensor x = from_vector<double>(values, {7, 33, 65}).to(dtype).requires_grad_();
      Tensor d = x.detach().to(Device::cuda()).requires_grad_();
      const Tensor expected = max(x, dims);
      const Tensor upstream = randn(expected.shape(), dtype);
      expected.backward(upstream);
      max(d, dims).backward(upstream.to(Device::cuda()));
      CHECK(max_abs_diff(d.grad(), x.grad()) == 0.0);
    }

    // The kernels themselves, on poisoned outputs: every element must be written.
    const kernels::ReduceShape layout{3, 129, 5};
    const Tensor x = randn({3, 129, 5}, dtype);
    const Tensor d = x.to(Device::cuda());
    Tensor values = full({3, 5}, NAN, TensorOptions(dtype).device(Device::cuda()));
    Tensor indices = full({3, 5}, -1, TensorOptions(kInt64).device(Device::cuda()));
    run_kernel(Device::cuda(), [] {}, [&] { kernels::cuda::max(arg(values), arg(indices), arg(d), layout); });
    CHECK(same_values(values, max(x, {1})));
    CHECK(indices_of(indices) == indices_of(argmax(x, 1)));
    const Tensor g = randn({3, 5}, dtype);
    const Tensor g_cuda = g.to(Device::cuda());
    Tensor grad_in = full({3, 129, 5}, NAN, TensorOptions(dtype).device(Device::cuda()));
    run_kernel(Device::cuda(), [] {},
               [&] { kernels::cuda::max_backward(arg(grad_in), arg(g_cuda), arg(indices), layout); });
    CHECK(same_values(sum(grad_in, {1}), g_cuda));
  }
}

TEST_CASE("max and argmax reject bad input", "[reduce][max][errors]") {
  const Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH(max(x, {2}), Catch::Contains("max: dimension 2 is out of range"));
  CHECK_THROWS_WITH(max(x, {0, -2}), Catch::Contains("max: a dimension is listed twice"));
  CHECK_THROWS_WITH(argmax(x, 5), Catch::Contains("argmax: dimension 5 is out of range"));
  CHECK_THROWS_WITH(max(zeros({2}, kInt64)), Catch::Contains("max: expected a floating tensor, got int64"));
  CHECK_THROWS_WITH(argmax(zeros({2}, kInt32), 0), Catch::Contains("argmax: expected a floating tensor, got int32"));
  CHECK_THROWS_WITH(max(zeros({0, 3})), Catch::Contains("max: cannot reduce over zero elements (x is [0, 3]"));
  CHECK_THROWS_WITH(max(zeros({0, 3}), {0}), Catch::Contains("max: cannot reduce over zero elements"));
  CHECK_THROWS_WITH(argmax(zeros({2, 0}), 1), Catch::Contains("argmax: cannot reduce over zero elements"));
  // Reducing a non-empty dim of a tensor with an empty one is fine: the result is empty.
  CHECK(max(zeros({0, 3}), {1}).shape() == Shape{0});
}
