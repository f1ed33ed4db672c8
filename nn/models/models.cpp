#include "nn/models/models.h"

#include <optional>
#include <utility>

#include "core/elementwise.h"
#include "core/indexing.h"
#include "core/pool.h"
#include "nn/init.h"

namespace basin::nn {

namespace {

std::shared_ptr<Conv2d> conv3x3(std::int64_t in, std::int64_t out, std::int64_t stride) {
  return std::make_shared<Conv2d>(Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

}  // namespace

// ---------------------------------------------------------------- ResNet-18 (CIFAR)

ResNetBasicBlock::ResNetBasicBlock(std::int64_t in_planes, std::int64_t planes, std::int64_t stride)
    : Module("BasicBlock") {
  conv1 = register_module("conv1", conv3x3(in_planes, planes, stride));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", conv3x3(planes, planes, 1));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  shortcut = register_module("shortcut", std::make_shared<Sequential>());
  if (stride != 1 || in_planes != planes) {
    shortcut->push_back(std::make_shared<Conv2d>(Conv2dOptions(in_planes, planes, 1).stride(stride).bias(false)));
    shortcut->push_back(std::make_shared<BatchNorm2d>(planes));
  }
}

Tensor ResNetBasicBlock::forward(const Tensor& x) {
  Tensor out = relu((*bn1)((*conv1)(x)));
  out = (*bn2)((*conv2)(out));
  return relu(out + (*shortcut)(x));
}

ResNet18::ResNet18(std::int64_t num_classes) : Module("ResNet18") {
  conv1 = register_module("conv1", conv3x3(3, 64, 1));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(64));
  std::int64_t in_planes = 64;
  auto make_layer = [&](const char* name, std::int64_t planes, std::int64_t stride) {
    auto layer = std::make_shared<Sequential>();
    for (std::int64_t s : {stride, std::int64_t{1}}) {
      layer->push_back(std::make_shared<ResNetBasicBlock>(in_planes, planes, s));
      in_planes = planes;
    }
    return register_module(name, layer);
  };
  layer1 = make_layer("layer1", 64, 1);
  layer2 = make_layer("layer2", 128, 2);
  layer3 = make_layer("layer3", 256, 2);
  layer4 = make_layer("layer4", 512, 2);
  linear = register_module("linear", std::make_shared<Linear>(512, num_classes));
}

Tensor ResNet18::forward(const Tensor& x) {
  Tensor out = relu((*bn1)((*conv1)(x)));
  out = (*layer4)((*layer3)((*layer2)((*layer1)(out))));
  out = global_avg_pool2d(out).flatten(1);  // the 4x4 map of a 32x32 input, as avg_pool2d(out, 4)
  return (*linear)(out);
}

// ---------------------------------------------------------------- Wide ResNet

WideBasicBlock::WideBasicBlock(std::int64_t in_planes, std::int64_t out_planes, std::int64_t stride,
                               double drop_rate_)
    : Module("WideBasicBlock"), drop_rate(drop_rate_) {
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(in_planes));
  conv1 = register_module("conv1", conv3x3(in_planes, out_planes, stride));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(out_planes));
  conv2 = register_module("conv2", conv3x3(out_planes, out_planes, 1));
  if (in_planes != out_planes) {
    convShortcut = register_module(
        "convShortcut", std::make_shared<Conv2d>(Conv2dOptions(in_planes, out_planes, 1).stride(stride).bias(false)));
  }
}

Tensor WideBasicBlock::forward(const Tensor& x) {
  // Pre-activation. When the shape changes, the shortcut also sees the
  // activated input (as in the reference implementation).
  const Tensor activated = relu((*bn1)(x));
  Tensor out = relu((*bn2)((*conv1)(activated)));
  if (drop_rate > 0.0) out = dropout(out, drop_rate, is_training());
  out = (*conv2)(out);
  return (convShortcut ? (*convShortcut)(activated) : x) + out;
}

WideNetworkBlock::WideNetworkBlock(std::int64_t blocks, std::int64_t in_planes, std::int64_t out_planes,
                                   std::int64_t stride, double drop_rate)
    : Module("NetworkBlock") {
  layer = register_module("layer", std::make_shared<Sequential>());
  for (std::int64_t i = 0; i < blocks; ++i) {
    layer->push_back(std::make_shared<WideBasicBlock>(i == 0 ? in_planes : out_planes, out_planes,
                                                      i == 0 ? stride : 1, drop_rate));
  }
}

