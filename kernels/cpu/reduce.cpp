// CPU reductions: straight loops over [outer, reduce, inner], accumulating in
// double so the reference is at least as accurate as the GPU.
#include "kernels/dtype_dispatch.h"
#include "kernels/reduce.h"

namespace basin::kernels::cpu {

void sum(const TensorArg& out, const TensorArg& in, ReduceShape shape, double scale) {
  BASIN_DISPATCH_FLOATING(in.dtype, "sum", T, [&] {
    const T* x = in.ptr<T>();
    T* y = out.ptr<T>();
    for (std::int64_t o = 0; o < shape.outer; ++o) {
      for (std::int64_t i = 0; i < shape.inner; ++i) {
        double total = 0.0;
        for (std::int64_t r = 0; r < shape.reduce; ++r) total += x[(o * shape.reduce + r) * shape.inner + i];
        y[o * shape.inner + i] = static_cast<T>(total * scale);
      }
    }
  });
}

}  // namespace basin::kernels::cpu
