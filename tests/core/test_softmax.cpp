// softmax and log_softmax: values, PyTorch fixtures, errors, and one table of
// cases (support/op_table.h) driving the finite-difference gradients and the
// CUDA-vs-CPU parity of the ops and of the kernels themselves.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/elementwise.h"
#include "core/random.h"
#include "core/reduce.h"
#include "core/softmax.h"
#include "kernels/softmax.h"
#include "support/compare.h"
#include "support/cpu_threads.h"
#include "support/cuda.h"
#include "support/fixtures.h"
#include "support/op_table.h"

using namespace basin;
using basin::kernels::SoftmaxKind;
using basin::testing::OpCase;
using basin::testing::Outputs;
using basin::testing::Runs;
using basin::testing::fixture_tensor;
using basin::testing::input;
using basin::testing::input_no_grad;
using basin::testing::max_abs_diff;
using basin::testing::normal;
using basin::testing::relative;
using basin::testing::relative_error;

namespace {

// The kernel layout of a contiguous tensor normalized along `dim`.
kernels::ReduceShape layout_for(const Shape& shape, std::int64_t dim) {
  kernels::ReduceShape layout;
  for (std::int64_t k = 0; k < static_cast<std::int64_t>(shape.size()); ++k) {
    if (k < dim) layout.outer *= shape[k];
    if (k == dim) layout.reduce = shape[k];
    if (k > dim) layout.inner *= shape[k];
  }
  return layout;
}

}  // namespace

TEST_CASE("softmax and log_softmax give the right values", "[softmax]") {
  const Tensor x = from_vector<double>({1, 2, 3, 0, 0, 0}, {2, 3});
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  const std::vector<double> y = softmax(x, 1).to_vector<double>();
  CHECK(y[0] == Approx(std::exp(1.0) / z).epsilon(1e-14));
  CHECK(y[2] == Approx(std::exp(3.0) / z).epsilon(1e-14));
  CHECK(y[4] == Approx(1.0 / 3.0).epsilon(1e-14));
  const std::vector<double> logy = log_softmax(x, -1).to_vector<double>();
  CHECK(logy[1] == Approx(2.0 - std::log(z)).epsilon(1e-14));
  // Over dim 0 each column of two normalizes separately: sigmoid(1 - 0) on top.
  CHECK(softmax(x, 0).to_vector<double>()[0] == Approx(1.0 / (1.0 + std::exp(-1.0))).epsilon(1e-14));
  CHECK(softmax(x, 0).shape() == Shape{2, 3});
  // A scalar is a row of one.
  CHECK(softmax(full({}, 3.0, kFloat64), 0).item() == 1.0);
  CHECK(log_softmax(full({}, 3.0, kFloat64), -1).item() == 0.0);
}

TEST_CASE("softmax is stable for large inputs", "[softmax]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO(dtype_name(dtype));
    const Tensor x = from_vector<double>({1000, 0, -1000, 500, 500, 500}, {2, 3}, dtype);
    const Tensor y = softmax(x, 1);
    const Tensor logy = log_softmax(x, 1);
    REQUIRE(testing::all_finite(y));
    REQUIRE(testing::all_finite(logy));
    CHECK(y.to_vector<double>()[0] == 1.0);
    CHECK(y.to_vector<double>()[4] == Approx(1.0 / 3.0).epsilon(1e-6));
    // log_softmax keeps the tiny probabilities that softmax rounds to zero.
    CHECK(logy.to_vector<double>()[1] == Approx(-1000.0).epsilon(1e-6));
    CHECK(logy.to_vector<double>()[2] == Approx(-2000.0).epsilon(1e-6));
  }
}

TEST_CASE("softmax handles non-contiguous inputs and every dim of a 3-D tensor", "[softmax]") {
  manual_seed(40);
  const Tensor x = randn({3, 4, 5}, kFloat64);
  for (std::int64_t dim = 0; dim < 3; ++dim) {
    INFO("dim " << dim);
    const Tensor y = softmax(x, dim);
    // Every slice along dim sums to one.
    CHECK(max_abs_diff(sum(y, {dim}), ones(sum(y, {dim}).shape(), kFloat64)) < 1e-14);
    CHECK(max_abs_diff(log_softmax(x, dim), log(y)) < 1e-14);
  }
  // A transposed view normalizes the same numbers as its contiguous copy.
  const Tensor xt = x.transpose(0, 2);
  CHECK(!xt.is_contiguous());
  CHECK(max_abs_diff(softmax(xt, 1), softmax(xt.contiguous(), 1)) == 0.0);
}

