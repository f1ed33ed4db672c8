#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/matmul.h"
#include "core/random.h"
#include "core/reduce.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "support/compare.h"
#include "support/cuda.h"

using namespace basin;
using namespace basin::nn;

namespace {
double max_abs(const Tensor& t) { return max(abs(t.detach())).item(); }
}  // namespace

TEST_CASE("Linear has PyTorch's names, shapes, init and math", "[nn][layers]") {
  manual_seed(1);
  Linear fc(LinearOptions(20, 7));
  const auto params = fc.named_parameters();
  REQUIRE(params.size() == 2);
  CHECK(params[0].first == "weight");
  CHECK(params[0].second.shape() == Shape{7, 20});
  CHECK(params[1].first == "bias");
  // Default init: uniform(+-1/sqrt(fan_in)).
  const double bound = 1.0 / std::sqrt(20.0);
  CHECK(max_abs(fc.weight) <= bound);
  CHECK(max_abs(fc.weight) > 0.8 * bound);
  CHECK(max_abs(fc.bias) <= bound);

  const Tensor x = randn({3, 20});
  const Tensor expected = matmul(x, fc.weight.t()) + fc.bias;
  CHECK(testing::max_abs_diff(fc(x), expected) == 0.0);
  CHECK(Linear(LinearOptions(4, 2).bias(false)).parameters().size() == 1);
  CHECK_THROWS_WITH(fc(randn({3, 19})), Catch::Contains("Linear: expected input [N, 20], got [3, 19]"));
  CHECK_THROWS_WITH(Linear(0, 3), Catch::Contains("Linear: features must be positive"));
}

TEST_CASE("Conv2d options, names and init", "[nn][layers]") {
  manual_seed(2);
  Conv2d conv(Conv2dOptions(3, 16, 3).stride(2).padding(1).bias(false));
  CHECK(conv.named_parameters().size() == 1);
  CHECK(conv.weight.shape() == Shape{16, 3, 3, 3});
  CHECK(max_abs(conv.weight) <= 1.0 / std::sqrt(27.0));
  CHECK(conv.describe() == "3, 16, kernel_size=3, stride=2, padding=1, bias=false");
  CHECK(conv(randn({2, 3, 8, 8})).shape() == Shape{2, 16, 4, 4});
  CHECK_THROWS_WITH(Conv2d(Conv2dOptions(3, 16, 3).stride(0)), Catch::Contains("Conv2d: invalid options"));
}

TEST_CASE("BatchNorm2d keeps PyTorch's state and can freeze its running statistics", "[nn][layers]") {
  manual_seed(3);
  BatchNorm2d bn(4);
  std::vector<std::string> names;
  for (const auto& [name, _] : bn.state_dict()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"bias", "num_batches_tracked", "running_mean", "running_var", "weight"});
  CHECK(bn.num_batches_tracked.dtype() == kInt64);

  const Tensor x = randn({8, 4, 3, 3}, kFloat32, 2.0, 3.0);
  bn(x);
  CHECK(bn.num_batches_tracked.item() == 1.0);
  const std::vector<float> mean_after_one = bn.running_mean.to_vector<float>();
  CHECK(mean_after_one[0] != 0.0f);
  {
    RunningStatsFreeze freeze(bn);
    bn(x * 2.0);
    CHECK(bn.running_mean.to_vector<float>() == mean_after_one);
    CHECK(bn.num_batches_tracked.item() == 1.0);
  }
  bn(x);
  CHECK(bn.num_batches_tracked.item() == 2.0);
  CHECK(bn.running_mean.to_vector<float>() != mean_after_one);

  // Eval mode uses the running statistics and moves nothing.
  bn.eval();
  const std::vector<float> frozen = bn.running_var.to_vector<float>();
  bn(x);
  CHECK(bn.running_var.to_vector<float>() == frozen);

  // A loaded count carries on from the loaded value.
  BatchNorm2d other(4);
  other.load_state_dict(bn.state_dict());
  other(x);
  CHECK(other.num_batches_tracked.item() == 3.0);
  CHECK_THROWS_WITH(BatchNorm2d(BatchNorm2dOptions(4).momentum(1.5)), Catch::Contains("momentum must be in [0, 1]"));
}

