// softmax and log_softmax: values, PyTorch fixtures, finite-difference
// gradients, CUDA-vs-CPU kernel parity, and errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/elementwise.h"
#include "core/random.h"
#include "core/reduce.h"
#include "core/softmax.h"
#include "kernels/softmax.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/fixtures.h"
#include "support/gradcheck.h"

using namespace basin;
using basin::kernels::SoftmaxKind;
using basin::testing::fixture_tensor;
using basin::testing::gradcheck;
using basin::testing::max_abs_diff;
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
      kernels::cpu::softmax_forward(kind, arg(y), arg(x), layout);
      CHECK(testing::all_finite(y));
      const Tensor g = randn(x.shape(), kFloat64);
      Tensor gx = full(x.shape(), NAN, kFloat64);
      kernels::cpu::softmax_backward(kind, arg(gx), arg(g), arg(y), layout);
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

TEST_CASE("softmax and log_softmax match finite differences", "[softmax][gradcheck]") {
  manual_seed(42);
  const Tensor x = mul(randn({3, 4, 5}, kFloat64), 2.0);
  for (std::int64_t dim : {0, 1, -1}) {
    const std::vector<std::pair<const char*, testing::TensorFn>> cases = {
        {"softmax", [dim](const auto& v) { return softmax(v[0], dim); }},
        {"log_softmax", [dim](const auto& v) { return log_softmax(v[0], dim); }},
        {"softmax of a transposed view", [dim](const auto& v) { return softmax(v[0].transpose(0, 2), dim); }},
    };
    for (const auto& [name, fn] : cases) {
      const auto result = gradcheck(fn, {x});
      INFO(name << " dim " << dim << ": " << result.report);
      CHECK(result.ok);
      CHECK(result.compared == x.numel());
    }
  }
}

namespace {

// Softmax and log-softmax, forward and backward, on CUDA against the CPU
// kernels for one shape, reduced over `dim`.
void check_cuda_softmax_kernels(const Shape& shape, std::int64_t dim, DType dtype) {
  for (SoftmaxKind kind : {SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax}) {
    INFO(shape_str(shape) << " dim " << dim << " " << dtype_name(dtype) << " kind " << static_cast<int>(kind));
    const double tolerance = dtype == kFloat32 ? 1e-6 : 1e-12;
    const auto layout = layout_for(shape, dim);
    // Spread-out logits, so the max subtraction and the sums both matter.
    const Tensor x = mul(randn(shape, dtype), 4.0);
    const Tensor g = randn(shape, dtype);
    const Tensor x_gpu = x.to(Device::cuda());
    const Tensor g_gpu = g.to(Device::cuda());

    Tensor y = full(shape, NAN, dtype);
    Tensor y_gpu = full(shape, NAN, TensorOptions(dtype).device(Device::cuda()));
    kernels::cpu::softmax_forward(kind, arg(y), arg(x), layout);
    run_kernel(
        Device::cuda(), [] {}, [&] { kernels::cuda::softmax_forward(kind, arg(y_gpu), arg(x_gpu), layout); });
    REQUIRE(testing::all_finite(y_gpu));
    CHECK(relative_error(y_gpu, y) <= tolerance);

    // The backward kernels on the same saved output, so only they differ.
    const Tensor y_same = y.to(Device::cuda());
    Tensor gx = full(shape, NAN, dtype);
    Tensor gx_gpu = full(shape, NAN, TensorOptions(dtype).device(Device::cuda()));
    kernels::cpu::softmax_backward(kind, arg(gx), arg(g), arg(y), layout);
    run_kernel(
        Device::cuda(), [] {},
        [&] { kernels::cuda::softmax_backward(kind, arg(gx_gpu), arg(g_gpu), arg(y_same), layout); });
    REQUIRE(testing::all_finite(gx_gpu));
    CHECK(relative_error(gx_gpu, gx) <= tolerance);
  }
}

}  // namespace

TEST_CASE("softmax CUDA kernels match the CPU kernels", "[softmax][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(43);
  struct Case {
    Shape shape;
    std::int64_t dim;
  };
  // Rows of 10, 100 and 1001 take the one-block-per-row path with blocks of
  // 32, 128 and 256 threads; the middle and leading dims take the per-column path.
  const std::vector<Case> cases = {
      {{37, 10}, 1}, {{37, 100}, 1}, {{37, 1001}, 1}, {{5, 37, 9}, 1}, {{37, 1001}, 0}, {{3, 301, 7}, 2},
  };
  for (const Case& c : cases) {
    for (DType dtype : {kFloat32, kFloat64}) check_cuda_softmax_kernels(c.shape, c.dim, dtype);
  }
}

// 70001 rows are more than the row grid holds, so blocks loop over rows. This
// checks the launch shape, which the element type does not change: float32
// only. [large]: on the emulator it is the slowest softmax case by far.
TEST_CASE("softmax CUDA kernels loop over more rows than the grid holds", "[softmax][cuda][large]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(44);
  check_cuda_softmax_kernels({70001, 3}, 1, kFloat32);
}

TEST_CASE("softmax on CUDA records the same gradient as on the CPU", "[softmax][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(44);
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO(dtype_name(dtype));
    const Tensor base = randn({5, 37, 9}, dtype);
    const Tensor upstream = randn({5, 37, 9}, dtype);
    Tensor x = base.clone().requires_grad_();
    Tensor x_gpu = base.to(Device::cuda()).requires_grad_();
    const Tensor expected = log_softmax(softmax(x, 1), 2);
    const Tensor got = log_softmax(softmax(x_gpu, 1), 2);
    CHECK(got.device().is_cuda());
    // Two ops deep, so twice the single-kernel float32 tolerance.
    const double tolerance = dtype == kFloat32 ? 2e-6 : 1e-12;
    CHECK(relative_error(got, expected) <= tolerance);
    expected.backward(upstream);
    got.backward(upstream.to(Device::cuda()));
    CHECK(relative_error(x_gpu.grad(), x.grad()) <= tolerance);
  }
}

TEST_CASE("softmax rejects bad input with clear errors", "[softmax][errors]") {
  CHECK_THROWS_WITH(softmax(zeros({2, 3}), 2), Catch::Contains("softmax: dimension 2 is out of range"));
  CHECK_THROWS_WITH(log_softmax(zeros({2, 3}), -3), Catch::Contains("log_softmax: dimension -3 is out of range"));
  CHECK_THROWS_WITH(softmax(zeros({2}, kInt64), 0), Catch::Contains("softmax: expected a floating tensor, got int64"));
  CHECK_THROWS_WITH(log_softmax(zeros({2}, kInt32), 0),
                    Catch::Contains("log_softmax: expected a floating tensor, got int32"));
}
