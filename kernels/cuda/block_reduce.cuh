// Block-wide combine through shared memory, for kernels that give one block
// to one row (softmax, cross-entropy, row sums).
//
// block_combine takes one double per thread and returns the maximum or the
// sum of all of them to every thread of the block. The values are combined in
// a fixed tree (thread t with thread t + half, halving down to one), so for a
// given blockDim the order of the operations never changes: the result is
// deterministic from run to run, with no atomics.
#pragma once

#include <cuda_runtime.h>

namespace basin::kernels::cuda {

// The largest row block; `shared` arrays passed to block_combine hold this many.
constexpr int kMaxRowBlock = 256;

enum class Combine { Max, Sum };

// blockDim.x must be a power of two no larger than the `shared` array. Every
// thread of the block must call it (it synchronizes the block).
template <Combine kCombine>
__device__ double block_combine(double value, double* shared) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      const double a = shared[threadIdx.x];
      const double b = shared[threadIdx.x + half];
      shared[threadIdx.x] = kCombine == Combine::Max ? (b > a ? b : a) : a + b;
    }
    __syncthreads();
  }
  const double result = shared[0];
  __syncthreads();  // everyone has read shared[0] before the next call overwrites it
  return result;
}

// The smallest power of two from 32 (one warp) to kMaxRowBlock that covers n:
// short rows (a classifier's 10 logits) do not leave most of a block idle.
inline int row_block_for(long long n) {
  int block = 32;
  while (block < kMaxRowBlock && block < n) block *= 2;
  return block;
}

}  // namespace basin::kernels::cuda
