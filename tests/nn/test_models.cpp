// The CIFAR models of nn/models: parameter counts, names and shapes against
// their PyTorch twins (tests/reference/gen_nn_fixtures.py writes them into
// nn_models.safetensors), CIFAR-100 heads, initialization, forward shapes,
// the registry's errors and the summary.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/random.h"
#include "nn/models/models.h"
#include "support/fixtures.h"

using namespace basin;
using namespace basin::nn;

namespace {

// Parameter counts with 10 classes, each also checked against the PyTorch twin
// (nn_models.safetensors).
const std::map<std::string, std::int64_t> kParameterCounts = {
    {"resnet18", 11'173'962}, {"resnet20", 269'722},   {"resnet32", 464'154},
    {"resnet44", 658'586},    {"resnet56", 853'018},   {"resnet110", 1'727'962},
    {"wrn16-8", 10'961'370},  {"wrn28-10", 36'479'194}, {"cnn-small", 391'466},
};

struct ModelsFixture {
  TensorMap tensors;
  std::map<std::string, std::string> metadata;
};

const ModelsFixture& models_fixture() {
  static const ModelsFixture fixture = [] {
    ModelsFixture f;
    testing::load_fixture("nn_models.safetensors");  // a missing file fails here, with the command that writes it
    f.tensors = load_safetensors(std::string(BASIN_TEST_REFERENCE_DIR) + "/nn_models.safetensors", &f.metadata);
    return f;
  }();
  return fixture;
}

std::int64_t pytorch_count(const std::string& model, std::int64_t classes) {
  const std::string key = "params." + model + "." + std::to_string(classes);
  return static_cast<std::int64_t>(testing::fixture_tensor(models_fixture().tensors, key).item());
}

std::string pytorch_listing(const std::string& kind, const std::string& model) {
  const auto& metadata = models_fixture().metadata;
  const auto it = metadata.find(kind + "." + model);
  REQUIRE(it != metadata.end());
  return it->second;
}

// "name [d0, d1, ...]" per line, as the generator writes them.
std::string listing(const Named<Tensor>& named) {
  std::string out;
  for (const auto& [name, tensor] : named) out += (out.empty() ? "" : "\n") + name + " " + shape_str(tensor.shape());
  return out;
}

Shape shape_of(const Named<Tensor>& named, const std::string& name) {
  for (const auto& [n, tensor] : named) {
    if (n == name) return tensor.shape();
  }
  FAIL("no tensor named " << name);
  return {};
}

// Names, shapes and registration order of parameters and buffers, and the
// parameter count, against the PyTorch twin and the table above.
void check_against_pytorch(const std::string& name, const Module& model) {
  INFO(name);
  CHECK(parameter_count(model) == kParameterCounts.at(name));
  CHECK(parameter_count(model) == pytorch_count(name, 10));
  CHECK(listing(model.named_parameters()) == pytorch_listing("parameters", name));
  CHECK(listing(model.named_buffers()) == pytorch_listing("buffers", name));
}

// A model built for 100 classes has the PyTorch twin's count and differs from
// the 10-class build only in the first dimension of the head's weight and bias.
void check_cifar100_head(const std::string& name, const Module& ten, const std::string& head) {
  INFO(name << " with 100 classes");
  const ModulePtr hundred = create_model(name, 100);
  CHECK(parameter_count(*hundred) == pytorch_count(name, 100));
  const Named<Tensor> a = ten.named_parameters();
  const Named<Tensor> b = hundred->named_parameters();
  REQUIRE(a.size() == b.size());
  std::size_t changed = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    REQUIRE(a[i].first == b[i].first);
    const Shape& small = a[i].second.shape();
    const Shape& large = b[i].second.shape();
    if (a[i].first.rfind(head, 0) == 0) {
      ++changed;
      CHECK(small[0] == 10);
      CHECK(large[0] == 100);
      CHECK(Shape(small.begin() + 1, small.end()) == Shape(large.begin() + 1, large.end()));
    } else {
      CHECK(small == large);
    }
  }
  CHECK(changed == 2);  // weight and bias
}

double mean_of(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double stddev_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0.0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

// A forward pass on two random 32x32 images: [2, classes], finite, and not the
// same row twice (a network that ignored its input would give that).
void check_forward(const std::string& name, bool training) {
  INFO(name << (training ? " in training mode" : " in eval mode"));
  manual_seed(7);
  const ModulePtr model = create_model(name);
  model->train(training);
  const Tensor images = randn({2, 3, 32, 32});
  NoGradGuard no_grad;
  const Tensor out = (*model)(images);
  REQUIRE(out.shape() == Shape{2, 10});
  const std::vector<double> v = out.to_vector<double>();
  for (double x : v) CHECK(std::isfinite(x));
  CHECK(std::vector<double>(v.begin(), v.begin() + 10) != std::vector<double>(v.begin() + 10, v.end()));
}

}  // namespace

TEST_CASE("models: CIFAR ResNets (option A) have PyTorch's parameters, names and shapes", "[model]") {
  for (const std::string name : {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110"}) {
    check_against_pytorch(name, *create_model(name));
  }
  const ModulePtr model = create_model("resnet20");
  const Named<Tensor> params = model->named_parameters();
  CHECK(params.size() == 59);  // 19 convs (no bias), 19 BN weight/bias pairs, linear weight and bias
  CHECK(shape_of(params, "conv1.weight") == Shape{16, 3, 3, 3});
  CHECK(shape_of(params, "layer2.0.conv1.weight") == Shape{32, 16, 3, 3});
  CHECK(shape_of(params, "layer3.2.conv2.weight") == Shape{64, 64, 3, 3});
  CHECK(shape_of(params, "linear.weight") == Shape{10, 64});
  CHECK(shape_of(model->named_buffers(), "layer3.2.bn2.running_var") == Shape{64});
  CHECK(shape_of(model->named_buffers(), "layer3.2.bn2.num_batches_tracked") == Shape{});
  // The option-A shortcut has no parameters.
  for (const auto& [n, _] : params) CHECK(n.find("shortcut") == std::string::npos);
}

TEST_CASE("models: ResNet-18 has PyTorch's parameters, names and shapes", "[model]") {
  const ModulePtr model = create_model("resnet18");
  check_against_pytorch("resnet18", *model);
  const Named<Tensor> params = model->named_parameters();
  CHECK(shape_of(params, "layer1.0.conv1.weight") == Shape{64, 64, 3, 3});
  CHECK(shape_of(params, "layer2.0.shortcut.0.weight") == Shape{128, 64, 1, 1});
  CHECK(shape_of(params, "layer2.0.shortcut.1.weight") == Shape{128});
  CHECK(shape_of(params, "linear.weight") == Shape{10, 512});
  CHECK(shape_of(params, "linear.bias") == Shape{10});
  check_cifar100_head("resnet18", *model, "linear.");
}

TEST_CASE("models: WRN-16-8 has PyTorch's parameters, names and shapes", "[model]") {
  const ModulePtr model = create_model("wrn16-8");
  check_against_pytorch("wrn16-8", *model);
  const Named<Tensor> params = model->named_parameters();
  CHECK(shape_of(params, "block1.layer.0.convShortcut.weight") == Shape{128, 16, 1, 1});
  CHECK(shape_of(params, "block3.layer.1.conv2.weight") == Shape{512, 512, 3, 3});
  CHECK(shape_of(params, "bn1.weight") == Shape{512});
  CHECK(shape_of(params, "fc.weight") == Shape{10, 512});
  check_cifar100_head("wrn16-8", *model, "fc.");
}

TEST_CASE("models: WRN-28-10 has PyTorch's parameters, names and shapes", "[model]") {
  const ModulePtr model = create_model("wrn28-10");
  check_against_pytorch("wrn28-10", *model);
  CHECK(shape_of(model->named_parameters(), "fc.weight") == Shape{10, 640});
}

TEST_CASE("models: cnn-small has the parameters of its PyTorch twin", "[model]") {
  check_against_pytorch("cnn-small", *create_model("cnn-small"));
}

TEST_CASE("models: CIFAR-100 heads change only the head", "[model]") {
  // resnet18 and wrn16-8 are checked in their own tests, beside their 10-class build.
  check_cifar100_head("resnet20", *create_model("resnet20"), "linear.");
  check_cifar100_head("resnet110", *create_model("resnet110"), "linear.");
  check_cifar100_head("cnn-small", *create_model("cnn-small"), "net.17.");
}

TEST_CASE("models: CIFAR ResNet and WRN initialize as their references do", "[model]") {
  manual_seed(11);
  {
    // He-normal over fan-in for convs and the linear layer; BN at (1, 0), stats at (0, 1).
    const auto model = std::dynamic_pointer_cast<CifarResNet>(create_model("resnet56"));
    REQUIRE(model);
    const std::vector<double> w = model->named_parameters()[0].second.to_vector<double>();  // conv1.weight
    CHECK(stddev_of(w) == Approx(std::sqrt(2.0 / 27.0)).epsilon(0.15));
    const auto block = std::dynamic_pointer_cast<CifarBasicBlock>((*model->layer3)[8]);
    REQUIRE(block);
    const std::vector<double> deep = block->conv2->weight.to_vector<double>();  // 36,864 values
    CHECK(std::abs(mean_of(deep)) < 0.003);
    CHECK(stddev_of(deep) == Approx(std::sqrt(2.0 / 576.0)).epsilon(0.02));
    CHECK(stddev_of(model->linear->weight.to_vector<double>()) == Approx(std::sqrt(2.0 / 64.0)).epsilon(0.1));
    for (double v : block->bn2->weight.to_vector<double>()) CHECK(v == 1.0);
    for (double v : block->bn2->bias.to_vector<double>()) CHECK(v == 0.0);
    for (double v : block->bn2->running_var.to_vector<double>()) CHECK(v == 1.0);
  }
  {
    // He-normal over fan-out for convs; the head's bias starts at zero.
    const auto model = std::dynamic_pointer_cast<WideResNet>(create_model("wrn16-2"));
    REQUIRE(model);
    const auto block = std::dynamic_pointer_cast<WideBasicBlock>((*model->block3->layer)[1]);
    REQUIRE(block);
    const std::vector<double> w = block->conv2->weight.to_vector<double>();
    REQUIRE(w.size() == 128u * 128u * 9u);
    CHECK(stddev_of(w) == Approx(std::sqrt(2.0 / (128.0 * 9.0))).epsilon(0.02));
    for (double v : model->fc->bias.to_vector<double>()) CHECK(v == 0.0);
  }
}

TEST_CASE("models: models map two 32x32 images to [2, 10] logits", "[model]") {
  for (const std::string name : {"resnet20", "cnn-small"}) {
    check_forward(name, true);
    check_forward(name, false);
  }
}

TEST_CASE("models: ResNet-18 maps two 32x32 images to [2, 10] logits", "[model]") {
  check_forward("resnet18", true);
}

TEST_CASE("models: create_model rejects unknown names and bad options", "[model][errors]") {
  using Catch::Contains;
  for (const std::string name : {"resnet21", "ResNet20", "wrn", ""}) {
    INFO("'" << name << "'");
    CHECK_THROWS_WITH(create_model(name), Contains("unknown model '" + name + "'") && Contains("resnet18") &&
                                              Contains("resnet20") && Contains("resnet110") &&
                                              Contains("wrn28-10") && Contains("cnn-small"));
  }
  CHECK_THROWS_WITH(create_model("wrn15-8"), Contains("WideResNet: depth must be 6n + 4") && Contains("15"));
  CHECK_THROWS_WITH(create_model("wrn16-0"), Contains("widen factor must be at least 1, got 0"));
  CHECK_THROWS_WITH(create_model("resnet20", 0), Contains("num_classes must be positive, got 0"));
  CHECK_THROWS_WITH(CifarResNet(21), Contains("CifarResNet: depth must be 6n + 2") && Contains("21"));
  // Every name the registry lists, apart from the WRN pattern, is one create_model accepts.
  const std::vector<std::string> names = model_names();
  for (const std::string name : {"resnet18", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                                 "wrn16-8", "wrn28-10", "cnn-small"}) {
    CHECK(std::find(names.begin(), names.end(), name) != names.end());
  }
}

TEST_CASE("models: model summary lists the layers and the total parameter count", "[model]") {
  const ModulePtr model = create_model("resnet20");
  const std::string plain = model->summary();
  CHECK_THAT(plain, Catch::Contains("total parameters: 269722"));
  CHECK_THAT(plain, Catch::Contains("layer3.2.conv2"));
  CHECK_THAT(plain, Catch::Contains("BasicBlock"));
  manual_seed(3);
  const std::string traced = model->summary(randn({1, 3, 32, 32}));
  CHECK_THAT(traced, Catch::Contains("-> output [1, 10]"));
  CHECK_THAT(traced, Catch::Contains("[1, 64, 8, 8]"));  // layer3's output
  CHECK_THAT(traced, Catch::Contains("total parameters: 269722"));
  CHECK(model->is_training());  // summary's forward pass leaves the mode as it found it
}
