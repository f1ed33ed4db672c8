// CPU engine reductions over a contiguous [outer, reduce, inner] float32
// input (kernels/reduce.h states what they compute).
//
// sum accumulates in float32, as PyTorch's CPU sum does, in an order fixed by
// the shape alone, so it repeats bit for bit on any thread count:
//   - inner == 1 (rows: a whole tensor, a conv bias gradient's H*W planes):
//     each row in lane_sum's order (kernels/fast/lanes.h): blocks of kLaneBlock
//     elements summed in lanes, the block sums added in order. Rows, or the
//     blocks of a few long rows, are split across threads.
//   - inner > 1 (columns: a linear bias gradient, the batch dim of [N, C]):
//     the columns of a chunk are summed side by side, row r after row r - 1,
//     which vectorizes across the columns. Every kRowBlock rows' sum is added
//     into the total, so a long column's error grows with kRowBlock and the
//     number of blocks, not with reduce. Chunks of columns are split across threads.
// max and max_backward only compare and copy, so they give the reference's
// results exactly; max splits the outer index across threads, max_backward
// the rows (o, r) of its output.
//
// Anything but contiguous float32 runs the reference.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/fast/lanes.h"
#include "kernels/fast/parallel.h"
#include "kernels/reduce.h"

namespace basin::kernels::fast {

namespace {

// Rows of a column sum added up before their sum joins the total.
constexpr std::int64_t kRowBlock = 64;
// Columns one work item sums side by side.
constexpr std::int64_t kColumnChunk = 256;

bool engine_takes(std::initializer_list<const TensorArg*> args) {
  for (const TensorArg* arg : args) {
    if (arg->dtype != DType::Float32 || !arg->contiguous) return false;
  }
  return true;
}

// Work items per thread when each touches per_item elements: enough for
// kMinPerThread elements.
std::int64_t grain_for(std::int64_t per_item) {
  return std::max<std::int64_t>(1, kMinPerThread / std::max<std::int64_t>(per_item, 1));
}

// The sum of block b (kLaneBlock elements, or fewer at the end) of a row of n.
float block_sum(const float* row, std::int64_t n, std::int64_t b) {
  const float* x = row + b * kLaneBlock;
  return lane_sum(std::min(kLaneBlock, n - b * kLaneBlock), [x](std::int64_t r) { return x[r]; });
}

// out[o] = scale * sum_r x[o, r].
void sum_rows(float* y, const float* x, ReduceShape s, double scale) {
  // The total in float32, the scale (1 / count for a mean) applied in double
  // and rounded once.
  const auto finish = [scale](float total) { return static_cast<float>(static_cast<double>(total) * scale); };
  const std::int64_t blocks = (s.reduce + kLaneBlock - 1) / kLaneBlock;
  if (blocks <= 1 || s.outer >= parallel_ranges(s.outer * s.reduce)) {
    // Enough rows to share out whole.
    parallel_for(
        s.outer,
        [&](std::int64_t begin, std::int64_t end) {
          for (std::int64_t o = begin; o < end; ++o) {
            const float* row = x + o * s.reduce;
            y[o] = finish(lane_sum(s.reduce, [row](std::int64_t r) { return row[r]; }));
          }
        },
        grain_for(s.reduce));
    return;
  }
  // A few long rows: their blocks are shared out, then each row adds its
  // block sums in order, which are lane_sum's own additions: the same bits.
  std::vector<float> partial(static_cast<std::size_t>(s.outer * blocks));
  parallel_for(
      s.outer * blocks,
      [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t item = begin; item < end; ++item) {
          partial[static_cast<std::size_t>(item)] = block_sum(x + item / blocks * s.reduce, s.reduce, item % blocks);
        }
      },
      grain_for(kLaneBlock));
  for (std::int64_t o = 0; o < s.outer; ++o) {
    float total = 0.0f;
    for (std::int64_t b = 0; b < blocks; ++b) total += partial[static_cast<std::size_t>(o * blocks + b)];
    y[o] = finish(total);
  }
}

// out[o, i] = scale * sum_r x[o, r, i], inner > 1.
void sum_columns(float* y, const float* x, ReduceShape s, double scale) {
  const std::int64_t chunks = (s.inner + kColumnChunk - 1) / kColumnChunk;
  parallel_for(
      s.outer * chunks,
      [&](std::int64_t begin, std::int64_t end) {
        float total[kColumnChunk];
        float block[kColumnChunk];
        for (std::int64_t item = begin; item < end; ++item) {
          const std::int64_t o = item / chunks;
          const std::int64_t i0 = (item % chunks) * kColumnChunk;
          const std::int64_t width = std::min(kColumnChunk, s.inner - i0);
          const float* xo = x + o * s.reduce * s.inner + i0;
          std::fill(total, total + width, 0.0f);
          for (std::int64_t r0 = 0; r0 < s.reduce; r0 += kRowBlock) {
            std::fill(block, block + width, 0.0f);
            for (std::int64_t r = r0; r < std::min(s.reduce, r0 + kRowBlock); ++r) {
              const float* row = xo + r * s.inner;
#pragma omp simd
              for (std::int64_t i = 0; i < width; ++i) block[i] += row[i];
            }
#pragma omp simd
            for (std::int64_t i = 0; i < width; ++i) total[i] += block[i];
          }
          for (std::int64_t i = 0; i < width; ++i) {
            y[o * s.inner + i0 + i] = static_cast<float>(static_cast<double>(total[i]) * scale);
          }
        }
      },
      grain_for(s.reduce * std::min(kColumnChunk, s.inner)));
}

}  // namespace

