// CPU GEMM: the readable reference for the cuBLAS path.
//
// Loops run in i-k-j order: the innermost loop walks a row of b and a row of
// the accumulator with unit stride, which is what the cache wants for the
// common row-major operands. Sums accumulate in double for both dtypes, so the
// reference is at least as accurate as cuBLAS (which accumulates float32 in
// float32); the parity tests allow for that difference.
#include <algorithm>
#include <vector>

#include "kernels/dtype_dispatch.h"
#include "kernels/matmul.h"

namespace basin::kernels::reference {

namespace {

// Element (i, j) of one matrix of the batch.
template <class T>
T element(const T* matrix, const GemmOperand& op, std::int64_t i, std::int64_t j) {
  return op.column_major ? matrix[i + j * op.ld] : matrix[i * op.ld + j];
}

template <class T>
void gemm_typed(GemmShape s, T* out, const GemmOperand& a, const GemmOperand& b) {
  std::vector<double> row(static_cast<std::size_t>(s.n));
  for (std::int64_t batch = 0; batch < s.batch; ++batch) {
    const T* pa = static_cast<const T*>(a.data) + batch * a.batch_stride;
    const T* pb = static_cast<const T*>(b.data) + batch * b.batch_stride;
    T* pc = out + batch * s.m * s.n;
    for (std::int64_t i = 0; i < s.m; ++i) {
      std::fill(row.begin(), row.end(), 0.0);
      for (std::int64_t p = 0; p < s.k; ++p) {
        const double a_ip = static_cast<double>(element(pa, a, i, p));
        for (std::int64_t j = 0; j < s.n; ++j) row[j] += a_ip * static_cast<double>(element(pb, b, p, j));
      }
      for (std::int64_t j = 0; j < s.n; ++j) pc[i * s.n + j] = static_cast<T>(row[j]);
    }
  }
}

}  // namespace

void gemm(DType dtype, GemmShape shape, void* out, const GemmOperand& a, const GemmOperand& b) {
  BASIN_DISPATCH_FLOATING(dtype, "matmul", T, [&] { gemm_typed<T>(shape, static_cast<T*>(out), a, b); });
}

}  // namespace basin::kernels::reference
