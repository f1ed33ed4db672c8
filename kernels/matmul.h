// Batched matrix multiply (GEMM):
//
//   out[b] = a[b] @ b[b]      a[b] is [m, k], b[b] is [k, n], out[b] is [m, n], for b in [0, batch)
//
// Operands are described the way BLAS describes them, so a transposed view
// reaches cuBLAS as a transpose flag instead of a copy: each matrix is either
// row-major (element (i, j) at i * ld + j) or column-major (at i + j * ld),
// and matrix b of the batch starts batch_stride elements after matrix 0
// (batch_stride 0 repeats one matrix for every batch: a broadcast operand).
// The output is contiguous [batch, m, n] and is overwritten, never accumulated.
//
// Contract (checked by core/matmul.cpp, not here): a, b and out have the same
// floating dtype; ld is at least the length of a stored row (row-major: the
// column count; column-major: the row count) and at least 1; out does not
// overlap a or b. Zero sizes are allowed: batch, m or n == 0 writes nothing,
// k == 0 writes zeros. core/matmul.cpp copies an operand whose strides fit
// neither layout (an expanded row, a sliced column) before calling in.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace basin::kernels {

struct GemmOperand {
  const void* data = nullptr;
  bool column_major = false;      // true: the transpose of a row-major matrix, as t() views give
  std::int64_t ld = 1;            // elements between consecutive rows (row-major) or columns (column-major)
  std::int64_t batch_stride = 0;  // elements between consecutive matrices of the batch; 0 broadcasts
};

struct GemmShape {
  std::int64_t batch = 1;
  std::int64_t m = 0;
  std::int64_t n = 0;
  std::int64_t k = 0;
};

namespace reference {
void gemm(DType dtype, GemmShape shape, void* out, const GemmOperand& a, const GemmOperand& b);
}  // namespace reference

// The CPU engine: per matrix of the batch, oneDNN's sgemm for float32
// (accumulating in float32) and OpenBLAS's dgemm for float64. A build without
// the library of a dtype runs the reference.
namespace fast {
void gemm(DType dtype, GemmShape shape, void* out, const GemmOperand& a, const GemmOperand& b);
}  // namespace fast

namespace cuda {
void gemm(DType dtype, GemmShape shape, void* out, const GemmOperand& a, const GemmOperand& b);
}  // namespace cuda

}  // namespace basin::kernels
