// conv2d: values worked out by hand, a direct-definition check on odd shapes,
// one table of cases (support/op_table.h) driving the gradient checks and the
// CUDA (cuDNN) parity checks, the kernel entry points on poisoned outputs, and
// the errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "core/autograd.h"
#include "core/conv.h"
#include "core/dispatch.h"
#include "core/random.h"
#include "kernels/conv.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/op_table.h"

using namespace basin;
using basin::testing::InputSpec;
using basin::testing::OpCase;
using basin::testing::Outputs;
using basin::testing::Runs;
using basin::testing::input;
using basin::testing::input_no_grad;
using basin::testing::max_abs_diff;
using basin::testing::relative;
using basin::testing::relative_error;

namespace {

struct ConvCase {
  const char* name;
  Shape input;   // [N, C, H, W]
  Shape weight;  // [K, C, R, S]
  bool bias;
  Pair stride;
  Pair padding;
};

// Small cases for the finite-difference checks.
std::vector<ConvCase> small_cases() {
  return {
      {"stride 2, padding 1, bias", {2, 3, 7, 5}, {4, 3, 3, 3}, true, {2, 2}, {1, 1}},
      {"no bias, 2x3 kernel", {2, 2, 5, 6}, {3, 2, 2, 3}, false, {1, 1}, {0, 0}},
      {"1x1 kernel", {2, 3, 4, 5}, {2, 3, 1, 1}, true, {1, 1}, {0, 0}},
      {"uneven stride and padding", {1, 2, 6, 5}, {3, 2, 3, 2}, true, {2, 1}, {0, 2}},
      // (7 + 0 - 3) / 3 + 1 = 2 rows of output: input row 6 is never read and gets a zero gradient.
      {"stride skips the last row", {2, 1, 7, 4}, {2, 1, 3, 3}, true, {3, 1}, {0, 1}},
  };
}

// Odd shapes for CUDA parity: no size a multiple of a tile or of the bias kernel's block.
std::vector<ConvCase> large_cases() {
  return {
      {"3x3, stride 1, padding 1", {3, 5, 17, 13}, {7, 5, 3, 3}, true, {1, 1}, {1, 1}},
      {"3x3, stride 2, padding 1", {3, 5, 17, 13}, {7, 5, 3, 3}, true, {2, 2}, {1, 1}},
      {"5x5, no padding, no bias", {2, 3, 19, 21}, {9, 3, 5, 5}, false, {1, 1}, {0, 0}},
      {"1x1, stride 2", {5, 11, 9, 7}, {13, 11, 1, 1}, true, {2, 2}, {0, 0}},
      {"3x2 kernel, stride (2, 1), padding (0, 2)", {3, 4, 15, 11}, {5, 4, 3, 2}, true, {2, 1}, {0, 2}},
      {"7x7 stem, stride 2, padding 3", {2, 3, 29, 27}, {17, 3, 7, 7}, true, {2, 2}, {3, 3}},
  };
}

Tensor run_case(const ConvCase& c, const std::vector<Tensor>& x) {
  return conv2d(x[0], x[1], c.bias ? x[2] : Tensor(), c.stride, c.padding);
}

std::vector<Tensor> random_inputs(const ConvCase& c, const TensorOptions& options) {
  std::vector<Tensor> inputs{randn(c.input, options), randn(c.weight, options)};
  if (c.bias) inputs.push_back(randn({c.weight[0]}, options));
  return inputs;
}

// out[n, k, p, q] straight from the definition, in double.
std::vector<double> naive_conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, Pair stride,
                                 Pair padding) {
  const std::int64_t n_ = input.size(0), c_ = input.size(1), h_ = input.size(2), w_ = input.size(3);
  const std::int64_t k_ = weight.size(0), r_ = weight.size(2), s_ = weight.size(3);
  const std::int64_t p_ = (h_ + 2 * padding[0] - r_) / stride[0] + 1;
  const std::int64_t q_ = (w_ + 2 * padding[1] - s_) / stride[1] + 1;
  const std::vector<double> x = input.to_vector<double>();
  const std::vector<double> w = weight.to_vector<double>();
  const std::vector<double> b = bias.defined() ? bias.to_vector<double>() : std::vector<double>(k_, 0.0);
  std::vector<double> out;
  for (std::int64_t n = 0; n < n_; ++n) {
    for (std::int64_t k = 0; k < k_; ++k) {
      for (std::int64_t p = 0; p < p_; ++p) {
        for (std::int64_t q = 0; q < q_; ++q) {
          double total = b[k];
          for (std::int64_t c = 0; c < c_; ++c) {
            for (std::int64_t r = 0; r < r_; ++r) {
              for (std::int64_t s = 0; s < s_; ++s) {
                const std::int64_t y = p * stride[0] - padding[0] + r;
                const std::int64_t xx = q * stride[1] - padding[1] + s;
                if (y < 0 || y >= h_ || xx < 0 || xx >= w_) continue;
                total += w[((k * c_ + c) * r_ + r) * s_ + s] * x[((n * c_ + c) * h_ + y) * w_ + xx];
              }
            }
          }
          out.push_back(total);
        }
      }
    }
  }
  return out;
}

