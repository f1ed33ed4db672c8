// CPU engine batch normalization (kernels/batchnorm.h states the formulas).
//
// Channels are independent, so they are split across threads. Within a
// channel the [N, C, HW] layout gives N contiguous rows of HW elements: each
// row is summed in float32 with SIMD lanes (omp simd reduction), and the row
// sums are added in double. That keeps the statistics close to the
// reference's double sums at the speed of a float loop. The elementwise
// passes work in float32 with per-channel constants formed once.
#include <cmath>

#include "kernels/batchnorm.h"
#include "kernels/fast/parallel.h"

namespace basin::kernels::fast {

namespace {

bool engine_takes(std::initializer_list<const TensorArg*> args) {
  for (const TensorArg* arg : args) {
    if (arg->data != nullptr && arg->dtype != DType::Float32) return false;
  }
  return true;
}

// Runs body(c) for every channel, the channels split across threads so that
// each thread gets about kMinPerThread elements at least.
template <class Body>
void for_each_channel(BatchNormShape shape, Body&& body) {
  const std::int64_t per_channel = std::max<std::int64_t>(1, shape.batch * shape.spatial);
  parallel_for(
      shape.channels,
      [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t c = begin; c < end; ++c) body(c);
      },
      std::max<std::int64_t>(1, kMinPerThread / per_channel));
}

// The start of row b of channel c.
std::int64_t row_start(BatchNormShape shape, std::int64_t b, std::int64_t c) {
  return (b * shape.channels + c) * shape.spatial;
}

float value_or(const TensorArg& t, std::int64_t c, float fallback) { return t.data ? t.ptr<float>()[c] : fallback; }

}  // namespace

void batch_norm_stats(const TensorArg& mean, const TensorArg& invstd, const TensorArg& input, BatchNormShape shape,
                      double eps, const TensorArg& running_mean, const TensorArg& running_var, double momentum) {
  if (!engine_takes({&mean, &invstd, &input, &running_mean, &running_var})) {
    reference::batch_norm_stats(mean, invstd, input, shape, eps, running_mean, running_var, momentum);
    return;
  }
  check_batch_norm_stats(shape);
  const std::int64_t n = shape.batch * shape.spatial;
  const float* x = input.ptr<float>();
  for_each_channel(shape, [&](std::int64_t c) {
    double total = 0.0;
    for (std::int64_t b = 0; b < shape.batch; ++b) {
      const float* row = x + row_start(shape, b, c);
      float row_total = 0.0f;
#pragma omp simd reduction(+ : row_total)
      for (std::int64_t s = 0; s < shape.spatial; ++s) row_total += row[s];
      total += row_total;
    }
    const double mu = total / static_cast<double>(n);
    // Two passes, as in the reference: squared deviations from the mean
    // do not cancel the way sum(x^2) - n mean^2 does.
    const float mu_f = static_cast<float>(mu);
    double squares = 0.0;
    for (std::int64_t b = 0; b < shape.batch; ++b) {
      const float* row = x + row_start(shape, b, c);
      float row_squares = 0.0f;
#pragma omp simd reduction(+ : row_squares)
      for (std::int64_t s = 0; s < shape.spatial; ++s) {
        const float d = row[s] - mu_f;
        row_squares += d * d;
      }
      squares += row_squares;
    }
    const double var = squares / static_cast<double>(n);
    mean.ptr<float>()[c] = mu_f;
    invstd.ptr<float>()[c] = static_cast<float>(1.0 / std::sqrt(var + eps));
    if (running_mean.data) {
      float* rm = running_mean.ptr<float>();
      float* rv = running_var.ptr<float>();
      const double unbiased = var * static_cast<double>(n) / static_cast<double>(n - 1);
      rm[c] = static_cast<float>((1.0 - momentum) * rm[c] + momentum * mu);
      rv[c] = static_cast<float>((1.0 - momentum) * rv[c] + momentum * unbiased);
    }
  });
}

