// CUDA batch normalization over [N, C, HW] (kernels/batchnorm.h), written by
// hand: statistics, normalize, and the two backward passes.
//
// Work partition. A channel's n = N * HW elements are split into fixed chunks
// of at most kChunk elements, and block (c, s) of a 2-D grid (channel on x,
// chunk on y) takes chunk s of channel c. One block per channel would leave
// most of the GPU idle on the early layers of a CIFAR network (C = 16 and
// n = 128 * 32 * 32: 16 blocks for 2M elements); chunking gives 1024 blocks
// there, and still C blocks or more on the late layers (C = 512, n = 2048).
// The chunk size depends on the shape alone, never on the GPU, so the
// summation order, and with it every result, is the same from run to run and
// from GPU to GPU. All four kernels use this partition, so each block knows
// its channel and loads its per-channel constants once.
//
// Inside a block, thread t visits the chunk's elements t, t + kBlock, ...:
// neighbours read neighbours within an image row of the channel. The element
// offset is advanced by additions (walk_channel), so the inner loops do no
// integer division.
//
// Statistics: Welford's update per thread, in the element type (float for
// float32): each step moves the mean by delta / count, so no large sum of
// squares is ever formed and cancelled (the failure of E[x^2] - E[x]^2), and
// the M2 terms delta * (x - new mean) are never negative. Per-thread states
// are merged with Chan's pairwise formula in a shared-memory tree of fixed
// shape, and the chunks of a channel in chunk order by a second small kernel
// (one thread per channel), which also writes invstd and blends the running
// statistics in place. When a channel fits in one chunk the first kernel
// finishes it directly and the second launch is skipped.
//
// Backward: the same partition reduces sum(dy) and sum(dy * (x - mean)) per
// chunk (tree, then chunks in order), then an elementwise kernel forms dx.
// No float atomics anywhere: the combining order is fixed.
//
// Per-channel constants (invstd, blended running statistics, the dx
// coefficients) are formed in double, as the CPU reference does, and rounded
// once to the element type.
#include <algorithm>

#include "kernels/batchnorm.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/runtime.h"
#include "kernels/dtype_dispatch.h"