double dot(const std::vector<double>& x, const std::vector<double>& y) {
  REQUIRE(x.size() == y.size());
  double total = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) total += x[i] * y[i];
  return total;
}

kernels::Conv2dShape shape_of(const ConvCase& c) {
  kernels::Conv2dShape g;
  g.n = c.input[0];
  g.c = c.input[1];
  g.h = c.input[2];
  g.w = c.input[3];
  g.k = c.weight[0];
  g.r = c.weight[2];
  g.s = c.weight[3];
  g.stride_h = c.stride[0];
  g.stride_w = c.stride[1];
  g.pad_h = c.padding[0];
  g.pad_w = c.padding[1];
  g.p = (g.h + 2 * g.pad_h - g.r) / g.stride_h + 1;
  g.q = (g.w + 2 * g.pad_w - g.s) / g.stride_w + 1;
  return g;
}

Tensor cuda_tensor(const Shape& shape, DType dtype = kFloat32) {
  return randn(shape, TensorOptions(dtype).device(Device::cuda()));
}

// Sets the TF32 switch for a scope and restores it, so a failing check cannot
// leak the setting into later tests.
class Tf32Scope {
 public:
  explicit Tf32Scope(bool allow) : previous_(conv_allow_tf32()) { set_conv_allow_tf32(allow); }
  ~Tf32Scope() { set_conv_allow_tf32(previous_); }
  Tf32Scope(const Tf32Scope&) = delete;
  Tf32Scope& operator=(const Tf32Scope&) = delete;

 private:
  bool previous_;
};

// A ConvCase as a table entry: input, weight and (if any) bias from N(0, 1).
// conv is linear in each input, so the gradient check may skip no element.
// Exact float32 (no TF32) agrees with the double-accumulating reference far
// inside the parity bound; TF32's 10-bit mantissa would not.
OpCase table_entry(const ConvCase& c, Runs runs) {
  std::vector<InputSpec> inputs = {input(c.input), input(c.weight)};
  if (c.bias) inputs.push_back(input({c.weight[0]}));
  return {.name = c.name,
          .fn = [c](const auto& x) { return run_case(c, x); },
          .inputs = std::move(inputs),
          .runs = runs,
          .tolerances = relative(1e-4, 1e-12),
          .all_compared = true};
}

