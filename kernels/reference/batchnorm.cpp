// CPU batch normalization: the reference for kernels/cuda/batchnorm.cu.
// Straight loops, one channel at a time; element (b, c, s) of the [N, C, HW]
// input lives at x[(b * C + c) * HW + s]. Statistics are two-pass (the mean
// first, then the squared deviations from it) and every sum accumulates in
// double, so the reference is at least as accurate as the GPU's float
// Welford. Per-channel constants are formed in double and rounded once.
#include <cmath>

#include "kernels/batchnorm.h"
#include "kernels/dtype_dispatch.h"

namespace basin::kernels::reference {

namespace {

// Calls f(index) for every element of channel c, in memory order.
template <class F>
void for_channel(BatchNormShape shape, std::int64_t c, F&& f) {
  for (std::int64_t b = 0; b < shape.batch; ++b) {
    const std::int64_t row = (b * shape.channels + c) * shape.spatial;
    for (std::int64_t s = 0; s < shape.spatial; ++s) f(row + s);
  }
}

template <class T>
double value_or(const TensorArg& t, std::int64_t c, double fallback) {
  return t.data ? static_cast<double>(t.ptr<T>()[c]) : fallback;
}

}  // namespace

void batch_norm_stats(const TensorArg& mean, const TensorArg& invstd, const TensorArg& input, BatchNormShape shape,
                      double eps, const TensorArg& running_mean, const TensorArg& running_var, double momentum) {
  check_batch_norm_stats(shape);
  const std::int64_t n = shape.batch * shape.spatial;
  BASIN_DISPATCH_FLOATING(input.dtype, "batch_norm", T, [&] {
    const T* x = input.ptr<T>();
    for (std::int64_t c = 0; c < shape.channels; ++c) {
      double total = 0.0;
      for_channel(shape, c, [&](std::int64_t i) { total += static_cast<double>(x[i]); });
      const double mu = total / static_cast<double>(n);
      double squares = 0.0;
      for_channel(shape, c, [&](std::int64_t i) {
        const double d = static_cast<double>(x[i]) - mu;
        squares += d * d;
      });
      const double var = squares / static_cast<double>(n);
      mean.ptr<T>()[c] = static_cast<T>(mu);
      invstd.ptr<T>()[c] = static_cast<T>(1.0 / std::sqrt(var + eps));
      if (running_mean.data) {
        T* rm = running_mean.ptr<T>();
        T* rv = running_var.ptr<T>();
        const double unbiased = var * static_cast<double>(n) / static_cast<double>(n - 1);
        rm[c] = static_cast<T>((1.0 - momentum) * static_cast<double>(rm[c]) + momentum * mu);
        rv[c] = static_cast<T>((1.0 - momentum) * static_cast<double>(rv[c]) + momentum * unbiased);
      }
    }
  });
}

void batch_norm_invstd(const TensorArg& invstd, const TensorArg& var, double eps) {
  BASIN_DISPATCH_FLOATING(var.dtype, "batch_norm", T, [&] {
    for (std::int64_t c = 0; c < var.numel; ++c) {
      invstd.ptr<T>()[c] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(var.ptr<T>()[c]) + eps));
    }
  });
}

void batch_norm_normalize(const TensorArg& out, const TensorArg& input, const TensorArg& mean, const TensorArg& invstd,
                          const TensorArg& weight, const TensorArg& bias, BatchNormShape shape) {
  BASIN_DISPATCH_FLOATING(input.dtype, "batch_norm", T, [&] {
    const T* x = input.ptr<T>();
    T* y = out.ptr<T>();
    for (std::int64_t c = 0; c < shape.channels; ++c) {
      const double mu = static_cast<double>(mean.ptr<T>()[c]);
      const double scale = static_cast<double>(invstd.ptr<T>()[c]) * value_or<T>(weight, c, 1.0);
      const double shift = value_or<T>(bias, c, 0.0);
      for_channel(shape, c,
                  [&](std::int64_t i) { y[i] = static_cast<T>((static_cast<double>(x[i]) - mu) * scale + shift); });
    }
  });
}

void batch_norm_backward_reduce(const TensorArg& sum_dy, const TensorArg& sum_dy_xhat, const TensorArg& grad_out,
                                const TensorArg& input, const TensorArg& mean, const TensorArg& invstd,
                                BatchNormShape shape) {
  BASIN_DISPATCH_FLOATING(input.dtype, "batch_norm_backward", T, [&] {
    const T* x = input.ptr<T>();
    const T* dy = grad_out.ptr<T>();
    for (std::int64_t c = 0; c < shape.channels; ++c) {
      const double mu = static_cast<double>(mean.ptr<T>()[c]);
      double total = 0.0;
      double dot = 0.0;  // sum dy (x - mean); times invstd it is sum dy xhat
      for_channel(shape, c, [&](std::int64_t i) {
        total += static_cast<double>(dy[i]);
        dot += static_cast<double>(dy[i]) * (static_cast<double>(x[i]) - mu);
      });
      sum_dy.ptr<T>()[c] = static_cast<T>(total);
      sum_dy_xhat.ptr<T>()[c] = static_cast<T>(dot * static_cast<double>(invstd.ptr<T>()[c]));
    }
  });
}

void batch_norm_backward_input(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& input,
                               const TensorArg& mean, const TensorArg& invstd, const TensorArg& weight,
                               const TensorArg& sum_dy, const TensorArg& sum_dy_xhat, BatchNormShape shape) {
  const double n = static_cast<double>(shape.batch * shape.spatial);
  BASIN_DISPATCH_FLOATING(grad_out.dtype, "batch_norm_backward", T, [&] {
    const T* dy = grad_out.ptr<T>();
    T* dx = grad_in.ptr<T>();
    for (std::int64_t c = 0; c < shape.channels; ++c) {
      const double istd = static_cast<double>(invstd.ptr<T>()[c]);
      const double k = value_or<T>(weight, c, 1.0) * istd;
      if (!sum_dy.data) {
        // Eval: the statistics are constants, so y is affine in x.
        for_channel(shape, c, [&](std::int64_t i) { dx[i] = static_cast<T>(static_cast<double>(dy[i]) * k); });
        continue;
      }
      // Training: dx = k (dy - mean(dy) - xhat mean(dy xhat)), with
      // xhat mean(dy xhat) = (x - mean) * (invstd sum_dy_xhat / n).
      const T* x = input.ptr<T>();
      const double mu = static_cast<double>(mean.ptr<T>()[c]);
      const double dy_mean = static_cast<double>(sum_dy.ptr<T>()[c]) / n;
      const double coef = istd * static_cast<double>(sum_dy_xhat.ptr<T>()[c]) / n;
      for_channel(shape, c, [&](std::int64_t i) {
        const double centered = static_cast<double>(x[i]) - mu;
        dx[i] = static_cast<T>(k * (static_cast<double>(dy[i]) - dy_mean - centered * coef));
      });
    }
  });
}

}  // namespace basin::kernels::reference
