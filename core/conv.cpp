// conv2d: check the shapes, run the kernel on contiguous NCHW data, record the
// backward.
//
//   forward    out = conv(input, weight) + bias
//   backward   grad_input  = the transposed convolution of grad_out with weight   (needs weight)
//              grad_weight = the correlation of input with grad_out               (needs input)
//              grad_bias   = grad_out summed over N, P and Q
//
// Each gradient is computed only when its input wants one, and each saved
// tensor is kept only when the gradient that reads it may be wanted.
#include "core/conv.h"

#include <atomic>
#include <string>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/reduce.h"
#include "kernels/conv.h"

namespace basin {

namespace {

std::atomic<bool> allow_tf32{false};

std::string pair_str(Pair pair) { return detail::concat("(", pair[0], ", ", pair[1], ")"); }

// Validates the arguments and works out every size the kernels need.
kernels::Conv2dShape conv_shape(const Tensor& input, const Tensor& weight, const Tensor& bias, Pair stride,
                                Pair padding) {
  BASIN_CHECK(input.defined() && weight.defined(), "conv2d: input or weight is undefined");
  if (bias.defined()) {
    check_same_device("conv2d", {&input, &weight, &bias});
    check_same_floating_dtype("conv2d", {&input, &weight, &bias});
  } else {
    check_same_device("conv2d", {&input, &weight});
    check_same_floating_dtype("conv2d", {&input, &weight});
  }
  const std::string in_str = shape_str(input.shape());
  const std::string w_str = shape_str(weight.shape());
  BASIN_CHECK(input.dim() == 4, "conv2d: input is ", in_str, ", expected 4 dims [N, C, H, W]");
  BASIN_CHECK(weight.dim() == 4, "conv2d: weight is ", w_str, ", expected 4 dims [K, C, R, S]");
  BASIN_CHECK(stride[0] >= 1 && stride[1] >= 1, "conv2d: stride ", pair_str(stride), " must be at least 1");
  BASIN_CHECK(padding[0] >= 0 && padding[1] >= 0, "conv2d: padding ", pair_str(padding), " must not be negative");

  kernels::Conv2dShape g;
  g.n = input.size(0);
  g.c = input.size(1);
  g.h = input.size(2);
  g.w = input.size(3);
  g.k = weight.size(0);
  g.r = weight.size(2);
  g.s = weight.size(3);
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  BASIN_CHECK(weight.size(1) == g.c, "conv2d: input has ", g.c, " channels, weight expects ", weight.size(1),
              " (input ", in_str, ", weight ", w_str, ")");
  BASIN_CHECK(g.c > 0 && g.h > 0 && g.w > 0, "conv2d: input ", in_str, " has an empty channel or spatial dim");
  BASIN_CHECK(g.k > 0 && g.r > 0 && g.s > 0, "conv2d: weight ", w_str, " has an empty dim");
  if (bias.defined()) {
    BASIN_CHECK(bias.dim() == 1 && bias.size(0) == g.k, "conv2d: bias is ", shape_str(bias.shape()), ", expected [",
                g.k, "] (one per output channel of weight ", w_str, ")");
  }
  const std::int64_t padded_h = g.h + 2 * g.pad_h;
  const std::int64_t padded_w = g.w + 2 * g.pad_w;
  BASIN_CHECK(g.r <= padded_h && g.s <= padded_w, "conv2d: kernel ", g.r, "x", g.s,
              " is larger than the padded input ", padded_h, "x", padded_w, " (input ", in_str, ", padding ",
              pair_str(padding), ")");
  g.p = (padded_h - g.r) / g.stride_h + 1;
  g.q = (padded_w - g.s) / g.stride_w + 1;
  return g;
}

// The three computations on detached tensors; none is recorded. They call
// run_kernel, not BASIN_RUN_KERNEL: the CUDA entry points take one more
// argument, allow_tf32 (cuDNN's TF32 tensor-core mode), which has no meaning
// on the CPU.

Tensor forward(const kernels::Conv2dShape& g, const Tensor& input, const Tensor& weight, const Tensor& bias) {
  const Tensor x = input.contiguous();
  const Tensor w = weight.contiguous();
  const Tensor b = bias.defined() ? bias.contiguous() : Tensor();
  const void* b_ptr = b.defined() ? b.data_ptr() : nullptr;
  Tensor out = empty({g.n, g.k, g.p, g.q}, TensorOptions(x.dtype()).device(x.device()));
  run_kernel(
      x.device(),
      [&] {
        run_cpu_kernel(kernels::fast::conv2d_forward, kernels::reference::conv2d_forward, x.dtype(), g,
                       out.data_ptr(), x.data_ptr(), w.data_ptr(), b_ptr);
      },
      [&] {
        kernels::cuda::conv2d_forward(x.dtype(), g, out.data_ptr(), x.data_ptr(), w.data_ptr(), b_ptr,
                                      conv_allow_tf32());
      });
  return out;
}

Tensor backward_input(const kernels::Conv2dShape& g, const Tensor& grad_out, const Tensor& weight) {
  const Tensor gy = grad_out.contiguous();  // an upstream gradient may be any view (an expanded scalar, say)
  const Tensor w = weight.contiguous();
  Tensor grad = empty({g.n, g.c, g.h, g.w}, TensorOptions(gy.dtype()).device(gy.device()));
  run_kernel(
      gy.device(),
      [&] {
        run_cpu_kernel(kernels::fast::conv2d_backward_input, kernels::reference::conv2d_backward_input, gy.dtype(),
                       g, grad.data_ptr(), gy.data_ptr(), w.data_ptr());
      },
      [&] {
        kernels::cuda::conv2d_backward_input(gy.dtype(), g, grad.data_ptr(), gy.data_ptr(), w.data_ptr(),
                                             conv_allow_tf32());
      });
  return grad;
}

Tensor backward_weight(const kernels::Conv2dShape& g, const Tensor& grad_out, const Tensor& input) {
  const Tensor gy = grad_out.contiguous();
  const Tensor x = input.contiguous();
  Tensor grad = empty({g.k, g.c, g.r, g.s}, TensorOptions(gy.dtype()).device(gy.device()));
  run_kernel(
      gy.device(),
      [&] {
        run_cpu_kernel(kernels::fast::conv2d_backward_weight, kernels::reference::conv2d_backward_weight,
                       gy.dtype(), g, grad.data_ptr(), gy.data_ptr(), x.data_ptr());
      },
      [&] {
        kernels::cuda::conv2d_backward_weight(gy.dtype(), g, grad.data_ptr(), gy.data_ptr(), x.data_ptr(),
                                              conv_allow_tf32());
      });
  return grad;
}

}  // namespace

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, Pair stride, Pair padding) {
  const kernels::Conv2dShape g = conv_shape(input, weight, bias, stride, padding);
  Tensor out = forward(g, input.detach(), weight.detach(), bias.defined() ? bias.detach() : Tensor());
  // grad_input reads only the weight and grad_weight only the input.
  const Tensor input_saved = weight.requires_grad() ? input.detach() : Tensor();
  const Tensor weight_saved = input.requires_grad() ? weight.detach() : Tensor();
  return record("conv2d", out, {input, weight, bias},
                [g, input_ = input_saved, weight_ = weight_saved](const Tensor& grad_out, const GradNeeds& needs) {
                  Tensor grad_input, grad_weight, grad_bias;
                  if (needs[0]) grad_input = backward_input(g, grad_out, weight_);
                  if (needs[1]) grad_weight = backward_weight(g, grad_out, input_);
                  // Over P and Q first (a free view: each row of P*Q sums alone), then over N.
                  if (needs[2]) grad_bias = sum(sum(grad_out, {2, 3}), {0});
                  return TensorList{grad_input, grad_weight, grad_bias};
                });
}

void set_conv_allow_tf32(bool allow) { allow_tf32.store(allow); }

bool conv_allow_tf32() { return allow_tf32.load(); }

}  // namespace basin
