// CPU engine softmax and log-softmax over a contiguous float32
// [outer, dim, inner] (kernels/softmax.h states what they compute).
//
// Every (outer, inner) column is an independent softmax, so they are split
// across threads. Unlike the reference, which sums in float64, the engine
// computes in float32 throughout, as PyTorch's CPU softmax does:
//   - inner == 1 (the usual case: logits, rows of the last dim): each row is
//     contiguous, and its max and sum run in lanes (lane_max, lane_sum in
//     kernels/fast/lanes.h), which the compiler keeps in SIMD registers;
//   - inner > 1: a chunk of neighbouring columns is processed side by side,
//     one row of the dim after the other, so every read is contiguous; each
//     column's max and sum run in row order.
// Either way the order of every sum depends on the shape alone, so results
// repeat bit for bit on any thread count. Anything but contiguous float32
// runs the reference.
#include <algorithm>
#include <cmath>

#include "kernels/fast/lanes.h"
#include "kernels/fast/parallel.h"
#include "kernels/softmax.h"

namespace basin::kernels::fast {

namespace {

// Columns processed side by side when inner > 1.
constexpr std::int64_t kColumnChunk = 64;

bool engine_takes(std::initializer_list<const TensorArg*> args) {
  for (const TensorArg* arg : args) {
    if (arg->dtype != DType::Float32 || !arg->contiguous) return false;
  }
  return true;
}

// Rows (or column chunks) per thread: an exp per element costs several times
// a plain memory pass, so a quarter of kMinPerThread elements is enough.
std::int64_t grain_for(std::int64_t per_item) {
  return std::max<std::int64_t>(1, kMinPerThread / 4 / std::max<std::int64_t>(per_item, 1));
}

// ---------------------------------------------------------------- rows (inner == 1)

void forward_row(SoftmaxKind kind, float* y, const float* x, std::int64_t n) {
  // From -inf, not x[0]: a row holding a NaN, or all -inf, comes out NaN, as in the reference.
  const float m = lane_max(n, [x](std::int64_t r) { return x[r]; });
  if (kind == SoftmaxKind::Softmax) {
    // Each exp is computed once and kept in y until the sum is known.
    for (std::int64_t r = 0; r < n; ++r) y[r] = std::exp(x[r] - m);
    const float s = lane_sum(n, [y](std::int64_t r) { return y[r]; });
    for (std::int64_t r = 0; r < n; ++r) y[r] = y[r] / s;
  } else {
    const float log_s = std::log(lane_sum(n, [x, m](std::int64_t r) { return std::exp(x[r] - m); }));
    for (std::int64_t r = 0; r < n; ++r) y[r] = (x[r] - m) - log_s;
  }
}

void backward_row(SoftmaxKind kind, float* gx, const float* g, const float* y, std::int64_t n) {
  if (kind == SoftmaxKind::Softmax) {
    const float dot = lane_sum(n, [g, y](std::int64_t r) { return g[r] * y[r]; });
    for (std::int64_t r = 0; r < n; ++r) gx[r] = y[r] * (g[r] - dot);
  } else {
    const float total = lane_sum(n, [g](std::int64_t r) { return g[r]; });
    for (std::int64_t r = 0; r < n; ++r) gx[r] = g[r] - std::exp(y[r]) * total;
  }
}

// ---------------------------------------------------------------- columns (inner > 1)

// Columns [0, width) of a [n, stride] slab, each one softmax along n.
void forward_columns(SoftmaxKind kind, float* y, const float* x, std::int64_t n, std::int64_t stride,
                     std::int64_t width) {
  float m[kColumnChunk], s[kColumnChunk];
  std::fill(m, m + width, -INFINITY);
  std::fill(s, s + width, 0.0f);
  for (std::int64_t r = 0; r < n; ++r) {
    const float* row = x + r * stride;
    for (std::int64_t i = 0; i < width; ++i) m[i] = row[i] > m[i] ? row[i] : m[i];
  }
  for (std::int64_t r = 0; r < n; ++r) {
    const float* row = x + r * stride;
    for (std::int64_t i = 0; i < width; ++i) {
      const float e = std::exp(row[i] - m[i]);
      if (kind == SoftmaxKind::Softmax) y[r * stride + i] = e;  // kept until the sum is known
      s[i] += e;
    }
  }
  if (kind == SoftmaxKind::LogSoftmax) {
    for (std::int64_t i = 0; i < width; ++i) s[i] = std::log(s[i]);
  }
  for (std::int64_t r = 0; r < n; ++r) {
    float* out = y + r * stride;
    const float* row = x + r * stride;
    for (std::int64_t i = 0; i < width; ++i) {
      out[i] = kind == SoftmaxKind::Softmax ? out[i] / s[i] : (row[i] - m[i]) - s[i];
    }
  }
}

void backward_columns(SoftmaxKind kind, float* gx, const float* g, const float* y, std::int64_t n,
                      std::int64_t stride, std::int64_t width) {
  // softmax: sum_r g * y; log-softmax: sum_r g.
  float total[kColumnChunk];
  std::fill(total, total + width, 0.0f);
  for (std::int64_t r = 0; r < n; ++r) {
    for (std::int64_t i = 0; i < width; ++i) {
      const float gi = g[r * stride + i];
      total[i] += kind == SoftmaxKind::Softmax ? gi * y[r * stride + i] : gi;
    }
  }
  for (std::int64_t r = 0; r < n; ++r) {
    for (std::int64_t i = 0; i < width; ++i) {
      const std::int64_t at = r * stride + i;
      gx[at] = kind == SoftmaxKind::Softmax ? y[at] * (g[at] - total[i]) : g[at] - std::exp(y[at]) * total[i];
    }
  }
}

// Calls body(base, width) for every chunk of columns: base is the offset of
// its first element, width its number of columns; chunks split across threads.
template <class Body>
void for_column_chunks(ReduceShape shape, Body&& body) {
  const std::int64_t chunks = (shape.inner + kColumnChunk - 1) / kColumnChunk;
  parallel_for(
      shape.outer * chunks,
      [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t item = begin; item < end; ++item) {
          const std::int64_t o = item / chunks;
          const std::int64_t i0 = (item % chunks) * kColumnChunk;
          body(o * shape.reduce * shape.inner + i0, std::min(kColumnChunk, shape.inner - i0));
        }
      },
      grain_for(shape.reduce * std::min(kColumnChunk, shape.inner)));
}

}  // namespace

