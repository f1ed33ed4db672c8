// CPU engine convolutions: oneDNN for float32, im2col + OpenBLAS's dgemm for
// float64 (kernels/conv.h states what they compute).
//
// float32: basin's tensors are plain NCHW and KCRS; oneDNN's fast
// convolutions want blocked layouts (channels in groups of 8 or 16). Each
// primitive is created with "any" layouts, so oneDNN picks the layout it is
// fastest in, and a call reorders its operands into that layout and its result
// back out of it: the same exchange PyTorch makes around oneDNN for NCHW
// tensors. A primitive is made once per shape and direction, then kept (Plan),
// like the cuDNN plans.
//
// float64 (oneDNN has none): the reference's own scheme,
// kernels/reference/conv.cpp, with its GEMMs handed to OpenBLAS's cblas_dgemm
// and the images split across threads. The sharpness tools need float64
// gradients many times over (Hessian-vector products by finite differences),
// which the reference's single-threaded loops make slow.
#include "kernels/conv.h"

#if BASIN_WITH_CBLAS
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "kernels/fast/parallel.h"
#endif

#if BASIN_WITH_ONEDNN
#include <array>
#include <cstring>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#endif

#include "core/error.h"

namespace basin::kernels::fast {

#if BASIN_WITH_ONEDNN
namespace {

using dnnl::memory;

enum class Direction { forward, backward_input, backward_weight };

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

memory::desc plain(const memory::dims& dims, memory::format_tag tag) {
  return memory::desc(dims, memory::data_type::f32, tag);
}

memory::desc any(const memory::dims& dims) { return memory::desc(dims, memory::data_type::f32, memory::format_tag::any); }

// The three tensors of a convolution, whichever direction reads or writes
// them: x the input activation (or its gradient), w the weight (or its
// gradient), y the output activation (or its gradient).
struct Plan {
  dnnl::primitive primitive;
  memory::desc x, w, y;  // the layouts the primitive works in
};

struct Geometry {
  memory::dims x, w, y, strides, padding_l, padding_r;
};

Geometry geometry(const Conv2dShape& g) {
  // padding_r makes the output size come out as p and q: the taps past the
  // last full window are dropped, as in the floor of Conv2dShape's formula.
  return {{g.n, g.c, g.h, g.w},
          {g.k, g.c, g.r, g.s},
          {g.n, g.k, g.p, g.q},
          {g.stride_h, g.stride_w},
          {g.pad_h, g.pad_w},
          {(g.p - 1) * g.stride_h + g.r - g.h - g.pad_h, (g.q - 1) * g.stride_w + g.s - g.w - g.pad_w}};
}

dnnl::convolution_forward::primitive_desc forward_desc(const Geometry& d, bool has_bias) {
  const memory::desc bias = has_bias ? any({d.w[0]}) : memory::desc();
  const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                             any(d.x), any(d.w), bias, any(d.y), d.strides, d.padding_l,
                                             d.padding_r);
  return {desc, cpu_engine()};
}

Plan make_plan(Direction direction, const Conv2dShape& g, bool has_bias) {
  const Geometry d = geometry(g);
  const auto forward = forward_desc(d, has_bias);
  switch (direction) {
    case Direction::forward:
      return {dnnl::convolution_forward(forward), forward.src_desc(), forward.weights_desc(), forward.dst_desc()};
    case Direction::backward_input: {
      const dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, any(d.x), any(d.w),
                                                       any(d.y), d.strides, d.padding_l, d.padding_r);
      const dnnl::convolution_backward_data::primitive_desc pd(desc, cpu_engine(), forward);
      return {dnnl::convolution_backward_data(pd), pd.diff_src_desc(), pd.weights_desc(), pd.diff_dst_desc()};
    }
    case Direction::backward_weight: {
      const dnnl::convolution_backward_weights::desc desc(dnnl::algorithm::convolution_direct, any(d.x), any(d.w),
                                                          any(d.y), d.strides, d.padding_l, d.padding_r);
      const dnnl::convolution_backward_weights::primitive_desc pd(desc, cpu_engine(), forward);
      return {dnnl::convolution_backward_weights(pd), pd.src_desc(), pd.diff_weights_desc(), pd.diff_dst_desc()};
    }
  }
  BASIN_FAIL("conv2d: unknown direction");
}