TEST_CASE("BatchNorm2d carries on from any loaded batch count without overflowing", "[nn][layers]") {
  // Found by tests/fuzz/fuzz_state_dict.cpp: a checkpoint whose count was
  // 2^63 - 1 was read through a double (2^63, out of int64's range: undefined
  // behaviour), then incremented past the maximum.
  manual_seed(5);
  const Tensor x = randn({4, 2, 3, 3});
  const auto count_after_step = [&](std::int64_t loaded) {
    BatchNorm2d bn(2);
    TensorMap state = bn.state_dict();
    state["num_batches_tracked"] = full({}, 0.0, kInt64);
    state["num_batches_tracked"].data<std::int64_t>()[0] = loaded;  // exact, whatever the value
    bn.load_state_dict(state);
    bn(x);
    return bn.num_batches_tracked.to_vector<std::int64_t>()[0];
  };
  constexpr std::int64_t k2to53 = std::int64_t{1} << 53;
  CHECK(count_after_step(41) == 42);
  CHECK(count_after_step(k2to53 - 2) == k2to53 - 1);  // exact up to 2^53
  CHECK(count_after_step(k2to53) == k2to53);          // then it stays there
  CHECK(count_after_step(std::numeric_limits<std::int64_t>::max()) == k2to53);
  CHECK(count_after_step(-5) == -4);  // a nonsense count still counts on
}

TEST_CASE("Sequential names its children 0, 1, ... and runs them in order", "[nn][layers]") {
  manual_seed(4);
  Sequential net{std::make_shared<Linear>(5, 8), std::make_shared<ReLU>(), std::make_shared<Dropout>(0.5),
                 std::make_shared<Linear>(8, 2)};
  std::vector<std::string> names;
  for (const auto& [name, _] : net.named_parameters()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "3.weight", "3.bias"});
  net.eval();
  const Tensor x = randn({4, 5});
  auto* first = dynamic_cast<Linear*>(net[0].get());
  auto* last = dynamic_cast<Linear*>(net[3].get());
  const Tensor expected = (*last)(relu((*first)(x)));
  CHECK(testing::max_abs_diff(net(x), expected) == 0.0);
  CHECK_THROWS_WITH(net[4], Catch::Contains("Sequential: index 4 out of range (4 layers)"));
}

TEST_CASE("stateless layers", "[nn][layers]") {
  manual_seed(5);
  const Tensor x = randn({2, 3, 8, 8});
  CHECK(MaxPool2d(MaxPool2dOptions(2).stride(2))(x).shape() == Shape{2, 3, 4, 4});
  CHECK(AvgPool2d(AvgPool2dOptions(3).stride(2).padding(1))(x).shape() == Shape{2, 3, 4, 4});
  CHECK(MaxPool2d(2).options.stride() == 2);  // the stride defaults to the kernel size, as in PyTorch
  CHECK(Dropout(DropoutOptions(0.25)).describe() == "p=0.25");
  CHECK(GlobalAvgPool2d()(x).shape() == Shape{2, 3, 1, 1});
  CHECK(Flatten()(x).shape() == Shape{2, 192});
  CHECK(Identity()(x).storage() == x.storage());
  Dropout drop(0.25);
  drop.eval();
  CHECK(testing::equal(drop(x), x));
  drop.train();
  CHECK_FALSE(testing::equal(drop(x), x));
  CHECK_THROWS_WITH(Dropout(1.0), Catch::Contains("Dropout: p must be in [0, 1), got 1"));
}

