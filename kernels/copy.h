// Copy and fill: the kernels behind contiguous(), to(dtype), clone(), copy_()
// and the factories.
//
// copy: dst and src have the same ndim and sizes, any strides, any dtypes
// (values are converted like a C++ static_cast). fill: every element of dst.
#pragma once

#include "kernels/tensor_arg.h"

namespace basin::kernels {

namespace reference {
void copy(const TensorArg& dst, const TensorArg& src);
void fill(const TensorArg& dst, double value);
}  // namespace reference

namespace cuda {
void copy(const TensorArg& dst, const TensorArg& src);
void fill(const TensorArg& dst, double value);
}  // namespace cuda

}  // namespace basin::kernels
