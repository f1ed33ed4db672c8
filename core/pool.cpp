// Pooling and dropout: check the arguments, run the kernel (kernels/pool.h),
// record the backward.
#include "core/pool.h"

#include <cstdint>
#include <limits>
#include <sstream>
#include <string>

#include "core/activation_pattern.h"
#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/indexing.h"
#include "core/random.h"
#include "core/reduce.h"
#include "kernels/pool.h"

namespace basin {

namespace {

std::string pair_str(Pair p) {
  std::ostringstream out;
  out << "(" << p[0] << ", " << p[1] << ")";
  return out.str();
}

// Validates the arguments (PyTorch's rules) and returns the kernel's view of the shapes.
kernels::Pool2dShape pool_shape(const char* op, const Tensor& input, Pair kernel, Pair stride, Pair padding) {
  check_same_floating_dtype(op, {&input});
  BASIN_CHECK(input.dim() == 4, op, ": expected a 4-D input [N, C, H, W], got ", shape_str(input.shape()));
  const Shape& in = input.shape();
  BASIN_CHECK(kernel[0] >= 1 && kernel[1] >= 1, op, ": kernel must be at least 1, got ", pair_str(kernel));
  BASIN_CHECK(stride[0] >= 1 && stride[1] >= 1, op, ": stride must be at least 1, got ", pair_str(stride));
  BASIN_CHECK(padding[0] >= 0 && padding[1] >= 0, op, ": padding must be non-negative, got ", pair_str(padding));
  // Beyond half the kernel a window could hold nothing but padding.
  BASIN_CHECK(padding[0] <= kernel[0] / 2 && padding[1] <= kernel[1] / 2, op, ": padding ", pair_str(padding),
              " must be at most half the kernel ", pair_str(kernel));
  BASIN_CHECK(in[2] >= 1 && in[3] >= 1, op, ": input ", shape_str(in), " has an empty spatial dim");
  const std::int64_t padded_h = in[2] + 2 * padding[0];
  const std::int64_t padded_w = in[3] + 2 * padding[1];
  BASIN_CHECK(kernel[0] <= padded_h && kernel[1] <= padded_w, op, ": kernel ", pair_str(kernel),
              " is larger than the padded input ", padded_h, "x", padded_w, " (input ", shape_str(in), ", padding ",
              pair_str(padding), ")");
  // Max pooling saves argmax positions within a plane as int32.
  BASIN_CHECK(in[2] * in[3] <= std::numeric_limits<std::int32_t>::max(), op, ": input planes of ", in[2], "x",
              in[3], " are too large");
  kernels::Pool2dShape s;
  s.batch = in[0];
  s.channels = in[1];
  s.height = in[2];
  s.width = in[3];
  s.kernel_h = kernel[0];
  s.kernel_w = kernel[1];
  s.stride_h = stride[0];
  s.stride_w = stride[1];
  s.pad_h = padding[0];
  s.pad_w = padding[1];
  s.out_height = (padded_h - kernel[0]) / stride[0] + 1;
  s.out_width = (padded_w - kernel[1]) / stride[1] + 1;
  return s;
}

Shape output_shape(const kernels::Pool2dShape& s) { return {s.batch, s.channels, s.out_height, s.out_width}; }
Shape input_shape(const kernels::Pool2dShape& s) { return {s.batch, s.channels, s.height, s.width}; }

}  // namespace

Tensor max_pool2d(const Tensor& input, Pair kernel, Pair stride, Pair padding) {
  const kernels::Pool2dShape s = pool_shape("max_pool2d", input, kernel, stride, padding);
  const bool replay = detail::pattern_active() && detail::pattern_mode() == PatternMode::Replay;
  if (replay) {
    // A replayed activation pattern (core/activation_pattern.h) fixes each
    // window's winner: the op is then the linear gather of those positions.
    const Tensor positions = detail::pattern_piece("max_pool2d", input.shape(), Tensor());
    const Tensor planes = input.reshape({s.batch * s.channels, s.height * s.width});
    return gather(planes, 1, positions).reshape(output_shape(s));
  }
  const Tensor x = input.detach().contiguous();
  const TensorOptions options = TensorOptions(input.dtype()).device(input.device());
  Tensor out = empty(output_shape(s), options);
  // int32 positions within a plane: half the bytes of int64, and a plane never
  // holds 2^31 elements (checked above).
  Tensor indices = empty(output_shape(s), options.dtype(kInt32));
  BASIN_RUN_KERNEL(input.device(), max_pool2d, arg(out), arg(indices), arg(x), s);
  if (detail::pattern_active()) {
    detail::pattern_piece("max_pool2d", input.shape(), indices.reshape({s.batch * s.channels, s.out_height * s.out_width}));
  }
  // Backward needs only where each maximum came from, not the input itself.
  return record("max_pool2d", out, {input}, [indices, s](const Tensor& g, const GradNeeds&) {
    const Tensor g_dense = g.contiguous();
    Tensor grad_in = empty(input_shape(s), TensorOptions(g.dtype()).device(g.device()));
    BASIN_RUN_KERNEL(g.device(), max_pool2d_backward, arg(grad_in), arg(g_dense), arg(indices), s);
    return TensorList{grad_in};
  });
}

Tensor avg_pool2d(const Tensor& input, Pair kernel, Pair stride, Pair padding) {
  const kernels::Pool2dShape s = pool_shape("avg_pool2d", input, kernel, stride, padding);
  const Tensor x = input.detach().contiguous();
  Tensor out = empty(output_shape(s), TensorOptions(input.dtype()).device(input.device()));
  BASIN_RUN_KERNEL(input.device(), avg_pool2d, arg(out), arg(x), s);
  // The average is linear: backward needs the shapes only.
  return record("avg_pool2d", out, {input}, [s](const Tensor& g, const GradNeeds&) {
    const Tensor g_dense = g.contiguous();
    Tensor grad_in = empty(input_shape(s), TensorOptions(g.dtype()).device(g.device()));
    BASIN_RUN_KERNEL(g.device(), avg_pool2d_backward, arg(grad_in), arg(g_dense), s);
    return TensorList{grad_in};
  });
}

// The reduction kernels already cover this: dims {2, 3} are the last two, so
// the input is a free [N*C, H*W] view and each row is summed by one block in a
// fixed order; backward is one broadcast multiply. A dedicated kernel would
// move the same bytes.
Tensor global_avg_pool2d(const Tensor& input) {
  check_same_floating_dtype("global_avg_pool2d", {&input});
  BASIN_CHECK(input.dim() == 4, "global_avg_pool2d: expected a 4-D input [N, C, H, W], got ",
              shape_str(input.shape()));
  BASIN_CHECK(input.shape()[2] >= 1 && input.shape()[3] >= 1, "global_avg_pool2d: input ",
              shape_str(input.shape()), " has an empty spatial dim");
  return mean(input, {2, 3}, /*keepdim=*/true);
}

Tensor dropout(const Tensor& input, double p, bool training) {
  BASIN_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got ", p);
  check_same_floating_dtype("dropout", {&input});
  if (!training || p == 0.0) return input;
  const Tensor x = input.detach().contiguous();
  Generator& generator = default_generator();
  const kernels::PhiloxDraw draw{generator.seed(), generator.reserve(x.numel())};
  Tensor out = empty(x.shape(), TensorOptions(x.dtype()).device(x.device()));
  // One byte per element: the mask is all backward keeps.
  Tensor mask = empty(x.shape(), TensorOptions(kUInt8).device(x.device()));
  BASIN_RUN_KERNEL(x.device(), dropout, arg(out), arg(mask), arg(x), draw, p);
  return record("dropout", out, {input}, [mask, p](const Tensor& g, const GradNeeds&) {
    const Tensor g_dense = g.contiguous();
    Tensor grad_in = empty_like(g_dense);
    BASIN_RUN_KERNEL(g.device(), dropout_backward, arg(grad_in), arg(g_dense), arg(mask), p);
    return TensorList{grad_in};
  });
}

}  // namespace basin
