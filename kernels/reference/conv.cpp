// CPU convolution: the readable reference for the cuDNN path (see kernels/conv.h).
//
// Convolution becomes matrix multiplication once each image is unfolded
// (im2col) into a column matrix with one row per weight tap (c, r, s) and one
// column per output pixel (p, q):
//
//   col[(c*R + r)*S + s, p*Q + q] = in[c, p*sh - ph + r, q*sw - pw + s]   (0 in the padding)
//
// Then, per image, with the weight seen as a [K, C*R*S] matrix W:
//
//   forward           out[n]      = W @ col[n] + bias           [K, P*Q]
//   backward_weight   grad_weight = sum_n grad_out[n] @ col[n]^T  [K, C*R*S]
//   backward_input    grad_in[n]  = col2im(W^T @ grad_out[n])
//
// col2im is the adjoint of im2col: it adds each column entry back onto the
// pixel it was copied from, so a pixel that several windows overlap collects
// all their contributions. The GEMMs are plain loops whose innermost index
// walks contiguous rows. Everything accumulates in double for both dtypes, so
// the reference is at least as accurate as cuDNN; the parity tests allow for that.
#include <algorithm>
#include <vector>

#include "kernels/conv.h"
#include "kernels/dtype_dispatch.h"

namespace basin::kernels::reference {

namespace {

// One image [C, H, W] unfolded into col [C*R*S, P*Q] (as double).
template <class T>
void im2col(const T* image, const Conv2dShape& g, std::vector<double>& col) {
  const std::int64_t pq = g.p * g.q;
  for (std::int64_t c = 0; c < g.c; ++c) {
    for (std::int64_t r = 0; r < g.r; ++r) {
      for (std::int64_t s = 0; s < g.s; ++s) {
        double* row = col.data() + ((c * g.r + r) * g.s + s) * pq;
        for (std::int64_t p = 0; p < g.p; ++p) {
          const std::int64_t y = p * g.stride_h - g.pad_h + r;
          for (std::int64_t q = 0; q < g.q; ++q) {
            const std::int64_t x = q * g.stride_w - g.pad_w + s;
            const bool inside = y >= 0 && y < g.h && x >= 0 && x < g.w;
            row[p * g.q + q] = inside ? static_cast<double>(image[(c * g.h + y) * g.w + x]) : 0.0;
          }
        }
      }
    }
  }
}

// The adjoint of im2col: image [C, H, W] = sum of the col entries copied from
// each pixel. Entries that came from the padding are dropped. image is overwritten.
void col2im(const std::vector<double>& col, const Conv2dShape& g, std::vector<double>& image) {
  std::fill(image.begin(), image.end(), 0.0);
  const std::int64_t pq = g.p * g.q;
  for (std::int64_t c = 0; c < g.c; ++c) {
    for (std::int64_t r = 0; r < g.r; ++r) {
      for (std::int64_t s = 0; s < g.s; ++s) {
        const double* row = col.data() + ((c * g.r + r) * g.s + s) * pq;
        for (std::int64_t p = 0; p < g.p; ++p) {
          const std::int64_t y = p * g.stride_h - g.pad_h + r;
          if (y < 0 || y >= g.h) continue;
          for (std::int64_t q = 0; q < g.q; ++q) {
            const std::int64_t x = q * g.stride_w - g.pad_w + s;
            if (x >= 0 && x < g.w) image[(c * g.h + y) * g.w + x] += row[p * g.q + q];
          }
        }
      }
    }
  }
}

template <class T>
void forward_typed(const Conv2dShape& g, T* out, const T* input, const T* weight, const T* bias) {
  const std::int64_t taps = g.c * g.r * g.s;
  const std::int64_t pq = g.p * g.q;
  std::vector<double> col(static_cast<std::size_t>(taps * pq));
  std::vector<double> row(static_cast<std::size_t>(pq));
  for (std::int64_t n = 0; n < g.n; ++n) {
    im2col(input + n * g.c * g.h * g.w, g, col);
    for (std::int64_t k = 0; k < g.k; ++k) {
      std::fill(row.begin(), row.end(), bias ? static_cast<double>(bias[k]) : 0.0);
      for (std::int64_t t = 0; t < taps; ++t) {
        const double w = static_cast<double>(weight[k * taps + t]);
        const double* col_row = col.data() + t * pq;
        for (std::int64_t j = 0; j < pq; ++j) row[j] += w * col_row[j];
      }
      T* dst = out + (n * g.k + k) * pq;
      for (std::int64_t j = 0; j < pq; ++j) dst[j] = static_cast<T>(row[j]);
    }
  }
}

template <class T>
void backward_input_typed(const Conv2dShape& g, T* grad_input, const T* grad_out, const T* weight) {
  const std::int64_t taps = g.c * g.r * g.s;
  const std::int64_t pq = g.p * g.q;
  const std::int64_t chw = g.c * g.h * g.w;
  std::vector<double> col(static_cast<std::size_t>(taps * pq));
  std::vector<double> image(static_cast<std::size_t>(chw));
  for (std::int64_t n = 0; n < g.n; ++n) {
    // col = W^T @ grad_out[n]: row t of col gathers weight[k, t] * grad_out[n, k, :] over k.
    std::fill(col.begin(), col.end(), 0.0);
    const T* gy = grad_out + n * g.k * pq;
    for (std::int64_t k = 0; k < g.k; ++k) {
      for (std::int64_t t = 0; t < taps; ++t) {
        const double w = static_cast<double>(weight[k * taps + t]);
        double* col_row = col.data() + t * pq;
        for (std::int64_t j = 0; j < pq; ++j) col_row[j] += w * static_cast<double>(gy[k * pq + j]);
      }
    }
    col2im(col, g, image);
    T* dst = grad_input + n * chw;
    for (std::int64_t i = 0; i < chw; ++i) dst[i] = static_cast<T>(image[i]);
  }
}

template <class T>
void backward_weight_typed(const Conv2dShape& g, T* grad_weight, const T* grad_out, const T* input) {
  const std::int64_t taps = g.c * g.r * g.s;
  const std::int64_t pq = g.p * g.q;
  std::vector<double> col(static_cast<std::size_t>(taps * pq));
  std::vector<double> total(static_cast<std::size_t>(g.k * taps), 0.0);
  for (std::int64_t n = 0; n < g.n; ++n) {
    im2col(input + n * g.c * g.h * g.w, g, col);
    const T* gy = grad_out + n * g.k * pq;
    // grad_out[n] @ col^T: both operands are walked along their contiguous rows.
    for (std::int64_t k = 0; k < g.k; ++k) {
      for (std::int64_t t = 0; t < taps; ++t) {
        const double* col_row = col.data() + t * pq;
        double dot = 0.0;
        for (std::int64_t j = 0; j < pq; ++j) dot += static_cast<double>(gy[k * pq + j]) * col_row[j];
        total[k * taps + t] += dot;
      }
    }
  }
  for (std::int64_t i = 0; i < g.k * taps; ++i) grad_weight[i] = static_cast<T>(total[i]);
}

}  // namespace

void conv2d_forward(DType dtype, const Conv2dShape& shape, void* out, const void* input, const void* weight,
                    const void* bias) {
  BASIN_DISPATCH_FLOATING(dtype, "conv2d", T, [&] {
    forward_typed<T>(shape, static_cast<T*>(out), static_cast<const T*>(input), static_cast<const T*>(weight),
                     static_cast<const T*>(bias));
  });
}

void conv2d_backward_input(DType dtype, const Conv2dShape& shape, void* grad_input, const void* grad_out,
                           const void* weight) {
  BASIN_DISPATCH_FLOATING(dtype, "conv2d_backward", T, [&] {
    backward_input_typed<T>(shape, static_cast<T*>(grad_input), static_cast<const T*>(grad_out),
                            static_cast<const T*>(weight));
  });
}

void conv2d_backward_weight(DType dtype, const Conv2dShape& shape, void* grad_weight, const void* grad_out,
                            const void* input) {
  BASIN_DISPATCH_FLOATING(dtype, "conv2d_backward", T, [&] {
    backward_weight_typed<T>(shape, static_cast<T*>(grad_weight), static_cast<const T*>(grad_out),
                             static_cast<const T*>(input));
  });
}

}  // namespace basin::kernels::reference