namespace basin::kernels::cuda {

namespace {

constexpr int kBlock = 256;              // threads per block; a power of two for the trees
constexpr long long kChunk = 8 * kBlock;  // elements of a channel per block, at most
constexpr long long kMaxChunks = 65535;  // gridDim.y limit; larger channels get longer chunks
constexpr int kVectorBlock = 128;        // one thread per channel

struct Plan {
  long long n = 0;      // elements per channel
  long long chunk = 0;  // elements per block
  int chunks = 0;       // blocks per channel
};

Plan plan_for(BatchNormShape shape) {
  Plan plan;
  plan.n = shape.batch * shape.spatial;
  const long long chunks = std::min(std::max((plan.n + kChunk - 1) / kChunk, 1LL), kMaxChunks);
  plan.chunks = static_cast<int>(chunks);
  plan.chunk = (plan.n + chunks - 1) / chunks;
  return plan;
}

dim3 grid_of(BatchNormShape shape, const Plan& plan) {
  BASIN_CHECK(shape.channels < (1LL << 31), "batch_norm: too many channels (", shape.channels, ")");
  return dim3(static_cast<unsigned>(shape.channels), static_cast<unsigned>(plan.chunks));
}

// Calls f(offset) for this thread's elements of channel c among the channel's
// positions [begin, end): position j is element (j / HW, c, j % HW), at
// offset (j / HW) * C * HW + c * HW + j % HW. One division at the start; each
// step then adds kBlock positions, carrying into the next image at most once
// because kBlock % HW < HW.
template <class F>
__device__ void walk_channel(BatchNormShape shape, long long c, long long begin, long long end, F&& f) {
  long long j = begin + threadIdx.x;
  if (j >= end) return;
  const long long hw = shape.spatial;
  const long long image = shape.channels * hw;  // distance between images
  long long pos = j % hw;
  long long offset = (j / hw) * image + c * hw + pos;
  const long long step_pos = kBlock % hw;
  const long long step_offset = (kBlock / hw) * image + step_pos;
  for (; j < end; j += kBlock) {
    f(offset);
    pos += step_pos;
    offset += step_offset;
    if (pos >= hw) {
      pos -= hw;
      offset += image - hw;
    }
  }
}

// Chan et al.'s merge of two Welford states (mean, M2 = sum of squared
// deviations, count) into the first. Empty states (count 0) are skipped, so
// threads and chunks that saw no element change nothing.
template <class T>
__device__ void welford_merge(T& mean, T& m2, long long& count, T other_mean, T other_m2, long long other_count) {
  if (other_count == 0) return;
  if (count == 0) {
    mean = other_mean;
    m2 = other_m2;
    count = other_count;
    return;
  }
  const long long total = count + other_count;
  const T delta = other_mean - mean;
  const T other_share = static_cast<T>(other_count) / static_cast<T>(total);
  mean += delta * other_share;
  m2 += other_m2 + delta * delta * static_cast<T>(count) * other_share;
  count = total;
}

template <class T>
struct StatsOutput {
  T* mean;
  T* invstd;
  T* running_mean;  // null: leave the running statistics alone
  T* running_var;
  double eps;
  double momentum;
};

// The channel's final statistics, from its merged Welford state over all n elements.
template <class T>
__device__ void finish_channel(const StatsOutput<T>& out, long long c, T mean, T m2, long long n) {
  const double var = static_cast<double>(m2) / static_cast<double>(n);
  out.mean[c] = mean;
  out.invstd[c] = static_cast<T>(1.0 / sqrt(var + out.eps));
  if (out.running_mean) {
    const double keep = 1.0 - out.momentum;
    const double unbiased = var * static_cast<double>(n) / static_cast<double>(n - 1);
    out.running_mean[c] =
        static_cast<T>(keep * static_cast<double>(out.running_mean[c]) + out.momentum * static_cast<double>(mean));
    out.running_var[c] = static_cast<T>(keep * static_cast<double>(out.running_var[c]) + out.momentum * unbiased);
  }
}

// Block (c, s): Welford over chunk s of channel c. With one chunk per channel
// it finishes the channel; otherwise it leaves its state in the partials,
// laid out [chunks, C] so the finishing kernel's reads coalesce.
template <class T>
__global__ void stats_kernel(const T* x, BatchNormShape shape, long long chunk, T* part_mean, T* part_m2,
                             StatsOutput<T> out) {
  __shared__ T shared_mean[kBlock];
  __shared__ T shared_m2[kBlock];
  __shared__ long long shared_count[kBlock];
  const long long c = blockIdx.x;
  const long long n = shape.batch * shape.spatial;
  const long long begin = blockIdx.y * chunk;
  const long long end = min(n, begin + chunk);

  T mean = T(0);
  T m2 = T(0);
  long long count = 0;
  walk_channel(shape, c, begin, end, [&](long long i) {
    const T v = x[i];
    ++count;
    const T delta = v - mean;
    mean += delta / static_cast<T>(count);
    m2 += delta * (v - mean);
  });

  const int t = threadIdx.x;
  shared_mean[t] = mean;
  shared_m2[t] = m2;
  shared_count[t] = count;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half /= 2) {
    if (t < half) {
      welford_merge(shared_mean[t], shared_m2[t], shared_count[t], shared_mean[t + half], shared_m2[t + half],
                    shared_count[t + half]);
    }
    __syncthreads();
  }
  if (t != 0) return;
  if (gridDim.y == 1) {
    finish_channel(out, c, shared_mean[0], shared_m2[0], n);
  } else {
    part_mean[blockIdx.y * shape.channels + c] = shared_mean[0];
    part_m2[blockIdx.y * shape.channels + c] = shared_m2[0];
  }
}

// One thread per channel: merges the chunks' states in chunk order. A chunk's
// count follows from the plan, so it is not stored.
template <class T>
__global__ void stats_finish_kernel(const T* part_mean, const T* part_m2, BatchNormShape shape, long long chunk,
                                    int chunks, StatsOutput<T> out) {
  const long long n = shape.batch * shape.spatial;
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long c = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; c < shape.channels; c += step) {
    T mean = T(0);
    T m2 = T(0);
    long long count = 0;
    for (int s = 0; s < chunks; ++s) {
      const long long begin = s * chunk;
      const long long size = max(0LL, min(n, begin + chunk) - begin);
      welford_merge(mean, m2, count, part_mean[s * shape.channels + c], part_m2[s * shape.channels + c], size);
    }
    finish_channel(out, c, mean, m2, n);
  }
}

template <class T>
__global__ void invstd_kernel(T* invstd, const T* var, long long channels, double eps) {
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long c = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; c < channels; c += step) {
    invstd[c] = static_cast<T>(1.0 / sqrt(static_cast<double>(var[c]) + eps));
  }
}

template <class T>
__global__ void normalize_kernel(T* y, const T* x, const T* mean, const T* invstd, const T* weight, const T* bias,
                                 BatchNormShape shape, long long chunk) {
  const long long c = blockIdx.x;
  const long long n = shape.batch * shape.spatial;
  const long long begin = blockIdx.y * chunk;
  const T mu = mean[c];
  const T scale =
      static_cast<T>(static_cast<double>(invstd[c]) * (weight ? static_cast<double>(weight[c]) : 1.0));
  const T shift = bias ? bias[c] : T(0);
  walk_channel(shape, c, begin, min(n, begin + chunk), [&](long long i) { y[i] = (x[i] - mu) * scale + shift; });
}