// The small cases for the gradient checks, the odd ones for CUDA parity, and
// the kernel entry points on NaN-poisoned outputs.
std::vector<OpCase> conv_cases() {
  std::vector<OpCase> cases;
  for (const ConvCase& c : small_cases()) cases.push_back(table_entry(c, Runs::Gradients));
  for (const ConvCase& c : large_cases()) cases.push_back(table_entry(c, Runs::Parity));
#if BASIN_WITH_CUDA  // the CUDA kernel entry points exist only in CUDA builds
  const ConvCase poison{"poison", {3, 5, 17, 13}, {7, 5, 3, 3}, true, {2, 2}, {1, 1}};
  const kernels::Conv2dShape g = shape_of(poison);
  cases.push_back(
      {.name = "kernels on poisoned outputs",
       .fn = [g](const auto& t) -> Outputs {
         const Tensor &x = t[0], &w = t[1], &b = t[2], &gy = t[3];
         const DType dtype = x.dtype();
         const TensorOptions options = TensorOptions(dtype).device(x.device());
         Tensor out = full({g.n, g.k, g.p, g.q}, NAN, options);
         Tensor gx = full(x.shape(), NAN, options);
         Tensor gw = full(w.shape(), NAN, options);
         // An empty batch: the weight gradient is zero, written over the poison.
         kernels::Conv2dShape empty_batch = g;
         empty_batch.n = 0;
         Tensor gw0 = full(w.shape(), NAN, options);
         run_kernel(
             x.device(),
             [&] {
               kernels::reference::conv2d_forward(dtype, g, out.data_ptr(), x.data_ptr(), w.data_ptr(), b.data_ptr());
               kernels::reference::conv2d_backward_input(dtype, g, gx.data_ptr(), gy.data_ptr(), w.data_ptr());
               kernels::reference::conv2d_backward_weight(dtype, g, gw.data_ptr(), gy.data_ptr(), x.data_ptr());
               kernels::reference::conv2d_backward_weight(dtype, empty_batch, gw0.data_ptr(), nullptr, nullptr);
             },
             [&] {
               kernels::cuda::conv2d_forward(dtype, g, out.data_ptr(), x.data_ptr(), w.data_ptr(), b.data_ptr(),
                                             false);
               kernels::cuda::conv2d_backward_input(dtype, g, gx.data_ptr(), gy.data_ptr(), w.data_ptr(), false);
               kernels::cuda::conv2d_backward_weight(dtype, g, gw.data_ptr(), gy.data_ptr(), x.data_ptr(), false);
               kernels::cuda::conv2d_backward_weight(dtype, empty_batch, gw0.data_ptr(), nullptr, nullptr, false);
             });
         return {out, gx, gw, gw0};
       },
       .inputs = {input_no_grad(poison.input), input_no_grad(poison.weight), input_no_grad({g.k}),
                  input_no_grad({g.n, g.k, g.p, g.q})},
       .runs = Runs::Parity,
       .differentiable = false,
       .tolerances = relative(1e-4, 1e-12)});
#endif
  return cases;
}

}  // namespace

// Whether this build's CUDA convolutions have cuDNN behind them (the real one
// or the CUDA emulator's) is known when the tests are built
// (BASIN_TEST_WITH_CUDNN, tests/CMakeLists.txt); a build without it answers
// every CUDA conv2d with an error that says so.
#if BASIN_TEST_WITH_CUDNN
#define BASIN_REQUIRE_CUDNN() BASIN_REQUIRE_CUDA()
#else
#define BASIN_REQUIRE_CUDNN()                                      \
  do {                                                             \
    BASIN_REQUIRE_CUDA();                                          \
    WARN("BASIN_TEST_SKIPPED: this CUDA build has no cuDNN");      \
    return;                                                        \
  } while (0)
#endif

// ---------------------------------------------------------------- values

