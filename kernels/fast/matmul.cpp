// CPU engine GEMM: oneDNN's sgemm, one call per matrix of the batch.
//
// dnnl_sgemm takes row-major operands with a transpose flag each, which is how
// GemmOperand already describes them: a column-major operand is the transpose
// of a row-major one with the same ld. It threads internally (OpenMP) and
// accumulates float32 in float32, as PyTorch's CPU matmul does.
#include "kernels/matmul.h"

#if BASIN_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

#include "core/error.h"

namespace basin::kernels::fast {

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
  reference::gemm(dtype, shape, out, a, b);
}

}  // namespace basin::kernels::fast