WideResNet::WideResNet(std::int64_t depth, std::int64_t widen_factor, std::int64_t num_classes, double drop_rate)
    : Module("WideResNet") {
  BASIN_CHECK((depth - 4) % 6 == 0 && depth >= 10, "WideResNet: depth must be 6n + 4 (10, 16, 22, 28, ...), got ",
              depth);
  BASIN_CHECK(widen_factor >= 1, "WideResNet: widen factor must be at least 1, got ", widen_factor);
  const std::int64_t n = (depth - 4) / 6;
  const std::int64_t widths[4] = {16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor};
  channels = widths[3];
  conv1 = register_module("conv1", conv3x3(3, widths[0], 1));
  block1 = register_module("block1", std::make_shared<WideNetworkBlock>(n, widths[0], widths[1], 1, drop_rate));
  block2 = register_module("block2", std::make_shared<WideNetworkBlock>(n, widths[1], widths[2], 2, drop_rate));
  block3 = register_module("block3", std::make_shared<WideNetworkBlock>(n, widths[2], widths[3], 2, drop_rate));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(widths[3]));
  fc = register_module("fc", std::make_shared<Linear>(widths[3], num_classes));
  // The reference initialization: convolutions He-normal over fan-out, linear bias zero.
  apply([](Module& m) {
    if (auto* conv = dynamic_cast<Conv2d*>(&m)) init::kaiming_normal_(conv->weight, 0.0, init::FanMode::FanOut);
  });
  init::zeros_(fc->bias);
}

Tensor WideResNet::forward(const Tensor& x) {
  Tensor out = (*block3)((*block2)((*block1)((*conv1)(x))));
  out = relu((*bn1)(out));
  return (*fc)(global_avg_pool2d(out).flatten(1));
}

// ---------------------------------------------------------------- CIFAR ResNet (option A)

CifarBasicBlock::CifarBasicBlock(std::int64_t in_planes, std::int64_t planes, std::int64_t stride)
    : Module("BasicBlock"), downsample(stride != 1 || in_planes != planes), pad(planes / 4) {
  conv1 = register_module("conv1", conv3x3(in_planes, planes, stride));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", conv3x3(planes, planes, 1));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
}

Tensor CifarBasicBlock::forward(const Tensor& x) {
  Tensor out = relu((*bn1)((*conv1)(x)));
  out = (*bn2)((*conv2)(out));
  Tensor shortcut = x;
  if (downsample) {
    // Option A: every other pixel, and zero channels on both sides (no parameters).
    const Tensor sub = x.slice(2, 0, x.size(2), 2).slice(3, 0, x.size(3), 2);
    Shape pad_shape = sub.shape();
    pad_shape[1] = pad;
    const Tensor zero = zeros(pad_shape, TensorOptions(x.dtype()).device(x.device()));
    shortcut = cat({zero, sub, zero}, 1);
  }
  return relu(out + shortcut);
}

CifarResNet::CifarResNet(std::int64_t depth, std::int64_t num_classes) : Module("CifarResNet") {
  BASIN_CHECK((depth - 2) % 6 == 0 && depth >= 8, "CifarResNet: depth must be 6n + 2 (20, 32, 44, 56, 110), got ",
              depth);
  const std::int64_t n = (depth - 2) / 6;
  conv1 = register_module("conv1", conv3x3(3, 16, 1));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(16));
  std::int64_t in_planes = 16;
  auto make_layer = [&](const char* name, std::int64_t planes, std::int64_t stride) {
    auto layer = std::make_shared<Sequential>();
    for (std::int64_t i = 0; i < n; ++i) {
      layer->push_back(std::make_shared<CifarBasicBlock>(in_planes, planes, i == 0 ? stride : 1));
      in_planes = planes;
    }
    return register_module(name, layer);
  };
  layer1 = make_layer("layer1", 16, 1);
  layer2 = make_layer("layer2", 32, 2);
  layer3 = make_layer("layer3", 64, 2);
  linear = register_module("linear", std::make_shared<Linear>(64, num_classes));
  // The reference initialization: He-normal (fan-in) for every conv and linear weight.
  apply([](Module& m) {
    if (auto* conv = dynamic_cast<Conv2d*>(&m)) init::kaiming_normal_(conv->weight);
    if (auto* lin = dynamic_cast<Linear*>(&m)) init::kaiming_normal_(lin->weight);
  });
}

