// Batch normalization: values worked out by hand, the running-statistics
// formula, bad input, and one table of cases (support/op_table.h) driving the
// finite-difference gradients in training and eval mode and the CUDA-vs-CPU
// parity of every kernel (through the op and directly, on poisoned outputs).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "core/batchnorm.h"
#include "core/dispatch.h"
#include "core/random.h"
#include "kernels/batchnorm.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/op_table.h"

using namespace basin;
using basin::testing::InputSpec;
using basin::testing::OpCase;
using basin::testing::Outputs;
using basin::testing::ParityRun;
using basin::testing::Runs;
using basin::testing::equal;
using basin::testing::input;
using basin::testing::input_no_grad;
using basin::testing::normal;
using basin::testing::relative;
using basin::testing::uniform;

namespace {

constexpr double kEps = 1e-5;

// x laid out [b][c][s] for N = 2, C = 2, H = 1, W = 2.
//   channel 0: 1, 3 (b = 0) and 5, 7 (b = 1):          mean 4,  biased var (9 + 1 + 1 + 9) / 4 = 5
//   channel 1: 10, 10.5 (b = 0) and 11, 12.5 (b = 1):  mean 11, biased var (1 + 0.25 + 0 + 2.25) / 4 = 0.875
const std::vector<double> kHandInput = {1, 3, 10, 10.5, 5, 7, 11, 12.5};
const double kHandMean[2] = {4.0, 11.0};
const double kHandVar[2] = {5.0, 0.875};
const double kHandWeight[2] = {2.0, -0.5};
const double kHandBias[2] = {0.25, 1.0};
const double kHandRunningMean[2] = {0.5, -1.0};
const double kHandRunningVar[2] = {2.0, 3.0};

int hand_channel(std::size_t i) { return static_cast<int>((i / 2) % 2); }

struct Inputs {
  Tensor x, weight, bias, running_mean, running_var;
};

// Fresh random inputs; x is centred away from zero so the statistics are not trivially 0 and 1.
Inputs random_inputs(const Shape& shape, DType dtype) {
  const std::int64_t c = shape[1];
  return {randn(shape, dtype, 3.0, 2.0), randn({c}, dtype, 1.0, 0.5), randn({c}, dtype),
          randn({c}, dtype), rand({c}, dtype, 0.5, 2.0)};
}

Inputs to_device(const Inputs& in, Device device) {
  return {in.x.to(device), in.weight.to(device), in.bias.to(device), in.running_mean.to(device),
          in.running_var.to(device)};
}

Inputs clone(const Inputs& in) {
  return {in.x.clone(), in.weight.clone(), in.bias.clone(), in.running_mean.clone(), in.running_var.clone()};
}

// Per-channel mean and biased variance of a CPU [N, C, H, W] tensor, by plain loops.
void channel_moments(const Tensor& x, std::vector<double>& mean, std::vector<double>& var) {
  const std::vector<double> v = x.to_vector<double>();
  const std::int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  mean.assign(static_cast<std::size_t>(c), 0.0);
  var.assign(static_cast<std::size_t>(c), 0.0);
  for (std::int64_t ch = 0; ch < c; ++ch) {
    double total = 0.0;
    for (std::int64_t b = 0; b < n; ++b)
      for (std::int64_t s = 0; s < hw; ++s) total += v[static_cast<std::size_t>((b * c + ch) * hw + s)];
    const double mu = total / static_cast<double>(n * hw);
    double squares = 0.0;
    for (std::int64_t b = 0; b < n; ++b) {
      for (std::int64_t s = 0; s < hw; ++s) {
        const double d = v[static_cast<std::size_t>((b * c + ch) * hw + s)] - mu;
        squares += d * d;
      }
    }
    mean[static_cast<std::size_t>(ch)] = mu;
    var[static_cast<std::size_t>(ch)] = squares / static_cast<double>(n * hw);
  }
}

}  // namespace

// ---------------------------------------------------------------- values

