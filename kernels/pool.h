// Pooling and dropout kernels.
//
// Pooling works on contiguous [N, C, H, W] input and writes contiguous
// [N, C, OH, OW] output, with OH = (H + 2*pad_h - kernel_h) / stride_h + 1
// (likewise OW). Output (oh, ow) looks at input rows oh*stride_h - pad_h ...
// + kernel_h - 1 and the matching columns; positions outside the input are
// padding.
//
//   max_pool2d:          out = max over the window (padding is -inf), and
//                        indices = h * W + w of that maximum within its plane
//                        (int32). Ties keep the first element in row-major
//                        window order; a NaN wins over any number, the first
//                        NaN over later ones.
//   max_pool2d_backward: grad_in[h, w] = sum of grad_out over the outputs
//                        whose index names (h, w)
//   avg_pool2d:          out = sum over the window / (kernel_h * kernel_w):
//                        padding counts as zeros (count_include_pad)
//   avg_pool2d_backward: grad_in[h, w] = sum over the outputs whose window
//                        covers (h, w) of grad_out / (kernel_h * kernel_w)
//
// The backward kernels write every element of grad_in, so it needs no
// zero-fill from the caller. The contract (checked by core/pool.cpp) keeps
// padding <= kernel / 2 and H, W >= 1, which guarantees every window holds at
// least one real element, so every index is valid.
//
// Dropout works on contiguous tensors of any shape, element i kept when the
// Philox draw u_i = philox_uniform(seed, offset, i, 0, 1) is >= p:
//
//   dropout:          mask[i] = keep_i (uint8 0 or 1), out[i] = x[i] * (keep_i ? 1 / (1 - p) : 0)
//   dropout_backward: grad_in[i] = grad_out[i] * (mask[i] ? 1 / (1 - p) : 0)
//
// Both devices evaluate that formula per element, so one seed gives one mask
// on the CPU and the GPU.
#pragma once

#include <cstdint>

#include "kernels/random.h"
#include "kernels/tensor_arg.h"

namespace basin::kernels {

struct Pool2dShape {
  std::int64_t batch = 0, channels = 0;
  std::int64_t height = 0, width = 0;          // input
  std::int64_t out_height = 0, out_width = 0;  // output
  std::int64_t kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;
};

namespace reference {
void max_pool2d(const TensorArg& out, const TensorArg& indices, const TensorArg& in, const Pool2dShape& shape);
void max_pool2d_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& indices,
                         const Pool2dShape& shape);
void avg_pool2d(const TensorArg& out, const TensorArg& in, const Pool2dShape& shape);
void avg_pool2d_backward(const TensorArg& grad_in, const TensorArg& grad_out, const Pool2dShape& shape);
void dropout(const TensorArg& out, const TensorArg& mask, const TensorArg& in, PhiloxDraw draw, double p);
void dropout_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& mask, double p);
}  // namespace reference

// The CPU engine (kernels/fast/pool.cpp): contiguous float32 on several
// threads, bit for bit the reference's results; anything else runs the reference.
namespace fast {
void max_pool2d(const TensorArg& out, const TensorArg& indices, const TensorArg& in, const Pool2dShape& shape);
void max_pool2d_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& indices,
                         const Pool2dShape& shape);
void avg_pool2d(const TensorArg& out, const TensorArg& in, const Pool2dShape& shape);
void avg_pool2d_backward(const TensorArg& grad_in, const TensorArg& grad_out, const Pool2dShape& shape);
void dropout(const TensorArg& out, const TensorArg& mask, const TensorArg& in, PhiloxDraw draw, double p);
void dropout_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& mask, double p);
}  // namespace fast

namespace cuda {
void max_pool2d(const TensorArg& out, const TensorArg& indices, const TensorArg& in, const Pool2dShape& shape);
void max_pool2d_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& indices,
                         const Pool2dShape& shape);
void avg_pool2d(const TensorArg& out, const TensorArg& in, const Pool2dShape& shape);
void avg_pool2d_backward(const TensorArg& grad_in, const TensorArg& grad_out, const Pool2dShape& shape);
void dropout(const TensorArg& out, const TensorArg& mask, const TensorArg& in, PhiloxDraw draw, double p);
void dropout_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& mask, double p);
}  // namespace cuda

}  // namespace basin::kernels
