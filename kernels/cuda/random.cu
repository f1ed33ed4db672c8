// CUDA random fills: each thread computes its own elements from the counter.
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/dtype_dispatch.h"
#include "kernels/philox.h"
#include "kernels/random.h"

namespace basin::kernels::cuda {

namespace {

constexpr int kBlockSize = 256;

template <class T>
__global__ void uniform_kernel(TensorArg out, PhiloxDraw draw, double low, double high) {
  T* y = out.ptr<T>();
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < out.numel; i += stride) {
    y[i] = static_cast<T>(philox_uniform(draw.seed, draw.offset, i, low, high));
  }
}

template <class T>
__global__ void normal_kernel(TensorArg out, PhiloxDraw draw, double mean, double stddev) {
  T* y = out.ptr<T>();
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < out.numel; i += stride) {
    y[i] = static_cast<T>(philox_normal(draw.seed, draw.offset, i, mean, stddev));
  }
}

}  // namespace

void uniform(const TensorArg& out, PhiloxDraw draw, double low, double high) {
  if (out.numel == 0) return;
  BASIN_DISPATCH_FLOATING(out.dtype, "rand", T, [&] {
    launch(uniform_kernel<T>, grid_for(out.numel, kBlockSize), kBlockSize, out, draw, low, high);
  });
}

void normal(const TensorArg& out, PhiloxDraw draw, double mean, double stddev) {
  if (out.numel == 0) return;
  BASIN_DISPATCH_FLOATING(out.dtype, "randn", T, [&] {
    launch(normal_kernel<T>, grid_for(out.numel, kBlockSize), kBlockSize, out, draw, mean, stddev);
  });
}

}  // namespace basin::kernels::cuda