void sum(const TensorArg& out, const TensorArg& in, ReduceShape shape, double scale) {
  if (!engine_takes({&out, &in})) {
    reference::sum(out, in, shape, scale);
    return;
  }
  if (shape.inner == 1) {
    sum_rows(out.ptr<float>(), in.ptr<float>(), shape, scale);
  } else {
    sum_columns(out.ptr<float>(), in.ptr<float>(), shape, scale);
  }
}

void max(const TensorArg& values, const TensorArg& indices, const TensorArg& in, ReduceShape shape) {
  check_max(shape);
  if (!engine_takes({&values, &in}) || !indices.contiguous) {
    reference::max(values, indices, in, shape);
    return;
  }
  const float* x = in.ptr<float>();
  float* best = values.ptr<float>();
  std::int64_t* at = indices.ptr<std::int64_t>();
  const std::int64_t inner = shape.inner;
  parallel_for(
      shape.outer,
      [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t o = begin; o < end; ++o) {
          // The [reduce, inner] slab of o, walked row by row so that the reads
          // are contiguous; each column keeps its best so far in the output.
          const float* slab = x + o * shape.reduce * inner;
          float* best_o = best + o * inner;
          std::int64_t* at_o = at + o * inner;
          for (std::int64_t i = 0; i < inner; ++i) {
            best_o[i] = slab[i];
            at_o[i] = 0;
          }
          for (std::int64_t r = 1; r < shape.reduce; ++r) {
            for (std::int64_t i = 0; i < inner; ++i) {
              const float v = slab[r * inner + i];
              // Strictly greater keeps the first of equal maxima; the first
              // NaN replaces any number and is never replaced.
              if (std::isnan(v) ? !std::isnan(best_o[i]) : v > best_o[i]) {
                best_o[i] = v;
                at_o[i] = r;
              }
            }
          }
        }
      },
      grain_for(shape.reduce * inner));
}

void max_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& indices, ReduceShape shape) {
  if (!engine_takes({&grad_in, &grad_out}) || !indices.contiguous) {
    reference::max_backward(grad_in, grad_out, indices, shape);
    return;
  }
  float* gx = grad_in.ptr<float>();
  const float* gy = grad_out.ptr<float>();
  const std::int64_t* at = indices.ptr<std::int64_t>();
  const std::int64_t inner = shape.inner;
  // One item per row (o, r) of the input: every element of grad_in is written.
  parallel_for(
      shape.outer * shape.reduce,
      [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t row = begin; row < end; ++row) {
          const std::int64_t r = row % shape.reduce;
          const std::int64_t* at_o = at + row / shape.reduce * inner;
          const float* gy_o = gy + row / shape.reduce * inner;
          for (std::int64_t i = 0; i < inner; ++i) gx[row * inner + i] = at_o[i] == r ? gy_o[i] : 0.0f;
        }
      },
      grain_for(inner));
}

}  // namespace basin::kernels::fast
