// CPU engine GEMM: oneDNN's sgemm for float32, OpenBLAS's dgemm for float64,
// one call per matrix of the batch.
//
// Both take row-major operands with a transpose flag each, which is how
// GemmOperand already describes them: a column-major operand is the transpose
// of a row-major one with the same ld. Both thread internally (OpenMP).
// dnnl_sgemm accumulates float32 in float32, as PyTorch's CPU matmul does;
// dgemm float64 in float64, as the reference does.
#include "kernels/matmul.h"

#include <climits>

#if BASIN_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif
#if BASIN_WITH_CBLAS
#include <cblas.h>
#endif

#include "core/error.h"

namespace basin::kernels::fast {

#if BASIN_WITH_CBLAS
namespace {

// cblas takes its sizes as int: a larger matrix is the reference's.
bool fits_int(GemmShape s, const GemmOperand& a, const GemmOperand& b) {
  for (std::int64_t v : {s.m, s.n, s.k, a.ld, b.ld}) {
    if (v > INT_MAX) return false;
  }
  return true;
}

}  // namespace
#endif

void gemm(DType dtype, GemmShape shape, void* out, const GemmOperand& a, const GemmOperand& b) {
#if BASIN_WITH_ONEDNN
  // k == 0 (a product of empty matrices: zeros) is the reference's: oneDNN
  // rejects a leading dimension of 0 columns.
  if (dtype == DType::Float32 && shape.m > 0 && shape.n > 0 && shape.k > 0) {
    float* c = static_cast<float*>(out);
    for (std::int64_t batch = 0; batch < shape.batch; ++batch) {
      const float* pa = static_cast<const float*>(a.data) + batch * a.batch_stride;
      const float* pb = static_cast<const float*>(b.data) + batch * b.batch_stride;
      // beta 0: c is written, never read, so it needs no zero-fill.
      const dnnl_status_t status =
          dnnl_sgemm(a.column_major ? 'T' : 'N', b.column_major ? 'T' : 'N', shape.m, shape.n, shape.k, 1.0f, pa,
                     a.ld, pb, b.ld, 0.0f, c + batch * shape.m * shape.n, shape.n);
      BASIN_CHECK(status == dnnl_success, "matmul: oneDNN sgemm failed with status ", static_cast<int>(status),
                  " for [", shape.m, ", ", shape.k, "] @ [", shape.k, ", ", shape.n, "]");
    }
    return;
  }
#endif
#if BASIN_WITH_CBLAS
  // k == 0 is the reference's here too, for the same reason.
  if (dtype == DType::Float64 && shape.m > 0 && shape.n > 0 && shape.k > 0 && fits_int(shape, a, b)) {
    double* c = static_cast<double*>(out);
    const int m = static_cast<int>(shape.m), n = static_cast<int>(shape.n), k = static_cast<int>(shape.k);
    for (std::int64_t batch = 0; batch < shape.batch; ++batch) {
      const double* pa = static_cast<const double*>(a.data) + batch * a.batch_stride;
      const double* pb = static_cast<const double*>(b.data) + batch * b.batch_stride;
      // beta 0: c is written, never read (BLAS does not read C when beta is 0).
      cblas_dgemm(CblasRowMajor, a.column_major ? CblasTrans : CblasNoTrans,
                  b.column_major ? CblasTrans : CblasNoTrans, m, n, k, 1.0, pa, static_cast<int>(a.ld), pb,
                  static_cast<int>(b.ld), 0.0, c + batch * shape.m * shape.n, n);
    }
    return;
  }
#endif
  reference::gemm(dtype, shape, out, a, b);
}

}  // namespace basin::kernels::fast