using PlanKey = std::array<std::int64_t, 14>;

// Plans are made under the lock and executed under it too: oneDNN's
// primitives share a scratchpad per thread, and basin's host threads (the
// data loader) must not interleave two executions of one primitive.
std::mutex plans_mutex;

const Plan& plan_for(Direction direction, const Conv2dShape& g, bool has_bias) {
  static std::map<PlanKey, Plan> plans;
  const PlanKey key{static_cast<std::int64_t>(direction), has_bias, g.n, g.c, g.h, g.w, g.k, g.r, g.s,
                    g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.p};
  auto found = plans.find(key);
  if (found == plans.end()) found = plans.emplace(key, make_plan(direction, g, has_bias)).first;
  return found->second;
}

// A tensor the primitive reads: the caller's memory when its layout is the
// one the primitive wants, else a copy reordered into that layout.
memory input(const memory::desc& wanted, const memory::desc& user_desc, const void* data, dnnl::stream& stream) {
  memory user(user_desc, cpu_engine(), const_cast<void*>(data));
  if (wanted == user_desc) return user;
  memory staged(wanted, cpu_engine());
  dnnl::reorder(user, staged).execute(stream, user, staged);
  return staged;
}

// Runs one convolution: x, w and y in basin's plain layouts; `output` names
// which of the three the direction writes.
void run(Direction direction, const Conv2dShape& g, const void* bias, void* x, void* w, void* y) {
  const Geometry d = geometry(g);
  const memory::desc user_x = plain(d.x, memory::format_tag::nchw);
  const memory::desc user_w = plain(d.w, memory::format_tag::oihw);
  const memory::desc user_y = plain(d.y, memory::format_tag::nchw);
  std::lock_guard<std::mutex> lock(plans_mutex);
  const Plan& plan = plan_for(direction, g, bias != nullptr);
  dnnl::stream stream(cpu_engine());
  // The output: written in place when its layout is the plain one, else
  // staged and reordered back.
  const memory::desc& out_wanted = direction == Direction::forward          ? plan.y
                                   : direction == Direction::backward_input ? plan.x
                                                                            : plan.w;
  const memory::desc& out_user = direction == Direction::forward          ? user_y
                                 : direction == Direction::backward_input ? user_x
                                                                          : user_w;
  void* out_data = direction == Direction::forward ? y : direction == Direction::backward_input ? x : w;
  memory out_user_memory(out_user, cpu_engine(), out_data);
  memory out = out_wanted == out_user ? out_user_memory : memory(out_wanted, cpu_engine());

  std::unordered_map<int, memory> args;
  switch (direction) {
    case Direction::forward:
      args = {{DNNL_ARG_SRC, input(plan.x, user_x, x, stream)},
              {DNNL_ARG_WEIGHTS, input(plan.w, user_w, w, stream)},
              {DNNL_ARG_DST, out}};
      if (bias != nullptr) args.emplace(DNNL_ARG_BIAS, memory(plain({g.k}, memory::format_tag::x), cpu_engine(),
                                                                 const_cast<void*>(bias)));
      break;
    case Direction::backward_input:
      args = {{DNNL_ARG_DIFF_DST, input(plan.y, user_y, y, stream)},
              {DNNL_ARG_WEIGHTS, input(plan.w, user_w, w, stream)},
              {DNNL_ARG_DIFF_SRC, out}};
      break;
    case Direction::backward_weight:
      args = {{DNNL_ARG_DIFF_DST, input(plan.y, user_y, y, stream)},
              {DNNL_ARG_SRC, input(plan.x, user_x, x, stream)},
              {DNNL_ARG_DIFF_WEIGHTS, out}};
      break;
  }
  plan.primitive.execute(stream, args);
  if (out != out_user_memory) dnnl::reorder(out, out_user_memory).execute(stream, out, out_user_memory);
  stream.wait();
}

