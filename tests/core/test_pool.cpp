// Pooling and dropout: hand-computed values, finite-difference gradients,
// dropout statistics and seeding, errors, and CUDA-vs-CPU parity.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/pool.h"
#include "core/random.h"
#include "core/reduce.h"
#include "kernels/philox.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/gradcheck.h"

using namespace basin;
using basin::testing::equal;
using basin::testing::gradcheck;
using basin::testing::max_abs_diff;

namespace {

std::vector<double> values_of(const Tensor& t) { return t.to_vector<double>(); }

Tensor leaf(const std::vector<double>& values, const Shape& shape) {
  return from_vector<double>(values, shape).requires_grad_();
}

}  // namespace

// ---------------------------------------------------------------- values

TEST_CASE("max_pool2d takes the window maximum", "[pool]") {
  // 0..15 in a 4x4 plane; 2x2 windows with stride 2 pick each block's corner.
  std::vector<double> ramp(16);
  for (int i = 0; i < 16; ++i) ramp[i] = i;
  const Tensor x = from_vector<double>(ramp, {1, 1, 4, 4});
  const Tensor y = max_pool2d(x, {2, 2}, {2, 2});
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  CHECK(values_of(y) == std::vector<double>{5, 7, 13, 15});
}

TEST_CASE("max_pool2d pads with -inf, not zero", "[pool]") {
  // All inputs negative: zero padding would win every window.
  const Tensor x = from_vector<double>({-1, -2, -3, -4, -5, -6, -7, -8, -9}, {1, 1, 3, 3});
  const Tensor y = max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  CHECK(values_of(y) == std::vector<double>{-1, -2, -4, -5});
}

TEST_CASE("max_pool2d sends a tie's gradient to the first element of the window", "[pool]") {
  // Window 0 holds three 3s; window 1 holds three 2s, the first at (0, 3).
  Tensor x = leaf({3, 3, 1, 2,  //
                   3, 1, 2, 2},
                  {1, 1, 2, 4});
  const Tensor y = max_pool2d(x, {2, 2}, {2, 2});
  CHECK(values_of(y) == std::vector<double>{3, 2});
  y.backward(from_vector<double>({10, 20}, {1, 1, 1, 2}));
  CHECK(values_of(x.grad()) == std::vector<double>{10, 0, 0, 20, 0, 0, 0, 0});
}

