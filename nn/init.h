// Weight initializers, in place and under no-grad, drawing from the default
// Philox generator (so a seed fixes every initial weight).
//
// fan_in / fan_out of a [out, in, kh, kw] weight are in*kh*kw / out*kh*kw,
// of a [out, in] weight in / out, as in PyTorch.
#pragma once

#include <utility>

#include "core/tensor.h"

namespace basin::nn::init {

enum class FanMode { FanIn, FanOut };

std::pair<std::int64_t, std::int64_t> fans(const Tensor& weight);  // (fan_in, fan_out)

void uniform_(Tensor& t, double low, double high);
void normal_(Tensor& t, double mean, double stddev);
void constant_(Tensor& t, double value);
void zeros_(Tensor& t);
void ones_(Tensor& t);
// He et al. 2015. gain = sqrt(2 / (1 + a^2)) (a = 0: ReLU); std = gain / sqrt(fan).
void kaiming_normal_(Tensor& t, double a = 0.0, FanMode mode = FanMode::FanIn);
void kaiming_uniform_(Tensor& t, double a = 0.0, FanMode mode = FanMode::FanIn);
// Glorot & Bengio 2010. std = gain * sqrt(2 / (fan_in + fan_out)).
void xavier_normal_(Tensor& t, double gain = 1.0);
void xavier_uniform_(Tensor& t, double gain = 1.0);

// PyTorch's default for Linear and Conv2d: weight kaiming_uniform_(a = sqrt(5)),
// i.e. uniform(+-1/sqrt(fan_in)), and bias uniform(+-1/sqrt(fan_in)).
void default_layer_init_(Tensor& weight, Tensor& bias);

}  // namespace basin::nn::init