TEST_CASE("batch_norm training output matches a hand computation", "[batchnorm]") {
  const Tensor x = from_vector<double>(kHandInput, {2, 2, 1, 2});
  const Tensor weight = from_vector<double>({kHandWeight[0], kHandWeight[1]}, {2});
  const Tensor bias = from_vector<double>({kHandBias[0], kHandBias[1]}, {2});
  BatchNormState state{from_vector<double>({kHandRunningMean[0], kHandRunningMean[1]}, {2}),
                       from_vector<double>({kHandRunningVar[0], kHandRunningVar[1]}, {2}), 0.1, kEps};

  const std::vector<double> y = batch_norm(x, weight, bias, state, /*training=*/true).to_vector<double>();
  REQUIRE(y.size() == kHandInput.size());
  for (std::size_t i = 0; i < y.size(); ++i) {
    const int c = hand_channel(i);
    const double expected =
        (kHandInput[i] - kHandMean[c]) / std::sqrt(kHandVar[c] + kEps) * kHandWeight[c] + kHandBias[c];
    INFO("element " << i);
    CHECK(std::abs(y[i] - expected) < 1e-12);
  }

  // One step of the running statistics, PyTorch's formula: the unbiased
  // variance (n = 4 values per channel) blended with momentum 0.1.
  const std::vector<double> rm = state.running_mean.to_vector<double>();
  const std::vector<double> rv = state.running_var.to_vector<double>();
  CHECK(std::abs(rm[0] - (0.9 * 0.5 + 0.1 * 4.0)) < 1e-15);
  CHECK(std::abs(rm[1] - (0.9 * -1.0 + 0.1 * 11.0)) < 1e-15);
  CHECK(std::abs(rv[0] - (0.9 * 2.0 + 0.1 * 5.0 * 4.0 / 3.0)) < 1e-15);
  CHECK(std::abs(rv[1] - (0.9 * 3.0 + 0.1 * 0.875 * 4.0 / 3.0)) < 1e-15);
}

TEST_CASE("batch_norm eval mode normalizes with the running statistics and leaves them alone", "[batchnorm]") {
  const Tensor x = from_vector<double>(kHandInput, {2, 2, 1, 2});
  const Tensor weight = from_vector<double>({kHandWeight[0], kHandWeight[1]}, {2});
  const Tensor bias = from_vector<double>({kHandBias[0], kHandBias[1]}, {2});
  BatchNormState state{from_vector<double>({kHandRunningMean[0], kHandRunningMean[1]}, {2}),
                       from_vector<double>({kHandRunningVar[0], kHandRunningVar[1]}, {2}), 0.1, kEps};
  const Tensor rm_before = state.running_mean.clone();
  const Tensor rv_before = state.running_var.clone();

  const std::vector<double> y = batch_norm(x, weight, bias, state, /*training=*/false).to_vector<double>();
  for (std::size_t i = 0; i < y.size(); ++i) {
    const int c = hand_channel(i);
    const double expected =
        (kHandInput[i] - kHandRunningMean[c]) / std::sqrt(kHandRunningVar[c] + kEps) * kHandWeight[c] + kHandBias[c];
    INFO("element " << i);
    CHECK(std::abs(y[i] - expected) < 1e-12);
  }
  CHECK(equal(state.running_mean, rm_before));
  CHECK(equal(state.running_var, rv_before));
}

TEST_CASE("batch_norm without weight and bias gives zero mean and unit variance per channel", "[batchnorm]") {
  manual_seed(40);
  const Tensor x = randn({4, 3, 5, 3}, kFloat64, -2.0, 3.0);
  BatchNormState state{zeros({3}, kFloat64), ones({3}, kFloat64), 0.1, kEps};
  const Tensor y = batch_norm(x, Tensor(), Tensor(), state, true);
  std::vector<double> mean, var, x_mean, x_var;
  channel_moments(y, mean, var);
  channel_moments(x, x_mean, x_var);
  for (std::size_t c = 0; c < 3; ++c) {
    CHECK(std::abs(mean[c]) < 1e-12);
    CHECK(std::abs(var[c] - x_var[c] / (x_var[c] + kEps)) < 1e-12);  // eps keeps it a hair under 1
  }
}

