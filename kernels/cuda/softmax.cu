// CUDA softmax and log-softmax over [outer, dim, inner] (kernels/softmax.h).
//
// Two shapes of work, as in the reductions (kernels/cuda/reduce.cu):
//  - inner == 1 (softmax over the last dim: logits, attention rows): one block
//    per row. Threads stride over the row and combine their partial max and
//    sum through a shared-memory tree in a fixed order. The block is the
//    smallest power of two (32 to 256) that covers the row, so short rows of
//    a classifier do not leave most of a 256-thread block idle.
//  - inner > 1 (softmax over a middle dim): one thread per (outer, inner)
//    column. At each step along the dim, neighbouring threads read
//    neighbouring addresses, so the loads coalesce.
// Each row is read three times (max, sum, write) rather than staged in shared
// memory: rows of any length work, and the re-reads mostly hit L2.
// The arithmetic matches the CPU reference (kernels/reference/softmax.cpp): max and
// exponentials in the element type, sums in double.
#include <algorithm>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/dtype_dispatch.h"
#include "kernels/softmax.h"

namespace basin::kernels::cuda {

namespace {

constexpr int kColumnBlock = 256;
constexpr long long kMaxRowGrid = 65535;  // rows beyond this loop inside the blocks

template <class T>
__global__ void forward_rows_kernel(SoftmaxKind kind, T* out, const T* in, long long rows, long long n) {
  __shared__ double shared[kMaxRowBlock];
  for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* x = in + row * n;
    T* y = out + row * n;
    T local_max = -INFINITY;
    for (long long r = threadIdx.x; r < n; r += blockDim.x) local_max = x[r] > local_max ? x[r] : local_max;
    const T m = static_cast<T>(block_combine<Combine::Max>(static_cast<double>(local_max), shared));
    double local_sum = 0.0;
    for (long long r = threadIdx.x; r < n; r += blockDim.x)
      local_sum += static_cast<double>(exp(static_cast<T>(x[r] - m)));
    const double s = block_combine<Combine::Sum>(local_sum, shared);
    if (kind == SoftmaxKind::Softmax) {
      for (long long r = threadIdx.x; r < n; r += blockDim.x) {
        y[r] = static_cast<T>(static_cast<double>(exp(static_cast<T>(x[r] - m))) / s);
      }
    } else {
      const double log_s = log(s);
      for (long long r = threadIdx.x; r < n; r += blockDim.x) {
        y[r] = static_cast<T>(static_cast<double>(static_cast<T>(x[r] - m)) - log_s);
      }
    }
  }
}

template <class T>
__global__ void forward_columns_kernel(SoftmaxKind kind, T* out, const T* in, ReduceShape shape) {
  const long long columns = shape.outer * shape.inner;
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < columns; idx += step) {
    const long long base = (idx / shape.inner) * shape.reduce * shape.inner + idx % shape.inner;
    const T* x = in + base;
    T* y = out + base;
    const long long n = shape.reduce;
    const long long stride = shape.inner;
    T m = -INFINITY;
    for (long long r = 0; r < n; ++r) m = x[r * stride] > m ? x[r * stride] : m;
    double s = 0.0;
    for (long long r = 0; r < n; ++r) s += static_cast<double>(exp(static_cast<T>(x[r * stride] - m)));
    if (kind == SoftmaxKind::Softmax) {
      for (long long r = 0; r < n; ++r) {
        y[r * stride] = static_cast<T>(static_cast<double>(exp(static_cast<T>(x[r * stride] - m))) / s);
      }
    } else {
      const double log_s = log(s);
      for (long long r = 0; r < n; ++r) {
        y[r * stride] = static_cast<T>(static_cast<double>(static_cast<T>(x[r * stride] - m)) - log_s);
      }
    }
  }
}