// oneDNN reports failure as dnnl::error; basin reports it as basin::Error
// naming the convolution.
template <class Body>
void with_onednn_errors(const char* op, const Conv2dShape& g, Body&& body) {
  try {
    body();
  } catch (const dnnl::error& e) {
    BASIN_FAIL(op, ": oneDNN failed (", e.what(), ", status ", static_cast<int>(e.status), ") for input [", g.n,
               ", ", g.c, ", ", g.h, ", ", g.w, "], weight [", g.k, ", ", g.c, ", ", g.r, ", ", g.s, "], stride (",
               g.stride_h, ", ", g.stride_w, "), padding (", g.pad_h, ", ", g.pad_w, ")");
  }
}

}  // namespace
#endif

#if BASIN_WITH_CBLAS
namespace {

// Per image, with col[n] the [C*R*S, P*Q] unfolding of image n (as in the
// reference) and W the weight as a [K, C*R*S] matrix:
//
//   forward           out[n]      = W @ col[n] (+ bias)
//   backward_input    grad_in[n]  = col2im(W^T @ grad_out[n])   (stride 1: see transposed())
//   backward_weight   grad_weight = sum_n grad_out[n] @ col[n]^T
//
// A 1x1 convolution with stride 1 and no padding needs no unfolding: col[n]
// is image n itself, seen as [C, H*W].

bool is_pointwise(const Conv2dShape& g) {
  return g.r == 1 && g.s == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

// cblas takes its sizes as int: a larger convolution is the reference's.
bool fits_int(const Conv2dShape& g) {
  for (std::int64_t v : {g.c * g.r * g.s, g.k * g.r * g.s, g.p * g.q, g.h * g.w}) {
    if (v > INT_MAX) return false;
  }
  return true;
}

// The output columns [begin, end) whose tap lands inside the input row:
// x = q * stride + offset in [0, in_len) for q in [0, out_len).
struct Span {
  std::int64_t begin, end;
};
Span inside(std::int64_t offset, std::int64_t stride, std::int64_t out_len, std::int64_t in_len) {
  const std::int64_t begin = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const std::int64_t end = in_len - offset <= 0 ? 0 : (in_len - offset - 1) / stride + 1;
  const std::int64_t b = std::min(begin, out_len);
  return {b, std::clamp(end, b, out_len)};
}

// One image [C, H, W] unfolded into col [C*R*S, P*Q]: the reference's im2col,
// with each output row split into its padding (zeros) and a copy.
void im2col(const double* image, const Conv2dShape& g, double* col) {
  const std::int64_t pq = g.p * g.q;
  for (std::int64_t c = 0; c < g.c; ++c) {
    for (std::int64_t r = 0; r < g.r; ++r) {
      for (std::int64_t s = 0; s < g.s; ++s) {
        double* row = col + ((c * g.r + r) * g.s + s) * pq;
        const Span xs = inside(s - g.pad_w, g.stride_w, g.q, g.w);
        for (std::int64_t p = 0; p < g.p; ++p) {
          double* dst = row + p * g.q;
          const std::int64_t y = p * g.stride_h - g.pad_h + r;
          if (y < 0 || y >= g.h) {
            std::fill(dst, dst + g.q, 0.0);
            continue;
          }
          const double* src = image + (c * g.h + y) * g.w;
          const std::int64_t x0 = s - g.pad_w;  // x = q * stride_w + x0
          std::fill(dst, dst + xs.begin, 0.0);
          if (g.stride_w == 1) {
            std::copy(src + xs.begin + x0, src + xs.end + x0, dst + xs.begin);
          } else {
            for (std::int64_t q = xs.begin; q < xs.end; ++q) dst[q] = src[q * g.stride_w + x0];
          }
          std::fill(dst + xs.end, dst + g.q, 0.0);
        }
      }
    }
  }
}

// The adjoint of im2col, in the reference's order: image [C, H, W] (overwritten)
// = the sum of the col entries copied from each pixel; padding entries are dropped.
void col2im(const double* col, const Conv2dShape& g, double* image) {
  std::fill(image, image + g.c * g.h * g.w, 0.0);
  const std::int64_t pq = g.p * g.q;
  for (std::int64_t c = 0; c < g.c; ++c) {
    for (std::int64_t r = 0; r < g.r; ++r) {
      for (std::int64_t s = 0; s < g.s; ++s) {
        const double* row = col + ((c * g.r + r) * g.s + s) * pq;
        const Span xs = inside(s - g.pad_w, g.stride_w, g.q, g.w);
        for (std::int64_t p = 0; p < g.p; ++p) {
          const std::int64_t y = p * g.stride_h - g.pad_h + r;
          if (y < 0 || y >= g.h) continue;
          const double* src = row + p * g.q;
          double* dst = image + (c * g.h + y) * g.w;
          const std::int64_t x0 = s - g.pad_w;
          if (g.stride_w == 1) {
            for (std::int64_t q = xs.begin; q < xs.end; ++q) dst[q + x0] += src[q];
          } else {
            for (std::int64_t q = xs.begin; q < xs.end; ++q) dst[q * g.stride_w + x0] += src[q];
          }
        }
      }
    }
  }
}

// How a call splits its images: with at least as many images as threads, into
// one contiguous run per thread, whose GEMMs then run on that thread (OpenBLAS
// built with OpenMP runs single-threaded inside a parallel region); with
// fewer, into one run on the calling thread, where OpenBLAS threads each GEMM.
// Per image the GEMMs are small (K rows), so splitting images scales better.
int image_ranges(std::int64_t n) {
#if BASIN_WITH_OPENMP
  const int threads = omp_get_max_threads();
  return n >= threads ? threads : 1;
#else
  (void)n;
  return 1;
#endif
}

// body(range, begin, end) for each of `ranges` runs of [0, n), in parallel.
template <class Body>
void for_image_ranges(std::int64_t n, int ranges, Body&& body) {
  parallel_for(
      ranges,
      [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t i = first; i < last; ++i) body(i, n * i / ranges, n * (i + 1) / ranges);
      },
      1);
}

void forward_f64(const Conv2dShape& g, double* out, const double* input, const double* weight, const double* bias) {
  if (g.n == 0) return;
  const std::int64_t taps = g.c * g.r * g.s, pq = g.p * g.q, chw = g.c * g.h * g.w;
  const bool pointwise = is_pointwise(g);
  const int ranges = image_ranges(g.n);
  for_image_ranges(g.n, ranges, [&](std::int64_t, std::int64_t begin, std::int64_t end) {
    std::vector<double> col(pointwise ? 0 : static_cast<std::size_t>(taps * pq));
    for (std::int64_t n = begin; n < end; ++n) {
      const double* b = input + n * chw;
      if (!pointwise) {
        im2col(b, g, col.data());
        b = col.data();
      }
      double* y = out + n * g.k * pq;
      // The bias is the GEMM's C (beta 1); without one, beta 0 overwrites y.
      if (bias != nullptr) {
        for (std::int64_t k = 0; k < g.k; ++k) std::fill(y + k * pq, y + (k + 1) * pq, bias[k]);
      }
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(g.k), static_cast<int>(pq),
                  static_cast<int>(taps), 1.0, weight, static_cast<int>(taps), b, static_cast<int>(pq),
                  bias != nullptr ? 1.0 : 0.0, y, static_cast<int>(pq));
    }
  });
}