TEST_CASE("softmax CPU kernels write every output element", "[softmax]") {
  manual_seed(41);
  const Tensor x = randn({3, 7, 5}, kFloat64);
  for (std::int64_t dim : {0, 1, 2}) {
    for (SoftmaxKind kind : {SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax}) {
      INFO("dim " << dim << " kind " << static_cast<int>(kind));
      const auto layout = layout_for(x.shape(), dim);
      Tensor y = full(x.shape(), NAN, kFloat64);
      kernels::reference::softmax_forward(kind, arg(y), arg(x), layout);
      CHECK(testing::all_finite(y));
      const Tensor g = randn(x.shape(), kFloat64);
      Tensor gx = full(x.shape(), NAN, kFloat64);
      kernels::reference::softmax_backward(kind, arg(gx), arg(g), arg(y), layout);
      CHECK(testing::all_finite(gx));
    }
  }
}

TEST_CASE("softmax and log_softmax match PyTorch", "[softmax][fixture]") {
  const TensorMap fixture = testing::load_fixture("core_softmax_ce.safetensors");
  const Tensor logits = fixture_tensor(fixture, "logits");
  REQUIRE(logits.dtype() == kFloat64);
  REQUIRE(logits.shape() == Shape{7, 11});
  for (std::int64_t dim : {0, 1}) {
    const std::string suffix = "_dim" + std::to_string(dim);
    INFO("dim " << dim);
    const Tensor softmax_expected = fixture_tensor(fixture, "softmax" + suffix);
    const Tensor log_softmax_expected = fixture_tensor(fixture, "log_softmax" + suffix);
    CHECK(relative_error(softmax(logits, dim), softmax_expected) <= 1e-12);
    CHECK(relative_error(log_softmax(logits, dim), log_softmax_expected) <= 1e-12);
    // The float32 path against the same float64 numbers.
    const Tensor logits32 = logits.to(kFloat32);
    CHECK(relative_error(softmax(logits32, dim), softmax_expected) <= 1e-5);
    CHECK(relative_error(log_softmax(logits32, dim), log_softmax_expected) <= 1e-5);
  }
  const Tensor upstream = fixture_tensor(fixture, "upstream");
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&)>>> ops = {
      {"softmax", [](const Tensor& x) { return softmax(x, 1); }},
      {"log_softmax", [](const Tensor& x) { return log_softmax(x, 1); }},
  };
  for (const auto& [name, fn] : ops) {
    INFO(name);
    const Tensor expected = fixture_tensor(fixture, name + "_dim1_grad");
    for (DType dtype : {kFloat64, kFloat32}) {
      Tensor x = logits.to(dtype).detach().requires_grad_();
      fn(x).backward(upstream.to(dtype));
      CHECK(relative_error(x.grad(), expected) <= (dtype == kFloat64 ? 1e-12 : 1e-5));
    }
  }
}