TEST_CASE("batch_norm running statistics follow PyTorch's update exactly", "[batchnorm]") {
  manual_seed(41);
  for (DType dtype : {kFloat64, kFloat32}) {
    INFO(dtype_name(dtype));
    const Inputs in = random_inputs({5, 4, 3, 7}, dtype);
    BatchNormState state{in.running_mean.clone(), in.running_var.clone(), 0.3, kEps};
    // The op updates the caller's tensors in place: the same storage, new values.
    const Tensor handle = state.running_mean;
    batch_norm(in.x, in.weight, in.bias, state, true, true);
    CHECK(state.running_mean.storage() == handle.storage());

    std::vector<double> mean, var;
    channel_moments(in.x, mean, var);
    const std::vector<double> rm0 = in.running_mean.to_vector<double>();
    const std::vector<double> rv0 = in.running_var.to_vector<double>();
    const std::vector<double> rm = state.running_mean.to_vector<double>();
    const std::vector<double> rv = state.running_var.to_vector<double>();
    const double n = 5 * 3 * 7;
    const double tolerance = dtype == kFloat64 ? 1e-13 : 1e-6;
    for (std::size_t c = 0; c < 4; ++c) {
      CHECK(std::abs(rm[c] - (0.7 * rm0[c] + 0.3 * mean[c])) < tolerance);
      CHECK(std::abs(rv[c] - (0.7 * rv0[c] + 0.3 * var[c] * n / (n - 1))) < tolerance);
      CHECK(rm[c] != rm0[c]);
    }
  }
}

TEST_CASE("batch_norm with update_running_stats=false leaves them bitwise unchanged", "[batchnorm]") {
  manual_seed(42);
  const Inputs in = random_inputs({3, 5, 7, 9}, kFloat32);
  BatchNormState frozen{in.running_mean.clone(), in.running_var.clone(), 0.1, kEps};
  BatchNormState moving{in.running_mean.clone(), in.running_var.clone(), 0.1, kEps};
  const Tensor y_frozen = batch_norm(in.x, in.weight, in.bias, frozen, true, false);
  const Tensor y_moving = batch_norm(in.x, in.weight, in.bias, moving, true, true);
  CHECK(equal(frozen.running_mean, in.running_mean));
  CHECK(equal(frozen.running_var, in.running_var));
  CHECK_FALSE(equal(moving.running_mean, in.running_mean));
  // Both passes normalize with the batch statistics.
  CHECK(equal(y_frozen, y_moving));
}

// ---------------------------------------------------------------- gradients

