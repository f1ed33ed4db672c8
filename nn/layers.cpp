#include "nn/layers.h"

#include <algorithm>
#include <sstream>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/matmul.h"
#include "core/pool.h"
#include "nn/init.h"
#include "nn/loss.h"

namespace basin::nn {

namespace {
std::string join_options(std::initializer_list<std::string> parts) {
  std::string out;
  for (const std::string& part : parts) {
    if (part.empty()) continue;
    out += (out.empty() ? "" : ", ") + part;
  }
  return out;
}
}  // namespace

// ---------------------------------------------------------------- Linear

Linear::Linear(const LinearOptions& opts) : Module("Linear"), options(opts) {
  BASIN_CHECK(opts.in_features() > 0 && opts.out_features() > 0, "Linear: features must be positive, got in=",
              opts.in_features(), " out=", opts.out_features());
  weight = register_parameter("weight", empty({opts.out_features(), opts.in_features()}));
  if (opts.bias()) bias = register_parameter("bias", empty({opts.out_features()}));
  reset_parameters();
}

void Linear::reset_parameters() { init::default_layer_init_(weight, bias); }

Tensor Linear::forward(const Tensor& input) {
  BASIN_CHECK(input.dim() == 2 && input.size(1) == options.in_features(), "Linear: expected input [N, ",
              options.in_features(), "], got ", shape_str(input.shape()));
  const Tensor out = matmul(input, weight.t());
  return bias.defined() ? out + bias : out;
}

std::string Linear::describe() const {
  return join_options({std::to_string(options.in_features()), std::to_string(options.out_features()),
                       options.bias() ? "" : "bias=false"});
}

// ---------------------------------------------------------------- Conv2d

Conv2d::Conv2d(const Conv2dOptions& opts) : Module("Conv2d"), options(opts) {
  BASIN_CHECK(opts.in_channels() > 0 && opts.out_channels() > 0 && opts.kernel_size() > 0 && opts.stride() > 0 &&
                  opts.padding() >= 0,
              "Conv2d: invalid options (in=", opts.in_channels(), ", out=", opts.out_channels(),
              ", kernel_size=", opts.kernel_size(), ", stride=", opts.stride(), ", padding=", opts.padding(), ")");
  const std::int64_t k = opts.kernel_size();
  weight = register_parameter("weight", empty({opts.out_channels(), opts.in_channels(), k, k}));
  if (opts.bias()) bias = register_parameter("bias", empty({opts.out_channels()}));
  reset_parameters();
}

void Conv2d::reset_parameters() { init::default_layer_init_(weight, bias); }

Tensor Conv2d::forward(const Tensor& input) {
  return conv2d(input, weight, bias, {options.stride(), options.stride()}, {options.padding(), options.padding()});
}

std::string Conv2d::describe() const {
  return join_options({std::to_string(options.in_channels()), std::to_string(options.out_channels()),
                       "kernel_size=" + std::to_string(options.kernel_size()),
                       options.stride() != 1 ? "stride=" + std::to_string(options.stride()) : "",
                       options.padding() != 0 ? "padding=" + std::to_string(options.padding()) : "",
                       options.bias() ? "" : "bias=false"});
}

// ---------------------------------------------------------------- BatchNorm2d

BatchNorm2d::BatchNorm2d(const BatchNorm2dOptions& opts) : Module("BatchNorm2d"), options(opts) {
  BASIN_CHECK(opts.num_features() > 0, "BatchNorm2d: num_features must be positive, got ", opts.num_features());
  BASIN_CHECK(opts.eps() > 0.0, "BatchNorm2d: eps must be positive, got ", opts.eps());
  BASIN_CHECK(opts.momentum() >= 0.0 && opts.momentum() <= 1.0, "BatchNorm2d: momentum must be in [0, 1], got ",
              opts.momentum());
  const std::int64_t c = opts.num_features();
  if (opts.affine()) {
    weight = register_parameter("weight", empty({c}));
    bias = register_parameter("bias", empty({c}));
  }
  running_mean = register_buffer("running_mean", empty({c}));
  running_var = register_buffer("running_var", empty({c}));
  num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, kInt64));
  reset_parameters();
}

