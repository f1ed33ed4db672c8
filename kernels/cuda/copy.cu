// CUDA copy (strided, with dtype conversion) and fill.
#include "kernels/copy.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/strided.cuh"
#include "kernels/dtype_dispatch.h"

namespace basin::kernels::cuda {

namespace {

constexpr int kBlockSize = 256;

template <class To, class From>
__global__ void copy_kernel(TensorArg dst, TensorArg src) {
  To* out = dst.ptr<To>();
  const From* in = src.ptr<From>();
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < dst.numel; i += stride) {
    out[strided_offset(dst, i)] = static_cast<To>(in[strided_offset(src, i)]);
  }
}

template <class T>
__global__ void fill_kernel(TensorArg dst, T value) {
  T* out = dst.ptr<T>();
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < dst.numel; i += stride) {
    out[strided_offset(dst, i)] = value;
  }
}

}  // namespace

void copy(const TensorArg& dst, const TensorArg& src) {
  if (dst.numel == 0) return;
  BASIN_DISPATCH_ALL(dst.dtype, "copy", To, [&] {
    BASIN_DISPATCH_ALL(src.dtype, "copy", From, [&] {
      launch(copy_kernel<To, From>, grid_for(dst.numel, kBlockSize), kBlockSize, dst, src);
    });
  });
}

void fill(const TensorArg& dst, double value) {
  if (dst.numel == 0) return;
  BASIN_DISPATCH_ALL(dst.dtype, "fill", T, [&] {
    launch(fill_kernel<T>, grid_for(dst.numel, kBlockSize), kBlockSize, dst, static_cast<T>(value));
  });
}

}  // namespace basin::kernels::cuda