// With stride 1, backward_input is itself a convolution, of grad_out with the
// weight flipped and its K and C swapped, padded by R-1-pad_h and S-1-pad_w
// (negative: cropped):
//
//   grad_in[n, c, y, x] = sum_{k, r', s'} weight[k, c, R-1-r', S-1-s'] * grad_out[n, k, y - (R-1-pad_h) + r', ...]
//
// so it runs as the forward does, one [C, K*R*S] @ [K*R*S, H*W] GEMM per image
// on the unfolding of grad_out[n]. That beats W^T @ grad_out[n] (a GEMM whose
// inner dimension is only K) followed by col2im's scattered adds, unless C is
// so small (an RGB input) that the GEMM has too few rows to fill its tiles.
constexpr std::int64_t kMinTransposedChannels = 8;

Conv2dShape transposed(const Conv2dShape& g) {
  Conv2dShape t = g;
  t.c = g.k, t.h = g.p, t.w = g.q;
  t.k = g.c, t.p = g.h, t.q = g.w;
  t.pad_h = g.r - 1 - g.pad_h, t.pad_w = g.s - 1 - g.pad_w;
  return t;
}

void backward_input_f64(const Conv2dShape& g, double* grad_input, const double* grad_out, const double* weight) {
  if (g.n == 0) return;
  const std::int64_t taps = g.c * g.r * g.s, pq = g.p * g.q, chw = g.c * g.h * g.w, hw = g.h * g.w;
  const bool pointwise = is_pointwise(g);
  const int ranges = image_ranges(g.n);
  if (g.stride_h == 1 && g.stride_w == 1 && !pointwise && g.c >= kMinTransposedChannels) {
    const Conv2dShape t = transposed(g);
    const std::int64_t flipped_taps = g.k * g.r * g.s;
    std::vector<double> flipped(static_cast<std::size_t>(g.c * flipped_taps));  // [C, K*R*S]
    for (std::int64_t k = 0; k < g.k; ++k) {
      for (std::int64_t c = 0; c < g.c; ++c) {
        for (std::int64_t r = 0; r < g.r; ++r) {
          for (std::int64_t s = 0; s < g.s; ++s) {
            flipped[c * flipped_taps + (k * g.r + (g.r - 1 - r)) * g.s + (g.s - 1 - s)] =
                weight[((k * g.c + c) * g.r + r) * g.s + s];
          }
        }
      }
    }
    for_image_ranges(g.n, ranges, [&](std::int64_t, std::int64_t begin, std::int64_t end) {
      std::vector<double> col(static_cast<std::size_t>(flipped_taps * hw));
      for (std::int64_t n = begin; n < end; ++n) {
        im2col(grad_out + n * g.k * pq, t, col.data());
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(g.c), static_cast<int>(hw),
                    static_cast<int>(flipped_taps), 1.0, flipped.data(), static_cast<int>(flipped_taps), col.data(),
                    static_cast<int>(hw), 0.0, grad_input + n * chw, static_cast<int>(hw));
      }
    });
    return;
  }
  for_image_ranges(g.n, ranges, [&](std::int64_t, std::int64_t begin, std::int64_t end) {
    std::vector<double> col(pointwise ? 0 : static_cast<std::size_t>(taps * pq));
    for (std::int64_t n = begin; n < end; ++n) {
      // W^T @ grad_out[n], straight into grad_in[n] when col is the image itself.
      double* dst = pointwise ? grad_input + n * chw : col.data();
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(taps), static_cast<int>(pq),
                  static_cast<int>(g.k), 1.0, weight, static_cast<int>(taps), grad_out + n * g.k * pq,
                  static_cast<int>(pq), 0.0, dst, static_cast<int>(pq));
      if (!pointwise) col2im(col.data(), g, grad_input + n * chw);
    }
  });
}