namespace {

// The softmax (or log-softmax) kernels on CUDA against the CPU kernels, called
// directly on NaN-poisoned outputs: the forward, then the backward on the same
// saved output (the CPU kernel's), so that only the backward kernels differ.
// Inputs: spread-out logits (so the max subtraction and the sums both matter)
// and an upstream gradient.
OpCase kernel_case(SoftmaxKind kind, const Shape& shape, std::int64_t dim,
                   std::vector<DType> dtypes = {kFloat32, kFloat64}) {
  const char* op = kind == SoftmaxKind::Softmax ? "softmax" : "log_softmax";
  return {.name = std::string(op) + " kernels " + shape_str(shape) + " dim " + std::to_string(dim),
          .fn = [kind, dim](const auto& x) -> Outputs {
            const Tensor& logits = x[0];
            const Tensor& upstream = x[1];
            const auto layout = layout_for(logits.shape(), dim);
            const Device device = logits.device();
            const TensorOptions options = TensorOptions(logits.dtype()).device(device);
            Tensor y = full(logits.shape(), NAN, options);
            run_kernel(
                device, [&] { kernels::reference::softmax_forward(kind, arg(y), arg(logits), layout); },
                [&] { kernels::cuda::softmax_forward(kind, arg(y), arg(logits), layout); });
            Tensor saved = full(logits.shape(), NAN, logits.dtype());
            const Tensor logits_cpu = logits.cpu();
            kernels::reference::softmax_forward(kind, arg(saved), arg(logits_cpu), layout);
            const Tensor same = saved.to(device);
            Tensor grad = full(logits.shape(), NAN, options);
            run_kernel(
                device, [&] { kernels::reference::softmax_backward(kind, arg(grad), arg(upstream), arg(same), layout); },
                [&] { kernels::cuda::softmax_backward(kind, arg(grad), arg(upstream), arg(same), layout); });
            return {y, grad};
          },
          .inputs = {input_no_grad(shape, normal(0.0, 4.0)), input_no_grad(shape)},
          .runs = Runs::Parity,
          .differentiable = false,
          .dtypes = std::move(dtypes),
          .tolerances = relative(1e-6, 1e-12)};
}

std::vector<OpCase> softmax_cases() {
  std::vector<OpCase> cases;
  // The ops over each dim of [3, 4, 5] (no element skipped: softmax has no
  // kinks) and, through autograd, on CUDA at [5, 37, 9]; twice the kernels'
  // float32 tolerance, as the backward starts from each device's own output.
  for (std::int64_t dim : {0, 1, -1}) {
    const std::string suffix = " dim " + std::to_string(dim);
    cases.push_back({.name = "softmax" + suffix,
                     .fn = [dim](const auto& v) { return softmax(v[0], dim); },
                     .inputs = {input({3, 4, 5}, {5, 37, 9}, normal(0.0, 2.0))},
                     .tolerances = relative(2e-6, 1e-12),
                     .all_compared = true});
    cases.push_back({.name = "log_softmax" + suffix,
                     .fn = [dim](const auto& v) { return log_softmax(v[0], dim); },
                     .inputs = {input({3, 4, 5}, {5, 37, 9}, normal(0.0, 2.0))},
                     .tolerances = relative(2e-6, 1e-12),
                     .all_compared = true});
    cases.push_back({.name = "softmax of a transposed view" + suffix,
                     .fn = [dim](const auto& v) { return softmax(v[0].transpose(0, 2), dim); },
                     .inputs = {input({3, 4, 5}, {5, 37, 9}, normal(0.0, 2.0))},
                     .tolerances = relative(2e-6, 1e-12),
                     .all_compared = true});
  }
  // Two ops deep, so twice the single-kernel float32 tolerance.
  cases.push_back({.name = "log_softmax of softmax",
                   .fn = [](const auto& v) { return log_softmax(softmax(v[0], 1), 2); },
                   .inputs = {input({3, 4, 5}, {5, 37, 9})},
                   .tolerances = relative(2e-6, 1e-12),
                   .all_compared = true});
  // Rows of 10, 100 and 1001 take the one-block-per-row path with blocks of
  // 32, 128 and 256 threads; the middle and leading dims take the per-column path.
  const std::vector<std::pair<Shape, std::int64_t>> layouts = {
      {{37, 10}, 1}, {{37, 100}, 1}, {{37, 1001}, 1}, {{5, 37, 9}, 1}, {{37, 1001}, 0}, {{3, 301, 7}, 2},
  };
  for (const auto& [shape, dim] : layouts) {
    for (SoftmaxKind kind : {SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax}) {
      cases.push_back(kernel_case(kind, shape, dim));
    }
  }
  return cases;
}

}  // namespace

TEST_CASE("softmax and log_softmax match finite differences", "[softmax][gradcheck]") {
  testing::run_gradient_checks(softmax_cases());
}

TEST_CASE("softmax CUDA kernels match the CPU kernels", "[softmax][cuda]") {
  testing::run_cuda_parity(softmax_cases(), testing::kernels_only);
}

// 70001 rows are more than the row grid holds, so blocks loop over rows. This
// checks the launch shape, which the element type does not change: float32
// only. [large]: on the emulator it is the slowest softmax case by far.
TEST_CASE("softmax CUDA kernels loop over more rows than the grid holds", "[softmax][cuda][large]") {
  testing::run_cuda_parity({kernel_case(SoftmaxKind::Softmax, {70001, 3}, 1, {kFloat32}),
                            kernel_case(SoftmaxKind::LogSoftmax, {70001, 3}, 1, {kFloat32})});
}

TEST_CASE("softmax on CUDA records the same gradient as on the CPU", "[softmax][cuda]") {
  testing::run_cuda_parity(softmax_cases(), testing::through_autograd);
}

// The table's kernel cases call the reference kernels by name; the engine's
// kernels are compared directly in "softmax CPU engine kernels match the
// reference" below.
TEST_CASE("softmax on the CPU engine matches the reference through autograd", "[softmax][engine]") {
  testing::run_engine_parity(softmax_cases(), testing::through_autograd);
}