namespace {

// The inputs of random_inputs, in its order (x centred away from zero so the
// statistics are not trivially 0 and 1): x, weight and bias differentiated,
// the running statistics not.
std::vector<InputSpec> table_inputs(const Shape& shape, bool affine = true) {
  const Shape channels{shape[1]};
  std::vector<InputSpec> inputs = {input(shape, normal(3.0, 2.0))};
  if (affine) inputs.insert(inputs.end(), {input(channels, normal(1.0, 0.5)), input(channels)});
  inputs.insert(inputs.end(), {input_no_grad(channels), input_no_grad(channels, uniform(0.5, 2.0))});
  return inputs;
}

#if BASIN_WITH_CUDA  // the kernel entry points exist only in CUDA builds
// Every kernel on one device, each output NaN-poisoned first. Inputs: x,
// weight, bias, running mean, running variance, upstream gradient.
Outputs run_kernels(const std::vector<Tensor>& t) {
  const Tensor &x = t[0], &weight = t[1], &bias = t[2], &running_mean = t[3], &running_var = t[4], &dy = t[5];
  const Shape& shape = x.shape();
  const std::int64_t c = shape[1];
  const kernels::BatchNormShape bn{shape[0], c, shape[2] * shape[3]};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const TensorOptions options = TensorOptions(x.dtype()).device(x.device());
  Tensor mean = full({c}, nan, options), invstd = full({c}, nan, options);
  Tensor rm = running_mean.clone(), rv = running_var.clone();
  Tensor out = full(shape, nan, options), eval_invstd = full({c}, nan, options);
  Tensor sum_dy = full({c}, nan, options), sum_dy_xhat = full({c}, nan, options);
  Tensor dx = full(shape, nan, options), dx_eval = full(shape, nan, options);
  run_kernel(
      x.device(),
      [&] {
        kernels::reference::batch_norm_stats(arg(mean), arg(invstd), arg(x), bn, kEps, arg(rm), arg(rv), 0.1);
        kernels::reference::batch_norm_normalize(arg(out), arg(x), arg(mean), arg(invstd), arg(weight), arg(bias), bn);
        kernels::reference::batch_norm_invstd(arg(eval_invstd), arg(running_var), kEps);
        kernels::reference::batch_norm_backward_reduce(arg(sum_dy), arg(sum_dy_xhat), arg(dy), arg(x), arg(mean),
                                                 arg(invstd), bn);
        kernels::reference::batch_norm_backward_input(arg(dx), arg(dy), arg(x), arg(mean), arg(invstd), arg(weight),
                                                arg(sum_dy), arg(sum_dy_xhat), bn);
        kernels::reference::batch_norm_backward_input(arg(dx_eval), arg(dy), arg(x), arg(running_mean), arg(eval_invstd),
                                                arg(weight), {}, {}, bn);
      },
      [&] {
        kernels::cuda::batch_norm_stats(arg(mean), arg(invstd), arg(x), bn, kEps, arg(rm), arg(rv), 0.1);
        kernels::cuda::batch_norm_normalize(arg(out), arg(x), arg(mean), arg(invstd), arg(weight), arg(bias), bn);
        kernels::cuda::batch_norm_invstd(arg(eval_invstd), arg(running_var), kEps);
        kernels::cuda::batch_norm_backward_reduce(arg(sum_dy), arg(sum_dy_xhat), arg(dy), arg(x), arg(mean),
                                                  arg(invstd), bn);
        kernels::cuda::batch_norm_backward_input(arg(dx), arg(dy), arg(x), arg(mean), arg(invstd), arg(weight),
                                                 arg(sum_dy), arg(sum_dy_xhat), bn);
        kernels::cuda::batch_norm_backward_input(arg(dx_eval), arg(dy), arg(x), arg(running_mean), arg(eval_invstd),
                                                 arg(weight), {}, {}, bn);
      });
  return {mean, invstd, rm, rv, out, eval_invstd, sum_dy, sum_dy_xhat, dx, dx_eval};
}
#endif

std::vector<OpCase> batch_norm_cases() {
  std::vector<OpCase> cases;
  // Gradients at [3, 2, 3, 2], every element compared.
  cases.push_back({.name = "training: input, weight and bias",
                   .fn = [](const auto& t) {
                     BatchNormState s{t[3].clone(), t[4].clone(), 0.1, kEps};
                     return batch_norm(t[0], t[1], t[2], s, true, false);
                   },
                   .inputs = table_inputs({3, 2, 3, 2}),
                   .runs = Runs::Gradients,
                   .all_compared = true});
  cases.push_back({.name = "training without weight and bias",
                   .fn = [](const auto& t) {
                     BatchNormState s{t[1].clone(), t[2].clone(), 0.1, kEps};
                     return batch_norm(t[0], Tensor(), Tensor(), s, true, true);
                   },
                   .inputs = table_inputs({3, 2, 3, 2}, false),
                   .runs = Runs::Gradients,
                   .all_compared = true});
  cases.push_back({.name = "eval: input, weight and bias",
                   .fn = [](const auto& t) {
                     BatchNormState s{t[3].clone(), t[4].clone(), 0.1, kEps};
                     return batch_norm(t[0], t[1], t[2], s, false);
                   },
                   .inputs = table_inputs({3, 2, 3, 2}),
                   .runs = Runs::Gradients,
                   .all_compared = true});

  // CUDA parity on odd shapes (no size a multiple of the 256-thread block), a
  // CIFAR-like one, and two whose channels span several chunks of the CUDA
  // partition with a ragged last chunk (n = 5291 and 8184 elements per
  // channel): the output, the running statistics (updated in place, and
  // compared as inputs after the op) and the gradients, in both modes; then
  // every kernel directly on poisoned outputs.
  for (const Shape& shape : std::vector<Shape>{{3, 5, 7, 9}, {32, 16, 8, 8}, {37, 3, 11, 13}, {8, 4, 33, 31}}) {
    for (bool training : {true, false}) {
      cases.push_back({.name = std::string(training ? "training " : "eval ") + shape_str(shape),
                       .fn = [training](const auto& t) {
                         BatchNormState state{t[3], t[4], 0.1, kEps};
                         return batch_norm(t[0], t[1], t[2], state, training, true);
                       },
                       .inputs = table_inputs(shape),
                       .runs = Runs::Parity,
                       .tolerances = relative(1e-5, 1e-10),
                       .also = [training](const ParityRun& run) {
                         if (training) {
                           CHECK_FALSE(equal(run.cuda_inputs[4], run.inputs[4]));
                         } else {
                           CHECK(equal(run.cuda_inputs[3], run.inputs[3]));
                           CHECK(equal(run.cuda_inputs[4], run.inputs[4]));
                         }
                       }});
    }
#if BASIN_WITH_CUDA
    std::vector<InputSpec> inputs = table_inputs(shape);
    inputs.push_back(input(shape));
    for (InputSpec& spec : inputs) spec.requires_grad = false;
    cases.push_back({.name = "kernels " + shape_str(shape),
                     .fn = run_kernels,
                     .inputs = std::move(inputs),
                     .runs = Runs::Parity,
                     .differentiable = false,
                     .tolerances = relative(1e-5, 1e-10)});
#endif
  }
  return cases;
}

}  // namespace

