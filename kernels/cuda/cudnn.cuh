// cuDNN for basin: one handle bound to basin's stream, and the status check.
//
//   BASIN_CUDNN_CHECK(cudnnConvolutionForward(cudnn_handle(), ...));
//
// The handle is created on first use, so a program that never convolves on the
// GPU never pays cuDNN's start-up (it loads many kernels). It is bound to
// stream(), so cuDNN work is ordered with every other basin kernel and with
// the stream-ordered allocator without host synchronization. basin queues GPU
// work from one host thread; the handle is not shared across threads.
//
// Only include this header where BASIN_WITH_CUDNN is defined (the build
// defines it when cuDNN was found).
#pragma once

#include <cudnn.h>

#include "core/error.h"
#include "kernels/cuda/check.cuh"

#define BASIN_CUDNN_CHECK(call)                                                                      \
  do {                                                                                               \
    cudnnStatus_t basin_cudnn_status_ = (call);                                                      \
    BASIN_CHECK(basin_cudnn_status_ == CUDNN_STATUS_SUCCESS, "cuDNN error: ",                        \
                cudnnGetErrorString(basin_cudnn_status_), " in ", #call);                            \
  } while (0)

namespace basin::kernels::cuda {

inline cudnnHandle_t cudnn_handle() {
  // An inline function's static is one object across every translation unit.
  // The handle is never destroyed: at process exit the CUDA runtime may already
  // be torn down when static destructors run, and the driver frees it anyway.
  static const cudnnHandle_t handle = [] {
    // stream() first: it sets up basin's device, on which the handle is then created.
    const cudaStream_t s = stream();
    cudnnHandle_t h = nullptr;
    BASIN_CUDNN_CHECK(cudnnCreate(&h));
    BASIN_CUDNN_CHECK(cudnnSetStream(h, s));
    return h;
  }();
  return handle;
}

}  // namespace basin::kernels::cuda