TEST_CASE("initializers give the documented spreads", "[nn][init]") {
  manual_seed(6);
  Tensor w = empty({256, 128, 3, 3});
  CHECK(init::fans(w) == std::pair<std::int64_t, std::int64_t>{1152, 2304});
  init::kaiming_normal_(w);
  const double std_fan_in = std::sqrt(mean(pow(w, 2.0)).item());
  CHECK(std_fan_in == Approx(std::sqrt(2.0 / 1152.0)).epsilon(0.02));
  init::kaiming_normal_(w, 0.0, init::FanMode::FanOut);
  CHECK(std::sqrt(mean(pow(w, 2.0)).item()) == Approx(std::sqrt(2.0 / 2304.0)).epsilon(0.02));
  init::xavier_uniform_(w);
  CHECK(max_abs(w) <= std::sqrt(6.0 / (1152.0 + 2304.0)));
  init::kaiming_uniform_(w);
  CHECK(max_abs(w) <= std::sqrt(3.0) * std::sqrt(2.0 / 1152.0));
  init::xavier_normal_(w, 2.0);
  CHECK(std::sqrt(mean(pow(w, 2.0)).item()) == Approx(2.0 * std::sqrt(2.0 / 3456.0)).epsilon(0.02));
  init::zeros_(w);
  CHECK(max_abs(w) == 0.0);
  Tensor v = empty({3});
  CHECK_THROWS_WITH(init::kaiming_normal_(v), Catch::Contains("needs a weight of 2 or more dimensions"));
}

TEST_CASE("CrossEntropyLoss applies its options", "[nn][layers]") {
  const Tensor logits = from_vector<float>({2, 0, 0, 0, 3, 0}, {2, 3});
  const Tensor labels = from_vector<std::int64_t>({0, 1}, {2});
  CrossEntropyLoss plain;
  CrossEntropyLoss smooth(CrossEntropyLossOptions().label_smoothing(0.1));
  CHECK(plain(logits, labels).item() == Approx(cross_entropy(logits, labels).item()));
  CHECK(smooth(logits, labels).item() == Approx(cross_entropy(logits, labels, 0.1).item()));
  CHECK(smooth(logits, labels).item() > plain(logits, labels).item());
  CHECK_THROWS_WITH(CrossEntropyLoss(CrossEntropyLossOptions().label_smoothing(2.0)),
                    Catch::Contains("label_smoothing must be in [0, 1]"));
}

TEST_CASE("layers move to CUDA and compute there", "[nn][layers][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(7);
  Sequential cpu_net{std::make_shared<Conv2d>(Conv2dOptions(3, 8, 3).padding(1)), std::make_shared<BatchNorm2d>(8),
                     std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(MaxPool2dOptions(2)), std::make_shared<Flatten>(),
                     std::make_shared<Linear>(8 * 16, 10)};
  manual_seed(7);
  Sequential gpu_net{std::make_shared<Conv2d>(Conv2dOptions(3, 8, 3).padding(1)), std::make_shared<BatchNorm2d>(8),
                     std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(MaxPool2dOptions(2)), std::make_shared<Flatten>(),
                     std::make_shared<Linear>(8 * 16, 10)};
  gpu_net.to(Device::cuda());
  const Tensor x = randn({5, 3, 8, 8});
  const Tensor expected = cpu_net(x);
  const Tensor got = gpu_net(x.to(Device::cuda()));
  CHECK(testing::max_abs_diff(got, expected) < 1e-4);
  sum(got).backward();
  sum(expected).backward();
  const auto cpu_params = cpu_net.named_parameters();
  const auto gpu_params = gpu_net.named_parameters();
  // The conv bias feeds BatchNorm, whose batch mean removes it: its gradient is
  // exactly zero, and each device returns its own rounding noise (1e-7) there.
  // So every gradient is compared at the scale of the largest one, not of itself.
  double scale = 1.0;
  for (const auto& [name, p] : cpu_params) scale = std::max(scale, testing::max_abs_diff(p.grad(), zeros_like(p)));
  for (std::size_t i = 0; i < cpu_params.size(); ++i) {
    const auto& [name, p] = cpu_params[i];
    INFO(name);
    CHECK(testing::max_abs_diff(gpu_params[i].second.grad(), p.grad()) < 1e-5 * scale);
    if (name == "0.bias") CHECK(testing::max_abs_diff(p.grad(), zeros_like(p)) < 1e-5 * scale);
  }
  CHECK(testing::max_abs_diff(gpu_net.state_dict().at("1.running_mean"), cpu_net.state_dict().at("1.running_mean")) <
        1e-5);
}