void softmax_forward(SoftmaxKind kind, const TensorArg& out, const TensorArg& in, ReduceShape shape) {
  if (!engine_takes({&out, &in})) {
    reference::softmax_forward(kind, out, in, shape);
    return;
  }
  float* y = out.ptr<float>();
  const float* x = in.ptr<float>();
  const std::int64_t n = shape.reduce;
  if (shape.inner == 1) {
    parallel_for(
        shape.outer,
        [&](std::int64_t begin, std::int64_t end) {
          for (std::int64_t o = begin; o < end; ++o) forward_row(kind, y + o * n, x + o * n, n);
        },
        grain_for(n));
    return;
  }
  for_column_chunks(shape, [&](std::int64_t base, std::int64_t width) {
    forward_columns(kind, y + base, x + base, n, shape.inner, width);
  });
}

void softmax_backward(SoftmaxKind kind, const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& out,
                      ReduceShape shape) {
  if (!engine_takes({&grad_in, &grad_out, &out})) {
    reference::softmax_backward(kind, grad_in, grad_out, out, shape);
    return;
  }
  float* gx = grad_in.ptr<float>();
  const float* g = grad_out.ptr<float>();
  const float* y = out.ptr<float>();
  const std::int64_t n = shape.reduce;
  if (shape.inner == 1) {
    parallel_for(
        shape.outer,
        [&](std::int64_t begin, std::int64_t end) {
          for (std::int64_t o = begin; o < end; ++o) backward_row(kind, gx + o * n, g + o * n, y + o * n, n);
        },
        grain_for(n));
    return;
  }
  for_column_chunks(shape, [&](std::int64_t base, std::int64_t width) {
    backward_columns(kind, gx + base, g + base, y + base, n, shape.inner, width);
  });
}

}  // namespace basin::kernels::fast