Tensor CifarResNet::forward(const Tensor& x) {
  Tensor out = relu((*bn1)((*conv1)(x)));
  out = (*layer3)((*layer2)((*layer1)(out)));
  return (*linear)(global_avg_pool2d(out).flatten(1));
}

// ---------------------------------------------------------------- small CNN

SmallCnn::SmallCnn(std::int64_t num_classes) : Module("SmallCnn") {
  net = register_module("net", std::make_shared<Sequential>());
  std::int64_t in = 3;
  for (std::int64_t width : {32, 64, 128, 256}) {
    net->push_back(conv3x3(in, width, 1));
    net->push_back(std::make_shared<BatchNorm2d>(width));
    net->push_back(std::make_shared<ReLU>());
    if (width != 32) net->push_back(std::make_shared<MaxPool2d>(MaxPool2dOptions(2)));
    in = width;
  }
  net->push_back(std::make_shared<GlobalAvgPool2d>());
  net->push_back(std::make_shared<Flatten>());
  net->push_back(std::make_shared<Linear>(in, num_classes));
}

// ---------------------------------------------------------------- MLP

Mlp::Mlp(std::int64_t num_classes, std::int64_t in_features, std::int64_t hidden) : Module("Mlp") {
  fc1 = register_module("fc1", std::make_shared<Linear>(in_features, hidden));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, num_classes));
}

Tensor Mlp::forward(const Tensor& x) {
  BASIN_CHECK(x.dim() >= 2, "Mlp: expected a batch of inputs [B, ...], got shape ", shape_str(x.shape()));
  return (*fc2)(relu((*fc1)(x.flatten(1))));
}

// ---------------------------------------------------------------- registry

std::vector<std::string> model_names() {
  return {"resnet18", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
          "wrn16-8",  "wrn28-10", "wrn<depth>-<width>", "cnn-small", "mlp"};
}

namespace {

// The digits of `text` from `pos` on, up to `end`; nothing when there are none
// or something else is in the way.
std::optional<std::int64_t> number_at(const std::string& text, std::size_t pos, std::size_t end) {
  if (pos >= end || end - pos > 6) return std::nullopt;
  std::int64_t value = 0;
  for (std::size_t i = pos; i < end; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

// "resnet20" -> 20 for the CIFAR ResNet depths.
std::optional<std::int64_t> cifar_resnet_depth(const std::string& name) {
  if (name.rfind("resnet", 0) != 0) return std::nullopt;
  const auto depth = number_at(name, 6, name.size());
  if (!depth || (*depth != 20 && *depth != 32 && *depth != 44 && *depth != 56 && *depth != 110)) return std::nullopt;
  return depth;
}

// "wrn28-10" -> (28, 10).
std::optional<std::pair<std::int64_t, std::int64_t>> wide_resnet_shape(const std::string& name) {
  const std::size_t dash = name.find('-');
  if (name.rfind("wrn", 0) != 0 || dash == std::string::npos) return std::nullopt;
  const auto depth = number_at(name, 3, dash);
  const auto width = number_at(name, dash + 1, name.size());
  if (!depth || !width) return std::nullopt;
  return std::make_pair(*depth, *width);
}

}  // namespace

void check_model_name(const std::string& name) {
  if (name == "resnet18" || name == "cnn-small" || name == "mlp" || cifar_resnet_depth(name) || wide_resnet_shape(name)) return;
  std::string known;
  for (const std::string& n : model_names()) known += (known.empty() ? "" : ", ") + n;
  BASIN_FAIL("unknown model '", name, "' (known: ", known, ")");
}

ModulePtr create_model(const std::string& name, std::int64_t num_classes) {
  check_model_name(name);
  BASIN_CHECK(num_classes > 0, "create_model: num_classes must be positive, got ", num_classes);
  if (name == "resnet18") return std::make_shared<ResNet18>(num_classes);
  if (name == "cnn-small") return std::make_shared<SmallCnn>(num_classes);
  if (name == "mlp") return std::make_shared<Mlp>(num_classes);
  if (const auto depth = cifar_resnet_depth(name)) return std::make_shared<CifarResNet>(*depth, num_classes);
  const auto [depth, width] = *wide_resnet_shape(name);
  return std::make_shared<WideResNet>(depth, width, num_classes);
}

}  // namespace basin::nn
