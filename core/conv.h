// 2-D convolution (NCHW), differentiable in input, weight and bias.
// CPU: im2col + GEMM. CUDA: cuDNN, with the algorithm chosen once per shape.
#pragma once

#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace basin {

using Pair = std::array<std::int64_t, 2>;  // (height, width)

// input [N, C, H, W], weight [K, C, R, S], bias [K] or undefined -> [N, K, P, Q]
// with P = (H + 2*padding - R) / stride + 1 (and likewise Q): a cross-correlation
// over a zero-padded input, as in PyTorch. Pair is (height, width). Differentiable
// in all three; each gradient is computed only when wanted. Inputs may be any
// view (they are made contiguous first); N may be 0. Throws basin::Error for
// non-4-D input or weight, a channel mismatch, a bias that is not [K], a stride
// below 1, negative padding, a kernel larger than the padded input, and
// dtype or device mismatches; on CUDA also when basin was built without cuDNN.
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, Pair stride = {1, 1},
              Pair padding = {0, 0});

// TF32 tensor-core math for float32 convolutions on GPUs that have it: about
// 10 bits of mantissa in the products, several times the throughput. Off by
// default, and then CUDA float32 convolutions are exact FP32 (cuDNN is kept
// off TF32 explicitly, not by its defaults). Read at each forward and backward
// call; the CPU and float64 ignore it.
void set_conv_allow_tf32(bool allow);
bool conv_allow_tf32();

}  // namespace basin