TEST_CASE("max_pool2d sums the gradients of overlapping windows that share a maximum", "[pool]") {
  Tensor x = leaf({1, 2, 3, 4,  //
                   5, 9, 6, 7,  //
                   8, 0, 1, 2},
                  {1, 1, 3, 4});
  const Tensor y = max_pool2d(x, {3, 3}, {1, 1});  // two windows, both holding the 9
  CHECK(values_of(y) == std::vector<double>{9, 9});
  y.backward(from_vector<double>({1.5, 4.0}, {1, 1, 1, 2}));
  CHECK(values_of(x.grad()) == std::vector<double>{0, 0, 0, 0, 0, 5.5, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("max_pool2d propagates NaN", "[pool]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x = from_vector<double>({1, nan, 3, 4, 5, 6, 7, 8}, {1, 1, 2, 4});
  const std::vector<double> y = values_of(max_pool2d(x, {2, 2}, {2, 2}));
  CHECK(std::isnan(y[0]));
  CHECK(y[1] == 8);
}

TEST_CASE("avg_pool2d counts padding as zeros", "[pool]") {
  Tensor x = leaf({1, 2, 3, 4}, {1, 1, 2, 2});
  const Tensor y = avg_pool2d(x, {2, 2}, {1, 1}, {1, 1});
  CHECK(y.shape() == Shape{1, 1, 3, 3});
  // Every window divides by 4, however much of it is padding.
  const std::vector<double> expected{0.25, 0.75, 0.5, 1.0, 2.5, 1.5, 0.75, 1.75, 1.0};
  CHECK(max_abs_diff(y, from_vector<double>(expected, {1, 1, 3, 3})) < 1e-15);
  // Each input collects a quarter of the four outputs whose windows cover it.
  y.backward(from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}));
  CHECK(max_abs_diff(x.grad(), from_vector<double>({3, 4, 6, 7}, {1, 1, 2, 2})) < 1e-15);
}

TEST_CASE("avg_pool2d with a non-square kernel and stride", "[pool]") {
  std::vector<double> ramp(12);
  for (int i = 0; i < 12; ++i) ramp[i] = i + 1;  // 3x4: rows 1..4, 5..8, 9..12
  const Tensor x = from_vector<double>(ramp, {1, 1, 3, 4});
  const Tensor y = avg_pool2d(x, {3, 2}, {1, 2});
  CHECK(y.shape() == Shape{1, 1, 1, 2});
  CHECK(max_abs_diff(y, from_vector<double>({(1 + 2 + 5 + 6 + 9 + 10) / 6.0, (3 + 4 + 7 + 8 + 11 + 12) / 6.0},
                                            {1, 1, 1, 2})) < 1e-14);
}

TEST_CASE("global_avg_pool2d averages each plane to [N, C, 1, 1]", "[pool]") {
  manual_seed(4);
  const Tensor x = randn({2, 3, 5, 7}, kFloat64);
  const Tensor y = global_avg_pool2d(x);
  CHECK(y.shape() == Shape{2, 3, 1, 1});
  const std::vector<double> v = values_of(x);
  const std::vector<double> got = values_of(y);
  for (int plane = 0; plane < 6; ++plane) {
    double total = 0.0;
    for (int i = 0; i < 35; ++i) total += v[plane * 35 + i];
    CHECK(std::abs(got[plane] - total / 35.0) < 1e-14);
  }
}

TEST_CASE("pooling reads non-contiguous input correctly", "[pool]") {
  manual_seed(5);
  const Tensor base = randn({2, 3, 7, 6}, kFloat64);
  const Tensor view = base.transpose(2, 3);  // [2, 3, 6, 7], not contiguous
  CHECK(equal(max_pool2d(view, {3, 3}, {2, 2}, {1, 1}), max_pool2d(view.contiguous(), {3, 3}, {2, 2}, {1, 1})));
  CHECK(equal(avg_pool2d(view, {3, 3}, {2, 2}, {1, 1}), avg_pool2d(view.contiguous(), {3, 3}, {2, 2}, {1, 1})));
}

// ---------------------------------------------------------------- gradients

namespace {

struct PoolCase {
  const char* name;
  Shape shape;
  Pair kernel, stride, padding;
};

// Odd sizes, overlapping and disjoint windows, padding, non-square kernels.
std::vector<PoolCase> pool_cases() {
  return {
      {"k3 s2 p1", {2, 2, 5, 5}, {3, 3}, {2, 2}, {1, 1}},
      {"k2 s2", {1, 3, 4, 6}, {2, 2}, {2, 2}, {0, 0}},
      {"k3 s1 p1", {1, 2, 4, 3}, {3, 3}, {1, 1}, {1, 1}},
      {"k(3,2) s(2,1) p(1,1)", {2, 1, 5, 4}, {3, 2}, {2, 1}, {1, 1}},
      {"k2 s3 (gaps)", {1, 2, 7, 5}, {2, 2}, {3, 3}, {0, 0}},
  };
}

}  // namespace

TEST_CASE("max_pool2d matches finite differences", "[pool][gradcheck]") {
  manual_seed(6);
  for (const PoolCase& c : pool_cases()) {
    SECTION(c.name) {
      // Continuous random data: ties (kinks) have probability zero.
      const auto result = gradcheck([&](const auto& x) { return max_pool2d(x[0], c.kernel, c.stride, c.padding); },
                                    {randn(c.shape, kFloat64)});
      INFO(c.name << ": " << result.report);
      CHECK(result.ok);
      CHECK(result.compared > 0);
    }
  }
}

TEST_CASE("avg_pool2d matches finite differences", "[pool][gradcheck]") {
  manual_seed(7);
  for (const PoolCase& c : pool_cases()) {
    SECTION(c.name) {
      const auto result = gradcheck([&](const auto& x) { return avg_pool2d(x[0], c.kernel, c.stride, c.padding); },
                                    {randn(c.shape, kFloat64)});
      INFO(c.name << ": " << result.report);
      CHECK(result.ok);
      CHECK(result.compared > 0);
    }
  }
}

TEST_CASE("global_avg_pool2d matches finite differences", "[pool][gradcheck]") {
  manual_seed(8);
  const auto result = gradcheck([](const auto& x) { return global_avg_pool2d(x[0]); }, {randn({2, 3, 3, 5}, kFloat64)});
  INFO(result.report);
  CHECK(result.ok);
  CHECK(result.compared == 90);
}

TEST_CASE("dropout matches finite differences with a fixed mask", "[dropout][gradcheck]") {
  // Reseeding inside the function gives every evaluation the same mask.
  const auto fn = [](const std::vector<Tensor>& x) {
    manual_seed(9);
    return dropout(x[0], 0.4, true);
  };
  manual_seed(10);
  const Tensor x = rand({5, 7}, kFloat64, 0.5, 2.0);  // no zeros: a dropped element shows as 0
  const std::vector<double> y = values_of(fn({x}));
  const auto dropped = std::count(y.begin(), y.end(), 0.0);
  REQUIRE(dropped > 0);  // the mask must both drop and keep for the check to mean anything
  REQUIRE(dropped < 35);
  const auto result = gradcheck(fn, {x});
  INFO(result.report);
  CHECK(result.ok);
  CHECK(result.compared == 35);
}

// ---------------------------------------------------------------- dropout semantics

TEST_CASE("dropout keeps 1 - p of the elements and preserves the mean", "[dropout]") {
  manual_seed(11);
  const double p = 0.3;
  const std::int64_t n = 200003;
  const Tensor y = dropout(ones({n}), p, true);
  const std::vector<float> v = y.to_vector<float>();
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  std::int64_t kept = 0, neither = 0;
  double total = 0.0;
  for (float value : v) {
    neither += value != 0.0f && value != scale;
    kept += value != 0.0f;
    total += value;
  }
  CHECK(neither == 0);  // every element is dropped (0) or kept and scaled
  // Binomial standard deviation sqrt(p(1-p)/n) ~ 0.001: these bounds are ~7 sigma.
  CHECK(std::abs(static_cast<double>(kept) / n - (1.0 - p)) < 0.007);
  CHECK(std::abs(total / n - 1.0) < 0.01);
}

TEST_CASE("dropout draws element i from Philox counter offset + i / 4, lane i % 4", "[dropout]") {
  // The formula the CUDA kernel also follows; pinning it here keeps the two devices in step.
  const double p = 0.5;
  manual_seed(12);
  (void)rand({10});  // move the counter off zero: offset 3
  const std::uint64_t offset = default_generator().offset();
  REQUIRE(offset == 3);
  const Tensor y = dropout(full({103}, 2.0, kFloat64), p, true);
  const std::vector<double> v = values_of(y);
  for (std::int64_t i = 0; i < 103; ++i) {
    const bool keep = kernels::philox_uniform(12, offset, i, 0.0, 1.0) >= p;
    CHECK(v[i] == (keep ? 4.0 : 0.0));
  }
  CHECK(default_generator().offset() == offset + 26);  // ceil(103 / 4) counters reserved
}

TEST_CASE("dropout masks follow the seed", "[dropout]") {
  const Tensor x = full({3, 5, 9, 9}, 1.0);
  manual_seed(13);
  const Tensor a = dropout(x, 0.5, true);
  const Tensor b = dropout(x, 0.5, true);  // the generator moved on: a new mask
  manual_seed(13);
  const Tensor a_again = dropout(x, 0.5, true);
  manual_seed(14);
  const Tensor other_seed = dropout(x, 0.5, true);
  CHECK(equal(a, a_again));
  CHECK_FALSE(equal(a, b));
  CHECK_FALSE(equal(a, other_seed));
}

TEST_CASE("dropout is the identity in eval mode and at p = 0", "[dropout]") {
  manual_seed(15);
  Tensor x = randn({4, 6}).requires_grad_();
  const std::uint64_t before = default_generator().offset();
  const Tensor eval = dropout(x, 0.5, false);
  const Tensor p0 = dropout(x, 0.0, true);
  CHECK(eval.impl() == x.impl());
  CHECK(p0.impl() == x.impl());
  CHECK(default_generator().offset() == before);  // no draw spent
  const Tensor train = dropout(x, 0.5, true);
  CHECK_FALSE(equal(train, x));
  CHECK(train.requires_grad());
}

TEST_CASE("dropout backward applies the forward mask and scale", "[dropout]") {
  manual_seed(16);
  Tensor x = rand({7, 11}, kFloat64, 0.5, 1.5).requires_grad_();
  const Tensor y = dropout(x, 0.25, true);
  const Tensor g = rand({7, 11}, kFloat64, 1.0, 2.0);
  y.backward(g);
  // y = x * m and dx = g * m with the same m (0 or 4/3).
  const std::vector<double> xv = values_of(x), yv = values_of(y), gv = values_of(g), dx = values_of(x.grad());
  int kept = 0;
  for (std::size_t i = 0; i < xv.size(); ++i) {
    const double m = yv[i] / xv[i];
    CHECK((m == 0.0 || std::abs(m - 4.0 / 3.0) < 1e-15));
    CHECK(std::abs(dx[i] - gv[i] * m) < 1e-15);
    kept += m != 0.0;
  }
  CHECK(kept > 0);
  CHECK(kept < 77);
}

// ---------------------------------------------------------------- errors

TEST_CASE("pooling and dropout reject bad arguments with clear errors", "[pool][dropout][errors]") {
  const Tensor x = ones({2, 3, 4, 4});
  CHECK_THROWS_WITH(max_pool2d(ones({3, 4, 4}), {2, 2}, {2, 2}),
                    Catch::Contains("max_pool2d: expected a 4-D input [N, C, H, W], got [3, 4, 4]"));
  CHECK_THROWS_WITH(avg_pool2d(ones({3, 4}), {2, 2}, {2, 2}),
                    Catch::Contains("avg_pool2d: expected a 4-D input [N, C, H, W], got [3, 4]"));
  CHECK_THROWS_WITH(global_avg_pool2d(ones({3, 4})),
                    Catch::Contains("global_avg_pool2d: expected a 4-D input [N, C, H, W], got [3, 4]"));
  CHECK_THROWS_WITH(
      max_pool2d(x, {5, 5}, {1, 1}),
      Catch::Contains("max_pool2d: kernel (5, 5) is larger than the padded input 4x4 (input [2, 3, 4, 4]"));
  CHECK_THROWS_WITH(avg_pool2d(x, {3, 7}, {1, 1}, {1, 1}),
                    Catch::Contains("avg_pool2d: kernel (3, 7) is larger than the padded input 6x6"));
  CHECK_THROWS_WITH(max_pool2d(x, {2, 2}, {0, 1}),
                    Catch::Contains("max_pool2d: stride must be at least 1, got (0, 1)"));
  CHECK_THROWS_WITH(avg_pool2d(x, {2, 2}, {1, -1}),
                    Catch::Contains("avg_pool2d: stride must be at least 1, got (1, -1)"));
  CHECK_THROWS_WITH(max_pool2d(x, {0, 2}, {1, 1}),
                    Catch::Contains("max_pool2d: kernel must be at least 1, got (0, 2)"));
  CHECK_THROWS_WITH(max_pool2d(x, {3, 3}, {1, 1}, {2, 1}),
                    Catch::Contains("max_pool2d: padding (2, 1) must be at most half the kernel (3, 3)"));
  CHECK_THROWS_WITH(avg_pool2d(x, {3, 3}, {1, 1}, {0, -1}),
                    Catch::Contains("avg_pool2d: padding must be non-negative, got (0, -1)"));
  CHECK_THROWS_WITH(max_pool2d(ones({1, 1, 0, 4}), {1, 1}, {1, 1}),
                    Catch::Contains("max_pool2d: input [1, 1, 0, 4] has an empty spatial dim"));
  CHECK_THROWS_WITH(max_pool2d(ones({1, 1, 4, 4}, kInt64), {2, 2}, {2, 2}),
                    Catch::Contains("max_pool2d: expected a floating tensor, got int64"));
  CHECK_THROWS_WITH(dropout(x, 1.0, true), Catch::Contains("dropout: p must be in [0, 1), got 1"));
  CHECK_THROWS_WITH(dropout(x, -0.1, false), Catch::Contains("dropout: p must be in [0, 1), got -0.1"));
  CHECK_THROWS_WITH(dropout(ones({3}, kUInt8), 0.5, true),
                    Catch::Contains("dropout: expected a floating tensor, got uint8"));
}

// ---------------------------------------------------------------- CUDA parity

namespace {

// Leaves freed NaN blocks in the device pool, so an output element a kernel
// forgets to write is likely to show up as NaN rather than as stale right values.
void poison_free_memory(Device device) {
  (void)full({1 << 22}, std::numeric_limits<double>::quiet_NaN(), TensorOptions(kFloat64).device(device));
}

struct ParityCase {
  const char* name;
  Shape shape;
  Pair kernel, stride, padding;
};

std::vector<ParityCase> parity_cases() {
  return {
      {"3x5x9x9 k3 s2 p1", {3, 5, 9, 9}, {3, 3}, {2, 2}, {1, 1}},
      {"3x5x8x8 k2 s2", {3, 5, 8, 8}, {2, 2}, {2, 2}, {0, 0}},
      {"3x5x7x10 k(3,2) s(1,2) p(1,1)", {3, 5, 7, 10}, {3, 2}, {1, 2}, {1, 1}},
      {"3x5x11x9 k2 s3 (gaps)", {3, 5, 11, 9}, {2, 2}, {3, 3}, {0, 0}},
      // More outputs than the grid has threads: exercises the grid-stride loops.
      {"67x64x33x33 k3 s2 p1", {67, 64, 33, 33}, {3, 3}, {2, 2}, {1, 1}},
  };
}

using PoolFn = std::function<Tensor(const Tensor&, const ParityCase&)>;

void check_pool_parity(const char* op, const PoolFn& pool) {
  manual_seed(20);
  for (const ParityCase& c : parity_cases()) {
    for (DType dtype : {kFloat32, kFloat64}) {
      INFO(op << " " << c.name << " " << dtype_name(dtype));
      const Tensor x_cpu = randn(c.shape, dtype).requires_grad_();
      const Tensor x_cuda = x_cpu.detach().to(Device::cuda()).requires_grad_();
      poison_free_memory(Device::cuda());
      const Tensor expected = pool(x_cpu, c);
      const Tensor got = pool(x_cuda, c);
      REQUIRE(got.device().is_cuda());
      const double tolerance = dtype == kFloat32 ? 1e-6 : 1e-14;
      const double scale = 1.0 + max_abs_diff(expected, zeros_like(expected));
      CHECK(max_abs_diff(got, expected) <= tolerance * scale);

      const Tensor upstream = randn(expected.shape(), dtype);
      expected.backward(upstream);
      poison_free_memory(Device::cuda());
      got.backward(upstream.to(Device::cuda()));
      const Tensor grad_scale = zeros_like(x_cpu.grad());
      CHECK(max_abs_diff(x_cuda.grad(), x_cpu.grad()) <=
            tolerance * (1.0 + max_abs_diff(x_cpu.grad(), grad_scale)));
    }
  }
}

}  // namespace

TEST_CASE("max_pool2d CUDA kernels match the CPU kernels", "[pool][cuda]") {
  BASIN_REQUIRE_CUDA();
  check_pool_parity("max_pool2d",
                    [](const Tensor& x, const ParityCase& c) { return max_pool2d(x, c.kernel, c.stride, c.padding); });
}

TEST_CASE("avg_pool2d CUDA kernels match the CPU kernels", "[pool][cuda]") {
  BASIN_REQUIRE_CUDA();
  check_pool_parity("avg_pool2d",
                    [](const Tensor& x, const ParityCase& c) { return avg_pool2d(x, c.kernel, c.stride, c.padding); });
}

TEST_CASE("global_avg_pool2d on CUDA matches the CPU", "[pool][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(21);
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO(dtype_name(dtype));
    const Tensor x_cpu = randn({3, 5, 9, 9}, dtype).requires_grad_();
    const Tensor x_cuda = x_cpu.detach().to(Device::cuda()).requires_grad_();
    const Tensor expected = global_avg_pool2d(x_cpu);
    const Tensor got = global_avg_pool2d(x_cuda);
    const double tolerance = dtype == kFloat32 ? 1e-6 : 1e-14;
    CHECK(max_abs_diff(got, expected) <= tolerance);
    const Tensor upstream = randn(expected.shape(), dtype);
    expected.backward(upstream);
    got.backward(upstream.to(Device::cuda()));
    CHECK(max_abs_diff(x_cuda.grad(), x_cpu.grad()) <= tolerance);
  }
}

