// CUDA pooling and dropout (the math is spelled out in kernels/pool.h).
//
// Forward pooling: one thread per output element, in a grid-stride loop;
// neighbouring threads take neighbouring output columns, so their window
// reads fall on nearby addresses and share cache lines.
//
// Backward pooling is a gather, not a scatter: one thread per INPUT element
// loops over the outputs whose window covers it and sums their contributions
// (for max: only those whose saved argmax names this element). A scatter from
// the outputs would need a zero-fill plus float atomicAdd wherever windows
// overlap (stride < kernel), and atomics make the summation order, and so the
// last bits of the gradient, change from run to run. The gather costs
// ceil(kernel / stride) outputs per dim per input element: 2 x 2 = 4 index
// reads for the common k=3, s=2 and exactly 1 for k=2, s=2, each a cached read
// of the small output-sized tensors. It visits the outputs in row-major
// order, the order the CPU scatter adds them, so both devices round alike.
//
// Dropout: each thread draws one Philox block (four 32-bit lanes) and uses
// all four for four consecutive elements. That is exactly the per-element
// formula philox_uniform(seed, offset, i) (element i reads lane i % 4 of
// counter offset + i / 4), so the CPU reference draws the same mask, at a
// quarter of the Philox rounds a one-element-per-thread loop would spend.
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/dtype_dispatch.h"
#include "kernels/philox.h"
#include "kernels/pool.h"

namespace basin::kernels::cuda {

namespace {

constexpr int kBlockSize = 256;

template <class T>
__global__ void max_pool2d_kernel(T* y, std::int32_t* at, const T* x, Pool2dShape s) {
  const long long n = s.batch * s.channels * s.out_height * s.out_width;
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long o = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; o < n; o += step) {
    const long long ow = o % s.out_width;
    const long long oh = (o / s.out_width) % s.out_height;
    const long long plane = o / (s.out_width * s.out_height);
    const T* xp = x + plane * s.height * s.width;
    T best = T(0);
    long long best_at = -1;  // padding never wins: only real elements are visited
    for (long long kh = 0; kh < s.kernel_h; ++kh) {
      const long long h = oh * s.stride_h - s.pad_h + kh;
      if (h < 0 || h >= s.height) continue;
      for (long long kw = 0; kw < s.kernel_w; ++kw) {
        const long long w = ow * s.stride_w - s.pad_w + kw;
        if (w < 0 || w >= s.width) continue;
        const T v = xp[h * s.width + w];
        if (best_at < 0 || (isnan(v) ? !isnan(best) : v > best)) {
          best = v;
          best_at = h * s.width + w;
        }
      }
    }
    y[o] = best;
    at[o] = static_cast<std::int32_t>(best_at);
  }
}

// The outputs (along one dim) whose window covers input position `pos`:
// first..last inclusive, empty when first > last (a gap when stride > kernel).
struct CoverRange {
  long long first, last;
};

__device__ CoverRange covering(long long pos, long long kernel, long long stride, long long pad, long long outputs) {
  // Output o covers o*stride - pad .. o*stride - pad + kernel - 1.
  const long long shifted = pos + pad;  // >= 0
  const long long first = shifted >= kernel ? (shifted - kernel) / stride + 1 : 0;
  const long long last_possible = shifted / stride;
  return {first, last_possible < outputs - 1 ? last_possible : outputs - 1};
}

template <class T>
__global__ void max_pool2d_backward_kernel(T* gx, const T* gy, const std::int32_t* at, Pool2dShape s) {
  const long long n = s.batch * s.channels * s.height * s.width;
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n; i += step) {
    const long long w = i % s.width;
    const long long h = (i / s.width) % s.height;
    const long long plane = i / (s.width * s.height);
    const std::int32_t here = static_cast<std::int32_t>(h * s.width + w);
    const CoverRange rows = covering(h, s.kernel_h, s.stride_h, s.pad_h, s.out_height);
    const CoverRange cols = covering(w, s.kernel_w, s.stride_w, s.pad_w, s.out_width);
    const long long plane_out = plane * s.out_height * s.out_width;
    T total = T(0);
    for (long long oh = rows.first; oh <= rows.last; ++oh) {
      for (long long ow = cols.first; ow <= cols.last; ++ow) {
        const long long o = plane_out + oh * s.out_width + ow;
        if (at[o] == here) total += gy[o];
      }
    }
    gx[i] = total;
  }
}

template <class T>
__global__ void avg_pool2d_kernel(T* y, const T* x, Pool2dShape s) {
  const long long n = s.batch * s.channels * s.out_height * s.out_width;
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  // Floor mode keeps every window inside the padded input, so with
  // count_include_pad the divisor is always the full kernel area.
  const T area = static_cast<T>(s.kernel_h * s.kernel_w);
  for (long long o = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; o < n; o += step) {
    const long long ow = o % s.out_width;
    const long long oh = (o / s.out_width) % s.out_height;
    const long long plane = o / (s.out_width * s.out_height);
    const T* xp = x + plane * s.height * s.width;
    T total = T(0);
    for (long long kh = 0; kh < s.kernel_h; ++kh) {
      const long long h = oh * s.stride_h - s.pad_h + kh;
      if (h < 0 || h >= s.height) continue;
      for (long long kw = 0; kw < s.kernel_w; ++kw) {
        const long long w = ow * s.stride_w - s.pad_w + kw;
        if (w < 0 || w >= s.width) continue;
        total += xp[h * s.width + w];
      }
    }
    y[o] = total / area;
  }
}

