// CPU random fills. Element i takes lane i % 4 of Philox block (offset + i / 4),
// as on the GPU; here one block is computed per four elements and shared, so
// the values are the same as philox_uniform / philox_normal per element.
#include <cmath>

#include "kernels/dtype_dispatch.h"
#include "kernels/philox.h"
#include "kernels/random.h"

namespace basin::kernels::reference {

void uniform(const TensorArg& out, PhiloxDraw draw, double low, double high) {
  BASIN_DISPATCH_FLOATING(out.dtype, "rand", T, [&] {
    T* y = out.ptr<T>();
    for (std::int64_t base = 0; base < out.numel; base += 4) {
      const PhiloxBlock block = philox4x32_10(draw.offset + static_cast<std::uint64_t>(base) / 4, draw.seed);
      for (std::int64_t lane = 0; lane < 4 && base + lane < out.numel; ++lane) {
        y[base + lane] = static_cast<T>(multiply_then_add(high - low, philox_unit(block.v[lane]), low));
      }
    }
  });
}

void normal(const TensorArg& out, PhiloxDraw draw, double mean, double stddev) {
  BASIN_DISPATCH_FLOATING(out.dtype, "randn", T, [&] {
    T* y = out.ptr<T>();
    for (std::int64_t base = 0; base < out.numel; base += 4) {
      const PhiloxBlock block = philox4x32_10(draw.offset + static_cast<std::uint64_t>(base) / 4, draw.seed);
      for (int pair = 0; pair < 2; ++pair) {
        // Box-Muller on lanes (2 pair, 2 pair + 1): cosine for the even element, sine for the odd.
        const double radius = std::sqrt(-2.0 * std::log(philox_unit(block.v[2 * pair])));
        const double angle = 6.283185307179586 * philox_unit(block.v[2 * pair + 1]);
        const std::int64_t even = base + 2 * pair;
        if (even < out.numel) y[even] = static_cast<T>(multiply_then_add(stddev * radius, std::cos(angle), mean));
        if (even + 1 < out.numel) {
          y[even + 1] = static_cast<T>(multiply_then_add(stddev * radius, std::sin(angle), mean));
        }
      }
    }
  });
}

}  // namespace basin::kernels::reference