// Block (c, s): sum(dy) and sum(dy * (x - mean)) over chunk s of channel c,
// through a fixed tree. One chunk: the block writes the final sums (the
// second times invstd is sum(dy * xhat)); otherwise partials [chunks, C].
template <class T>
__global__ void backward_reduce_kernel(const T* dy, const T* x, const T* mean, const T* invstd, BatchNormShape shape,
                                       long long chunk, T* part_dy, T* part_dot, T* sum_dy, T* sum_dy_xhat) {
  __shared__ T shared_dy[kBlock];
  __shared__ T shared_dot[kBlock];
  const long long c = blockIdx.x;
  const long long n = shape.batch * shape.spatial;
  const long long begin = blockIdx.y * chunk;
  const T mu = mean[c];
  T total = T(0);
  T dot = T(0);
  walk_channel(shape, c, begin, min(n, begin + chunk), [&](long long i) {
    const T g = dy[i];
    total += g;
    dot += g * (x[i] - mu);
  });

  const int t = threadIdx.x;
  shared_dy[t] = total;
  shared_dot[t] = dot;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half /= 2) {
    if (t < half) {
      shared_dy[t] += shared_dy[t + half];
      shared_dot[t] += shared_dot[t + half];
    }
    __syncthreads();
  }
  if (t != 0) return;
  if (gridDim.y == 1) {
    sum_dy[c] = shared_dy[0];
    sum_dy_xhat[c] = static_cast<T>(static_cast<double>(shared_dot[0]) * static_cast<double>(invstd[c]));
  } else {
    part_dy[blockIdx.y * shape.channels + c] = shared_dy[0];
    part_dot[blockIdx.y * shape.channels + c] = shared_dot[0];
  }
}

template <class T>
__global__ void backward_reduce_finish_kernel(const T* part_dy, const T* part_dot, const T* invstd, long long channels,
                                              int chunks, T* sum_dy, T* sum_dy_xhat) {
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long c = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; c < channels; c += step) {
    T total = T(0);
    T dot = T(0);
    for (int s = 0; s < chunks; ++s) {
      total += part_dy[s * channels + c];
      dot += part_dot[s * channels + c];
    }
    sum_dy[c] = total;
    sum_dy_xhat[c] = static_cast<T>(static_cast<double>(dot) * static_cast<double>(invstd[c]));
  }
}

// Training (sums given): dx = k (dy - sum_dy / n - (x - mean) * invstd * sum_dy_xhat / n), k = weight * invstd.
// Eval (no sums): dx = k dy, and x is not read.
template <class T>
__global__ void backward_input_kernel(T* dx, const T* dy, const T* x, const T* mean, const T* invstd, const T* weight,
                                      const T* sum_dy, const T* sum_dy_xhat, BatchNormShape shape, long long chunk) {
  const long long c = blockIdx.x;
  const long long n = shape.batch * shape.spatial;
  const long long begin = blockIdx.y * chunk;
  const long long end = min(n, begin + chunk);
  const double istd = static_cast<double>(invstd[c]);
  const T k = static_cast<T>((weight ? static_cast<double>(weight[c]) : 1.0) * istd);
  if (!sum_dy) {
    walk_channel(shape, c, begin, end, [&](long long i) { dx[i] = dy[i] * k; });
    return;
  }
  const T mu = mean[c];
  const T dy_mean = static_cast<T>(static_cast<double>(sum_dy[c]) / static_cast<double>(n));
  const T coef = static_cast<T>(istd * static_cast<double>(sum_dy_xhat[c]) / static_cast<double>(n));
  walk_channel(shape, c, begin, end, [&](long long i) { dx[i] = k * (dy[i] - dy_mean - (x[i] - mu) * coef); });
}

}  // namespace

