// 2-D convolution kernels over NCHW (cross-correlation, as every framework
// calls "convolution"):
//
//   out[n, k, p, q] = bias[k] + sum_{c, r, s} weight[k, c, r, s] * in[n, c, p*sh - ph + r, q*sw - pw + s]
//
// where taps that fall outside the input read zero (the padding). Backward:
//
//   backward_input:   grad_in[n, c, y, x]  = sum over the (k, p, q, r, s) that read in[n, c, y, x] of
//                                            weight[k, c, r, s] * grad_out[n, k, p, q]
//   backward_weight:  grad_weight[k, c, r, s] = sum_{n, p, q} grad_out[n, k, p, q] * in[n, c, p*sh - ph + r, ...]
//
// The bias gradient is a plain sum of grad_out over (n, p, q); core/conv.cpp
// takes it with the reduction kernels.
//
// Contract (checked by core/conv.cpp, not here): every buffer is contiguous
// NCHW / KCRS of the one floating dtype given; c, h, w, k, r, s are at least 1;
// p and q follow from the formula in Conv2dShape and are at least 1; outputs
// do not overlap inputs. n may be 0: the forward and backward_input then write
// nothing and backward_weight writes zeros. Every output element is written
// (overwritten, never accumulated into), so outputs need no zero-fill.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace basin::kernels {

struct Conv2dShape {
  std::int64_t n = 0, c = 0, h = 0, w = 0;  // input [n, c, h, w]
  std::int64_t k = 0, r = 0, s = 0;         // weight [k, c, r, s]
  std::int64_t p = 0, q = 0;                // output [n, k, p, q]: p = (h + 2*pad_h - r) / stride_h + 1
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;
};

namespace reference {
// bias may be null (no bias).
void conv2d_forward(DType dtype, const Conv2dShape& shape, void* out, const void* input, const void* weight,
                    const void* bias);
void conv2d_backward_input(DType dtype, const Conv2dShape& shape, void* grad_input, const void* grad_out,
                           const void* weight);
void conv2d_backward_weight(DType dtype, const Conv2dShape& shape, void* grad_weight, const void* grad_out,
                            const void* input);
}  // namespace reference

// The CPU engine: oneDNN's convolutions for float32, accumulating in float32
// (the primitives are made once per shape and kept); im2col + OpenBLAS's
// dgemm for float64. A build without the library of a dtype runs the reference.
namespace fast {
void conv2d_forward(DType dtype, const Conv2dShape& shape, void* out, const void* input, const void* weight,
                    const void* bias);
void conv2d_backward_input(DType dtype, const Conv2dShape& shape, void* grad_input, const void* grad_out,
                           const void* weight);
void conv2d_backward_weight(DType dtype, const Conv2dShape& shape, void* grad_weight, const void* grad_out,
                            const void* input);
}  // namespace fast

// Through cuDNN. allow_tf32 lets float32 convolutions use TF32 tensor cores
// (float64 ignores it). In a build without cuDNN every entry throws.
namespace cuda {
void conv2d_forward(DType dtype, const Conv2dShape& shape, void* out, const void* input, const void* weight,
                    const void* bias, bool allow_tf32);
void conv2d_backward_input(DType dtype, const Conv2dShape& shape, void* grad_input, const void* grad_out,
                           const void* weight, bool allow_tf32);
void conv2d_backward_weight(DType dtype, const Conv2dShape& shape, void* grad_weight, const void* grad_out,
                            const void* input, bool allow_tf32);
}  // namespace cuda

}  // namespace basin::kernels
