#include "nn/init.h"

#include <cmath>

#include "core/autograd.h"

namespace basin::nn::init {

std::pair<std::int64_t, std::int64_t> fans(const Tensor& weight) {
  BASIN_CHECK(weight.dim() >= 2, "init: fan in/out needs a weight of 2 or more dimensions, got ",
              shape_str(weight.shape()));
  std::int64_t receptive = 1;
  for (std::int64_t d = 2; d < weight.dim(); ++d) receptive *= weight.size(d);
  return {weight.size(1) * receptive, weight.size(0) * receptive};
}

namespace {
// Draws into a fresh tensor of t's shape and copies it in, so t keeps its
// storage (and any view into an arena stays valid).
void assign(Tensor& t, const Tensor& values) {
  NoGradGuard no_grad;
  t.detach().copy_(values);
}

double std_for(const Tensor& t, double a, FanMode mode) {
  const auto [fan_in, fan_out] = fans(t);
  const double fan = static_cast<double>(mode == FanMode::FanIn ? fan_in : fan_out);
  return std::sqrt(2.0 / (1.0 + a * a)) / std::sqrt(fan);
}
}  // namespace

void uniform_(Tensor& t, double low, double high) {
  assign(t, rand(t.shape(), TensorOptions(t.dtype()).device(t.device()), low, high));
}

void normal_(Tensor& t, double mean, double stddev) {
  assign(t, randn(t.shape(), TensorOptions(t.dtype()).device(t.device()), mean, stddev));
}

void constant_(Tensor& t, double value) {
  NoGradGuard no_grad;
  t.detach().fill_(value);
}

void zeros_(Tensor& t) { constant_(t, 0.0); }
void ones_(Tensor& t) { constant_(t, 1.0); }

void kaiming_normal_(Tensor& t, double a, FanMode mode) { normal_(t, 0.0, std_for(t, a, mode)); }

void kaiming_uniform_(Tensor& t, double a, FanMode mode) {
  const double bound = std::sqrt(3.0) * std_for(t, a, mode);
  uniform_(t, -bound, bound);
}

void xavier_normal_(Tensor& t, double gain) {
  const auto [fan_in, fan_out] = fans(t);
  normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)));
}

void xavier_uniform_(Tensor& t, double gain) {
  const auto [fan_in, fan_out] = fans(t);
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  uniform_(t, -bound, bound);
}

void default_layer_init_(Tensor& weight, Tensor& bias) {
  kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fans(weight).first));
    uniform_(bias, -bound, bound);
  }
}

}  // namespace basin::nn::init