void backward_weight_f64(const Conv2dShape& g, double* grad_weight, const double* grad_out, const double* input) {
  const std::int64_t taps = g.c * g.r * g.s, pq = g.p * g.q, chw = g.c * g.h * g.w, size = g.k * taps;
  if (g.n == 0) {
    std::fill(grad_weight, grad_weight + size, 0.0);
    return;
  }
  const bool pointwise = is_pointwise(g);
  const int ranges = image_ranges(g.n);
  // Each run sums its images into its own [K, C*R*S] partial (run 0 into
  // grad_weight), and the partials are added in run order: the result depends
  // on the thread count only, not on which thread finishes first.
  std::vector<double> partials(static_cast<std::size_t>((ranges - 1) * size));
  for_image_ranges(g.n, ranges, [&](std::int64_t range, std::int64_t begin, std::int64_t end) {
    double* acc = range == 0 ? grad_weight : partials.data() + (range - 1) * size;
    std::vector<double> col(pointwise ? 0 : static_cast<std::size_t>(taps * pq));
    for (std::int64_t n = begin; n < end; ++n) {
      const double* b = input + n * chw;
      if (!pointwise) {
        im2col(b, g, col.data());
        b = col.data();
      }
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(g.k), static_cast<int>(taps),
                  static_cast<int>(pq), 1.0, grad_out + n * g.k * pq, static_cast<int>(pq), b, static_cast<int>(pq),
                  n == begin ? 0.0 : 1.0, acc, static_cast<int>(taps));
    }
  });
  for (int range = 1; range < ranges; ++range) {
    const double* partial = partials.data() + (range - 1) * size;
    for (std::int64_t i = 0; i < size; ++i) grad_weight[i] += partial[i];
  }
}

}  // namespace
#endif

