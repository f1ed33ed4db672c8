// CIFAR models (32x32 inputs), with the module and parameter names of the
// PyTorch implementations most CIFAR and SAM code uses, so checkpoints map
// one to one:
//   resnet18            ResNet-18, CIFAR variant (3x3 stem, no max-pool), as in
//                       kuangliu/pytorch-cifar: conv1, bn1, layer1..4, linear
//   wrn<d>-<k>          pre-activation Wide ResNet WRN-d-k, as in
//                       xternalz/WideResNet-pytorch: conv1, block1..3.layer.N, bn1, fc
//   resnet20/32/44/56/110  He et al.'s CIFAR ResNets with parameter-free
//                       option-A shortcuts, as in akamaster/pytorch_resnet_cifar10
//   cnn-small           a small, fast all-convolutional network for quick runs
//   mlp                 a two-layer perceptron without BatchNorm (fc1, fc2): the
//                       model whose gradient is exactly a mean over examples, for
//                       checks where BatchNorm's per-batch statistics would differ
#pragma once

#include <string>
#include <vector>

#include "nn/layers.h"

namespace basin::nn {

// Builds a registered model by name ("resnet18", "wrn16-8", "wrn28-10",
// "resnet20", ...). Unknown names are an error that lists the known ones.
ModulePtr create_model(const std::string& name, std::int64_t num_classes = 10);
// Throws the same error as create_model for a name it does not know, without building anything.
void check_model_name(const std::string& name);
// The names create_model accepts (WRN depths and widths are open-ended; the list shows examples).
std::vector<std::string> model_names();

// ---------------------------------------------------------------- ResNet-18 (CIFAR)
class ResNetBasicBlock : public Module {
 public:
  ResNetBasicBlock(std::int64_t in_planes, std::int64_t planes, std::int64_t stride);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Sequential> shortcut;  // empty (identity) or 1x1 conv + BN
};

class ResNet18 : public Module {
 public:
  explicit ResNet18(std::int64_t num_classes = 10);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Sequential> layer1, layer2, layer3, layer4;
  std::shared_ptr<Linear> linear;
};

// ---------------------------------------------------------------- Wide ResNet
class WideBasicBlock : public Module {
 public:
  WideBasicBlock(std::int64_t in_planes, std::int64_t out_planes, std::int64_t stride, double drop_rate);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<Conv2d> convShortcut;  // NOLINT: PyTorch's name; null when in == out
  double drop_rate;
};

// A group of blocks, registered as "layer" so names read blockN.layer.M.*
class WideNetworkBlock : public Module {
 public:
  WideNetworkBlock(std::int64_t blocks, std::int64_t in_planes, std::int64_t out_planes, std::int64_t stride,
                   double drop_rate);
  Tensor forward(const Tensor& x) override { return (*layer)(x); }
  std::shared_ptr<Sequential> layer;
};

class WideResNet : public Module {
 public:
  WideResNet(std::int64_t depth, std::int64_t widen_factor, std::int64_t num_classes = 10, double drop_rate = 0.0);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<WideNetworkBlock> block1, block2, block3;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Linear> fc;
  std::int64_t channels;
};

// ---------------------------------------------------------------- CIFAR ResNet-20/32/44/56/110
class CifarBasicBlock : public Module {
 public:
  CifarBasicBlock(std::int64_t in_planes, std::int64_t planes, std::int64_t stride);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  bool downsample;       // option A: subsample by 2 and zero-pad channels
  std::int64_t pad;      // channels added on each side
};

class CifarResNet : public Module {
 public:
  CifarResNet(std::int64_t depth, std::int64_t num_classes = 10);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Sequential> layer1, layer2, layer3;
  std::shared_ptr<Linear> linear;
};

// ---------------------------------------------------------------- small CNN
class SmallCnn : public Module {
 public:
  explicit SmallCnn(std::int64_t num_classes = 10);
  Tensor forward(const Tensor& x) override { return (*net)(x); }
  std::shared_ptr<Sequential> net;
};

// flatten -> fc1 (3 * 32 * 32 -> 256) -> ReLU -> fc2 (256 -> classes).
class Mlp : public Module {
 public:
  explicit Mlp(std::int64_t num_classes = 10, std::int64_t in_features = 3 * 32 * 32, std::int64_t hidden = 256);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Linear> fc1, fc2;
};

}  // namespace basin::nn