void BatchNorm2d::reset_parameters() {
  NoGradGuard no_grad;
  if (weight.defined()) init::ones_(weight);
  if (bias.defined()) init::zeros_(bias);
  running_mean.zero_();
  running_var.fill_(1.0);
  num_batches_tracked.zero_();
  batches_tracked_ = 0;
  count_in_buffer_ = false;
}

Tensor BatchNorm2d::forward(const Tensor& input) {
  BatchNormState state{running_mean, running_var, options.momentum(), options.eps()};
  const bool update = is_training() && update_running_stats;
  Tensor out = batch_norm(input, weight, bias, state, is_training(), update);
  if (update) {
    // Counted on the host and written with a fill, so that no step waits on
    // the device to read the old count. The count is re-read once after a
    // load, as the int64 it is (through a double, 2^63 - 1 became 2^63, out
    // of range). A loaded count may be anything: it stops at 2^53, the
    // largest that fill_'s double argument holds exactly.
    if (count_in_buffer_) {
      batches_tracked_ = num_batches_tracked.to_vector<std::int64_t>()[0];
      count_in_buffer_ = false;
    }
    constexpr std::int64_t kMaxCount = std::int64_t{1} << 53;
    batches_tracked_ = std::min(batches_tracked_, kMaxCount - 1) + 1;
    num_batches_tracked.fill_(static_cast<double>(batches_tracked_));
  }
  return out;
}

std::string BatchNorm2d::describe() const {
  std::ostringstream out;
  out << options.num_features() << ", eps=" << options.eps() << ", momentum=" << options.momentum();
  return out.str();
}

// ---------------------------------------------------------------- stateless layers

Tensor ReLU::forward(const Tensor& input) { return relu(input); }

namespace {

std::string describe_pool(const Pool2dOptions& o) {
  return "kernel_size=" + std::to_string(o.kernel_size()) + ", stride=" + std::to_string(o.stride()) +
         (o.padding() ? ", padding=" + std::to_string(o.padding()) : "");
}

}  // namespace

Tensor MaxPool2d::forward(const Tensor& input) {
  const Pool2dOptions& o = options;
  return max_pool2d(input, {o.kernel_size(), o.kernel_size()}, {o.stride(), o.stride()}, {o.padding(), o.padding()});
}

std::string MaxPool2d::describe() const { return describe_pool(options); }

Tensor AvgPool2d::forward(const Tensor& input) {
  const Pool2dOptions& o = options;
  return avg_pool2d(input, {o.kernel_size(), o.kernel_size()}, {o.stride(), o.stride()}, {o.padding(), o.padding()});
}

std::string AvgPool2d::describe() const { return describe_pool(options); }

Tensor GlobalAvgPool2d::forward(const Tensor& input) { return global_avg_pool2d(input); }

Dropout::Dropout(const DropoutOptions& opts) : Module("Dropout"), options(opts) {
  BASIN_CHECK(opts.p() >= 0.0 && opts.p() < 1.0, "Dropout: p must be in [0, 1), got ", opts.p());
}

Tensor Dropout::forward(const Tensor& input) { return dropout(input, options.p(), is_training()); }

std::string Dropout::describe() const {
  std::ostringstream out;
  out << "p=" << options.p();
  return out.str();
}

CrossEntropyLoss::CrossEntropyLoss(const CrossEntropyLossOptions& opts) : options(opts) {
  BASIN_CHECK(opts.label_smoothing() >= 0.0 && opts.label_smoothing() <= 1.0,
              "CrossEntropyLoss: label_smoothing must be in [0, 1], got ", opts.label_smoothing());
}

Tensor Flatten::forward(const Tensor& input) { return input.flatten(1); }

Sequential::Sequential(std::initializer_list<ModulePtr> modules) : Sequential() {
  for (const ModulePtr& m : modules) push_back(m);
}

void Sequential::push_back(ModulePtr module) {
  register_module(std::to_string(layers_.size()), module);
  layers_.push_back(std::move(module));
}

const ModulePtr& Sequential::operator[](std::size_t index) const {
  BASIN_CHECK(index < layers_.size(), "Sequential: index ", index, " out of range (", layers_.size(), " layers)");
  return layers_[index];
}

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  for (const ModulePtr& layer : layers_) x = (*layer)(x);
  return x;
}

}  // namespace basin::nn