TEST_CASE("conv2d gives hand-computed values", "[conv]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO(dtype_name(dtype));
    // x = [[1 2 3] [4 5 6] [7 8 9]], w = [[1 2] [3 4]].
    const Tensor x = from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}, dtype);
    const Tensor w = from_vector<double>({1, 2, 3, 4}, {1, 1, 2, 2}, dtype);
    // (0, 0): 1*1 + 2*2 + 4*3 + 5*4 = 37, and so on.
    const Tensor plain = conv2d(x, w, Tensor());
    CHECK(plain.shape() == Shape{1, 1, 2, 2});
    CHECK(plain.dtype() == dtype);
    CHECK(plain.to_vector<double>() == std::vector<double>{37, 47, 67, 77});
    CHECK(conv2d(x, w, from_vector<double>({0.5}, {1}, dtype)).to_vector<double>() ==
          std::vector<double>{37.5, 47.5, 67.5, 77.5});

    // Padding 1, stride 2: windows start at -1 and 1. Window (0, 0) sees only
    // x[0][0] under w[1][1]: 1*4 = 4. Window (0, 1): 2*3 + 3*4 = 18. Window (1, 0):
    // 4*2 + 7*4 = 36. Window (1, 1): the full 5 6 / 8 9 block: 77.
    const Tensor strided = conv2d(x, w, Tensor(), {2, 2}, {1, 1});
    CHECK(strided.shape() == Shape{1, 1, 2, 2});
    CHECK(strided.to_vector<double>() == std::vector<double>{4, 18, 36, 77});

    // Two channels in and out: channel 1 of x is all ones.
    std::vector<double> two(18, 1.0);
    for (int i = 0; i < 9; ++i) two[i] = i + 1;
    const Tensor x2 = from_vector<double>(two, {1, 2, 3, 3}, dtype);
    // k0 = (w on channel 0, all ones on channel 1), k1 = (-x[p+1][q+1], 2 x[p][q] of the ones).
    const Tensor w2 = from_vector<double>({1, 2, 3, 4, 1, 1, 1, 1, 0, 0, 0, -1, 2, 0, 0, 0}, {2, 2, 2, 2}, dtype);
    const Tensor b2 = from_vector<double>({1, -1}, {2}, dtype);
    CHECK(conv2d(x2, w2, b2).to_vector<double>() == std::vector<double>{42, 52, 72, 82, -4, -5, -7, -8});
  }
}

TEST_CASE("conv2d gives hand-computed gradients", "[conv]") {
  Tensor x = from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}).requires_grad_();
  Tensor w = from_vector<double>({1, 2, 3, 4}, {1, 1, 2, 2}).requires_grad_();
  Tensor b = from_vector<double>({0.5}, {1}).requires_grad_();
  conv2d(x, w, b).backward(ones({1, 1, 2, 2}, kFloat64));
  // Each pixel collects the taps of every window that covers it: the centre all four.
  CHECK(x.grad().to_vector<double>() == std::vector<double>{1, 3, 2, 4, 10, 6, 3, 7, 4});
  // Each tap sums the 2x2 block of x it slides over: 1+2+4+5, 2+3+5+6, ...
  CHECK(w.grad().to_vector<double>() == std::vector<double>{12, 16, 24, 28});
  CHECK(b.grad().to_vector<double>() == std::vector<double>{4});
}

TEST_CASE("conv2d matches the definition on odd shapes", "[conv]") {
  manual_seed(41);
  for (const ConvCase& c : small_cases()) {
    for (DType dtype : {kFloat32, kFloat64}) {
      INFO(c.name << " " << dtype_name(dtype));
      const std::vector<Tensor> x = random_inputs(c, dtype);
      const Tensor out = run_case(c, x);
      const std::int64_t p = (c.input[2] + 2 * c.padding[0] - c.weight[2]) / c.stride[0] + 1;
      const std::int64_t q = (c.input[3] + 2 * c.padding[1] - c.weight[3]) / c.stride[1] + 1;
      CHECK(out.shape() == Shape{c.input[0], c.weight[0], p, q});
      const std::vector<double> expected = naive_conv2d(x[0], x[1], c.bias ? x[2] : Tensor(), c.stride, c.padding);
      CHECK(max_abs_diff(out.to_vector<double>(), expected) < (dtype == kFloat32 ? 1e-5 : 1e-12));
    }
  }
  // Non-contiguous operands are read through a contiguous copy.
  const Tensor x = randn({2, 5, 3, 4}, kFloat64).permute({0, 3, 2, 1});  // [2, 4, 3, 5], channels last
  const Tensor w = randn({3, 2, 2, 4}, kFloat64).transpose(1, 3);        // [3, 4, 2, 2]
  REQUIRE_FALSE(x.is_contiguous());
  CHECK(max_abs_diff(conv2d(x, w, Tensor(), {1, 1}, {1, 0}).to_vector<double>(),
                     naive_conv2d(x, w, Tensor(), {1, 1}, {1, 0})) < 1e-12);
}

