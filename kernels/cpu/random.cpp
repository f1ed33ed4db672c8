#include "kernels/dtype_dispatch.h"
#include "kernels/philox.h"
#include "kernels/random.h"

namespace basin::kernels::cpu {

void uniform(const TensorArg& out, PhiloxDraw draw, double low, double high) {
  BASIN_DISPATCH_FLOATING(out.dtype, "rand", T, [&] {
    T* y = out.ptr<T>();
    for (std::int64_t i = 0; i < out.numel; ++i) {
      y[i] = static_cast<T>(philox_uniform(draw.seed, draw.offset, i, low, high));
    }
  });
}

void normal(const TensorArg& out, PhiloxDraw draw, double mean, double stddev) {
  BASIN_DISPATCH_FLOATING(out.dtype, "randn", T, [&] {
    T* y = out.ptr<T>();
    for (std::int64_t i = 0; i < out.numel; ++i) {
      y[i] = static_cast<T>(philox_normal(draw.seed, draw.offset, i, mean, stddev));
    }
  });
}

}  // namespace basin::kernels::cpu
