// CUDA GEMM through cuBLAS (see kernels/matmul.h for the operand contract).
//
// cuBLAS is column-major and basin is row-major. A row-major [r, c] matrix
// with leading dimension ld is, byte for byte, the column-major [c, r] matrix
// with the same ld: its transpose. So instead of C = A B we ask cuBLAS for
//
//   C^T = B^T A^T      (an [n, m] column-major result = our [m, n] row-major C)
//
// passing b as cuBLAS' first operand and a as its second. A row-major operand
// then needs no transpose flag (cuBLAS already sees its transpose), and a
// column-major one (a t() view) gets CUBLAS_OP_T: transposed views never cost
// a copy. Batches go to the strided-batched call, where a batch stride of 0
// reuses one matrix for every batch (a broadcast operand).
#include <climits>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/cublas.cuh"
#include "kernels/dtype_dispatch.h"
#include "kernels/matmul.h"

namespace basin::kernels::cuda {

namespace {

// The typed cuBLAS entry points behind one name per call shape.
cublasStatus_t gemm_call(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* alpha,
                         const float* a, int lda, const float* b, int ldb, const float* beta, float* c, int ldc) {
  return cublasSgemm(cublas_handle(), ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
cublasStatus_t gemm_call(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const double* alpha,
                         const double* a, int lda, const double* b, int ldb, const double* beta, double* c, int ldc) {
  return cublasDgemm(cublas_handle(), ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
cublasStatus_t gemm_batched_call(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* alpha,
                                 const float* a, int lda, long long stride_a, const float* b, int ldb,
                                 long long stride_b, const float* beta, float* c, int ldc, long long stride_c,
                                 int batch) {
  return cublasSgemmStridedBatched(cublas_handle(), ta, tb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta,
                                   c, ldc, stride_c, batch);
}
cublasStatus_t gemm_batched_call(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                 const double* alpha, const double* a, int lda, long long stride_a, const double* b,
                                 int ldb, long long stride_b, const double* beta, double* c, int ldc,
                                 long long stride_c, int batch) {
  return cublasDgemmStridedBatched(cublas_handle(), ta, tb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta,
                                   c, ldc, stride_c, batch);
}

// cuBLAS takes sizes and leading dimensions as int.
int as_int(std::int64_t value, const char* what) {
  BASIN_CHECK(value >= 0 && value <= INT_MAX, "matmul: ", what, " ", value, " is too large for cuBLAS (int)");
  return static_cast<int>(value);
}

cublasOperation_t op_of(const GemmOperand& operand) {
  // A row-major operand already looks transposed to cuBLAS, which is what
  // C^T = B^T A^T asks for; a column-major one must be transposed explicitly.
  return operand.column_major ? CUBLAS_OP_T : CUBLAS_OP_N;
}

template <class T>
void gemm_typed(GemmShape s, T* out, const GemmOperand& a, const GemmOperand& b) {
  if (s.k == 0) {
    // An empty sum: zeros. All-zero bytes are +0.0 in IEEE float and double.
    BASIN_CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<std::size_t>(s.batch * s.m * s.n) * sizeof(T), stream()));
    return;
  }
  const int m = as_int(s.m, "m");
  const int n = as_int(s.n, "n");
  const int k = as_int(s.k, "k");
  const int lda = as_int(a.ld, "leading dimension of a");
  const int ldb = as_int(b.ld, "leading dimension of b");
  const T one = 1;
  const T zero = 0;
  const T* pa = static_cast<const T*>(a.data);
  const T* pb = static_cast<const T*>(b.data);
  // Roles swapped for the column-major identity: cuBLAS' (M, N, K) = our (n, m, k),
  // its first operand is our b, its second our a, and its ldc is our row length n.
  if (s.batch == 1) {
    BASIN_CUBLAS_CHECK(gemm_call(op_of(b), op_of(a), n, m, k, &one, pb, ldb, pa, lda, &zero, out, n));
  } else {
    const int batch = as_int(s.batch, "batch");
    BASIN_CUBLAS_CHECK(gemm_batched_call(op_of(b), op_of(a), n, m, k, &one, pb, ldb, b.batch_stride, pa, lda,
                                         a.batch_stride, &zero, out, n, s.m * s.n, batch));
  }
}

}  // namespace

void gemm(DType dtype, GemmShape shape, void* out, const GemmOperand& a, const GemmOperand& b) {
  if (shape.batch == 0 || shape.m == 0 || shape.n == 0) return;
  BASIN_DISPATCH_FLOATING(dtype, "matmul", T, [&] { gemm_typed<T>(shape, static_cast<T*>(out), a, b); });
}

}  // namespace basin::kernels::cuda