TEST_CASE("softmax rejects bad input with clear errors", "[softmax][errors]") {
  CHECK_THROWS_WITH(softmax(zeros({2, 3}), 2), Catch::Contains("softmax: dimension 2 is out of range"));
  CHECK_THROWS_WITH(log_softmax(zeros({2, 3}), -3), Catch::Contains("log_softmax: dimension -3 is out of range"));
  CHECK_THROWS_WITH(softmax(zeros({2}, kInt64), 0), Catch::Contains("softmax: expected a floating tensor, got int64"));
  CHECK_THROWS_WITH(log_softmax(zeros({2}, kInt32), 0),
                    Catch::Contains("log_softmax: expected a floating tensor, got int32"));
}

// ---------------------------------------------------------------- CPU engine

// The engine sums in float32 (lanes along a row, row order down a column),
// the reference in float64: the CUDA kernels' float32 tolerance against the
// reference (relative(1e-6)). The backward runs on the reference's saved
// output, so only the backward kernels differ. The layouts take both engine
// paths (rows, and chunks of 64 columns), rows shorter and longer than a
// lane group and than a lane block (100003), and enough rows for several
// threads; the engine's results must not change with the thread count.
TEST_CASE("softmax CPU engine kernels match the reference", "[softmax][engine]") {
  const std::vector<std::pair<Shape, std::int64_t>> layouts = {
      {{37, 10}, 1},    {{37, 1001}, 1},  {{127, 3}, 1},    {{4099, 33}, 1},  {{2, 100003}, 1}, {{37, 1001}, 0},
      {{3, 301, 7}, 1}, {{3, 5, 7, 9}, 0}, {{3, 5, 7, 9}, 1}, {{3, 5, 7, 9}, 2}, {{3, 5, 7, 9}, 3},
  };
  const testing::Tolerance tolerance = relative(1e-6, 1e-12).float32;
  for (const auto& [shape, dim] : layouts) {
    for (SoftmaxKind kind : {SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax}) {
      INFO((kind == SoftmaxKind::Softmax ? "softmax " : "log_softmax ") << shape_str(shape) << " dim " << dim);
      manual_seed(70);
      const Tensor x = mul(randn(shape), 4.0);
      const Tensor g = randn(shape);
      const auto layout = layout_for(shape, dim);
      const Tensor y_ref = full(shape, NAN);
      const Tensor gx_ref = full(shape, NAN);
      kernels::reference::softmax_forward(kind, arg(y_ref), arg(x), layout);
      kernels::reference::softmax_backward(kind, arg(gx_ref), arg(g), arg(y_ref), layout);
      std::vector<Tensor> first;  // the first thread count's results
      testing::for_engine_thread_counts([&] {
        const Tensor y = full(shape, NAN);
        const Tensor gx = full(shape, NAN);
        kernels::fast::softmax_forward(kind, arg(y), arg(x), layout);
        kernels::fast::softmax_backward(kind, arg(gx), arg(g), arg(y_ref), layout);
        testing::check_close(y, y_ref, tolerance);
        testing::check_close(gx, gx_ref, tolerance);
        if (first.empty()) {
          first = {y, gx};
        } else {
          CHECK(testing::equal(y, first[0]));
          CHECK(testing::equal(gx, first[1]));
        }
      });
    }
  }
}

// A row holding a NaN, or all -inf, comes out NaN in both kernel sets; -inf
// elements of an ordinary row get probability 0. float64 runs the reference.
TEST_CASE("softmax CPU engine kernels handle non-finite rows and float64 as the reference", "[softmax][engine]") {
  const float inf = INFINITY;
  const Tensor x = from_vector<float>({1, NAN, 2, -inf, -inf, -inf, 0, -inf, 1, 3, 2, 1}, {4, 3});
  for (SoftmaxKind kind : {SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax}) {
    const Tensor y_ref = full({4, 3}, 7.0), y_fast = full({4, 3}, 7.0);
    kernels::reference::softmax_forward(kind, arg(y_ref), arg(x), {4, 3, 1});
    kernels::fast::softmax_forward(kind, arg(y_fast), arg(x), {4, 3, 1});
    testing::check_close(y_fast, y_ref, {.rtol = 1e-6, .nan_equal = true});
  }
  manual_seed(71);
  const Tensor x64 = randn({5, 37, 9}, kFloat64);
  const Tensor y_ref = empty({5, 37, 9}, kFloat64), y_fast = empty({5, 37, 9}, kFloat64);
  kernels::reference::softmax_forward(SoftmaxKind::Softmax, arg(y_ref), arg(x64), {5, 37, 9});
  kernels::fast::softmax_forward(SoftmaxKind::Softmax, arg(y_fast), arg(x64), {5, 37, 9});
  CHECK(testing::equal(y_fast, y_ref));
}
