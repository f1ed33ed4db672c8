// CPU softmax and log-softmax: the reference for kernels/cuda/softmax.cu.
// Each (outer, inner) column of [outer, dim, inner] is one independent
// softmax whose elements lie `inner` apart. The arithmetic is written to
// match the CUDA kernels step for step: the max and the exponentials in the
// element type, the sums in double.
#include <cmath>

#include "kernels/dtype_dispatch.h"
#include "kernels/softmax.h"

namespace basin::kernels::reference {

namespace {

template <class T>
void forward_column(SoftmaxKind kind, T* y, const T* x, std::int64_t n, std::int64_t stride) {
  // Starting from -inf (not x[0]) is what the CUDA threads with no element do;
  // the row comes out NaN in both when it holds a NaN or is all -inf.
  T m = -INFINITY;
  for (std::int64_t r = 0; r < n; ++r) m = x[r * stride] > m ? x[r * stride] : m;
  double s = 0.0;
  for (std::int64_t r = 0; r < n; ++r) s += static_cast<double>(std::exp(static_cast<T>(x[r * stride] - m)));
  if (kind == SoftmaxKind::Softmax) {
    for (std::int64_t r = 0; r < n; ++r) {
      y[r * stride] = static_cast<T>(static_cast<double>(std::exp(static_cast<T>(x[r * stride] - m))) / s);
    }
  } else {
    const double log_s = std::log(s);
    for (std::int64_t r = 0; r < n; ++r) {
      y[r * stride] = static_cast<T>(static_cast<double>(static_cast<T>(x[r * stride] - m)) - log_s);
    }
  }
}

template <class T>
void backward_column(SoftmaxKind kind, T* gx, const T* g, const T* y, std::int64_t n, std::int64_t stride) {
  if (kind == SoftmaxKind::Softmax) {
    double dot = 0.0;
    for (std::int64_t r = 0; r < n; ++r) dot += static_cast<double>(g[r * stride]) * static_cast<double>(y[r * stride]);
    for (std::int64_t r = 0; r < n; ++r) {
      gx[r * stride] = static_cast<T>(static_cast<double>(y[r * stride]) * (static_cast<double>(g[r * stride]) - dot));
    }
  } else {
    double total = 0.0;
    for (std::int64_t r = 0; r < n; ++r) total += static_cast<double>(g[r * stride]);
    for (std::int64_t r = 0; r < n; ++r) {
      const double p = static_cast<double>(std::exp(y[r * stride]));
      gx[r * stride] = static_cast<T>(static_cast<double>(g[r * stride]) - p * total);
    }
  }
}

}  // namespace

void softmax_forward(SoftmaxKind kind, const TensorArg& out, const TensorArg& in, ReduceShape shape) {
  BASIN_DISPATCH_FLOATING(in.dtype, "softmax", T, [&] {
    for (std::int64_t o = 0; o < shape.outer; ++o) {
      for (std::int64_t i = 0; i < shape.inner; ++i) {
        const std::int64_t base = o * shape.reduce * shape.inner + i;
        forward_column<T>(kind, out.ptr<T>() + base, in.ptr<T>() + base, shape.reduce, shape.inner);
      }
    }
  });
}

void softmax_backward(SoftmaxKind kind, const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& out,
                      ReduceShape shape) {
  BASIN_DISPATCH_FLOATING(out.dtype, "softmax_backward", T, [&] {
    for (std::int64_t o = 0; o < shape.outer; ++o) {
      for (std::int64_t i = 0; i < shape.inner; ++i) {
        const std::int64_t base = o * shape.reduce * shape.inner + i;
        backward_column<T>(kind, grad_in.ptr<T>() + base, grad_out.ptr<T>() + base, out.ptr<T>() + base, shape.reduce,
                           shape.inner);
      }
    }
  });
}

}  // namespace basin::kernels::reference