TEST_CASE("batch_norm matches finite differences", "[batchnorm][gradcheck]") {
  testing::run_gradient_checks(batch_norm_cases());
}

TEST_CASE("batch_norm backward computes each gradient alone as it does together", "[batchnorm]") {
  manual_seed(44);
  const Inputs in = random_inputs({3, 4, 5, 3}, kFloat64);
  const Tensor upstream = randn(in.x.shape(), kFloat64);
  for (bool training : {true, false}) {
    INFO((training ? "training" : "eval"));
    auto run = [&](bool gx, bool gw, bool gb) {
      Inputs leaves = clone(in);
      leaves.x.requires_grad_(gx);
      leaves.weight.requires_grad_(gw);
      leaves.bias.requires_grad_(gb);
      BatchNormState s{in.running_mean.clone(), in.running_var.clone(), 0.1, kEps};
      batch_norm(leaves.x, leaves.weight, leaves.bias, s, training, false).backward(upstream);
      return leaves;
    };
    const Inputs all = run(true, true, true);
    CHECK(equal(run(true, false, false).x.grad(), all.x.grad()));
    CHECK(equal(run(false, true, false).weight.grad(), all.weight.grad()));
    CHECK(equal(run(false, false, true).bias.grad(), all.bias.grad()));
    CHECK_FALSE(run(false, true, false).x.grad().defined());
    // dbias is sum(dy) per channel in either mode.
    std::vector<double> dy_mean, unused;
    channel_moments(upstream, dy_mean, unused);
    const std::vector<double> db = all.bias.grad().to_vector<double>();
    for (std::size_t c = 0; c < 4; ++c) CHECK(std::abs(db[c] - dy_mean[c] * 45.0) < 1e-12);
  }
}