TEST_CASE("conv2d matches finite differences", "[conv][gradcheck]") {
  testing::run_gradient_checks(conv_cases());
}

TEST_CASE("conv2d computes only the gradients that are needed", "[conv]") {
  manual_seed(43);
  const Tensor x = randn({2, 3, 5, 4}, kFloat64);
  Tensor w = randn({2, 3, 3, 3}, kFloat64).requires_grad_();
  const Tensor b = randn({2}, kFloat64);
  conv2d(x, w, b, {1, 1}, {1, 1}).backward(randn({2, 2, 5, 4}, kFloat64));
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(b.grad().defined());
  REQUIRE(w.grad().defined());
  CHECK(w.grad().shape() == Shape{2, 3, 3, 3});

  Tensor x2 = randn({2, 3, 5, 4}, kFloat64).requires_grad_();
  const Tensor w2 = randn({2, 3, 3, 3}, kFloat64);
  Tensor b2 = randn({2}, kFloat64).requires_grad_();
  conv2d(x2, w2, b2).backward(randn({2, 2, 3, 2}, kFloat64));
  CHECK(x2.grad().shape() == Shape{2, 3, 5, 4});
  CHECK(b2.grad().shape() == Shape{2});
  CHECK_FALSE(w2.grad().defined());

  // Nothing requires grad: no graph at all.
  CHECK_FALSE(conv2d(x, w2, b).requires_grad());
}

TEST_CASE("conv2d handles an empty batch", "[conv]") {
  manual_seed(44);
  Tensor x = randn({0, 3, 5, 5}, kFloat64).requires_grad_();
  Tensor w = randn({4, 3, 3, 3}, kFloat64).requires_grad_();
  Tensor b = randn({4}, kFloat64).requires_grad_();
  const Tensor out = conv2d(x, w, b, {2, 2}, {1, 1});
  CHECK(out.shape() == Shape{0, 4, 3, 3});
  out.backward(zeros({0, 4, 3, 3}, kFloat64));
  CHECK(x.grad().shape() == Shape{0, 3, 5, 5});
  CHECK(testing::all_equal_to(w.grad(), 0.0));
  CHECK(testing::all_equal_to(b.grad(), 0.0));
}

