// CUDA indexing kernels: index_select, gather, their backward passes and the
// index range used for bounds checking.
//
// The forward kernels are one thread per output element (a gather: a read
// from wherever the index points, a coalesced write).
//
// The backward kernels are scatter-adds, which the obvious way (one thread per
// grad_out element, atomicAdd into grad_in) makes nondeterministic: float
// addition is not associative and the atomics land in any order. Here each
// thread instead owns one grad_in element and walks the index positions that
// could point at it, in increasing order, summing those that do. That costs
// O(number of indices along the dim) reads per grad_in element, which is fine
// for the sizes these ops see in basin (they are not on the SAM hot path);
// a large embedding-style backward would want a sort-by-index scheme instead.
// The sum order matches the CPU reference, so the two agree bit for bit.
#include <climits>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/dtype_dispatch.h"
#include "kernels/indexing.h"

namespace basin::kernels::cuda {

namespace {

constexpr int kBlockSize = 256;
constexpr int kRangeBlock = 512;

template <class T, class I>
__global__ void index_select_kernel(T* out, const T* in, const I* index, SelectShape shape) {
  const long long n = shape.outer * shape.out_size * shape.inner;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < n; idx += stride) {
    const long long i = idx % shape.inner;
    const long long j = (idx / shape.inner) % shape.out_size;
    const long long o = idx / (shape.inner * shape.out_size);
    out[idx] = in[(o * shape.in_size + static_cast<long long>(index[j])) * shape.inner + i];
  }
}

template <class T, class I>
__global__ void index_select_backward_kernel(T* grad_in, const T* grad_out, const I* index, SelectShape shape) {
  const long long n = shape.outer * shape.in_size * shape.inner;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < n; idx += stride) {
    const long long i = idx % shape.inner;
    const long long k = (idx / shape.inner) % shape.in_size;
    const long long o = idx / (shape.inner * shape.in_size);
    const T* column = grad_out + o * shape.out_size * shape.inner + i;
    T total = T(0);
    for (long long j = 0; j < shape.out_size; ++j) {
      if (static_cast<long long>(index[j]) == k) total += column[j * shape.inner];
    }
    grad_in[idx] = total;
  }
}

// `shape` is the index (and output) tensor; `in` may have any strides.
template <class T, class I>
__global__ void gather_kernel(T* out, TensorArg in, const I* index, TensorArg shape, int dim) {
  const T* x = in.ptr<T>();
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long p = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; p < shape.numel; p += stride) {
    long long rest = p;
    long long offset = 0;
    for (int d = shape.ndim - 1; d >= 0; --d) {
      const long long coordinate = rest % shape.sizes[d];
      rest /= shape.sizes[d];
      offset += (d == dim ? static_cast<long long>(index[p]) : coordinate) * in.strides[d];
    }
    out[p] = x[offset];
  }
}

// grad_in (contiguous, shape `in_shape`) element q receives grad_out[p] for
// every p whose coordinates match q's off `dim` and whose index equals q's
// coordinate along `dim`. Those p form one line through the contiguous index
// tensor: base + j * dim_stride for j along `dim`.
template <class T, class I>
__global__ void gather_backward_kernel(T* grad_in, const T* grad_out, const I* index, TensorArg in_shape,
                                       TensorArg index_shape, int dim) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long q = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; q < in_shape.numel; q += stride) {
    long long rest = q;
    long long base = 0;
    long long index_stride = 1;
    long long dim_stride = 1;
    long long target = 0;
    bool covered = true;  // false when q lies outside the index's extent in some other dim
    for (int d = in_shape.ndim - 1; d >= 0; --d) {
      const long long coordinate = rest % in_shape.sizes[d];
      rest /= in_shape.sizes[d];
      if (d == dim) {
        target = coordinate;
        dim_stride = index_stride;
      } else {
        covered = covered && coordinate < index_shape.sizes[d];
        base += coordinate * index_stride;
      }
      index_stride *= index_shape.sizes[d];
    }
    T total = T(0);
    if (covered) {
      for (long long j = 0; j < index_shape.sizes[dim]; ++j) {
        const long long p = base + j * dim_stride;
        if (static_cast<long long>(index[p]) == target) total += grad_out[p];
      }
    }
    grad_in[q] = total;
  }
}

