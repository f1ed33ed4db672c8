// CUDA reductions over [outer, reduce, inner] with a fixed summation order.
//
// Two shapes of work:
//  - inner == 1 (reducing the last dims, e.g. a row sum or a full sum): one
//    block per output; threads stride over the row, then a shared-memory tree
//    combines the per-thread partials in a fixed order.
//  - inner > 1 (reducing a middle dim, e.g. a bias gradient over the batch):
//    one thread per output; neighbouring threads read neighbouring addresses
//    at each step r, so the loads coalesce.
// Both dtypes accumulate in double, like the CPU reference: these reductions
// are bound by memory traffic, so the wider adds cost nothing measurable and
// long float32 sums stay close to the reference.
#include "kernels/cuda/check.cuh"
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
  partial[threadIdx.x] = total;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<T>(partial[0] * scale);
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

}  // namespace

void sum(const TensorArg& out, const TensorArg& in, ReduceShape shape, double scale) {
  if (shape.outer * shape.inner == 0) return;
  BASIN_DISPATCH_FLOATING(in.dtype, "sum", T, [&] {
    if (shape.inner == 1) {
      BASIN_CHECK(shape.outer < (1LL << 31), "sum: too many rows (", shape.outer, ")");
      sum_rows_kernel<T><<<static_cast<unsigned>(shape.outer), kRowBlock, 0, stream()>>>(
          out.ptr<T>(), in.ptr<T>(), shape.reduce, scale);
    } else {
      sum_columns_kernel<T><<<grid_for(shape.outer * shape.inner, kColumnBlock), kColumnBlock, 0, stream()>>>(
          out.ptr<T>(), in.ptr<T>(), shape, scale);
    }
    BASIN_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace basin::kernels::cuda