TEST_CASE("dropout draws the same mask on CUDA and CPU", "[dropout][cuda]") {
  BASIN_REQUIRE_CUDA();
  // Odd sizes leave a partial group of four at the end; the large one needs
  // the grid-stride loop.
  for (const Shape& shape : {Shape{3, 5, 9, 9}, Shape{5000011}}) {
    for (DType dtype : {kFloat32, kFloat64}) {
      INFO(shape_str(shape) << " " << dtype_name(dtype));
      manual_seed(22);
      const Tensor x_cpu = rand(shape, dtype, 0.5, 1.5).requires_grad_();
      const Tensor x_cuda = x_cpu.detach().to(Device::cuda()).requires_grad_();
      const Tensor upstream = randn(shape, dtype);

      // Two draws in a row on each side from the same state: the second one
      // starts at a nonzero counter offset.
      manual_seed(23);
      const Tensor cpu_first = dropout(x_cpu, 0.3, true);
      const Tensor cpu_second = dropout(x_cpu, 0.3, true);
      manual_seed(23);
      poison_free_memory(Device::cuda());
      const Tensor cuda_first = dropout(x_cuda, 0.3, true);
      const Tensor cuda_second = dropout(x_cuda, 0.3, true);
      CHECK(equal(cuda_first, cpu_first));
      CHECK(equal(cuda_second, cpu_second));
      CHECK_FALSE(equal(cpu_first, cpu_second));

      cpu_first.backward(upstream);
      poison_free_memory(Device::cuda());
      cuda_first.backward(upstream.to(Device::cuda()));
      CHECK(equal(x_cuda.grad(), x_cpu.grad()));
    }
  }
}