void batch_norm_normalize(const TensorArg& out, const TensorArg& input, const TensorArg& mean, const TensorArg& invstd,
                          const TensorArg& weight, const TensorArg& bias, BatchNormShape shape) {
  if (!engine_takes({&out, &input, &mean, &invstd, &weight, &bias})) {
    reference::batch_norm_normalize(out, input, mean, invstd, weight, bias, shape);
    return;
  }
  const float* x = input.ptr<float>();
  float* y = out.ptr<float>();
  for_each_channel(shape, [&](std::int64_t c) {
    // y = (x - mean) invstd weight + bias = x scale + shift
    const float scale = invstd.ptr<float>()[c] * value_or(weight, c, 1.0f);
    const float shift = value_or(bias, c, 0.0f) - mean.ptr<float>()[c] * scale;
    for (std::int64_t b = 0; b < shape.batch; ++b) {
      const std::int64_t start = row_start(shape, b, c);
#pragma omp simd
      for (std::int64_t s = 0; s < shape.spatial; ++s) y[start + s] = x[start + s] * scale + shift;
    }
  });
}

void batch_norm_backward_reduce(const TensorArg& sum_dy, const TensorArg& sum_dy_xhat, const TensorArg& grad_out,
                                const TensorArg& input, const TensorArg& mean, const TensorArg& invstd,
                                BatchNormShape shape) {
  if (!engine_takes({&sum_dy, &sum_dy_xhat, &grad_out, &input, &mean, &invstd})) {
    reference::batch_norm_backward_reduce(sum_dy, sum_dy_xhat, grad_out, input, mean, invstd, shape);
    return;
  }
  const float* x = input.ptr<float>();
  const float* dy = grad_out.ptr<float>();
  for_each_channel(shape, [&](std::int64_t c) {
    const float mu = mean.ptr<float>()[c];
    double total = 0.0;
    double dot = 0.0;  // sum dy (x - mean); times invstd it is sum dy xhat
    for (std::int64_t b = 0; b < shape.batch; ++b) {
      const std::int64_t start = row_start(shape, b, c);
      float row_total = 0.0f;
      float row_dot = 0.0f;
#pragma omp simd reduction(+ : row_total, row_dot)
      for (std::int64_t s = 0; s < shape.spatial; ++s) {
        row_total += dy[start + s];
        row_dot += dy[start + s] * (x[start + s] - mu);
      }
      total += row_total;
      dot += row_dot;
    }
    sum_dy.ptr<float>()[c] = static_cast<float>(total);
    sum_dy_xhat.ptr<float>()[c] = static_cast<float>(dot * invstd.ptr<float>()[c]);
  });
}

void batch_norm_backward_input(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& input,
                               const TensorArg& mean, const TensorArg& invstd, const TensorArg& weight,
                               const TensorArg& sum_dy, const TensorArg& sum_dy_xhat, BatchNormShape shape) {
  if (!engine_takes({&grad_in, &grad_out, &input, &mean, &invstd, &weight, &sum_dy, &sum_dy_xhat})) {
    reference::batch_norm_backward_input(grad_in, grad_out, input, mean, invstd, weight, sum_dy, sum_dy_xhat, shape);
    return;
  }
  const double n = static_cast<double>(shape.batch * shape.spatial);
  const float* dy = grad_out.ptr<float>();
  float* dx = grad_in.ptr<float>();
  for_each_channel(shape, [&](std::int64_t c) {
    const float istd = invstd.ptr<float>()[c];
    const float k = value_or(weight, c, 1.0f) * istd;
    if (!sum_dy.data) {  // eval: y is affine in x
      for (std::int64_t b = 0; b < shape.batch; ++b) {
        const std::int64_t start = row_start(shape, b, c);
#pragma omp simd
        for (std::int64_t s = 0; s < shape.spatial; ++s) dx[start + s] = dy[start + s] * k;
      }
      return;
    }
    // dx = k (dy - mean(dy) - (x - mean) invstd mean(dy xhat))
    const float* x = input.ptr<float>();
    const float mu = mean.ptr<float>()[c];
    const float dy_mean = static_cast<float>(sum_dy.ptr<float>()[c] / n);
    const float coef = static_cast<float>(istd * sum_dy_xhat.ptr<float>()[c] / n);
    for (std::int64_t b = 0; b < shape.batch; ++b) {
      const std::int64_t start = row_start(shape, b, c);
#pragma omp simd
      for (std::int64_t s = 0; s < shape.spatial; ++s) {
        dx[start + s] = k * (dy[start + s] - dy_mean - (x[start + s] - mu) * coef);
      }
    }
  });
}

}  // namespace basin::kernels::fast
