#include <catch2/catch.hpp>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/reduce.h"
#include "nn/module.h"
#include "support/compare.h"
#include "support/cuda.h"

using namespace basin;
using namespace basin::nn;

namespace {

// y = x * scale + shift, with a running count buffer: enough to exercise the API.
struct Affine : Module {
  Tensor scale, shift, calls;
  explicit Affine(std::int64_t n) : Module("Affine") {
    scale = register_parameter("scale", ones({n}));
    shift = register_parameter("shift", zeros({n}));
    calls = register_buffer("calls", zeros({1}));
  }
  Tensor forward(const Tensor& x) override {
    if (is_training()) {
      NoGradGuard no_grad;
      calls.add_(ones_like(calls));
    }
    return x * scale + shift;
  }
  std::string describe() const override { return std::to_string(scale.numel()); }
};

struct Block : Module {
  std::shared_ptr<Affine> first, second;
  Block() : Module("Block") {
    first = register_module("first", std::make_shared<Affine>(3));
    second = register_module("second", std::make_shared<Affine>(3));
  }
  Tensor forward(const Tensor& x) override { return (*second)((*first)(x)); }
};

struct Net : Module {
  Tensor bias;
  std::shared_ptr<Block> body;
  Net() : Module("Net") {
    bias = register_parameter("bias", full({3}, 0.5));
    body = register_module("body", std::make_shared<Block>());
  }
  Tensor forward(const Tensor& x) override { return (*body)(x) + bias; }
};

std::vector<std::string> names(const Named<Tensor>& named) {
  std::vector<std::string> out;
  for (const auto& [name, _] : named) out.push_back(name);
  return out;
}

}  // namespace

TEST_CASE("modules name their tensors with dotted paths in registration order", "[nn][module]") {
  Net net;
  CHECK(names(net.named_parameters()) ==
        std::vector<std::string>{"bias", "body.first.scale", "body.first.shift", "body.second.scale",
                                 "body.second.shift"});
  CHECK(names(net.named_buffers()) == std::vector<std::string>{"body.first.calls", "body.second.calls"});
  CHECK(net.parameters().size() == 5);
  CHECK(net.named_parameters(false).size() == 1);
  CHECK(parameter_count(net) == 15);
  CHECK(net.named_modules().size() == 3);
  for (const Tensor& p : net.parameters()) CHECK(p.requires_grad());
}

TEST_CASE("train/eval reach every module and change behaviour", "[nn][module]") {
  Net net;
  net(ones({3}));
  CHECK(net.body->first->calls.item() == 1.0);
  net.eval();
  CHECK_FALSE(net.body->second->is_training());
  net(ones({3}));
  CHECK(net.body->first->calls.item() == 1.0);
  net.train();
  CHECK(net.body->second->is_training());
}

TEST_CASE("gradients flow to every parameter and zero_grad zeroes them in place", "[nn][module]") {
  Net net;
  sum(net(from_vector<float>({1, 2, 3}, {3}))).backward();
  CHECK(net.body->first->scale.grad().to_vector<float>() == std::vector<float>{1, 2, 3});
  CHECK(net.bias.grad().to_vector<float>() == std::vector<float>{1, 1, 1});
  const Tensor grad = net.bias.grad();
  net.zero_grad();
  for (const Tensor& p : net.parameters()) {
    REQUIRE(p.grad().defined());
    for (float v : p.grad().to_vector<float>()) CHECK(v == 0.0f);
  }
  CHECK(net.bias.grad().storage() == grad.storage());  // the same tensor, zeroed
}

TEST_CASE("state_dict round-trips and load_state_dict names what does not fit", "[nn][module]") {
  Net source, target;
  {
    NoGradGuard no_grad;
    source.body->second->shift.fill_(2.0);
    source.body->first->calls.fill_(7.0);
  }
  target.load_state_dict(source.state_dict());
  CHECK(target.body->second->shift.to_vector<float>() == std::vector<float>{2, 2, 2});
  CHECK(target.body->first->calls.item() == 7.0);
  // The layer's own handle still points at the loaded values.
  CHECK(target.state_dict().at("body.second.shift").storage() == target.body->second->shift.storage());

  TensorMap missing = source.state_dict();
  missing.erase("bias");
  CHECK_THROWS_WITH(target.load_state_dict(missing), Catch::Contains("missing: bias"));
  TensorMap extra = source.state_dict();
  extra["head.weight"] = zeros({1});
  CHECK_THROWS_WITH(target.load_state_dict(extra), Catch::Contains("unexpected: head.weight"));
  TensorMap wrong = source.state_dict();
  wrong["bias"] = zeros({4});
  CHECK_THROWS_WITH(target.load_state_dict(wrong), Catch::Contains("wrong shape: bias (expected [3], got [4])"));
  TensorMap integer = source.state_dict();
  integer["bias"] = integer["bias"].to(kInt64);
  CHECK_THROWS_WITH(target.load_state_dict(integer),
                    Catch::Contains("wrong dtype: bias (expected float32, got int64)"));
}

TEST_CASE("registration rejects bad names", "[nn][module][errors]") {
  struct Bad : Module {
    Bad() : Module("Bad") {}
    using Module::register_parameter;
  } bad;
  bad.register_parameter("w", zeros({1}));
  CHECK_THROWS_WITH(bad.register_parameter("w", zeros({1})), Catch::Contains("parameter 'w' is registered twice"));
  CHECK_THROWS_WITH(bad.register_parameter("a.b", zeros({1})), Catch::Contains("invalid name 'a.b'"));
  CHECK_THROWS_WITH(bad.forward(zeros({1})), Catch::Contains("Bad: this module has no single-input forward()"));
}

TEST_CASE("summary lists modules, output shapes and parameter counts", "[nn][module]") {
  Net net;
  const std::string text = net.summary(ones({2, 3}));
  CHECK(text.find("body.first") != std::string::npos);
  CHECK(text.find("Affine") != std::string::npos);
  CHECK(text.find("[2, 3]") != std::string::npos);
  CHECK(text.find("total parameters: 15") != std::string::npos);
  CHECK(net.is_training());
}

TEST_CASE("to(device) moves parameters and buffers and keeps handles valid", "[nn][module][cuda]") {
  BASIN_REQUIRE_CUDA();
  Net net;
  const Tensor handle = net.body->first->scale;
  net.to(Device::cuda());
  CHECK(handle.device().is_cuda());
  CHECK(handle.requires_grad());
  CHECK(net.body->first->calls.device().is_cuda());
  sum(net(ones({3}, Device::cuda()))).backward();
  CHECK(handle.grad().device().is_cuda());
  net.to(Device::cpu());
  CHECK(handle.device().is_cpu());
}

TEST_CASE("to(dtype) converts floating parameters, buffers and gradients and keeps handles valid", "[nn][module]") {
  Net net;
  const Tensor handle = net.body->first->scale;
  handle.detach().fill_(1.25);  // a value float32 and float64 both hold exactly
  sum(net(ones({3}))).backward();
  net.to(kFloat64);
  CHECK(handle.dtype() == kFloat64);
  CHECK(handle.requires_grad());
  CHECK(handle.grad().dtype() == kFloat64);
  CHECK(handle.to_vector<double>() == std::vector<double>{1.25, 1.25, 1.25});
  CHECK(net.body->first->calls.dtype() == kFloat64);
  const Tensor out = net(ones({3}, kFloat64));
  CHECK(out.dtype() == kFloat64);
  CHECK_THROWS_WITH(net.to(kInt64), Catch::Contains("floating dtypes only"));
}
