// How core/ reaches the kernels: TensorArg for a tensor, a choice between the
// CPU and the CUDA entry point by device, and the argument checks every op
// wrapper shares.
//
//   BASIN_RUN_KERNEL(out.device(), unary, op, arg(out), arg(x), s);
//
// runs kernels::fast::unary(op, arg(out), arg(x), s) on a CPU tensor (or
// kernels::reference::unary with BASIN_CPU_KERNELS=reference) and
// kernels::cuda::unary(...) with the same arguments on a CUDA one. In a build
// without CUDA the CUDA call is never emitted, so the missing CUDA symbols are
// never referenced. No CUDA tensor can exist in such a build (Device::cuda()
// throws), so the throw in run_kernel is a guard, not a path.
#pragma once

#include <initializer_list>

#include "core/cpu_engine.h"
#include "core/tensor.h"
#include "kernels/fast.h"
#include "kernels/tensor_arg.h"

namespace basin {

// The kernel's view of a tensor (pointer at the first element, sizes, strides).
kernels::TensorArg arg(const Tensor& tensor);
// arg(tensor), or a default TensorArg (data == nullptr) for an undefined
// tensor: how an absent optional argument reaches a kernel.
kernels::TensorArg optional_arg(const Tensor& tensor);

// Calls cpu_kernel() on a CPU device and cuda_kernel() on a CUDA one. Prefer
// BASIN_RUN_KERNEL, which writes both calls from one argument list; call this
// directly only where the two backends' entry points differ.
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

// The CPU half of BASIN_RUN_KERNEL for a site that calls run_kernel itself:
// fast(args...) or reference(args...), as cpu_kernels() says.
template <class Fast, class Reference, class... Args>
void run_cpu_kernel(Fast&& fast, Reference&& reference, Args&&... args) {
  if (cpu_kernels() == CpuKernels::fast) {
    fast(args...);
  } else {
    reference(args...);
  }
}

// BASIN_RUN_KERNEL(device, name, args...): on a CPU device
// kernels::fast::name(args...), or kernels::reference::name(args...) when
// cpu_kernels() says so (core/cpu_engine.h); kernels::cuda::name(args...) on a
// CUDA one. The kernel and its arguments are written once, so the backends'
// calls cannot drift apart. A macro because the entry points are overload
// sets in three namespaces, which no function parameter can name.
#define BASIN_RUN_KERNEL(device, kernel, ...)                                 \
  ::basin::run_kernel(                                                        \
      (device),                                                               \
      [&] {                                                                   \
        if (::basin::cpu_kernels() == ::basin::CpuKernels::fast) {            \
          ::basin::kernels::fast::kernel(__VA_ARGS__);                        \
        } else {                                                              \
          ::basin::kernels::reference::kernel(__VA_ARGS__);                   \
        }                                                                     \
      },                                                                      \
      [&] { ::basin::kernels::cuda::kernel(__VA_ARGS__); })

// Checks that every tensor is on the first one's device, naming the op and the culprits.
void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors);
// Checks that every tensor has the same floating dtype.
void check_same_floating_dtype(const char* op, std::initializer_list<const Tensor*> tensors);

}  // namespace basin
