// The layers CIFAR networks are built from. Each is a Module whose
// parameters carry PyTorch's names ("weight", "bias", "running_mean", ...), is
// initialized as PyTorch initializes it, and forwards through one core op.
#pragma once

#include <cstdint>
#include <memory>

#include "core/batchnorm.h"
#include "core/conv.h"
#include "nn/module.h"
#include "core/options.h"

namespace basin::nn {

// ---------------------------------------------------------------- Linear
struct LinearOptions {
  LinearOptions(std::int64_t in_features, std::int64_t out_features) : in_features_(in_features), out_features_(out_features) {}
  BASIN_OPTION(std::int64_t, in_features);
  BASIN_OPTION(std::int64_t, out_features);
  BASIN_OPTION(bool, bias) = true;
};

// y = x W^T + b; x [N, in] -> [N, out].
class Linear : public Module {
 public:
  explicit Linear(const LinearOptions& options);
  Linear(std::int64_t in_features, std::int64_t out_features) : Linear(LinearOptions(in_features, out_features)) {}
  Tensor forward(const Tensor& input) override;
  std::string describe() const override;
  void reset_parameters();

  LinearOptions options;
  Tensor weight;  // [out, in]
  Tensor bias;    // [out] or undefined
};

// ---------------------------------------------------------------- Conv2d
struct Conv2dOptions {
  Conv2dOptions(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  BASIN_OPTION(std::int64_t, in_channels);
  BASIN_OPTION(std::int64_t, out_channels);
  BASIN_OPTION(std::int64_t, kernel_size);
  BASIN_OPTION(std::int64_t, stride) = 1;
  BASIN_OPTION(std::int64_t, padding) = 0;
  BASIN_OPTION(bool, bias) = true;
};

class Conv2d : public Module {
 public:
  explicit Conv2d(const Conv2dOptions& options);
  Tensor forward(const Tensor& input) override;
  std::string describe() const override;
  void reset_parameters();

  Conv2dOptions options;
  Tensor weight;  // [out, in, k, k]
  Tensor bias;    // [out] or undefined
};

// ---------------------------------------------------------------- BatchNorm2d
struct BatchNorm2dOptions {
  explicit BatchNorm2dOptions(std::int64_t num_features) : num_features_(num_features) {}
  BASIN_OPTION(std::int64_t, num_features);
  BASIN_OPTION(double, eps) = 1e-5;
  BASIN_OPTION(double, momentum) = 0.1;
  BASIN_OPTION(bool, affine) = true;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(const BatchNorm2dOptions& options);
  explicit BatchNorm2d(std::int64_t num_features) : BatchNorm2d(BatchNorm2dOptions(num_features)) {}
  Tensor forward(const Tensor& input) override;
  std::string describe() const override;
  void reset_parameters();

  // When false, a training-mode forward normalizes with batch statistics but
  // leaves running_mean/running_var (and num_batches_tracked) unchanged.
  // SAM's second pass runs this way (see RunningStatsFreeze in nn/module.h).
  bool update_running_stats = true;
  void set_running_stats_frozen(bool frozen) override { update_running_stats = !frozen; }
  bool running_stats_frozen() const override { return !update_running_stats; }

  BatchNorm2dOptions options;
  Tensor weight, bias;                        // [C]; undefined when not affine
  Tensor running_mean, running_var;           // [C]
  Tensor num_batches_tracked;                 // int64 scalar, kept for PyTorch state_dict compatibility

 protected:
  void on_state_loaded() override { count_in_buffer_ = true; }

 private:
  std::int64_t batches_tracked_ = 0;  // host copy of num_batches_tracked
  bool count_in_buffer_ = false;      // after a load: read batches_tracked_ from the buffer
};

// ---------------------------------------------------------------- stateless layers
class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& input) override;
};

// Square windows. The stride defaults to the kernel size, as in PyTorch:
// MaxPool2d(MaxPool2dOptions(3).stride(2).padding(1)).
struct Pool2dOptions {
  explicit Pool2dOptions(std::int64_t kernel_size) : kernel_size_(kernel_size), stride_(kernel_size) {}
  BASIN_OPTION(std::int64_t, kernel_size);
  BASIN_OPTION(std::int64_t, stride);
  BASIN_OPTION(std::int64_t, padding) = 0;
};
using MaxPool2dOptions = Pool2dOptions;
using AvgPool2dOptions = Pool2dOptions;

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const MaxPool2dOptions& options) : Module("MaxPool2d"), options(options) {}
  explicit MaxPool2d(std::int64_t kernel_size) : MaxPool2d(MaxPool2dOptions(kernel_size)) {}
  Tensor forward(const Tensor& input) override;
  std::string describe() const override;
  MaxPool2dOptions options;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(const AvgPool2dOptions& options) : Module("AvgPool2d"), options(options) {}
  explicit AvgPool2d(std::int64_t kernel_size) : AvgPool2d(AvgPool2dOptions(kernel_size)) {}
  Tensor forward(const Tensor& input) override;
  std::string describe() const override;
  AvgPool2dOptions options;
};

// AdaptiveAvgPool2d((1, 1)): [N, C, H, W] -> [N, C, 1, 1].
class GlobalAvgPool2d : public Module {
 public:
  GlobalAvgPool2d() : Module("GlobalAvgPool2d") {}
  Tensor forward(const Tensor& input) override;
};

struct DropoutOptions {
  explicit DropoutOptions(double p = 0.5) : p_(p) {}
  BASIN_OPTION(double, p);
};

class Dropout : public Module {
 public:
  // p must be in [0, 1).
  explicit Dropout(const DropoutOptions& options = DropoutOptions());
  explicit Dropout(double p) : Dropout(DropoutOptions(p)) {}
  Tensor forward(const Tensor& input) override;
  std::string describe() const override;
  DropoutOptions options;
};

// [N, d1, d2, ...] -> [N, d1 * d2 * ...]
class Flatten : public Module {
 public:
  Flatten() : Module("Flatten") {}
  Tensor forward(const Tensor& input) override;
};

class Identity : public Module {
 public:
  Identity() : Module("Identity") {}
  Tensor forward(const Tensor& input) override { return input; }
};

// Children named "0", "1", ... run in order, as torch.nn.Sequential.
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  Sequential(std::initializer_list<ModulePtr> modules);
  void push_back(ModulePtr module);
  std::size_t size() const { return layers_.size(); }
  const ModulePtr& operator[](std::size_t index) const;
  Tensor forward(const Tensor& input) override;

 private:
  std::vector<ModulePtr> layers_;
};

}  // namespace basin::nn
