// The helpers of core/dispatch.h: TensorArg from a Tensor, and the device and
// dtype checks the op wrappers share.
#include "core/dispatch.h"

namespace basin {

kernels::TensorArg arg(const Tensor& tensor) {
  BASIN_CHECK(tensor.defined(), "a kernel was given an undefined tensor");
  BASIN_CHECK(tensor.dim() <= kernels::kMaxDims, "tensors of more than ", kernels::kMaxDims,
              " dimensions are not supported (got ", shape_str(tensor.shape()), ")");
  kernels::TensorArg a;
  a.data = tensor.data_ptr();
  a.dtype = tensor.dtype();
  a.ndim = static_cast<int>(tensor.dim());
  a.numel = tensor.numel();
  a.contiguous = tensor.is_contiguous();
  for (int d = 0; d < a.ndim; ++d) {
    a.sizes[d] = tensor.shape()[d];
    a.strides[d] = tensor.strides()[d];
  }
  return a;
}

kernels::TensorArg optional_arg(const Tensor& tensor) {
  return tensor.defined() ? arg(tensor) : kernels::TensorArg{};
}

void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Device device = (*tensors.begin())->device();
  for (const Tensor* t : tensors) {
    BASIN_CHECK(t->device() == device, op, ": tensors are on different devices (", device.str(), " and ",
                t->device().str(), "); move them with .to(device) first");
  }
}

void check_same_floating_dtype(const char* op, std::initializer_list<const Tensor*> tensors) {
  const DType dtype = (*tensors.begin())->dtype();
  for (const Tensor* t : tensors) {
    BASIN_CHECK(is_floating(t->dtype()), op, ": expected a floating tensor, got ", dtype_name(t->dtype()));
    BASIN_CHECK(t->dtype() == dtype, op, ": dtypes differ (", dtype_name(dtype), " and ", dtype_name(t->dtype()),
                ")");
  }
}

}  // namespace basin
