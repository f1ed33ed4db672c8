// CUDA reductions over [outer, reduce, inner]: sum with a fixed summation
// order, and max with its argmax.
//
// Two shapes of work:
//  - inner == 1 (reducing the last dims, e.g. a row sum or a full sum): one
//    block per output; threads stride over the row, then a shared-memory tree
//    combines the per-thread partials in a fixed order (block_combine,
//    kernels/cuda/block_reduce.cuh).
//  - inner > 1 (reducing a middle dim, e.g. a bias gradient over the batch):
//    one thread per output; neighbouring threads read neighbouring addresses
//    at each step r, so the loads coalesce.
// Sums accumulate in double for both dtypes, like the CPU reference: they
// are bound by memory traffic, so the wider adds cost nothing measurable and
// long float32 sums stay close to the reference.
//
// max uses the same two shapes. Its row version combines (value, index) pairs
// in a tree, so the tie-breaking rule must not depend on which thread saw an
// element first: NaN beats any number, then the larger value wins, then the
// smaller index. That yields the first maximum (or first NaN) of the row,
// exactly what the sequential CPU loop finds. max_backward writes every
// element of grad_in (one thread each), so it needs no zero-fill and no atomics.
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/dtype_dispatch.h"
#include "kernels/reduce.h"

namespace basin::kernels::cuda {

namespace {

constexpr int kRowBlock = 256;
constexpr int kColumnBlock = 256;

template <class T>
__global__ void sum_rows_kernel(T* out, const T* in, long long reduce, double scale) {
  __shared__ double partial[kRowBlock];
  const T* row = in + blockIdx.x * reduce;
  double total = 0.0;
  for (long long r = threadIdx.x; r < reduce; r += blockDim.x) total += static_cast<double>(row[r]);
  total = block_combine<Combine::Sum>(total, partial);
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<T>(total * scale);
}

template <class T>
__global__ void sum_columns_kernel(T* out, const T* in, ReduceShape shape, double scale) {
  const long long outputs = shape.outer * shape.inner;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < outputs; idx += stride) {
    const long long o = idx / shape.inner;
    const long long i = idx % shape.inner;
    const T* column = in + o * shape.reduce * shape.inner + i;
    double total = 0.0;
    for (long long r = 0; r < shape.reduce; ++r) total += static_cast<double>(column[r * shape.inner]);
    out[idx] = static_cast<T>(total * scale);
  }
}

// Whether (value, at) should replace (best, best_at) as the maximum; at < 0
// marks a thread that saw no element.
template <class T>
__device__ bool replaces(T value, long long at, T best, long long best_at) {
  if (at < 0) return false;
  if (best_at < 0) return true;
  const bool value_nan = isnan(value);
  const bool best_nan = isnan(best);
  if (value_nan != best_nan) return value_nan;
  if (!value_nan && value != best) return value > best;
  return at < best_at;
}

template <class T>
__global__ void max_rows_kernel(T* values, long long* indices, const T* in, long long reduce) {
  __shared__ T best_value[kRowBlock];
  __shared__ long long best_index[kRowBlock];
  const T* row = in + blockIdx.x * reduce;
  T best = T(0);
  long long at = -1;
  for (long long r = threadIdx.x; r < reduce; r += blockDim.x) {
    if (replaces(row[r], r, best, at)) {
      best = row[r];
      at = r;
    }
  }
  best_value[threadIdx.x] = best;
  best_index[threadIdx.x] = at;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      const T other = best_value[threadIdx.x + half];
      const long long other_at = best_index[threadIdx.x + half];
      if (replaces(other, other_at, best_value[threadIdx.x], best_index[threadIdx.x])) {
        best_value[threadIdx.x] = other;
        best_index[threadIdx.x] = other_at;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    values[blockIdx.x] = best_value[0];
    indices[blockIdx.x] = best_index[0];
  }
}

template <class T>
__global__ void max_columns_kernel(T* values, long long* indices, const T* in, ReduceShape shape) {
  const long long outputs = shape.outer * shape.inner;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < outputs; idx += stride) {
    const long long o = idx / shape.inner;
    const long long i = idx % shape.inner;
    const T* column = in + o * shape.reduce * shape.inner + i;
    T best = column[0];
    long long at = 0;
    for (long long r = 1; r < shape.reduce; ++r) {
      const T value = column[r * shape.inner];
      if (isnan(value) ? !isnan(best) : value > best) {
        best = value;
        at = r;
      }
    }
    values[idx] = best;
    indices[idx] = at;
  }
}

template <class T>
__global__ void max_backward_kernel(T* grad_in, const T* grad_out, const long long* indices, ReduceShape shape) {
  const long long n = shape.outer * shape.reduce * shape.inner;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < n; idx += stride) {
    const long long i = idx % shape.inner;
    const long long r = (idx / shape.inner) % shape.reduce;
    const long long o = idx / (shape.inner * shape.reduce);
    const long long out = o * shape.inner + i;
    grad_in[idx] = indices[out] == r ? grad_out[out] : T(0);
  }
}

}  // namespace

void sum(const TensorArg& out, const TensorArg& in, ReduceShape shape, double scale) {
  if (shape.outer * shape.inner == 0) return;
  BASIN_DISPATCH_FLOATING(in.dtype, "sum", T, [&] {
    if (shape.inner == 1) {
      BASIN_CHECK(shape.outer < (1LL << 31), "sum: too many rows (", shape.outer, ")");
      launch(sum_rows_kernel<T>, static_cast<unsigned>(shape.outer), kRowBlock, out.ptr<T>(), in.ptr<T>(), shape.reduce,
             scale);
    } else {
      launch(sum_columns_kernel<T>, grid_for(shape.outer * shape.inner, kColumnBlock), kColumnBlock, out.ptr<T>(),
             in.ptr<T>(), shape, scale);
    }
  });
}

void max(const TensorArg& values, const TensorArg& indices, const TensorArg& in, ReduceShape shape) {
  check_max(shape);
  if (shape.outer * shape.inner == 0) return;
  static_assert(sizeof(long long) == sizeof(std::int64_t), "indices are int64");
  long long* at = reinterpret_cast<long long*>(indices.ptr<std::int64_t>());
  BASIN_DISPATCH_FLOATING(in.dtype, "max", T, [&] {
    if (shape.inner == 1) {
      BASIN_CHECK(shape.outer < (1LL << 31), "max: too many rows (", shape.outer, ")");
      launch(max_rows_kernel<T>, static_cast<unsigned>(shape.outer), kRowBlock, values.ptr<T>(), at, in.ptr<T>(),
             shape.reduce);
    } else {
      launch(max_columns_kernel<T>, grid_for(shape.outer * shape.inner, kColumnBlock), kColumnBlock, values.ptr<T>(),
             at, in.ptr<T>(), shape);
    }
  });
}

void max_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& indices, ReduceShape shape) {
  const long long n = shape.outer * shape.reduce * shape.inner;
  if (n == 0) return;
  const long long* at = reinterpret_cast<const long long*>(indices.ptr<std::int64_t>());
  BASIN_DISPATCH_FLOATING(grad_in.dtype, "max_backward", T, [&] {
    launch(max_backward_kernel<T>, grid_for(n, kColumnBlock), kColumnBlock, grad_in.ptr<T>(), grad_out.ptr<T>(), at,
           shape);
  });
}

}  // namespace basin::kernels::cuda
