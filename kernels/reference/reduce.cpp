// CPU reductions: straight loops over [outer, reduce, inner]. Sums accumulate
// in double so the reference is at least as accurate as the GPU; max is exact
// in any precision.
#include <cmath>

#include "kernels/dtype_dispatch.h"
#include "kernels/reduce.h"

namespace basin::kernels::reference {

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

void max(const TensorArg& values, const TensorArg& indices, const TensorArg& in, ReduceShape shape) {
  check_max(shape);
  BASIN_DISPATCH_FLOATING(in.dtype, "max", T, [&] {
    const T* x = in.ptr<T>();
    T* best_values = values.ptr<T>();
    std::int64_t* best_indices = indices.ptr<std::int64_t>();
    for (std::int64_t o = 0; o < shape.outer; ++o) {
      for (std::int64_t i = 0; i < shape.inner; ++i) {
        const T* group = x + o * shape.reduce * shape.inner + i;
        T best = group[0];
        std::int64_t at = 0;
        // Strictly greater keeps the first of equal maxima; the first NaN
        // replaces any number and is never replaced.
        for (std::int64_t r = 1; r < shape.reduce; ++r) {
          const T v = group[r * shape.inner];
          if (std::isnan(v) ? !std::isnan(best) : v > best) {
            best = v;
            at = r;
          }
        }
        best_values[o * shape.inner + i] = best;
        best_indices[o * shape.inner + i] = at;
      }
    }
  });
}

void max_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& indices, ReduceShape shape) {
  BASIN_DISPATCH_FLOATING(grad_in.dtype, "max_backward", T, [&] {
    T* gx = grad_in.ptr<T>();
    const T* gy = grad_out.ptr<T>();
    const std::int64_t* at = indices.ptr<std::int64_t>();
    for (std::int64_t o = 0; o < shape.outer; ++o) {
      for (std::int64_t r = 0; r < shape.reduce; ++r) {
        for (std::int64_t i = 0; i < shape.inner; ++i) {
          const std::int64_t out = o * shape.inner + i;
          gx[(o * shape.reduce + r) * shape.inner + i] = at[out] == r ? gy[out] : T(0);
        }
      }
    }
  });
}

}  // namespace basin::kernels::reference
