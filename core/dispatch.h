// How core/ reaches the kernels: TensorArg for a tensor, and a choice between
// the CPU and the CUDA entry point by device.
//
//   run_kernel(out.device(),
//              [&] { kernels::cpu::unary(op, arg(out), arg(x), s); },
//              [&] { kernels::cuda::unary(op, arg(out), arg(x), s); });
//
// In a build without CUDA the second lambda is never called, so its body is
// never emitted and the missing CUDA symbols are never referenced. No CUDA
// tensor can exist in such a build (Device::cuda() throws), so the throw below
// is a guard, not a path.
#pragma once

#include "core/tensor.h"
#include "kernels/tensor_arg.h"

namespace basin {

// The kernel's view of a tensor (pointer at the first element, sizes, strides).
kernels::TensorArg arg(const Tensor& tensor);

template <class CpuKernel, class CudaKernel>
void run_kernel(Device device, CpuKernel&& cpu_kernel, CudaKernel&& cuda_kernel) {
  if (device.is_cpu()) {
    cpu_kernel();
    return;
  }
#if BASIN_WITH_CUDA
  cuda_kernel();
#else
  (void)cuda_kernel;
  BASIN_FAIL("no CUDA backend in this build");
#endif
}

// Checks that every tensor is on `device`, naming the op and the culprits.
void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors);
// Checks that every tensor has the same floating dtype.
void check_same_floating_dtype(const char* op, std::initializer_list<const Tensor*> tensors);

}  // namespace basin
