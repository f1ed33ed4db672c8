// Error checking and the stream for CUDA code. Every runtime and library call
// is checked; kernels are launched through launch() (kernels/cuda/launch.cuh),
// which counts and checks each launch.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

namespace basin::kernels::cuda {

// The one stream all basin work is queued on.
cudaStream_t stream();

// Counts kernel launches made through launch() (basin's kernels and the
// benchmarks'; library calls such as cuBLAS are not counted). Tests use it to
// state how many launches an operation costs.
void note_launch();

// Grid size for a grid-stride loop over n elements: enough blocks to fill the
// GPU a few times over, never more than the work needs.
int grid_for(long long n, int block_size);

// cudaGetErrorString, and with the CUDA emulator its account of what failed.
std::string describe_error(cudaError_t status);

}  // namespace basin::kernels::cuda

#define BASIN_CUDA_CHECK(call)                                                                          \
  do {                                                                                                  \
    cudaError_t basin_cuda_status_ = (call);                                                            \
    BASIN_CHECK(basin_cuda_status_ == cudaSuccess, "CUDA error: ",                                      \
                ::basin::kernels::cuda::describe_error(basin_cuda_status_), " in ", #call);             \
  } while (0)
