// PyTorch reference fixtures for the nn layer (tests/reference/gen_nn_fixtures.py):
// conv2d and batch_norm values and gradients, and one whole training step of a
// CIFAR ResNet-20 (logits, label-smoothed loss, every parameter gradient and
// the BatchNorm running statistics after the step), on CPU and on CUDA.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "core/batchnorm.h"
#include "core/conv.h"
#include "core/loss.h"
#include "nn/models/models.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/fixtures.h"

using namespace basin;
using basin::testing::fixture_tensor;
using basin::testing::load_fixture;
using basin::testing::relative_error;

namespace {

// The cases gen_nn_fixtures.py writes (CONV_CASES there).
const std::vector<std::string> kConvCases = {"k3s1p1", "k3s2p1", "k1s2", "k3x2s21p01"};
constexpr double kBnMomentum = 0.1;
constexpr double kBnEps = 1e-5;
constexpr double kLabelSmoothing = 0.1;

// A fresh leaf that records its gradient, holding the fixture's values in dtype on device.
Tensor leaf(const Tensor& t, DType dtype, Device device) {
  return t.to(dtype).to(device).clone().detach().requires_grad_();
}

Tensor input_of(const Tensor& t, DType dtype, Device device) { return t.to(dtype).to(device).clone().detach(); }

Pair pair_of(const Tensor& t) {
  const std::vector<std::int64_t> v = t.to_vector<std::int64_t>();
  REQUIRE(v.size() == 2);
  return {v[0], v[1]};
}

// Checks one tensor against its reference; returns the relative error.
double check_close(const std::string& what, const Tensor& got, const Tensor& expected, double tolerance) {
  INFO(what);
  REQUIRE(got.defined());
  REQUIRE(shape_str(got.shape()) == shape_str(expected.shape()));
  const double error = relative_error(got.cpu(), expected);
  INFO("relative error " << error << ", tolerance " << tolerance);
  CHECK(error <= tolerance);
  return error;
}

void check_conv_fixture(Device device, DType dtype, double tolerance) {
  const TensorMap fixture = load_fixture("nn_layers.safetensors");
  for (const std::string& name : kConvCases) {
    INFO("conv case " << name << ", " << dtype_name(dtype) << " on " << device.str());
    const std::string prefix = "conv." + name + ".";
    const bool has_bias = fixture.count(prefix + "bias") > 0;
    const Tensor x = leaf(fixture_tensor(fixture, prefix + "input"), dtype, device);
    const Tensor w = leaf(fixture_tensor(fixture, prefix + "weight"), dtype, device);
    const Tensor b = has_bias ? leaf(fixture_tensor(fixture, prefix + "bias"), dtype, device) : Tensor();
    const Tensor out = conv2d(x, w, b, pair_of(fixture_tensor(fixture, prefix + "stride")),
                              pair_of(fixture_tensor(fixture, prefix + "padding")));
    check_close("output", out, fixture_tensor(fixture, prefix + "output"), tolerance);
    // The gradients of sum(out * upstream).
    out.backward(input_of(fixture_tensor(fixture, prefix + "upstream"), dtype, device));
    check_close("grad_input", x.grad(), fixture_tensor(fixture, prefix + "grad_input"), tolerance);
    check_close("grad_weight", w.grad(), fixture_tensor(fixture, prefix + "grad_weight"), tolerance);
    if (has_bias) check_close("grad_bias", b.grad(), fixture_tensor(fixture, prefix + "grad_bias"), tolerance);
  }
}

void check_batchnorm_fixture(Device device, DType dtype, double tolerance) {
  const TensorMap f = load_fixture("nn_layers.safetensors");
  INFO(dtype_name(dtype) << " on " << device.str());
  const Tensor upstream = input_of(fixture_tensor(f, "bn.upstream"), dtype, device);
  const Tensor running_mean = fixture_tensor(f, "bn.running_mean");
  const Tensor running_var = fixture_tensor(f, "bn.running_var");

  for (const std::string mode : {"train", "eval"}) {
    INFO(mode << " mode");
    const Tensor x = leaf(fixture_tensor(f, "bn.input"), dtype, device);
    const Tensor w = leaf(fixture_tensor(f, "bn.weight"), dtype, device);
    const Tensor b = leaf(fixture_tensor(f, "bn.bias"), dtype, device);
    BatchNormState state{input_of(running_mean, dtype, device), input_of(running_var, dtype, device), kBnMomentum,
                         kBnEps};
    const Tensor out = batch_norm(x, w, b, state, mode == "train");
    check_close("output", out, fixture_tensor(f, "bn." + mode + ".output"), tolerance);
    if (mode == "train") {
      check_close("running_mean", state.running_mean, fixture_tensor(f, "bn.train.running_mean"), tolerance);
      check_close("running_var", state.running_var, fixture_tensor(f, "bn.train.running_var"), tolerance);
    } else {
      // Eval mode reads the running statistics and leaves them as they were.
      CHECK(testing::equal(state.running_mean.cpu(), running_mean.to(dtype)));
      CHECK(testing::equal(state.running_var.cpu(), running_var.to(dtype)));
    }
    out.backward(upstream);
    check_close("grad_input", x.grad(), fixture_tensor(f, "bn." + mode + ".grad_input"), tolerance);
    check_close("grad_weight", w.grad(), fixture_tensor(f, "bn." + mode + ".grad_weight"), tolerance);
    check_close("grad_bias", b.grad(), fixture_tensor(f, "bn." + mode + ".grad_bias"), tolerance);
  }

  INFO("training without weight, bias or running statistics");
  const Tensor x = leaf(fixture_tensor(f, "bn.input"), dtype, device);
  BatchNormState state{Tensor(), Tensor(), kBnMomentum, kBnEps};
  const Tensor out = batch_norm(x, Tensor(), Tensor(), state, true);
  check_close("output", out, fixture_tensor(f, "bn.noaffine.output"), tolerance);
  out.backward(upstream);
  check_close("grad_input", x.grad(), fixture_tensor(f, "bn.noaffine.grad_input"), tolerance);
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// The model's state in the fixture: every key except the batch, the results
// and the "grad." / "after." entries.
TensorMap model_state(const TensorMap& fixture) {
  TensorMap state;
  for (const auto& [name, tensor] : fixture) {
    if (name == "images" || name == "labels" || name == "logits" || name == "loss") continue;
    if (starts_with(name, "grad.") || starts_with(name, "after.")) continue;
    state[name] = tensor;
  }
  return state;
}

// Loads the fixture's ResNet-20, runs one training step (forward, label-smoothed
// cross-entropy, backward) on the fixture's batch and compares everything.
void check_resnet20_step(Device device, DType dtype, double tolerance) {
  INFO("resnet20 step, " << dtype_name(dtype) << " on " << device.str());
  const TensorMap fixture = load_fixture("nn_resnet20.safetensors");
  const nn::ModulePtr model = nn::create_model("resnet20");
  model->to(dtype);
  model->to(device);
  // The fixture holds float32 weights; load_state_dict converts nothing.
  TensorMap state = model_state(fixture);
  for (auto& [name, tensor] : state) {
    if (is_floating(tensor.dtype())) tensor = tensor.to(dtype);
  }
  model->load_state_dict(state);
  model->train();

  const Tensor images = input_of(fixture_tensor(fixture, "images"), dtype, device);
  const Tensor labels = fixture_tensor(fixture, "labels").to(device);
  const Tensor logits = (*model)(images);
  const Tensor loss = cross_entropy(logits, labels, kLabelSmoothing);
  loss.backward();

  double worst = 0.0;
  std::string worst_name;
  auto check = [&](const std::string& name, const Tensor& got, const Tensor& expected) {
    const double error = check_close(name, got, expected, tolerance);
    if (!(error <= worst)) {  // NaN counts as worst
      worst = error;
      worst_name = name;
    }
  };
  check("logits", logits, fixture_tensor(fixture, "logits"));
  check("loss", loss, fixture_tensor(fixture, "loss"));
  std::size_t gradients = 0;
  for (const auto& [name, p] : model->named_parameters()) {
    check("grad." + name, p.grad(), fixture_tensor(fixture, "grad." + name));
    ++gradients;
  }
  std::size_t expected_gradients = 0;
  for (const auto& [name, _] : fixture) expected_gradients += starts_with(name, "grad.") ? 1 : 0;
  CHECK(gradients == expected_gradients);

  // Running statistics after the step; the step counter moved from 3 to 4 exactly.
  std::size_t buffers = 0;
  for (const auto& [name, buffer] : model->named_buffers()) {
    const Tensor expected = fixture_tensor(fixture, "after." + name);
    if (buffer.dtype() == kInt64) {
      INFO(name);
      CHECK(expected.item() == 4.0);
      CHECK(buffer.item() == expected.item());
    } else {
      check("after." + name, buffer, expected);
    }
    ++buffers;
  }
  CHECK(buffers == 3 * 19);  // 19 BatchNorm2d layers

  INFO("worst relative error: " << worst_name << " " << worst << " (tolerance " << tolerance << ")");
  CHECK(worst <= tolerance);
}

}  // namespace

TEST_CASE("reference: conv2d matches PyTorch", "[reference][conv]") {
  check_conv_fixture(Device::cpu(), kFloat64, 1e-12);
  check_conv_fixture(Device::cpu(), kFloat32, 1e-5);
}

TEST_CASE("reference: batch_norm matches PyTorch in training and eval mode", "[reference][batchnorm]") {
  check_batchnorm_fixture(Device::cpu(), kFloat64, 1e-12);
  check_batchnorm_fixture(Device::cpu(), kFloat32, 1e-5);
}

TEST_CASE("reference: ResNet-20 training step matches PyTorch", "[reference][model]") {
  // float32, the precision training runs in: the acceptance bar.
  check_resnet20_step(Device::cpu(), kFloat32, 1e-4);
}

TEST_CASE("reference: ResNet-20 training step matches PyTorch in float64", "[reference][model]") {
  // The reference is the float64 result rounded to float32, so this isolates
  // the semantics from float32 rounding: only the fixture's own rounding remains.
  check_resnet20_step(Device::cpu(), kFloat64, 1e-6);
}

TEST_CASE("reference: conv2d and batch_norm on CUDA match PyTorch", "[reference][cuda]") {
  BASIN_REQUIRE_CUDA();
  REQUIRE_FALSE(conv_allow_tf32());  // TF32 would miss these tolerances by design
  // cuDNN may pick FFT or Winograd algorithms, whose float64 rounding is a little
  // above a direct sum's.
  check_conv_fixture(Device::cuda(), kFloat64, 1e-10);
  check_conv_fixture(Device::cuda(), kFloat32, 1e-5);
  check_batchnorm_fixture(Device::cuda(), kFloat64, 1e-12);
  check_batchnorm_fixture(Device::cuda(), kFloat32, 1e-5);
}

TEST_CASE("reference: ResNet-20 training step on CUDA matches PyTorch", "[reference][model][cuda]") {
  BASIN_REQUIRE_CUDA();
  REQUIRE_FALSE(conv_allow_tf32());
  check_resnet20_step(Device::cuda(), kFloat32, 1e-4);
}

TEST_CASE("reference: ResNet-20 training step on CUDA matches PyTorch in float64", "[reference][model][cuda]") {
  // Apart from the float32 case so that each reports alone: a float32-only
  // failure points at rounding (a ReLU input pushed across zero), not at the math.
  BASIN_REQUIRE_CUDA();
  check_resnet20_step(Device::cuda(), kFloat64, 1e-6);
}
