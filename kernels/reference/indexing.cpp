// CPU reference for the indexing kernels: direct loops. The backward passes
// zero grad_in and add each gradient element where its index points, in
// increasing order of index position; that is the order the CUDA kernels sum
// in too.
#include <algorithm>

#include "kernels/dtype_dispatch.h"
#include "kernels/indexing.h"

namespace basin::kernels::reference {

namespace {

// The offset in `t` (by its strides) of the element at the coordinates of
// linear position p in a row-major walk over `shape`, with the coordinate
// along `dim` replaced by `at`.
std::int64_t offset_with(const TensorArg& t, const TensorArg& shape, std::int64_t p, int dim, std::int64_t at) {
  std::int64_t offset = 0;
  for (int d = shape.ndim - 1; d >= 0; --d) {
    const std::int64_t coordinate = p % shape.sizes[d];
    p /= shape.sizes[d];
    offset += (d == dim ? at : coordinate) * t.strides[d];
  }
  return offset;
}

}  // namespace

void index_select(const TensorArg& out, const TensorArg& in, const TensorArg& index, SelectShape shape) {
  BASIN_DISPATCH_ALL(in.dtype, "index_select", T, [&] {
    BASIN_DISPATCH_INDEX(index.dtype, "index_select", I, [&] {
      const T* x = in.ptr<T>();
      const I* at = index.ptr<I>();
      T* y = out.ptr<T>();
      for (std::int64_t o = 0; o < shape.outer; ++o) {
        for (std::int64_t j = 0; j < shape.out_size; ++j) {
          const T* from = x + (o * shape.in_size + static_cast<std::int64_t>(at[j])) * shape.inner;
          T* to = y + (o * shape.out_size + j) * shape.inner;
          std::copy(from, from + shape.inner, to);
        }
      }
    });
  });
}

void index_select_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& index,
                           SelectShape shape) {
  BASIN_DISPATCH_FLOATING(grad_in.dtype, "index_select_backward", T, [&] {
    BASIN_DISPATCH_INDEX(index.dtype, "index_select_backward", I, [&] {
      T* gx = grad_in.ptr<T>();
      const T* gy = grad_out.ptr<T>();
      const I* at = index.ptr<I>();
      std::fill(gx, gx + grad_in.numel, T(0));
      for (std::int64_t o = 0; o < shape.outer; ++o) {
        for (std::int64_t j = 0; j < shape.out_size; ++j) {
          T* to = gx + (o * shape.in_size + static_cast<std::int64_t>(at[j])) * shape.inner;
          const T* from = gy + (o * shape.out_size + j) * shape.inner;
          for (std::int64_t i = 0; i < shape.inner; ++i) to[i] += from[i];
        }
      }
    });
  });
}

void gather(const TensorArg& out, const TensorArg& in, const TensorArg& index, int dim) {
  BASIN_DISPATCH_ALL(in.dtype, "gather", T, [&] {
    BASIN_DISPATCH_INDEX(index.dtype, "gather", I, [&] {
      const T* x = in.ptr<T>();
      const I* at = index.ptr<I>();
      T* y = out.ptr<T>();
      for (std::int64_t p = 0; p < index.numel; ++p) {
        y[p] = x[offset_with(in, index, p, dim, static_cast<std::int64_t>(at[p]))];
      }
    });
  });
}

void gather_backward(const TensorArg& grad_in, const TensorArg& grad_out, const TensorArg& index, int dim) {
  BASIN_DISPATCH_FLOATING(grad_in.dtype, "gather_backward", T, [&] {
    BASIN_DISPATCH_INDEX(index.dtype, "gather_backward", I, [&] {
      T* gx = grad_in.ptr<T>();
      const T* gy = grad_out.ptr<T>();
      const I* at = index.ptr<I>();
      std::fill(gx, gx + grad_in.numel, T(0));
      for (std::int64_t p = 0; p < index.numel; ++p) {
        gx[offset_with(grad_in, index, p, dim, static_cast<std::int64_t>(at[p]))] += gy[p];
      }
    });
  });
}

void index_range(const TensorArg& range, const TensorArg& index) {
  check_index_range(index);
  BASIN_DISPATCH_INDEX(index.dtype, "index_range", I, [&] {
    const I* at = index.ptr<I>();
    const auto [lo, hi] = std::minmax_element(at, at + index.numel);
    range.ptr<std::int64_t>()[0] = static_cast<std::int64_t>(*lo);
    range.ptr<std::int64_t>()[1] = static_cast<std::int64_t>(*hi);
  });
}

}  // namespace basin::kernels::reference
