// CPU engine pooling and dropout (kernels/pool.h states what they compute).
//
// Pooling: the N*C planes are independent, so they are split across threads,
// and each plane runs the reference's loops in the reference's order. The
// reference already computes in float32 (a max, or a sum of at most
// kernel_h * kernel_w terms), so the engine's results are the reference's bit
// for bit; the backward passes stay scatters, which are race-free here because
// a plane's outputs only ever reach the same plane's inputs. The window is
// clipped to the input once per output instead of testing every tap.
//
// Dropout: each element's Philox draw depends on its index alone, so the
// elements split across threads and the mask is the same on any thread count;
// one Philox block serves four consecutive elements.
//
// Anything but contiguous float32 runs the reference.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/fast/parallel.h"
#include "kernels/philox.h"
#include "kernels/pool.h"

namespace basin::kernels::fast {

namespace {

bool engine_takes(std::initializer_list<const TensorArg*> args) {
  for (const TensorArg* arg : args) {
    if (arg->dtype != DType::Float32 || !arg->contiguous) return false;
  }
  return true;
}

// The input rows [begin, end) a window starting at `start` (possibly in the
// padding) covers, clipped to the input [0, size).
struct Span {
  std::int64_t begin, end;
};
Span clip(std::int64_t start, std::int64_t kernel, std::int64_t size) {
  return {std::max<std::int64_t>(start, 0), std::min(start + kernel, size)};
}

// Calls body(plane_begin, plane_end) over the N*C planes, with enough planes
// per thread that each thread has at least kMinPerThread elements of work.
template <class Body>
void for_planes(const Pool2dShape& s, Body&& body) {
  const std::int64_t planes = s.batch * s.channels;
  const std::int64_t per_plane = std::max<std::int64_t>(1, s.height * s.width + s.out_height * s.out_width);
  parallel_for(planes, body, std::max<std::int64_t>(1, kMinPerThread / per_plane));
}

}  // namespace

void max_pool2d(const TensorArg& out, const TensorArg& indices, const TensorArg& in, const Pool2dShape& s) {
  if (!engine_takes({&out, &in}) || !indices.contiguous) {
    reference::max_pool2d(out, indices, in, s);
    return;
  }
  const float* x = in.ptr<float>();
  float* y = out.ptr<float>();
  std::int32_t* at = indices.ptr<std::int32_t>();
  for_planes(s, [&](std::int64_t plane_begin, std::int64_t plane_end) {
    for (std::int64_t plane = plane_begin; plane < plane_end; ++plane) {
      const float* xp = x + plane * s.height * s.width;
      for (std::int64_t oh = 0; oh < s.out_height; ++oh) {
        const Span rows = clip(oh * s.stride_h - s.pad_h, s.kernel_h, s.height);
        for (std::int64_t ow = 0; ow < s.out_width; ++ow) {
          const Span cols = clip(ow * s.stride_w - s.pad_w, s.kernel_w, s.width);
          const std::int64_t o = (plane * s.out_height + oh) * s.out_width + ow;
          if (rows.begin >= rows.end || cols.begin >= cols.end) {
            // All padding: the contract rules this out; write what the reference writes.
            y[o] = 0.0f;
            at[o] = -1;
            continue;
          }
          // The first real element starts the search; row-major order, as the reference.
          std::int64_t best_at = rows.begin * s.width + cols.begin;
          float best = xp[best_at];
          for (std::int64_t h = rows.begin; h < rows.end; ++h) {
            for (std::int64_t w = cols.begin; w < cols.end; ++w) {
              const float v = xp[h * s.width + w];
              // Strictly greater keeps the first of equal maxima; the first
              // NaN replaces any number and is never replaced.
              if (std::isnan(v) ? !std::isnan(best) : v > best) {
                best = v;
                best_at = h * s.width + w;
              }
            }
          }
          y[o] = best;
          at[o] = static_cast<std::int32_t>(best_at);
        }
      }
    }
  });
}

void max_pool2d_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& indices,
                         const Pool2dShape& s) {
  if (!engine_takes({&grad_in, &grad_out}) || !indices.contiguous) {
    reference::max_pool2d_backward(grad_in, grad_out, indices, s);
    return;
  }
  float* gx = grad_in.ptr<float>();
  const float* gy = grad_out.ptr<float>();
  const std::int32_t* at = indices.ptr<std::int32_t>();
  const std::int64_t plane_in = s.height * s.width;
  const std::int64_t plane_out = s.out_height * s.out_width;
  for_planes(s, [&](std::int64_t plane_begin, std::int64_t plane_end) {
    for (std::int64_t plane = plane_begin; plane < plane_end; ++plane) {
      // Zeroed plane by plane on the thread that then adds into it.
      float* gp = gx + plane * plane_in;
      std::memset(gp, 0, static_cast<std::size_t>(plane_in) * sizeof(float));
      for (std::int64_t o = 0; o < plane_out; ++o) gp[at[plane * plane_out + o]] += gy[plane * plane_out + o];
    }
  });
}