TEST_CASE("batch_norm CPU kernels overwrite poisoned outputs", "[batchnorm]") {
  manual_seed(45);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Inputs in = random_inputs({3, 5, 7, 9}, kFloat32);
  const kernels::BatchNormShape shape{3, 5, 63};
  Tensor mean = full({5}, nan), invstd = full({5}, nan), out = full(in.x.shape(), nan);
  kernels::reference::batch_norm_stats(arg(mean), arg(invstd), arg(in.x), shape, kEps, {}, {}, 0.1);
  kernels::reference::batch_norm_normalize(arg(out), arg(in.x), arg(mean), arg(invstd), arg(in.weight), arg(in.bias), shape);
  Tensor eval_invstd = full({5}, nan);
  kernels::reference::batch_norm_invstd(arg(eval_invstd), arg(in.running_var), kEps);
  const Tensor dy = randn(in.x.shape());
  Tensor sum_dy = full({5}, nan), sum_dy_xhat = full({5}, nan), dx = full(in.x.shape(), nan),
         dx_eval = full(in.x.shape(), nan);
  kernels::reference::batch_norm_backward_reduce(arg(sum_dy), arg(sum_dy_xhat), arg(dy), arg(in.x), arg(mean), arg(invstd),
                                           shape);
  kernels::reference::batch_norm_backward_input(arg(dx), arg(dy), arg(in.x), arg(mean), arg(invstd), arg(in.weight),
                                          arg(sum_dy), arg(sum_dy_xhat), shape);
  kernels::reference::batch_norm_backward_input(arg(dx_eval), arg(dy), arg(in.x), arg(mean), arg(eval_invstd),
                                          arg(in.weight), {}, {}, shape);
  for (const Tensor* t : {&mean, &invstd, &out, &eval_invstd, &sum_dy, &sum_dy_xhat, &dx, &dx_eval}) {
    for (float v : t->to_vector<float>()) REQUIRE(std::isfinite(v));
  }
}

// ---------------------------------------------------------------- errors

TEST_CASE("batch_norm rejects bad input with clear errors", "[batchnorm][errors]") {
  BatchNormState state{zeros({3}), ones({3}), 0.1, kEps};
  const Tensor w = ones({3}), b = zeros({3});
  CHECK_THROWS_WITH(batch_norm(zeros({2, 3, 4}), w, b, state, true),
                    Catch::Contains("batch_norm: input must be 4-D [N, C, H, W], got [2, 3, 4]"));

  BatchNormState wide{zeros({16}), ones({16}), 0.1, kEps};
  CHECK_THROWS_WITH(batch_norm(randn({2, 3, 4, 4}), w, b, wide, true),
                    Catch::Contains("batch_norm: input has 3 channels, running_mean has 16"));
  CHECK_THROWS_WITH(batch_norm(randn({2, 3, 4, 4}), ones({4}), b, state, true),
                    Catch::Contains("batch_norm: input has 3 channels, weight has 4"));
  CHECK_THROWS_WITH(batch_norm(randn({2, 3, 4, 4}), ones({3, 1}), b, state, true),
                    Catch::Contains("batch_norm: input has 3 channels, weight is [3, 1]"));

  CHECK_THROWS_WITH(batch_norm(randn({1, 3, 1, 1}), w, b, state, true),
                    Catch::Contains("batch_norm: expected more than 1 value per channel when training, got input "
                                    "[1, 3, 1, 1]"));
  CHECK_NOTHROW(batch_norm(randn({1, 3, 1, 1}), w, b, state, false));  // eval needs no batch statistics

  CHECK_THROWS_WITH(batch_norm(randn({2, 3, 4, 4}), ones({3}, kFloat64), b, state, true),
                    Catch::Contains("batch_norm: weight is float64 but input is float32"));
  CHECK_THROWS_WITH(batch_norm(zeros({2, 3, 4, 4}, kInt64), w, b, state, true),
                    Catch::Contains("batch_norm: expected a floating tensor, got int64"));

  BatchNormState none{Tensor(), Tensor(), 0.1, kEps};
  CHECK_NOTHROW(batch_norm(randn({2, 3, 4, 4}), w, b, none, true));  // no running statistics to track
  CHECK_THROWS_WITH(batch_norm(randn({2, 3, 4, 4}), w, b, none, false),
                    Catch::Contains("batch_norm: eval mode needs running_mean and running_var"));
  BatchNormState half{zeros({3}), Tensor(), 0.1, kEps};
  CHECK_THROWS_WITH(batch_norm(randn({2, 3, 4, 4}), w, b, half, true),
                    Catch::Contains("batch_norm: running_mean and running_var must be given together"));
}

