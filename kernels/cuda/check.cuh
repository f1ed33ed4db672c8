// Error checking and the stream for CUDA code. Every runtime and library call
// is checked, and every kernel launch is followed by BASIN_CUDA_CHECK_LAUNCH().
#pragma once

#include <cuda_runtime.h>

#include "core/error.h"

namespace basin::kernels::cuda {

// The one stream all basin work is queued on.
cudaStream_t stream();

// Counts kernel launches checked with BASIN_CUDA_CHECK_LAUNCH (basin's own
// kernels; library calls such as cuBLAS are not counted). Tests use it to
// state how many launches an operation costs.
void note_launch();

// Grid size for a grid-stride loop over n elements: enough blocks to fill the
// GPU a few times over, never more than the work needs.
int grid_for(long long n, int block_size);

}  // namespace basin::kernels::cuda

#define BASIN_CUDA_CHECK(call)                                                              \
  do {                                                                                      \
    cudaError_t basin_cuda_status_ = (call);                                                \
    BASIN_CHECK(basin_cuda_status_ == cudaSuccess, "CUDA error: ", cudaGetErrorString(basin_cuda_status_), \
                " in ", #call);                                                             \
  } while (0)

#define BASIN_CUDA_CHECK_LAUNCH()           \
  do {                                      \
    ::basin::kernels::cuda::note_launch();  \
    BASIN_CUDA_CHECK(cudaGetLastError());   \
  } while (0)