void batch_norm_stats(const TensorArg& mean, const TensorArg& invstd, const TensorArg& input, BatchNormShape shape,
                      double eps, const TensorArg& running_mean, const TensorArg& running_var, double momentum) {
  const Plan plan = plan_for(shape);
  check_batch_norm_stats(shape);
  if (shape.channels == 0) return;
  BASIN_DISPATCH_FLOATING(input.dtype, "batch_norm", T, [&] {
    const StatsOutput<T> out{mean.ptr<T>(),         invstd.ptr<T>(), running_mean.ptr<T>(),
                             running_var.ptr<T>(), eps,             momentum};
    const std::size_t parts = plan.chunks > 1 ? static_cast<std::size_t>(plan.chunks * shape.channels) : 0;
    DeviceBuffer workspace(2 * parts * sizeof(T));  // per-chunk partials
    T* part_mean = workspace.as<T>(0);
    T* part_m2 = workspace.as<T>(parts);
    launch(stats_kernel<T>, grid_of(shape, plan), kBlock, input.ptr<T>(), shape, plan.chunk, part_mean, part_m2, out);
    if (plan.chunks > 1) {
      launch(stats_finish_kernel<T>, grid_for(shape.channels, kVectorBlock), kVectorBlock, part_mean, part_m2, shape,
             plan.chunk, plan.chunks, out);
    }
  });
}

void batch_norm_invstd(const TensorArg& invstd, const TensorArg& var, double eps) {
  if (var.numel == 0) return;
  BASIN_DISPATCH_FLOATING(var.dtype, "batch_norm", T, [&] {
    launch(invstd_kernel<T>, grid_for(var.numel, kVectorBlock), kVectorBlock, invstd.ptr<T>(), var.ptr<T>(), var.numel,
           eps);
  });
}

void batch_norm_normalize(const TensorArg& out, const TensorArg& input, const TensorArg& mean, const TensorArg& invstd,
                          const TensorArg& weight, const TensorArg& bias, BatchNormShape shape) {
  const Plan plan = plan_for(shape);
  if (plan.n == 0 || shape.channels == 0) return;
  BASIN_DISPATCH_FLOATING(input.dtype, "batch_norm", T, [&] {
    launch(normalize_kernel<T>, grid_of(shape, plan), kBlock, out.ptr<T>(), input.ptr<T>(), mean.ptr<T>(),
           invstd.ptr<T>(), weight.ptr<T>(), bias.ptr<T>(), shape, plan.chunk);
  });
}

void batch_norm_backward_reduce(const TensorArg& sum_dy, const TensorArg& sum_dy_xhat, const TensorArg& grad_out,
                                const TensorArg& input, const TensorArg& mean, const TensorArg& invstd,
                                BatchNormShape shape) {
  if (shape.channels == 0) return;
  const Plan plan = plan_for(shape);
  BASIN_DISPATCH_FLOATING(input.dtype, "batch_norm_backward", T, [&] {
    if (plan.n == 0) {  // empty sums; the kernels below assume at least one element
      BASIN_CUDA_CHECK(cudaMemsetAsync(sum_dy.ptr<T>(), 0, shape.channels * sizeof(T), stream()));
      BASIN_CUDA_CHECK(cudaMemsetAsync(sum_dy_xhat.ptr<T>(), 0, shape.channels * sizeof(T), stream()));
      return;
    }
    const std::size_t parts = plan.chunks > 1 ? static_cast<std::size_t>(plan.chunks * shape.channels) : 0;
    DeviceBuffer workspace(2 * parts * sizeof(T));  // per-chunk partials
    T* part_dy = workspace.as<T>(0);
    T* part_dot = workspace.as<T>(parts);
    launch(backward_reduce_kernel<T>, grid_of(shape, plan), kBlock, grad_out.ptr<T>(), input.ptr<T>(), mean.ptr<T>(),
           invstd.ptr<T>(), shape, plan.chunk, part_dy, part_dot, sum_dy.ptr<T>(), sum_dy_xhat.ptr<T>());
    if (plan.chunks > 1) {
      launch(backward_reduce_finish_kernel<T>, grid_for(shape.channels, kVectorBlock), kVectorBlock, part_dy, part_dot,
             invstd.ptr<T>(), shape.channels, plan.chunks, sum_dy.ptr<T>(), sum_dy_xhat.ptr<T>());
    }
  });
}

void batch_norm_backward_input(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& input,
                               const TensorArg& mean, const TensorArg& invstd, const TensorArg& weight,
                               const TensorArg& sum_dy, const TensorArg& sum_dy_xhat, BatchNormShape shape) {
  const Plan plan = plan_for(shape);
  if (plan.n == 0 || shape.channels == 0) return;
  BASIN_DISPATCH_FLOATING(grad_out.dtype, "batch_norm_backward", T, [&] {
    launch(backward_input_kernel<T>, grid_of(shape, plan), kBlock, grad_in.ptr<T>(), grad_out.ptr<T>(), input.ptr<T>(),
           mean.ptr<T>(), invstd.ptr<T>(), weight.ptr<T>(), sum_dy.ptr<T>(), sum_dy_xhat.ptr<T>(), shape, plan.chunk);
  });
}

}  // namespace basin::kernels::cuda