TEST_CASE("batch_norm rejects tensors on different devices", "[batchnorm][errors][cuda]") {
  BASIN_REQUIRE_CUDA();
  BatchNormState state{zeros({3}), ones({3}), 0.1, kEps};
  const Tensor x = randn({2, 3, 4, 4}, TensorOptions().device(Device::cuda()));
  const Tensor w = ones({3}, Device::cuda()), b = zeros({3}, Device::cuda());
  CHECK_THROWS_WITH(batch_norm(x, w, b, state, true),
                    Catch::Contains("batch_norm: running_mean is on cpu but input is on cuda"));
  CHECK_THROWS_WITH(batch_norm(x, ones({3}), b, state, true), Catch::Contains("batch_norm: weight is on cpu"));
}

// ---------------------------------------------------------------- CUDA parity

TEST_CASE("batch_norm CUDA forward, running statistics and backward match the CPU", "[batchnorm][cuda]") {
  testing::run_cuda_parity(batch_norm_cases(), testing::through_autograd);
}

TEST_CASE("batch_norm CUDA leaves frozen running statistics bitwise unchanged", "[batchnorm][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(47);
  const Inputs in = to_device(random_inputs({32, 16, 8, 8}, kFloat32), Device::cuda());
  BatchNormState frozen{in.running_mean.clone(), in.running_var.clone(), 0.1, kEps};
  const Tensor y = batch_norm(in.x, in.weight, in.bias, frozen, true, false);
  CHECK(equal(frozen.running_mean, in.running_mean));
  CHECK(equal(frozen.running_var, in.running_var));
  BatchNormState moving{in.running_mean.clone(), in.running_var.clone(), 0.1, kEps};
  CHECK(equal(batch_norm(in.x, in.weight, in.bias, moving, true, true), y));
}

TEST_CASE("batch_norm CUDA results are identical from run to run", "[batchnorm][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(48);
  const Inputs in = to_device(random_inputs({37, 3, 11, 13}, kFloat32), Device::cuda());
  const Tensor upstream = randn(in.x.shape(), TensorOptions().device(Device::cuda()));
  std::vector<Tensor> first;
  for (int run = 0; run < 2; ++run) {
    Inputs leaves = clone(in);
    leaves.x.requires_grad_();
    leaves.weight.requires_grad_();
    BatchNormState state{leaves.running_mean, leaves.running_var, 0.1, kEps};
    const Tensor y = batch_norm(leaves.x, leaves.weight, leaves.bias, state, true, true);
    y.backward(upstream);
    const std::vector<Tensor> results = {y, state.running_var, leaves.x.grad(), leaves.weight.grad()};
    if (run == 0) {
      first = results;
    } else {
      for (std::size_t i = 0; i < results.size(); ++i) CHECK(equal(results[i], first[i]));
    }
  }
}

TEST_CASE("batch_norm CUDA kernels overwrite poisoned outputs and match the CPU kernels", "[batchnorm][cuda]") {
  BASIN_REQUIRE_CUDA();
#if BASIN_WITH_CUDA  // the kernel cases exist only in CUDA builds
  testing::run_cuda_parity(batch_norm_cases(), testing::kernels_only);
#endif
}

TEST_CASE("batch norm CPU engine kernels match the reference", "[batchnorm][engine]") {
  testing::run_engine_parity(batch_norm_cases(), testing::through_autograd);
}
