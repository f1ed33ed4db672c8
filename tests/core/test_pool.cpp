// Pooling and dropout: hand-computed values, dropout statistics and seeding,
// errors, and tables of cases (support/op_table.h) driving the
// finite-difference gradients and the CUDA-vs-CPU parity.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/elementwise.h"
#include "core/pool.h"
#include "core/random.h"
#include "core/reduce.h"
#include "kernels/philox.h"
#include "kernels/pool.h"
#include "support/compare.h"
#include "support/cpu_threads.h"
#include "support/cuda.h"
#include "support/op_table.h"

using namespace basin;
using basin::testing::OpCase;
using basin::testing::Outputs;
using basin::testing::ParityRun;
using basin::testing::Runs;
using basin::testing::absolute;
using basin::testing::equal;
using basin::testing::exact;
using basin::testing::input;
using basin::testing::max_abs_diff;
using basin::testing::scaled;
using basin::testing::uniform;

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

// ---------------------------------------------------------------- the tables

namespace {

struct PoolCase {
  std::string name;
  Shape shape;
  Pair kernel, stride, padding;
};

// Small cases for the finite-difference checks: odd sizes, overlapping and
// disjoint windows, padding, non-square kernels.
std::vector<PoolCase> small_cases() {
  return {
      {"k3 s2 p1", {2, 2, 5, 5}, {3, 3}, {2, 2}, {1, 1}},
      {"k2 s2", {1, 3, 4, 6}, {2, 2}, {2, 2}, {0, 0}},
      {"k3 s1 p1", {1, 2, 4, 3}, {3, 3}, {1, 1}, {1, 1}},
      {"k(3,2) s(2,1) p(1,1)", {2, 1, 5, 4}, {3, 2}, {2, 1}, {1, 1}},
      {"k2 s3 (gaps)", {1, 2, 7, 5}, {2, 2}, {3, 3}, {0, 0}},
  };
}

// Odd cases for CUDA parity.
std::vector<PoolCase> parity_cases() {
  return {
      {"3x5x9x9 k3 s2 p1", {3, 5, 9, 9}, {3, 3}, {2, 2}, {1, 1}},
      {"3x5x8x8 k2 s2", {3, 5, 8, 8}, {2, 2}, {2, 2}, {0, 0}},
      {"3x5x7x10 k(3,2) s(1,2) p(1,1)", {3, 5, 7, 10}, {3, 2}, {1, 2}, {1, 1}},
      {"3x5x11x9 k2 s3 (gaps)", {3, 5, 11, 9}, {2, 2}, {3, 3}, {0, 0}},
      // More outputs than the grid has threads: exercises the grid-stride loops.
      {"67x64x33x33 k3 s2 p1", {67, 64, 33, 33}, {3, 3}, {2, 2}, {1, 1}},
  };
}

using Pool = Tensor (*)(const Tensor&, Pair, Pair, Pair);

// Inputs from N(0, 1): continuous, so max_pool2d meets no ties (kinks).
// Parity poisons the CUDA pool's free memory before each pass, so an output
// element a kernel forgets to write shows up as NaN; the bound is
// max |cuda - cpu| <= tol * (1 + max |cpu|).
std::vector<OpCase> pool_cases(Pool pool, bool linear) {
  std::vector<OpCase> cases;
  const auto entry = [pool](const PoolCase& c, Runs runs) {
    return OpCase{.name = c.name,
                  .fn = [pool, c](const auto& x) { return pool(x[0], c.kernel, c.stride, c.padding); },
                  .inputs = {input(c.shape)},
                  .runs = runs,
                  .tolerances = scaled(1e-6, 1e-14),
                  .poison = true};
  };
  for (const PoolCase& c : small_cases()) {
    cases.push_back(entry(c, Runs::Gradients));
    cases.back().all_compared = linear;  // avg_pool2d is linear: no element may be skipped
  }
  for (const PoolCase& c : parity_cases()) cases.push_back(entry(c, Runs::Parity));
  return cases;
}

Tensor max_pool(const Tensor& x, Pair kernel, Pair stride, Pair padding) {
  return max_pool2d(x, kernel, stride, padding);
}
Tensor avg_pool(const Tensor& x, Pair kernel, Pair stride, Pair padding) {
  return avg_pool2d(x, kernel, stride, padding);
}

std::vector<OpCase> global_avg_pool_cases() {
  return {{.name = "global_avg_pool2d",
           .fn = [](const auto& x) { return global_avg_pool2d(x[0]); },
           .inputs = {input({2, 3, 3, 5}, {3, 5, 9, 9})},
           .tolerances = absolute(1e-6, 1e-14),
           .all_compared = true}};
}

}  // namespace