template <class T>
__global__ void avg_pool2d_backward_kernel(T* gx, const T* gy, Pool2dShape s) {
  const long long n = s.batch * s.channels * s.height * s.width;
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  const T area = static_cast<T>(s.kernel_h * s.kernel_w);
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n; i += step) {
    const long long w = i % s.width;
    const long long h = (i / s.width) % s.height;
    const long long plane = i / (s.width * s.height);
    const CoverRange rows = covering(h, s.kernel_h, s.stride_h, s.pad_h, s.out_height);
    const CoverRange cols = covering(w, s.kernel_w, s.stride_w, s.pad_w, s.out_width);
    const long long plane_out = plane * s.out_height * s.out_width;
    T total = T(0);
    for (long long oh = rows.first; oh <= rows.last; ++oh) {
      for (long long ow = cols.first; ow <= cols.last; ++ow) total += gy[plane_out + oh * s.out_width + ow] / area;
    }
    gx[i] = total;
  }
}

template <class T>
__global__ void dropout_kernel(T* y, std::uint8_t* keep, const T* x, long long n, PhiloxDraw draw, double p,
                               T scale) {
  const long long groups = (n + 3) / 4;
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long g = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; g < groups; g += step) {
    const PhiloxBlock block = philox4x32_10(draw.offset + static_cast<std::uint64_t>(g), draw.seed);
    for (int lane = 0; lane < 4; ++lane) {
      const long long i = 4 * g + lane;
      if (i >= n) break;
      const bool kept = philox_unit(block.v[lane]) >= p;
      keep[i] = kept ? 1 : 0;
      y[i] = x[i] * (kept ? scale : T(0));
    }
  }
}

template <class T>
__global__ void dropout_backward_kernel(T* gx, const T* gy, const std::uint8_t* keep, long long n, T scale) {
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n; i += step) {
    gx[i] = gy[i] * (keep[i] ? scale : T(0));
  }
}

}  // namespace

void max_pool2d(const TensorArg& out, const TensorArg& indices, const TensorArg& in, const Pool2dShape& shape) {
  if (out.numel == 0) return;
  BASIN_DISPATCH_FLOATING(in.dtype, "max_pool2d", T, [&] {
    launch(max_pool2d_kernel<T>, grid_for(out.numel, kBlockSize), kBlockSize, out.ptr<T>(), indices.ptr<std::int32_t>(),
           in.ptr<T>(), shape);
  });
}

void max_pool2d_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& indices,
                         const Pool2dShape& shape) {
  if (grad_in.numel == 0) return;
  BASIN_DISPATCH_FLOATING(grad_out.dtype, "max_pool2d_backward", T, [&] {
    launch(max_pool2d_backward_kernel<T>, grid_for(grad_in.numel, kBlockSize), kBlockSize, grad_in.ptr<T>(),
           grad_out.ptr<T>(), indices.ptr<std::int32_t>(), shape);
  });
}

void avg_pool2d(const TensorArg& out, const TensorArg& in, const Pool2dShape& shape) {
  if (out.numel == 0) return;
  BASIN_DISPATCH_FLOATING(in.dtype, "avg_pool2d", T, [&] {
    launch(avg_pool2d_kernel<T>, grid_for(out.numel, kBlockSize), kBlockSize, out.ptr<T>(), in.ptr<T>(), shape);
  });
}

void avg_pool2d_backward(const TensorArg& grad_in, const TensorArg& grad_out, const Pool2dShape& shape) {
  if (grad_in.numel == 0) return;
  BASIN_DISPATCH_FLOATING(grad_out.dtype, "avg_pool2d_backward", T, [&] {
    launch(avg_pool2d_backward_kernel<T>, grid_for(grad_in.numel, kBlockSize), kBlockSize, grad_in.ptr<T>(),
           grad_out.ptr<T>(), shape);
  });
}

void dropout(const TensorArg& out, const TensorArg& mask, const TensorArg& in, PhiloxDraw draw, double p) {
  if (in.numel == 0) return;
  BASIN_DISPATCH_FLOATING(in.dtype, "dropout", T, [&] {
    const long long groups = (in.numel + 3) / 4;
    launch(dropout_kernel<T>, grid_for(groups, kBlockSize), kBlockSize, out.ptr<T>(), mask.ptr<std::uint8_t>(),
           in.ptr<T>(), in.numel, draw, p, static_cast<T>(1.0 / (1.0 - p)));
  });
}

void dropout_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& mask, double p) {
  if (grad_out.numel == 0) return;
  BASIN_DISPATCH_FLOATING(grad_out.dtype, "dropout_backward", T, [&] {
    launch(dropout_backward_kernel<T>, grid_for(grad_out.numel, kBlockSize), kBlockSize, grad_in.ptr<T>(),
           grad_out.ptr<T>(), mask.ptr<std::uint8_t>(), grad_out.numel, static_cast<T>(1.0 / (1.0 - p)));
  });
}

}  // namespace basin::kernels::cuda
