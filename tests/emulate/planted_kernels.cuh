// Copies of real basin kernels, each with one planted fault, to prove the CUDA
// emulator catches what it is there to catch (docs/emulator.md). Each copy
// says which line is the fault and what must catch it. Included by
// test_planted_faults.cu (caught by the tests: results, errors) and by
// planted_faults_main.cu (caught by a sanitizer, one fault per process).
//
// Everything is in an anonymous namespace: internal linkage is what gives a
// function-local static (a __shared__ array) AddressSanitizer red zones.
#pragma once

#include <cuda_runtime.h>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/tensor_arg.h"

namespace {

using basin::kernels::TensorArg;
using basin::kernels::cuda::Combine;
using basin::kernels::cuda::kMaxRowBlock;

// kernels/cuda/block_reduce.cuh's block_combine without its last barrier.
template <Combine kCombine>
__device__ double block_combine_missing_barrier(double value, double* shared) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) {
      const double a = shared[threadIdx.x];
      const double b = shared[threadIdx.x + half];
      shared[threadIdx.x] = kCombine == Combine::Max ? (b > a ? b : a) : a + b;
    }
    __syncthreads();
  }
  const double result = shared[0];
  // PLANTED FAULT: the __syncthreads() that keeps the next call from
  // overwriting shared[0] before every thread has read it is gone. Caught by
  // running two schedules (forward gives wrong results, reverse hides it) and
  // by ThreadSanitizer (a race on shared[0], in any schedule).
  return result;
}

// The row max and sum of exp(x - max) of kernels/cuda/softmax.cu's forward,
// with the combine passed in: the faulty one above or basin's own.
template <bool kFaulty>
__global__ void row_max_and_exp_sum(const double* in, double* out, long long n) {
  __shared__ double shared[kMaxRowBlock];
  const double* x = in + blockIdx.x * n;
  double local_max = -INFINITY;
  for (long long r = threadIdx.x; r < n; r += blockDim.x) local_max = x[r] > local_max ? x[r] : local_max;
  const double m = kFaulty ? block_combine_missing_barrier<Combine::Max>(local_max, shared)
                           : basin::kernels::cuda::block_combine<Combine::Max>(local_max, shared);
  double local_sum = 0.0;
  for (long long r = threadIdx.x; r < n; r += blockDim.x) local_sum += exp(x[r] - m);
  const double s = kFaulty ? block_combine_missing_barrier<Combine::Sum>(local_sum, shared)
                           : basin::kernels::cuda::block_combine<Combine::Sum>(local_sum, shared);
  if (threadIdx.x == 0) {
    out[2 * blockIdx.x] = m;
    out[2 * blockIdx.x + 1] = s;
  }
}

// kernels/cuda/copy.cu's fill_kernel, contiguous case.
template <class T>
__global__ void fill_off_by_one(TensorArg dst, T value) {
  T* out = dst.ptr<T>();
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  // PLANTED FAULT: <= instead of <, so one thread writes the element after the
  // last. Caught by AddressSanitizer: device memory is allocated at exactly its size.
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i <= dst.numel; i += stride) {
    out[i] = value;
  }
}

// kernels/cuda/block_reduce.cuh's block_combine (sum), which gets the shared
// array as a pointer, as a device function does.
__device__ double block_sum_shared_overflow(double value, double* shared) {
  // PLANTED FAULT: one slot to the right, so the last thread writes one element
  // past the shared array. Caught by AddressSanitizer: a __shared__ array is a
  // static with red zones around it.
  shared[threadIdx.x + 1] = value;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) shared[threadIdx.x] += shared[threadIdx.x + half];
    __syncthreads();
  }
  const double result = shared[0];
  __syncthreads();
  return result;
}

// kernels/cuda/reduce.cu's sum_rows_kernel, with the faulty combine.
constexpr int kRowBlock = 256;
template <class T>
__global__ void sum_rows_shared_overflow(T* out, const T* in, long long reduce) {
  __shared__ double partial[kRowBlock];
  const T* row = in + blockIdx.x * reduce;
  double total = 0.0;
  for (long long r = threadIdx.x; r < reduce; r += blockDim.x) total += static_cast<double>(row[r]);
  total = block_sum_shared_overflow(total, partial);
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<T>(total);
}

// kernels/cuda/copy.cu's fill_kernel again, launched (by the test) with a
// PLANTED FAULT in its configuration: 2048 threads per block, twice what CUDA
// allows. Caught by the launch: invalid configuration argument.
template <class T>
__global__ void fill_kernel_copy(TensorArg dst, T value) {
  T* out = dst.ptr<T>();
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < dst.numel; i += stride) {
    out[i] = value;
  }
}

}  // namespace
