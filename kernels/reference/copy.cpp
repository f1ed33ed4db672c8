// CPU copy (with dtype conversion) and fill.
#include "kernels/copy.h"

#include "kernels/reference/strided.h"
#include "kernels/dtype_dispatch.h"

namespace basin::kernels::reference {

void copy(const TensorArg& dst, const TensorArg& src) {
  BASIN_DISPATCH_ALL(dst.dtype, "copy", To, [&] {
    BASIN_DISPATCH_ALL(src.dtype, "copy", From, [&] {
      To* out = dst.ptr<To>();
      const From* in = src.ptr<From>();
      for_each_offset<2>({&dst, &src}, [&](const auto& at) { out[at[0]] = static_cast<To>(in[at[1]]); });
    });
  });
}

void fill(const TensorArg& dst, double value) {
  BASIN_DISPATCH_ALL(dst.dtype, "fill", T, [&] {
    T* out = dst.ptr<T>();
    const T v = static_cast<T>(value);
    for_each_offset<1>({&dst}, [&](const auto& at) { out[at[0]] = v; });
  });
}

}  // namespace basin::kernels::reference
