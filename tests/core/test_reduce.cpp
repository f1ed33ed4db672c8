// Reductions: sum, mean, max and argmax. Values, NaN handling and errors, and
// one table of cases (support/op_table.h) driving the finite-difference
// gradients and the CUDA-vs-CPU parity (values, indices and backward).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/elementwise.h"
#include "core/random.h"
#include "core/reduce.h"
#include "kernels/reduce.h"
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
using basin::testing::custom;
using basin::testing::exact;
using basin::testing::input;
using basin::testing::input_no_grad;
using basin::testing::max_abs_diff;

namespace {

std::string dims_name(const Dims& dims) { return dims.empty() ? "all dims" : "dims " + shape_str(dims); }

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

namespace {

std::vector<OpCase> sum_mean_cases() {
  std::vector<OpCase> cases;
  // sum and mean over every kind of dim list, with and without keepdim:
  // gradients at [3, 4, 5], parity at [7, 33, 65] within 1e-4 (float32) and
  // 1e-10 (float64), forward and backward.
  const std::vector<Dims> dim_lists = {{}, {0}, {1}, {2}, {-1}, {0, 2}, {1, 2}};
  for (const bool is_mean : {false, true}) {
    for (const Dims& dims : dim_lists) {
      for (const bool keepdim : {false, true}) {
        const std::string op = is_mean ? "mean " : "sum ";
        cases.push_back({.name = op + dims_name(dims) + (keepdim ? " keepdim" : ""),
                         .fn = [=](const auto& x) {
                           return is_mean ? mean(x[0], dims, keepdim) : sum(x[0], dims, keepdim);
                         },
                         .inputs = {input({3, 4, 5}, {7, 33, 65})},
                         .tolerances = absolute(1e-4, 1e-10),
                         .all_compared = true});
      }
    }
  }
  cases.push_back({.name = "sum to a scalar",
                   .fn = [](const auto& x) { return sum(x[0]); },
                   .inputs = {input({3, 4, 5}, {7, 33, 65})},
                   .tolerances = absolute(1e-4, 1e-10),
                   .all_compared = true});
  cases.push_back({.name = "mean to a scalar",
                   .fn = [](const auto& x) { return mean(x[0]); },
                   .inputs = {input({3, 4, 5}, {7, 33, 65})},
                   .tolerances = absolute(1e-4, 1e-10),
                   .all_compared = true});
  cases.push_back({.name = "mean of transposed",
                   .fn = [](const auto& x) { return mean(x[0].transpose(0, 2), {1}); },
                   .inputs = {input({3, 4, 5}, {7, 33, 65})},
                   .tolerances = absolute(1e-4, 1e-10),
                   .all_compared = true});
  // A million elements: a multi-block sum, 100 times the tolerance; and run to
  // run the GPU sum is bit-identical.
  cases.push_back({.name = "sum of 2^20 elements",
                   .fn = [](const auto& x) { return sum(x[0]); },
                   .inputs = {input({1 << 20})},
                   .runs = Runs::Parity,
                   .tolerances = absolute(1e-2, 1e-8),
                   .also = [](const ParityRun& run) {
                     const Tensor d = run.cuda_inputs[0].detach();
                     CHECK(sum(d).item() == sum(d).item());
                   }});

  return cases;
}

}  // namespace

TEST_CASE("reductions match finite differences", "[reduce][gradcheck]") {
  testing::run_gradient_checks(sum_mean_cases());
}

TEST_CASE("reduction CUDA kernels match the CPU kernels", "[reduce][cuda]") {
  testing::run_cuda_parity(sum_mean_cases());
}

TEST_CASE("reduction CPU engine kernels match the reference", "[reduce][engine]") {
  testing::run_engine_parity(sum_mean_cases());
}

TEST_CASE("reductions are deterministic", "[reduce]") {
  manual_seed(22);
  const Tensor x = randn({1000, 37});
  CHECK(testing::equal(sum(x, {0}), sum(x, {0})));
  CHECK(sum(x).item() == sum(x).item());
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

namespace {

// floor(4 * randn): many ties, which checks the first-index rule across
// threads; and a NaN every 1013 elements, which checks propagation.
Tensor ties_and_nans(const Shape& shape, DType dtype) {
  std::vector<double> values = mul(randn(shape, kFloat64), 4.0).to_vector<double>();
  for (double& v : values) v = std::floor(v);
  for (std::size_t i = 17; i < values.size(); i += 1013) values[i] = NAN;
  return from_vector<double>(values, shape).to(dtype);
}

std::vector<OpCase> max_cases() {
  std::vector<OpCase> cases;
  // max on continuous random data (no ties, so no kinks): gradients at
  // [3, 4, 5]; parity at [7, 33, 65], exactly.
  const std::vector<std::pair<std::string, testing::OpFn>> max_ops = {
      {"max to a scalar", [](const auto& x) { return max(x[0]); }},
      {"max dim 1", [](const auto& x) { return max(x[0], {1}); }},
      {"max dim -1 keepdim", [](const auto& x) { return max(x[0], {-1}, true); }},
      {"max dims 0,2 keepdim", [](const auto& x) { return max(x[0], {0, 2}, true); }},
      {"max dims 1,2", [](const auto& x) { return max(x[0], {1, 2}); }},
      {"max of transposed", [](const auto& x) { return max(x[0].transpose(0, 2), {1}); }},
  };
  for (const auto& [name, fn] : max_ops) {
    cases.push_back({.name = name, .fn = fn, .inputs = {input({3, 4, 5}, {7, 33, 65})}, .tolerances = exact()});
  }
  cases.push_back({.name = "max times mean",
                   .fn = [](const auto& x) { return mul(max(x[0], {0}), mean(x[0], {0})); },
                   .inputs = {input({3, 4, 5}, {7, 33, 65})},
                   .tolerances = absolute(1e-4, 1e-10)});

  // max and argmax on ties and NaNs, with and without keepdim, bit for bit
  // (NaN matching NaN), backward too. Shapes are odd on purpose: rows of 4099
  // run the block-per-row kernel with a ragged tail.
  for (const Shape& shape : std::vector<Shape>{{7, 33, 65}, {5, 4099}, {3, 1, 517}}) {
    std::vector<Dims> lists = {{}, {0}, {-1}, {0, -1}};
    if (shape.size() == 3) lists.insert(lists.end(), {{1}, {1, 2}, {0, 1}});
    for (const Dims& dims : lists) {
      cases.push_back({.name = "max with ties and NaN " + shape_str(shape) + " " + dims_name(dims),
                       .fn = [dims](const auto& x) -> Outputs { return {max(x[0], dims), max(x[0], dims, true)}; },
                       .inputs = {input(shape, custom(ties_and_nans))},
                       .runs = Runs::Parity,
                       .tolerances = exact(/*nan_equal=*/true)});
    }
    for (std::int64_t dim = 0; dim < static_cast<std::int64_t>(shape.size()); ++dim) {
      cases.push_back({.name = "argmax with ties and NaN " + shape_str(shape) + " dim " + std::to_string(dim),
                       .fn = [dim](const auto& x) -> Outputs { return {argmax(x[0], dim), argmax(x[0], dim, true)}; },
                       .inputs = {input(shape, custom(ties_and_nans))},
                       .runs = Runs::Parity,
                       .differentiable = false,
                       .tolerances = exact()});
    }
  }

  // The max kernels themselves, on NaN-poisoned outputs: every element must be written.
  cases.push_back(
      {.name = "max kernels on poisoned outputs",
       .fn = [](const auto& x) -> Outputs {
         const kernels::ReduceShape layout{3, 129, 5};
         const Device device = x[0].device();
         Tensor values = full({3, 5}, NAN, TensorOptions(x[0].dtype()).device(device));
         Tensor indices = full({3, 5}, -1, TensorOptions(kInt64).device(device));
         run_kernel(
             device, [&] { kernels::reference::max(arg(values), arg(indices), arg(x[0]), layout); },
             [&] { kernels::cuda::max(arg(values), arg(indices), arg(x[0]), layout); });
         Tensor grad_in = full({3, 129, 5}, NAN, TensorOptions(x[0].dtype()).device(device));
         run_kernel(
             device, [&] { kernels::reference::max_backward(arg(grad_in), arg(x[1]), arg(indices), layout); },
             [&] { kernels::cuda::max_backward(arg(grad_in), arg(x[1]), arg(indices), layout); });
         return {values, indices, grad_in};
       },
       .inputs = {input_no_grad({3, 129, 5}), input_no_grad({3, 5})},
       .runs = Runs::Parity,
       .differentiable = false,
       .tolerances = exact()});
  return cases;
}

}  // namespace

TEST_CASE("max matches finite differences", "[reduce][max][gradcheck]") {
  testing::run_gradient_checks(max_cases());
}

TEST_CASE("max CUDA kernels match the CPU kernels", "[reduce][max][cuda]") {
  testing::run_cuda_parity(max_cases());
}

TEST_CASE("max CPU engine kernels match the reference", "[reduce][max][engine]") {
  testing::run_engine_parity(max_cases());
}

TEST_CASE("max CPU backward kernel writes every element", "[reduce][max]") {
  manual_seed(25);
  const kernels::ReduceShape layout{3, 5, 7};
  const Tensor x = randn({3, 5, 7}, kFloat64);
  Tensor values = full({3, 7}, NAN, kFloat64);
  Tensor indices = full({3, 7}, -1, kInt64);
  kernels::reference::max(arg(values), arg(indices), arg(x), layout);
  CHECK(max_abs_diff(values, max(x, {1})) == 0.0);
  const Tensor g = randn({3, 7}, kFloat64);
  Tensor grad_in = full({3, 5, 7}, NAN, kFloat64);
  kernels::reference::max_backward(arg(grad_in), arg(g), arg(indices), layout);
  CHECK(sum(grad_in, {1}).to_vector<double>() == g.to_vector<double>());  // no NaN left, one non-zero per group
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

// ---------------------------------------------------------------- CPU engine

namespace {

std::string layout_name(const kernels::ReduceShape& s) {
  return "[" + std::to_string(s.outer) + ", " + std::to_string(s.reduce) + ", " + std::to_string(s.inner) + "]";
}

}  // namespace

// The engine sums in float32 (lanes and blocks along a row, blocks of rows
// down a column), the reference in float64: the CUDA sum's float32
// tolerances against the reference, absolute(1e-4) for sums of up to a few
// thousand N(0, 1) terms and absolute(1e-2) for the million-term ones. The
// layouts take every engine path: short and long rows (one block and many;
// one long row is shared out block by block), columns in one chunk and in
// several, long columns, an empty reduction. The result must not change with
// the thread count.
TEST_CASE("sum CPU engine kernel matches the reference", "[reduce][engine]") {
  const std::vector<kernels::ReduceShape> layouts = {
      {1, 1000003, 1}, {7, 100003, 1}, {3, 315, 1}, {127, 1, 1}, {315, 127, 1}, {4099, 33, 1},
      {3, 5, 63},      {2, 130, 300},  {1, 127, 1000}, {1, 333334, 3}, {3, 0, 5},
  };
  for (const kernels::ReduceShape& s : layouts) {
    for (double scale : {1.0, 1.0 / 3.0}) {
      INFO(layout_name(s) << ", scale " << scale);
      manual_seed(90);
      const Tensor x = randn({s.outer * s.reduce * s.inner});
      const Tensor want = full({s.outer * s.inner}, NAN);
      kernels::reference::sum(arg(want), arg(x), s, scale);
      const double tolerance = s.reduce > 10000 ? 1e-2 : 1e-4;
      Tensor first;  // the first thread count's result
      testing::for_engine_thread_counts([&] {
        const Tensor got = full({s.outer * s.inner}, NAN);
        kernels::fast::sum(arg(got), arg(x), s, scale);
        INFO("max |fast - reference| = " << max_abs_diff(got, want));
        CHECK(max_abs_diff(got, want) <= tolerance);
        if (!first.defined()) {
          first = got;
        } else {
          CHECK(testing::equal(got, first));
        }
      });
    }
  }
}

// Comparisons and copies only: the engine's max, argmax and max backward are
// the reference's bit for bit, ties (small integers) and NaNs included.
TEST_CASE("max CPU engine kernels match the reference bit for bit", "[reduce][max][engine]") {
  const std::vector<kernels::ReduceShape> layouts = {
      {1, 1000003, 1}, {3, 315, 1}, {4099, 33, 1}, {3, 5, 63}, {37, 1, 9}, {2, 130, 300},
  };
  testing::for_engine_thread_counts([&] {
    for (const kernels::ReduceShape& s : layouts) {
      INFO(layout_name(s));
      manual_seed(91);
      const Shape in_shape = {s.outer * s.reduce * s.inner};
      const Shape out_shape = {s.outer * s.inner};
      std::vector<float> values = randn(in_shape).to_vector<float>();
      for (float& v : values) v = std::round(2.0f * v);
      for (std::size_t i = 5; i < values.size(); i += 997) values[i] = NAN;
      const Tensor x = from_vector<float>(values, in_shape);

      const Tensor v_ref = full(out_shape, 7.0), v_fast = full(out_shape, 7.0);
      const Tensor i_ref = full(out_shape, -1.0, kInt64), i_fast = full(out_shape, -1.0, kInt64);
      kernels::reference::max(arg(v_ref), arg(i_ref), arg(x), s);
      kernels::fast::max(arg(v_fast), arg(i_fast), arg(x), s);
      CHECK(testing::close_enough(v_fast, v_ref, exact(true).float32));
      CHECK(testing::equal(i_fast, i_ref));

      const Tensor g = randn(out_shape);
      const Tensor gx_ref = full(in_shape, NAN), gx_fast = full(in_shape, NAN);
      kernels::reference::max_backward(arg(gx_ref), arg(g), arg(i_ref), s);
      kernels::fast::max_backward(arg(gx_fast), arg(g), arg(i_ref), s);
      CHECK(testing::equal(gx_fast, gx_ref));
    }
  });
  CHECK_THROWS_WITH(kernels::fast::max(arg(empty({3})), arg(empty({3}, kInt64)), arg(empty({0})), {3, 0, 1}),
                    Catch::Contains("max: cannot reduce over zero elements"));
}

// float64 runs the reference inside the engine entry points; a NaN reaches
// the engine's sum as it reaches the reference's.
TEST_CASE("sum CPU engine kernel runs float64 on the reference and propagates NaN", "[reduce][engine]") {
  manual_seed(92);
  const Tensor x = randn({7, 33, 65}, kFloat64);
  const Tensor want = empty({7, 65}, kFloat64), got = empty({7, 65}, kFloat64);
  kernels::reference::sum(arg(want), arg(x), {7, 33, 65}, 1.0);
  kernels::fast::sum(arg(got), arg(x), {7, 33, 65}, 1.0);
  CHECK(testing::equal(got, want));

  const Tensor v = from_vector<float>({1, 2, NAN, 4, 5, 6}, {6});
  const Tensor rows = empty({2}), columns = empty({3});
  kernels::fast::sum(arg(rows), arg(v), {2, 3, 1}, 1.0);
  kernels::fast::sum(arg(columns), arg(v), {1, 2, 3}, 1.0);
  CHECK(std::isnan(rows.to_vector<double>()[0]));
  CHECK(rows.to_vector<double>()[1] == 15.0);
  CHECK(columns.to_vector<double>()[0] == 5.0);
  CHECK(std::isnan(columns.to_vector<double>()[2]));
}