TEST_CASE("conv2d CPU kernels overwrite poisoned outputs", "[conv]") {
  manual_seed(45);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const ConvCase c{"poison", {2, 3, 7, 5}, {4, 3, 3, 3}, true, {2, 2}, {1, 1}};
  const kernels::Conv2dShape g = shape_of(c);
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO(dtype_name(dtype));
    const Tensor x = randn(c.input, dtype);
    const Tensor w = randn(c.weight, dtype);
    const Tensor b = randn({4}, dtype);
    const Tensor gy = randn({g.n, g.k, g.p, g.q}, dtype);

    Tensor out = full({g.n, g.k, g.p, g.q}, nan, dtype);
    kernels::reference::conv2d_forward(dtype, g, out.data_ptr(), x.data_ptr(), w.data_ptr(), b.data_ptr());
    CHECK_FALSE(testing::any_nan(out));
    CHECK(max_abs_diff(out.to_vector<double>(), naive_conv2d(x, w, b, c.stride, c.padding)) < 1e-5);

    // The backward kernels are the adjoints of the (bias-free) forward, which
    // the definition pins down: <conv(x, w), gy> = <x, grad_input> = <w, grad_weight>.
    Tensor gx = full(c.input, nan, dtype);
    kernels::reference::conv2d_backward_input(dtype, g, gx.data_ptr(), gy.data_ptr(), w.data_ptr());
    Tensor gw = full(c.weight, nan, dtype);
    kernels::reference::conv2d_backward_weight(dtype, g, gw.data_ptr(), gy.data_ptr(), x.data_ptr());
    CHECK_FALSE(testing::any_nan(gx));
    CHECK_FALSE(testing::any_nan(gw));
    const double forward_side = dot(naive_conv2d(x, w, Tensor(), c.stride, c.padding), gy.to_vector<double>());
    const double tolerance = (dtype == kFloat32 ? 1e-5 : 1e-12) * (1.0 + std::abs(forward_side));
    CHECK(std::abs(dot(x.to_vector<double>(), gx.to_vector<double>()) - forward_side) < tolerance);
    CHECK(std::abs(dot(w.to_vector<double>(), gw.to_vector<double>()) - forward_side) < tolerance);

    // An empty batch: the weight gradient is zero, written over the poison.
    kernels::Conv2dShape empty_batch = g;
    empty_batch.n = 0;
    Tensor gw0 = full(c.weight, nan, dtype);
    kernels::reference::conv2d_backward_weight(dtype, empty_batch, gw0.data_ptr(), nullptr, nullptr);
    CHECK(testing::all_equal_to(gw0, 0.0));
  }
}

TEST_CASE("conv2d TF32 switch is off by default and can be set", "[conv]") {
  CHECK_FALSE(conv_allow_tf32());
  {
    Tf32Scope on(true);
    CHECK(conv_allow_tf32());
    // The CPU path ignores it: results are unchanged.
    const Tensor x = from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}, kFloat32);
    const Tensor w = from_vector<double>({1, 2, 3, 4}, {1, 1, 2, 2}, kFloat32);
    CHECK(conv2d(x, w, Tensor()).to_vector<double>() == std::vector<double>{37, 47, 67, 77});
  }
  CHECK_FALSE(conv_allow_tf32());
}

// ---------------------------------------------------------------- errors

TEST_CASE("conv2d rejects bad inputs with clear errors", "[conv][errors]") {
  const Tensor x = zeros({2, 3, 8, 8});
  const Tensor w = zeros({16, 3, 3, 3});
  CHECK_THROWS_WITH(conv2d(x, zeros({16, 16, 3, 3}), Tensor()),
                    Catch::Contains("conv2d: input has 3 channels, weight expects 16"));
  CHECK_THROWS_WITH(conv2d(zeros({3, 8, 8}), w, Tensor()),
                    Catch::Contains("conv2d: input is [3, 8, 8], expected 4 dims [N, C, H, W]"));
  CHECK_THROWS_WITH(conv2d(x, zeros({16, 3, 3}), Tensor()),
                    Catch::Contains("conv2d: weight is [16, 3, 3], expected 4 dims [K, C, R, S]"));
  CHECK_THROWS_WITH(conv2d(x, w, zeros({15})), Catch::Contains("conv2d: bias is [15], expected [16]"));
  CHECK_THROWS_WITH(conv2d(x, w, zeros({1, 16})), Catch::Contains("conv2d: bias is [1, 16], expected [16]"));
  CHECK_THROWS_WITH(conv2d(zeros({2, 3, 4, 4}), zeros({16, 3, 5, 5}), Tensor()),
                    Catch::Contains("conv2d: kernel 5x5 is larger than the padded input 4x4"));
  CHECK_THROWS_WITH(conv2d(zeros({2, 3, 2, 9}), w, Tensor(), {1, 1}, {0, 0}),
                    Catch::Contains("conv2d: kernel 3x3 is larger than the padded input 2x9"));
  // Padding makes room: a 2x2 input with padding 1 takes a 3x3 kernel.
  CHECK(conv2d(zeros({2, 3, 2, 2}), w, Tensor(), {1, 1}, {1, 1}).shape() == Shape{2, 16, 2, 2});
  CHECK_THROWS_WITH(conv2d(x, w, Tensor(), {0, 1}), Catch::Contains("conv2d: stride (0, 1) must be at least 1"));
  CHECK_THROWS_WITH(conv2d(x, w, Tensor(), {1, 1}, {1, -1}),
                    Catch::Contains("conv2d: padding (1, -1) must not be negative"));
  CHECK_THROWS_WITH(conv2d(x, zeros({16, 3, 3, 3}, kFloat64), Tensor()),
                    Catch::Contains("conv2d: dtypes differ (float32 and float64)"));
  CHECK_THROWS_WITH(conv2d(x, w, zeros({16}, kFloat64)), Catch::Contains("conv2d: dtypes differ"));
  CHECK_THROWS_WITH(conv2d(zeros({2, 3, 8, 8}, kInt64), zeros({16, 3, 3, 3}, kInt64), Tensor()),
                    Catch::Contains("conv2d: expected a floating tensor, got int64"));
  CHECK_THROWS_WITH(conv2d(Tensor(), w, Tensor()), Catch::Contains("conv2d: input or weight is undefined"));
  CHECK_THROWS_WITH(conv2d(zeros({2, 0, 8, 8}), zeros({16, 0, 3, 3}), Tensor()),
                    Catch::Contains("conv2d: input [2, 0, 8, 8] has an empty channel or spatial dim"));
  CHECK_THROWS_WITH(conv2d(x, zeros({0, 3, 3, 3}), Tensor()),
                    Catch::Contains("conv2d: weight [0, 3, 3, 3] has an empty dim"));
}

