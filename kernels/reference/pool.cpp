// CPU reference for pooling and dropout: straight loops, written to be read.
//
// The backward passes here are scatters (each output spreads its gradient
// over the input it came from), the natural way to write them on one thread.
// The CUDA file computes the same sums as gathers; the parity tests hold the
// two formulations against each other.
#include <cmath>
#include <cstring>

#include "kernels/dtype_dispatch.h"
#include "kernels/philox.h"
#include "kernels/pool.h"

namespace basin::kernels::reference {

void max_pool2d(const TensorArg& out, const TensorArg& indices, const TensorArg& in, const Pool2dShape& s) {
  BASIN_DISPATCH_FLOATING(in.dtype, "max_pool2d", T, [&] {
    const T* x = in.ptr<T>();
    T* y = out.ptr<T>();
    std::int32_t* at = indices.ptr<std::int32_t>();
    const std::int64_t planes = s.batch * s.channels;
    for (std::int64_t plane = 0; plane < planes; ++plane) {
      const T* xp = x + plane * s.height * s.width;
      for (std::int64_t oh = 0; oh < s.out_height; ++oh) {
        for (std::int64_t ow = 0; ow < s.out_width; ++ow) {
          T best = T(0);
          std::int64_t best_at = -1;  // padding never wins: only real elements are visited
          for (std::int64_t kh = 0; kh < s.kernel_h; ++kh) {
            const std::int64_t h = oh * s.stride_h - s.pad_h + kh;
            if (h < 0 || h >= s.height) continue;
            for (std::int64_t kw = 0; kw < s.kernel_w; ++kw) {
              const std::int64_t w = ow * s.stride_w - s.pad_w + kw;
              if (w < 0 || w >= s.width) continue;
              const T v = xp[h * s.width + w];
              // Strictly greater keeps the first of equal maxima; the first
              // NaN replaces any number and is never replaced.
              if (best_at < 0 || (std::isnan(v) ? !std::isnan(best) : v > best)) {
                best = v;
                best_at = h * s.width + w;
              }
            }
          }
          const std::int64_t o = (plane * s.out_height + oh) * s.out_width + ow;
          y[o] = best;
          at[o] = static_cast<std::int32_t>(best_at);
        }
      }
    }
  });
}

void max_pool2d_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& indices,
                         const Pool2dShape& s) {
  BASIN_DISPATCH_FLOATING(grad_out.dtype, "max_pool2d_backward", T, [&] {
    T* gx = grad_in.ptr<T>();
    const T* gy = grad_out.ptr<T>();
    const std::int32_t* at = indices.ptr<std::int32_t>();
    const std::int64_t plane_in = s.height * s.width;
    const std::int64_t plane_out = s.out_height * s.out_width;
    std::memset(gx, 0, static_cast<std::size_t>(grad_in.numel) * sizeof(T));
    for (std::int64_t plane = 0; plane < s.batch * s.channels; ++plane) {
      for (std::int64_t o = 0; o < plane_out; ++o) {
        gx[plane * plane_in + at[plane * plane_out + o]] += gy[plane * plane_out + o];
      }
    }
  });
}

void avg_pool2d(const TensorArg& out, const TensorArg& in, const Pool2dShape& s) {
  BASIN_DISPATCH_FLOATING(in.dtype, "avg_pool2d", T, [&] {
    const T* x = in.ptr<T>();
    T* y = out.ptr<T>();
    // Windows never reach past the padded border (floor mode), so with
    // count_include_pad every divisor is the full kernel area.
    const T area = static_cast<T>(s.kernel_h * s.kernel_w);
    const std::int64_t planes = s.batch * s.channels;
    for (std::int64_t plane = 0; plane < planes; ++plane) {
      const T* xp = x + plane * s.height * s.width;
      for (std::int64_t oh = 0; oh < s.out_height; ++oh) {
        for (std::int64_t ow = 0; ow < s.out_width; ++ow) {
          T total = T(0);
          for (std::int64_t kh = 0; kh < s.kernel_h; ++kh) {
            const std::int64_t h = oh * s.stride_h - s.pad_h + kh;
            if (h < 0 || h >= s.height) continue;
            for (std::int64_t kw = 0; kw < s.kernel_w; ++kw) {
              const std::int64_t w = ow * s.stride_w - s.pad_w + kw;
              if (w < 0 || w >= s.width) continue;
              total += xp[h * s.width + w];
            }
          }
          y[(plane * s.out_height + oh) * s.out_width + ow] = total / area;
        }
      }
    }
  });
}

void avg_pool2d_backward(const TensorArg& grad_in, const TensorArg& grad_out, const Pool2dShape& s) {
  BASIN_DISPATCH_FLOATING(grad_out.dtype, "avg_pool2d_backward", T, [&] {
    T* gx = grad_in.ptr<T>();
    const T* gy = grad_out.ptr<T>();
    const T area = static_cast<T>(s.kernel_h * s.kernel_w);
    std::memset(gx, 0, static_cast<std::size_t>(grad_in.numel) * sizeof(T));
    const std::int64_t planes = s.batch * s.channels;
    for (std::int64_t plane = 0; plane < planes; ++plane) {
      T* gp = gx + plane * s.height * s.width;
      for (std::int64_t oh = 0; oh < s.out_height; ++oh) {
        for (std::int64_t ow = 0; ow < s.out_width; ++ow) {
          const T share = gy[(plane * s.out_height + oh) * s.out_width + ow] / area;
          for (std::int64_t kh = 0; kh < s.kernel_h; ++kh) {
            const std::int64_t h = oh * s.stride_h - s.pad_h + kh;
            if (h < 0 || h >= s.height) continue;
            for (std::int64_t kw = 0; kw < s.kernel_w; ++kw) {
              const std::int64_t w = ow * s.stride_w - s.pad_w + kw;
              if (w < 0 || w >= s.width) continue;
              gp[h * s.width + w] += share;  // the padding's share is dropped
            }
          }
        }
      }
    }
  });
}

void dropout(const TensorArg& out, const TensorArg& mask, const TensorArg& in, PhiloxDraw draw, double p) {
  BASIN_DISPATCH_FLOATING(in.dtype, "dropout", T, [&] {
    const T* x = in.ptr<T>();
    T* y = out.ptr<T>();
    std::uint8_t* keep = mask.ptr<std::uint8_t>();
    const T scale = static_cast<T>(1.0 / (1.0 - p));
    for (std::int64_t i = 0; i < in.numel; ++i) {
      const bool kept = philox_uniform(draw.seed, draw.offset, i, 0.0, 1.0) >= p;
      keep[i] = kept ? 1 : 0;
      // A multiply rather than a select, so a dropped inf or NaN still gives
      // NaN, as in PyTorch.
      y[i] = x[i] * (kept ? scale : T(0));
    }
  });
}

void dropout_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& mask, double p) {
  BASIN_DISPATCH_FLOATING(grad_out.dtype, "dropout_backward", T, [&] {
    const T* gy = grad_out.ptr<T>();
    T* gx = grad_in.ptr<T>();
    const std::uint8_t* keep = mask.ptr<std::uint8_t>();
    const T scale = static_cast<T>(1.0 / (1.0 - p));
    for (std::int64_t i = 0; i < grad_out.numel; ++i) gx[i] = gy[i] * (keep[i] ? scale : T(0));
  });
}

}  // namespace basin::kernels::reference