// One block: bounds checking reads a handful of values, and a single block
// keeps the reduction to one launch with no second pass.
template <class I>
__global__ void index_range_kernel(long long* range, const I* index, long long n) {
  __shared__ long long lows[kRangeBlock];
  __shared__ long long highs[kRangeBlock];
  long long low = LLONG_MAX;
  long long high = LLONG_MIN;
  for (long long p = threadIdx.x; p < n; p += blockDim.x) {
    const long long value = static_cast<long long>(index[p]);
    low = value < low ? value : low;
    high = value > high ? value : high;
  }
  lows[threadIdx.x] = low;
  highs[threadIdx.x] = high;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      const long long other_low = lows[threadIdx.x + half];
      const long long other_high = highs[threadIdx.x + half];
      if (other_low < lows[threadIdx.x]) lows[threadIdx.x] = other_low;
      if (other_high > highs[threadIdx.x]) highs[threadIdx.x] = other_high;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    range[0] = lows[0];
    range[1] = highs[0];
  }
}

}  // namespace

void index_select(const TensorArg& out, const TensorArg& in, const TensorArg& index, SelectShape shape) {
  const long long n = shape.outer * shape.out_size * shape.inner;
  if (n == 0) return;
  BASIN_DISPATCH_ALL(in.dtype, "index_select", T, [&] {
    BASIN_DISPATCH_INDEX(index.dtype, "index_select", I, [&] {
      launch(index_select_kernel<T, I>, grid_for(n, kBlockSize), kBlockSize, out.ptr<T>(), in.ptr<T>(), index.ptr<I>(),
             shape);
    });
  });
}

void index_select_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& index,
                           SelectShape shape) {
  const long long n = shape.outer * shape.in_size * shape.inner;
  if (n == 0) return;
  BASIN_DISPATCH_FLOATING(grad_in.dtype, "index_select_backward", T, [&] {
    BASIN_DISPATCH_INDEX(index.dtype, "index_select_backward", I, [&] {
      launch(index_select_backward_kernel<T, I>, grid_for(n, kBlockSize), kBlockSize, grad_in.ptr<T>(),
             grad_out.ptr<T>(), index.ptr<I>(), shape);
    });
  });
}

void gather(const TensorArg& out, const TensorArg& in, const TensorArg& index, int dim) {
  if (index.numel == 0) return;
  BASIN_DISPATCH_ALL(in.dtype, "gather", T, [&] {
    BASIN_DISPATCH_INDEX(index.dtype, "gather", I, [&] {
      launch(gather_kernel<T, I>, grid_for(index.numel, kBlockSize), kBlockSize, out.ptr<T>(), in, index.ptr<I>(),
             index, dim);
    });
  });
}

void gather_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& index, int dim) {
  if (grad_in.numel == 0) return;
  BASIN_DISPATCH_FLOATING(grad_in.dtype, "gather_backward", T, [&] {
    BASIN_DISPATCH_INDEX(index.dtype, "gather_backward", I, [&] {
      launch(gather_backward_kernel<T, I>, grid_for(grad_in.numel, kBlockSize), kBlockSize, grad_in.ptr<T>(),
             grad_out.ptr<T>(), index.ptr<I>(), grad_in, index, dim);
    });
  });
}

void index_range(const TensorArg& range, const TensorArg& index) {
  check_index_range(index);
  static_assert(sizeof(long long) == sizeof(std::int64_t), "range is int64");
  long long* out = reinterpret_cast<long long*>(range.ptr<std::int64_t>());
  BASIN_DISPATCH_INDEX(index.dtype, "index_range", I, [&] {
    launch(index_range_kernel<I>, 1, kRangeBlock, out, index.ptr<I>(), index.numel);
  });
}

}  // namespace basin::kernels::cuda