void avg_pool2d(const TensorArg& out, const TensorArg& in, const Pool2dShape& s) {
  if (!engine_takes({&out, &in})) {
    reference::avg_pool2d(out, in, s);
    return;
  }
  const float* x = in.ptr<float>();
  float* y = out.ptr<float>();
  // count_include_pad with floor-mode windows: every divisor is the full area.
  const float area = static_cast<float>(s.kernel_h * s.kernel_w);
  for_planes(s, [&](std::int64_t plane_begin, std::int64_t plane_end) {
    for (std::int64_t plane = plane_begin; plane < plane_end; ++plane) {
      const float* xp = x + plane * s.height * s.width;
      for (std::int64_t oh = 0; oh < s.out_height; ++oh) {
        const Span rows = clip(oh * s.stride_h - s.pad_h, s.kernel_h, s.height);
        for (std::int64_t ow = 0; ow < s.out_width; ++ow) {
          const Span cols = clip(ow * s.stride_w - s.pad_w, s.kernel_w, s.width);
          float total = 0.0f;
          for (std::int64_t h = rows.begin; h < rows.end; ++h) {
            for (std::int64_t w = cols.begin; w < cols.end; ++w) total += xp[h * s.width + w];
          }
          y[(plane * s.out_height + oh) * s.out_width + ow] = total / area;
        }
      }
    }
  });
}

void avg_pool2d_backward(const TensorArg& grad_in, const TensorArg& grad_out, const Pool2dShape& s) {
  if (!engine_takes({&grad_in, &grad_out})) {
    reference::avg_pool2d_backward(grad_in, grad_out, s);
    return;
  }
  float* gx = grad_in.ptr<float>();
  const float* gy = grad_out.ptr<float>();
  const float area = static_cast<float>(s.kernel_h * s.kernel_w);
  for_planes(s, [&](std::int64_t plane_begin, std::int64_t plane_end) {
    for (std::int64_t plane = plane_begin; plane < plane_end; ++plane) {
      float* gp = gx + plane * s.height * s.width;
      std::memset(gp, 0, static_cast<std::size_t>(s.height * s.width) * sizeof(float));
      for (std::int64_t oh = 0; oh < s.out_height; ++oh) {
        const Span rows = clip(oh * s.stride_h - s.pad_h, s.kernel_h, s.height);
        for (std::int64_t ow = 0; ow < s.out_width; ++ow) {
          const Span cols = clip(ow * s.stride_w - s.pad_w, s.kernel_w, s.width);
          const float share = gy[(plane * s.out_height + oh) * s.out_width + ow] / area;
          for (std::int64_t h = rows.begin; h < rows.end; ++h) {
            for (std::int64_t w = cols.begin; w < cols.end; ++w) gp[h * s.width + w] += share;
          }
        }
      }
    }
  });
}

void dropout(const TensorArg& out, const TensorArg& mask, const TensorArg& in, PhiloxDraw draw, double p) {
  if (!engine_takes({&out, &in}) || !mask.contiguous) {
    reference::dropout(out, mask, in, draw, p);
    return;
  }
  const float* x = in.ptr<float>();
  float* y = out.ptr<float>();
  std::uint8_t* keep = mask.ptr<std::uint8_t>();
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  // A Philox block is twenty 32-bit multiplies: worth threads at far fewer
  // elements than a copy, hence the smaller grain.
  parallel_for(
      in.numel,
      [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end;) {
          // Elements 4c .. 4c + 3 draw lanes 0 .. 3 of the block at counter
          // offset + c (kernels/philox.h), so one block serves four elements,
          // where the reference computes it for each. philox_uniform(..., 0, 1)
          // is philox_unit of the lane (1 * u + 0 = u), so the draws are the same.
          const PhiloxBlock block = philox4x32_10(draw.offset + static_cast<std::uint64_t>(i) / 4, draw.seed);
          for (std::int64_t lane = i % 4; lane < 4 && i < end; ++lane, ++i) {
            const bool kept = philox_unit(block.v[lane]) >= p;
            keep[i] = kept ? 1 : 0;
            // A multiply rather than a select: a dropped inf or NaN still gives NaN, as in PyTorch.
            y[i] = x[i] * (kept ? scale : 0.0f);
          }
        }
      },
      kMinPerThread / 8);
}

void dropout_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& mask, double p) {
  if (!engine_takes({&grad_in, &grad_out}) || !mask.contiguous) {
    reference::dropout_backward(grad_in, grad_out, mask, p);
    return;
  }
  const float* gy = grad_out.ptr<float>();
  float* gx = grad_in.ptr<float>();
  const std::uint8_t* keep = mask.ptr<std::uint8_t>();
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  parallel_for(grad_out.numel, [&](std::int64_t begin, std::int64_t end) {
#pragma omp simd
    for (std::int64_t i = begin; i < end; ++i) gx[i] = gy[i] * (keep[i] ? scale : 0.0f);
  });
}

}  // namespace basin::kernels::fast
