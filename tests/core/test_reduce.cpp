#include <catch2/catch.hpp>

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