void conv2d_forward(DType dtype, const Conv2dShape& shape, void* out, const void* input, const void* weight,
                    const void* bias) {
#if BASIN_WITH_ONEDNN
  if (dtype == DType::Float32) {
    if (shape.n == 0) return;
    with_onednn_errors("conv2d", shape, [&] {
      run(Direction::forward, shape, bias, const_cast<void*>(input), const_cast<void*>(weight), out);
    });
    return;
  }
#endif
#if BASIN_WITH_CBLAS
  if (dtype == DType::Float64 && fits_int(shape)) {
    forward_f64(shape, static_cast<double*>(out), static_cast<const double*>(input),
                static_cast<const double*>(weight), static_cast<const double*>(bias));
    return;
  }
#endif
  reference::conv2d_forward(dtype, shape, out, input, weight, bias);
}

void conv2d_backward_input(DType dtype, const Conv2dShape& shape, void* grad_input, const void* grad_out,
                           const void* weight) {
#if BASIN_WITH_ONEDNN
  if (dtype == DType::Float32) {
    if (shape.n == 0) return;
    with_onednn_errors("conv2d backward (input)", shape, [&] {
      run(Direction::backward_input, shape, nullptr, grad_input, const_cast<void*>(weight),
          const_cast<void*>(grad_out));
    });
    return;
  }
#endif
#if BASIN_WITH_CBLAS
  if (dtype == DType::Float64 && fits_int(shape)) {
    backward_input_f64(shape, static_cast<double*>(grad_input), static_cast<const double*>(grad_out),
                       static_cast<const double*>(weight));
    return;
  }
#endif
  reference::conv2d_backward_input(dtype, shape, grad_input, grad_out, weight);
}

void conv2d_backward_weight(DType dtype, const Conv2dShape& shape, void* grad_weight, const void* grad_out,
                            const void* input) {
#if BASIN_WITH_ONEDNN
  if (dtype == DType::Float32) {
    if (shape.n == 0) {
      std::memset(grad_weight, 0, static_cast<std::size_t>(shape.k * shape.c * shape.r * shape.s) * sizeof(float));
      return;
    }
    with_onednn_errors("conv2d backward (weight)", shape, [&] {
      run(Direction::backward_weight, shape, nullptr, const_cast<void*>(input), grad_weight,
          const_cast<void*>(grad_out));
    });
    return;
  }
#endif
#if BASIN_WITH_CBLAS
  if (dtype == DType::Float64 && fits_int(shape)) {
    backward_weight_f64(shape, static_cast<double*>(grad_weight), static_cast<const double*>(grad_out),
                        static_cast<const double*>(input));
    return;
  }
#endif
  reference::conv2d_backward_weight(dtype, shape, grad_weight, grad_out, input);
}

}  // namespace basin::kernels::fast
