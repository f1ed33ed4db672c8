// cuBLAS for basin: one handle bound to basin's stream, and the status check.
//
//   BASIN_CUBLAS_CHECK(cublasSgemm(cublas_handle(), ...));
//
// The handle is created on first use, so a program that never multiplies
// matrices never loads cuBLAS' kernels. It is bound to stream(), so cuBLAS work
// is ordered with every other basin kernel without host synchronization.
// basin queues GPU work from one host thread; the handle is not shared across
// threads.
#pragma once

#include <cublas_v2.h>

#include "core/error.h"
#include "kernels/cuda/check.cuh"

#define BASIN_CUBLAS_CHECK(call)                                                                    \
  do {                                                                                              \
    cublasStatus_t basin_cublas_status_ = (call);                                                   \
    BASIN_CHECK(basin_cublas_status_ == CUBLAS_STATUS_SUCCESS, "cuBLAS error: ",                    \
                cublasGetStatusName(basin_cublas_status_), " (", cublasGetStatusString(basin_cublas_status_), \
                ") in ", #call);                                                                    \
  } while (0)

namespace basin::kernels::cuda {

inline cublasHandle_t cublas_handle() {
  // An inline function's static is one object across every translation unit.
  // The handle is never destroyed: at process exit the CUDA runtime may already
  // be torn down when static destructors run, and the driver frees it anyway.
  static const cublasHandle_t handle = [] {
    cublasHandle_t h = nullptr;
    BASIN_CUBLAS_CHECK(cublasCreate(&h));
    BASIN_CUBLAS_CHECK(cublasSetStream(h, stream()));
    // alpha and beta are host values read at call time (also cuBLAS' default).
    BASIN_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
    // Exact FP32: CUBLAS_DEFAULT_MATH never lowers float32 GEMMs to TF32 (that
    // takes CUBLAS_TF32_TENSOR_OP_MATH), so results match the CPU reference to
    // float32 rounding, not to TF32's 10-bit mantissa.
    BASIN_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    return h;
  }();
  return handle;
}

}  // namespace basin::kernels::cuda
