// TensorArg: what a kernel sees of a tensor. A raw pointer (already offset to
// the first element), the dtype, and up to kMaxDims sizes and strides in
// elements. It is a plain struct so it can be passed by value to a CUDA kernel.
// Kernels know nothing of autograd, storage ownership or devices.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/host_device.h"

namespace basin::kernels {

inline constexpr int kMaxDims = 8;

struct TensorArg {
  void* data = nullptr;
  DType dtype = DType::Float32;
  int ndim = 0;
  std::int64_t numel = 1;
  bool contiguous = true;  // row-major with no gaps: element i lives at data[i]
  std::int64_t sizes[kMaxDims] = {};
  std::int64_t strides[kMaxDims] = {};

  template <class T>
  BASIN_HOST_DEVICE T* ptr() const {
    return static_cast<T*>(data);
  }
};

}  // namespace basin::kernels