TEST_CASE("max_pool2d matches finite differences", "[pool][gradcheck]") {
  testing::run_gradient_checks(pool_cases(max_pool, false));
}

TEST_CASE("avg_pool2d matches finite differences", "[pool][gradcheck]") {
  testing::run_gradient_checks(pool_cases(avg_pool, true));
}

TEST_CASE("global_avg_pool2d matches finite differences", "[pool][gradcheck]") {
  testing::run_gradient_checks(global_avg_pool_cases());
}

TEST_CASE("dropout matches finite differences with a fixed mask", "[dropout][gradcheck]") {
  // Reseeding inside the function gives every evaluation the same mask.
  const OpCase c{.name = "dropout p 0.4",
                 .fn = [](const auto& x) {
                   manual_seed(9);
                   return dropout(x[0], 0.4, true);
                 },
                 .inputs = {input({5, 7}, uniform(0.5, 2.0))},  // no zeros: a dropped element shows as 0
                 .all_compared = true};
  // The mask must both drop and keep for the check to mean anything.
  const std::vector<double> y = values_of(c.fn({rand({5, 7}, kFloat64, 0.5, 2.0)}).tensors[0]);
  const auto dropped = std::count(y.begin(), y.end(), 0.0);
  REQUIRE(dropped > 0);
  REQUIRE(dropped < 35);
  testing::check_gradients(c);
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

TEST_CASE("max_pool2d CUDA kernels match the CPU kernels", "[pool][cuda]") {
  testing::run_cuda_parity(pool_cases(max_pool, false));
}

TEST_CASE("avg_pool2d CUDA kernels match the CPU kernels", "[pool][cuda]") {
  testing::run_cuda_parity(pool_cases(avg_pool, true));
}

TEST_CASE("global_avg_pool2d on CUDA matches the CPU", "[pool][cuda]") {
  testing::run_cuda_parity(global_avg_pool_cases());
}

// The ops with the reference kernels and with the CPU engine's, at the CUDA
// parity tolerances: the pooling kernels agree exactly, global_avg_pool2d
// runs the engine's float32 mean.
TEST_CASE("max_pool2d CPU engine kernels match the reference", "[pool][engine]") {
  testing::run_engine_parity(pool_cases(max_pool, false));
}

TEST_CASE("avg_pool2d CPU engine kernels match the reference", "[pool][engine]") {
  testing::run_engine_parity(pool_cases(avg_pool, true));
}

TEST_CASE("global_avg_pool2d on the CPU engine matches the reference", "[pool][engine]") {
  testing::run_engine_parity(global_avg_pool_cases());
}

// Two draws in a row on each side from the same state (the second one starts
// at a nonzero counter offset) must give the same masks on CUDA as on the
// CPU, bit for bit; the backward through the first. Odd sizes leave a partial
// group of four at the end; the large one needs the grid-stride loop.
TEST_CASE("dropout draws the same mask on CUDA and CPU", "[dropout][cuda]") {
  std::vector<OpCase> cases;
  for (const Shape& shape : {Shape{3, 5, 9, 9}, Shape{5000011}}) {
    cases.push_back({.name = "dropout p 0.3 twice " + shape_str(shape),
                     .fn = [](const auto& x) -> Outputs {
                       manual_seed(23);
                       const Tensor first = dropout(x[0], 0.3, true);
                       return {first, dropout(x[0], 0.3, true).detach()};
                     },
                     .inputs = {input(shape, uniform(0.5, 1.5))},
                     .runs = Runs::Parity,
                     .tolerances = exact(),
                     .poison = true,
                     .also = [](const ParityRun& run) { CHECK_FALSE(equal(run.expected[0], run.expected[1])); }});
  }
  testing::run_cuda_parity(cases);
}

// ---------------------------------------------------------------- CPU engine

namespace {

kernels::Pool2dShape pool_shape(const Shape& input, Pair kernel, Pair stride, Pair padding) {
  kernels::Pool2dShape s;
  s.batch = input[0];
  s.channels = input[1];
  s.height = input[2];
  s.width = input[3];
  s.kernel_h = kernel[0];
  s.kernel_w = kernel[1];
  s.stride_h = stride[0];
  s.stride_w = stride[1];
  s.pad_h = padding[0];
  s.pad_w = padding[1];
  s.out_height = (s.height + 2 * s.pad_h - s.kernel_h) / s.stride_h + 1;
  s.out_width = (s.width + 2 * s.pad_w - s.kernel_w) / s.stride_w + 1;
  return s;
}

}  // namespace

// The engine runs the reference's float32 arithmetic plane by plane, so the
// two agree bit for bit: values, indices (ties and NaNs included) and both
// backward scatters. The inputs are small integers, so windows hold ties,
// plus a few NaNs; the last shape has enough planes for several threads.
TEST_CASE("pooling CPU engine kernels match the reference bit for bit", "[pool][engine]") {
  std::vector<PoolCase> cases = parity_cases();
  cases.push_back({"3x5x7x9 k3 s1 p1", {3, 5, 7, 9}, {3, 3}, {1, 1}, {1, 1}});
  cases.push_back({"3x5x7x9 k(2,3) s(2,1)", {3, 5, 7, 9}, {2, 3}, {2, 1}, {0, 0}});
  testing::for_engine_thread_counts([&] {
    for (const PoolCase& c : cases) {
      INFO(c.name);
      manual_seed(60);
      std::vector<float> values = randn(c.shape).to_vector<float>();
      for (float& v : values) v = std::round(2.0f * v);
      const Tensor finite = from_vector<float>(values, c.shape);
      for (std::size_t i = 17; i < values.size(); i += 1001) values[i] = NAN;
      const Tensor x = from_vector<float>(values, c.shape);
      const kernels::Pool2dShape s = pool_shape(c.shape, c.kernel, c.stride, c.padding);
      const Shape out_shape = {c.shape[0], c.shape[1], s.out_height, s.out_width};
      const Tensor gy = randn(out_shape);
      const double nan = std::numeric_limits<double>::quiet_NaN();

      const Tensor y_ref = full(out_shape, nan), y_fast = full(out_shape, nan);
      const Tensor at_ref = zeros(out_shape, kInt32), at_fast = zeros(out_shape, kInt32);
      kernels::reference::max_pool2d(arg(y_ref), arg(at_ref), arg(x), s);
      kernels::fast::max_pool2d(arg(y_fast), arg(at_fast), arg(x), s);
      CHECK(testing::close_enough(y_fast, y_ref, exact(true).float32));
      CHECK(equal(at_fast, at_ref));

      const Tensor gx_ref = full(c.shape, nan), gx_fast = full(c.shape, nan);
      kernels::reference::max_pool2d_backward(arg(gx_ref), arg(gy), arg(at_ref), s);
      kernels::fast::max_pool2d_backward(arg(gx_fast), arg(gy), arg(at_ref), s);
      CHECK(equal(gx_fast, gx_ref));

      kernels::reference::avg_pool2d(arg(y_ref), arg(finite), s);
      kernels::fast::avg_pool2d(arg(y_fast), arg(finite), s);
      CHECK(equal(y_fast, y_ref));

      kernels::reference::avg_pool2d_backward(arg(gx_ref), arg(gy), s);
      kernels::fast::avg_pool2d_backward(arg(gx_fast), arg(gy), s);
      CHECK(equal(gx_fast, gx_ref));
    }
  });
}

TEST_CASE("dropout CPU engine kernels draw the reference's mask", "[dropout][engine]") {
  testing::for_engine_thread_counts([] {
    for (std::int64_t n : {std::int64_t{127}, std::int64_t{1000003}}) {
      INFO(n << " elements");
      manual_seed(61);
      const Tensor x = randn({n});
      const kernels::PhiloxDraw draw{12345, 7};
      const Tensor y_ref = empty({n}), y_fast = empty({n});
      const Tensor mask_ref = empty({n}, kUInt8), mask_fast = empty({n}, kUInt8);
      kernels::reference::dropout(arg(y_ref), arg(mask_ref), arg(x), draw, 0.3);
      kernels::fast::dropout(arg(y_fast), arg(mask_fast), arg(x), draw, 0.3);
      CHECK(equal(mask_fast, mask_ref));
      CHECK(equal(y_fast, y_ref));

      const Tensor g = randn({n});
      const Tensor gx_ref = empty({n}), gx_fast = empty({n});
      kernels::reference::dropout_backward(arg(gx_ref), arg(g), arg(mask_ref), 0.3);
      kernels::fast::dropout_backward(arg(gx_fast), arg(g), arg(mask_ref), 0.3);
      CHECK(equal(gx_fast, gx_ref));
    }
  });
}

// float64 runs the reference inside the engine entry points.
TEST_CASE("pooling CPU engine kernels run float64 on the reference", "[pool][engine]") {
  manual_seed(62);
  const Shape shape = {3, 5, 7, 9};
  const Tensor x = randn(shape, kFloat64);
  const kernels::Pool2dShape s = pool_shape(shape, {3, 3}, {2, 2}, {1, 1});
  const Shape out_shape = {3, 5, s.out_height, s.out_width};
  const Tensor y_ref = empty(out_shape, kFloat64), y_fast = empty(out_shape, kFloat64);
  kernels::reference::avg_pool2d(arg(y_ref), arg(x), s);
  kernels::fast::avg_pool2d(arg(y_fast), arg(x), s);
  CHECK(equal(y_fast, y_ref));
}