template <class T>
__global__ void backward_rows_kernel(SoftmaxKind kind, T* grad_in, const T* grad_out, const T* out, long long rows,
                                     long long n) {
  __shared__ double shared[kMaxRowBlock];
  for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* g = grad_out + row * n;
    const T* y = out + row * n;
    T* gx = grad_in + row * n;
    double local = 0.0;
    if (kind == SoftmaxKind::Softmax) {
      for (long long r = threadIdx.x; r < n; r += blockDim.x)
        local += static_cast<double>(g[r]) * static_cast<double>(y[r]);
    } else {
      for (long long r = threadIdx.x; r < n; r += blockDim.x) local += static_cast<double>(g[r]);
    }
    const double total = block_combine<Combine::Sum>(local, shared);
    if (kind == SoftmaxKind::Softmax) {
      for (long long r = threadIdx.x; r < n; r += blockDim.x) {
        gx[r] = static_cast<T>(static_cast<double>(y[r]) * (static_cast<double>(g[r]) - total));
      }
    } else {
      for (long long r = threadIdx.x; r < n; r += blockDim.x) {
        gx[r] = static_cast<T>(static_cast<double>(g[r]) - static_cast<double>(exp(y[r])) * total);
      }
    }
  }
}

template <class T>
__global__ void backward_columns_kernel(SoftmaxKind kind, T* grad_in, const T* grad_out, const T* out,
                                        ReduceShape shape) {
  const long long columns = shape.outer * shape.inner;
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < columns; idx += step) {
    const long long base = (idx / shape.inner) * shape.reduce * shape.inner + idx % shape.inner;
    const T* g = grad_out + base;
    const T* y = out + base;
    T* gx = grad_in + base;
    const long long n = shape.reduce;
    const long long stride = shape.inner;
    double total = 0.0;
    if (kind == SoftmaxKind::Softmax) {
      for (long long r = 0; r < n; ++r)
        total += static_cast<double>(g[r * stride]) * static_cast<double>(y[r * stride]);
      for (long long r = 0; r < n; ++r) {
        gx[r * stride] =
            static_cast<T>(static_cast<double>(y[r * stride]) * (static_cast<double>(g[r * stride]) - total));
      }
    } else {
      for (long long r = 0; r < n; ++r) total += static_cast<double>(g[r * stride]);
      for (long long r = 0; r < n; ++r) {
        gx[r * stride] =
            static_cast<T>(static_cast<double>(g[r * stride]) - static_cast<double>(exp(y[r * stride])) * total);
      }
    }
  }
}

unsigned row_grid_for(long long rows) { return static_cast<unsigned>(std::min(rows, kMaxRowGrid)); }

}  // namespace

void softmax_forward(SoftmaxKind kind, const TensorArg& out, const TensorArg& in, ReduceShape shape) {
  if (shape.outer * shape.reduce * shape.inner == 0) return;
  BASIN_DISPATCH_FLOATING(in.dtype, "softmax", T, [&] {
    if (shape.inner == 1) {
      const int block = row_block_for(shape.reduce);
      launch(forward_rows_kernel<T>, row_grid_for(shape.outer), block, kind, out.ptr<T>(), in.ptr<T>(), shape.outer,
             shape.reduce);
    } else {
      launch(forward_columns_kernel<T>, grid_for(shape.outer * shape.inner, kColumnBlock), kColumnBlock, kind,
             out.ptr<T>(), in.ptr<T>(), shape);
    }
  });
}

void softmax_backward(SoftmaxKind kind, const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& out,
                      ReduceShape shape) {
  if (shape.outer * shape.reduce * shape.inner == 0) return;
  BASIN_DISPATCH_FLOATING(out.dtype, "softmax_backward", T, [&] {
    if (shape.inner == 1) {
      const int block = row_block_for(shape.reduce);
      launch(backward_rows_kernel<T>, row_grid_for(shape.outer), block, kind, grad_in.ptr<T>(), grad_out.ptr<T>(),
             out.ptr<T>(), shape.outer, shape.reduce);
    } else {
      launch(backward_columns_kernel<T>, grid_for(shape.outer * shape.inner, kColumnBlock), kColumnBlock, kind,
             grad_in.ptr<T>(), grad_out.ptr<T>(), out.ptr<T>(), shape);
    }
  });
}

}  // namespace basin::kernels::cuda
