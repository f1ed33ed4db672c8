// CUDA cross-entropy with label smoothing (kernels/loss.h).
//
// forward: one block per row of logits. The threads stride over the C
// classes and combine the row maximum, sum_c exp(x - max) and sum_c (x - max)
// through a fixed shared-memory tree (block_combine in
// kernels/cuda/block_reduce.cuh: deterministic, no atomics); thread 0 writes
// the row's loss and logsumexp. The block is the smallest power of two
// (32 to 256) covering C: CIFAR's C = 10 needs one warp, not 256 threads.
// backward: every gradient element is independent once the forward has saved
// the row's logsumexp, so one thread per element in a grid-stride loop.
// The arithmetic follows the CPU reference (kernels/reference/loss.cpp) step for step.
//
// A label outside [0, C) cannot be reported without synchronizing the host,
// so the row's loss and gradient become NaN instead: a NaN loss is what a
// training loop notices first.
#include <algorithm>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/dtype_dispatch.h"
#include "kernels/loss.h"

namespace basin::kernels::cuda {

namespace {

constexpr int kElementBlock = 256;
constexpr long long kMaxRowGrid = 65535;  // rows beyond this loop inside the blocks

template <class T, class L>
__global__ void forward_kernel(T* loss, double* lse, const T* logits, const L* labels, long long rows,
                               long long classes, double smoothing) {
  __shared__ double shared[kMaxRowBlock];
  for (long long n = blockIdx.x; n < rows; n += gridDim.x) {
    const T* x = logits + n * classes;
    T local_max = -INFINITY;
    for (long long c = threadIdx.x; c < classes; c += blockDim.x) local_max = x[c] > local_max ? x[c] : local_max;
    const T m = static_cast<T>(block_combine<Combine::Max>(static_cast<double>(local_max), shared));
    double local_sum = 0.0;
    double local_shifted = 0.0;
    for (long long c = threadIdx.x; c < classes; c += blockDim.x) {
      local_sum += static_cast<double>(exp(static_cast<T>(x[c] - m)));
      local_shifted += static_cast<double>(x[c]) - static_cast<double>(m);
    }
    const double s = block_combine<Combine::Sum>(local_sum, shared);
    const double shifted_sum = block_combine<Combine::Sum>(local_shifted, shared);
    if (threadIdx.x == 0) {
      const long long label = static_cast<long long>(labels[n]);
      const double log_s = log(s);
      double row_loss = NAN;
      if (label >= 0 && label < classes) {
        const double shifted_label = static_cast<double>(x[label]) - static_cast<double>(m);
        const double smooth_term = smoothing > 0.0 ? smoothing / static_cast<double>(classes) * shifted_sum : 0.0;
        row_loss = log_s - (1.0 - smoothing) * shifted_label - smooth_term;
      }
      loss[n] = static_cast<T>(row_loss);
      lse[n] = static_cast<double>(m) + log_s;
    }
  }
}

template <class T, class L>
__global__ void backward_kernel(T* grad_logits, const T* grad_loss, long long g_stride, double scale, const T* logits,
                                const double* lse, const L* labels, long long rows, long long classes,
                                double smoothing) {
  const long long total = rows * classes;
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < total; idx += step) {
    const long long n = idx / classes;
    const long long c = idx % classes;
    const long long label = static_cast<long long>(labels[n]);
    if (label < 0 || label >= classes) {
      grad_logits[idx] = static_cast<T>(NAN);
      continue;
    }
    const double g = static_cast<double>(grad_loss[n * g_stride]) * scale;
    const double p = static_cast<double>(exp(static_cast<T>(static_cast<double>(logits[idx]) - lse[n])));
    const double q = (c == label ? 1.0 - smoothing : 0.0) + smoothing / static_cast<double>(classes);
    grad_logits[idx] = static_cast<T>(g * (p - q));
  }
}

}  // namespace

void cross_entropy_forward(const TensorArg& loss, const TensorArg& lse, const TensorArg& logits,
                           const TensorArg& labels, double smoothing) {
  const long long rows = logits.sizes[0];
  const long long classes = logits.sizes[1];
  if (rows == 0) return;
  BASIN_DISPATCH_FLOATING(logits.dtype, "cross_entropy", T, [&] {
    BASIN_DISPATCH_INDEX(labels.dtype, "cross_entropy", L, [&] {
      const unsigned grid = static_cast<unsigned>(std::min(rows, kMaxRowGrid));
      launch(forward_kernel<T, L>, grid, row_block_for(classes), loss.ptr<T>(), lse.ptr<double>(), logits.ptr<T>(),
             labels.ptr<L>(), rows, classes, smoothing);
    });
  });
}

void cross_entropy_backward(const TensorArg& grad_logits, const TensorArg& grad_loss, double scale,
                            const TensorArg& logits, const TensorArg& lse, const TensorArg& labels, double smoothing) {
  const long long rows = logits.sizes[0];
  const long long classes = logits.sizes[1];
  if (rows * classes == 0) return;
  BASIN_DISPATCH_FLOATING(logits.dtype, "cross_entropy_backward", T, [&] {
    BASIN_DISPATCH_INDEX(labels.dtype, "cross_entropy_backward", L, [&] {
      launch(backward_kernel<T, L>, grid_for(rows * classes, kElementBlock), kElementBlock, grad_logits.ptr<T>(),
             grad_loss.ptr<T>(), grad_loss.strides[0], scale, logits.ptr<T>(), lse.ptr<double>(), labels.ptr<L>(), rows,
             classes, smoothing);
    });
  });
}

}  // namespace basin::kernels::cuda