// ---------------------------------------------------------------- CUDA (cuDNN)

TEST_CASE("conv2d CPU engine (oneDNN) forward and backward match the reference", "[conv][engine]") {
  testing::run_engine_parity(conv_cases(), testing::through_autograd);
}

TEST_CASE("conv2d CUDA forward and backward match the CPU", "[conv][cuda]") {
  BASIN_REQUIRE_CUDNN();
  Tf32Scope exact(false);
  testing::run_cuda_parity(conv_cases(), testing::through_autograd);
}

TEST_CASE("conv2d CUDA kernels overwrite poisoned outputs", "[conv][cuda]") {
  BASIN_REQUIRE_CUDNN();
#if BASIN_WITH_CUDA  // the kernel case exists only in CUDA builds
  Tf32Scope exact(false);
  testing::run_cuda_parity(conv_cases(), testing::kernels_only);
#endif
}

TEST_CASE("conv2d CUDA algorithm cache survives changing shapes", "[conv][cuda]") {
  BASIN_REQUIRE_CUDNN();
  Tf32Scope exact(false);
  manual_seed(48);
  // Shape A, then B (a new choice), then A again (the cached one), then a batch
  // slice of A starting one image in: 1105 floats in, so only 4-byte aligned,
  // which must not reuse a choice made for 256-byte aligned buffers.
  const Tensor xa = randn({4, 5, 17, 13});
  const Tensor xb = randn({3, 5, 23, 9});
  const Tensor w = randn({7, 5, 3, 3});
  const Tensor b = randn({7});
  const Tensor wd = w.to(Device::cuda()), bd = b.to(Device::cuda());
  const Tensor xad = xa.to(Device::cuda()), xbd = xb.to(Device::cuda());
  for (int round = 0; round < 2; ++round) {
    INFO("round " << round);
    CHECK(relative_error(conv2d(xad, wd, bd, {1, 1}, {1, 1}), conv2d(xa, w, b, {1, 1}, {1, 1})) < 1e-4);
    CHECK(relative_error(conv2d(xbd, wd, bd, {1, 1}, {1, 1}), conv2d(xb, w, b, {1, 1}, {1, 1})) < 1e-4);
    CHECK(relative_error(conv2d(xbd, wd, bd, {2, 2}, {0, 1}), conv2d(xb, w, b, {2, 2}, {0, 1})) < 1e-4);
  }
  const Tensor tail = xa.slice(0, 1, 4);
  CHECK(relative_error(conv2d(xad.slice(0, 1, 4), wd, bd, {1, 1}, {1, 1}), conv2d(tail, w, b, {1, 1}, {1, 1})) <
        1e-4);
}

TEST_CASE("conv2d CUDA honours the TF32 switch in its cache", "[conv][cuda]") {
  BASIN_REQUIRE_CUDNN();
  manual_seed(49);
  const Tensor x = randn({4, 16, 19, 17});
  const Tensor w = randn({24, 16, 3, 3});
  const Tensor expected = conv2d(x, w, Tensor(), {1, 1}, {1, 1});
  const Tensor xd = x.to(Device::cuda()), wd = w.to(Device::cuda());
  {
    Tf32Scope tf32(true);
    // TF32 keeps about 3 decimal digits per product; the sum is still close.
    CHECK(relative_error(conv2d(xd, wd, Tensor(), {1, 1}, {1, 1}), expected) < 1e-2);
  }
  // Turning TF32 off must not reuse the choice made with it on.
  Tf32Scope exact(false);
  CHECK(relative_error(conv2d(xd, wd, Tensor(), {1, 1}, {1, 1}), expected) < 1e-4);
}

TEST_CASE("conv2d on CUDA is deterministic and handles an empty batch", "[conv][cuda]") {
  BASIN_REQUIRE_CUDNN();
  Tf32Scope exact(false);
  manual_seed(50);
  const TensorOptions on_gpu = TensorOptions().device(Device::cuda());
  const Tensor x = randn({6, 8, 21, 19}, on_gpu);
  const Tensor gy = randn({6, 12, 11, 10}, on_gpu);
  Tensor w1 = randn({12, 8, 3, 3}, on_gpu).requires_grad_();
  Tensor w2 = w1.detach().clone().requires_grad_();
  Tensor x1 = x.clone().requires_grad_();
  Tensor x2 = x.clone().requires_grad_();
  const Tensor y1 = conv2d(x1, w1, Tensor(), {2, 2}, {1, 1});
  const Tensor y2 = conv2d(x2, w2, Tensor(), {2, 2}, {1, 1});
  CHECK(testing::equal(y1, y2));
  y1.backward(gy);
  y2.backward(gy);
  // The weight gradient is a sum over the batch: deterministic algorithms fix its order.
  CHECK(testing::equal(w1.grad(), w2.grad()));
  CHECK(testing::equal(x1.grad(), x2.grad()));

  Tensor xe = randn({0, 8, 21, 19}, on_gpu).requires_grad_();
  Tensor we = randn({12, 8, 3, 3}, on_gpu).requires_grad_();
  Tensor be = randn({12}, on_gpu).requires_grad_();
  const Tensor ye = conv2d(xe, we, be, {2, 2}, {1, 1});
  CHECK(ye.shape() == Shape{0, 12, 11, 10});
  ye.backward(zeros({0, 12, 11, 10}, on_gpu));
  CHECK(testing::all_equal_to(we.grad(), 0.0));
  CHECK(testing::all_equal_to(be.grad(), 0.0));

  CHECK_THROWS_WITH(conv2d(x, w1.detach().cpu(), Tensor()),
                    Catch::Contains("conv2d: tensors are on different devices"));
}

#if !BASIN_TEST_WITH_CUDNN
TEST_CASE("conv2d on CUDA without cuDNN says so", "[conv][cuda]") {
  BASIN_REQUIRE_CUDA();
  CHECK_THROWS_WITH(conv2d(cuda_tensor({2, 3, 8, 8}), cuda_tensor({4, 3, 3, 3}), Tensor()),
                    Catch::Contains("conv2d: basin was built without cuDNN"));
}
#endif
