// cuBLAS for basin's CUDA emulator: the handle calls and the S/D GEMMs (plain
// and strided-batched) that basin makes, computed on the host.
//
// Written from the semantics NVIDIA documents for cublas<t>gemm and
// cublas<t>gemmStridedBatched, which are those of BLAS xGEMM:
//
//   C = alpha * op(A) * op(B) + beta * C     column-major, op(X) = X or X^T
//
// with op(A) m x k, op(B) k x n, C m x n; CUBLAS_OP_C is the transpose for
// real types. Argument checks and their order follow the documentation:
//  - a null or destroyed handle: CUBLAS_STATUS_NOT_INITIALIZED;
//  - m, n or k < 0, batchCount < 0, an operation other than N/T/C, lda below
//    max(1, rows of A as stored), ldb likewise, ldc below max(1, m), a null
//    alpha or beta, or a null C that would be written: CUBLAS_STATUS_INVALID_VALUE;
//  - m, n or batchCount == 0: nothing to do, success (the quick return);
//  - then the work itself, which on a GPU is a kernel: with a sticky device
//    error it cannot run (CUBLAS_STATUS_EXECUTION_FAILED), and a matrix it
//    touches (C always, A and B when there is a product term to compute) or, in
//    device pointer mode, alpha or beta, that is not wholly device memory over
//    its extent (from the sizes, leading dimension, stride and batch count) is
//    the illegal address a kernel would fault on: the emulator raises that
//    sticky error and the call returns CUBLAS_STATUS_EXECUTION_FAILED.
// Values: beta == 0 means C is not read (NaN or garbage in C is overwritten);
// k == 0 or alpha == 0 gives C = beta * C without reading A or B (as BLAS
// states for alpha == 0). Each element of C is one sum over k in increasing
// order, accumulated in the element type (float for S), one multiply and one
// add per step (the emulated build compiles with -ffp-contract=off, so no FMA),
// then scaled: alpha * sum, plus beta * C when beta != 0.
//
// Deliberately not modelled: the numerics of cuBLAS' real kernels (their
// blocking, split-k and FMA change the last bits, so compare with a
// tolerance), tensor cores and TF32 (the math mode is stored and reported, and
// FP32 stays exact even under CUBLAS_TF32_TENSOR_OP_MATH), asynchrony (the call
// finishes before it returns; the stream is only remembered), workspaces and
// timing. It shares no code with basin's CPU kernels, so a parity test of
// basin's cuBLAS path against them compares two independent implementations.
#include <cublas_v2.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_set>

#include "kernels/cuda/emulator/emulator.h"

// The state behind a cublasHandle_t.
struct cublasContext {
  cudaStream_t stream = nullptr;  // the default stream until cublasSetStream
  cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
  cublasMath_t math_mode = CUBLAS_DEFAULT_MATH;
};

namespace {

// The handles cublasCreate made and cublasDestroy has not destroyed yet, so a
// destroyed or made-up handle is refused instead of being read.
class LiveHandles {
 public:
  void add(const cublasContext* handle) {
    const std::lock_guard<std::mutex> lock(mutex_);
    handles_.insert(handle);
  }
  bool remove(const cublasContext* handle) {
    const std::lock_guard<std::mutex> lock(mutex_);
    return handles_.erase(handle) == 1;
  }
  bool contains(const cublasContext* handle) {
    const std::lock_guard<std::mutex> lock(mutex_);
    return handles_.count(handle) == 1;
  }

 private:
  std::mutex mutex_;
  std::unordered_set<const cublasContext*> handles_;
};

LiveHandles& live_handles() {
  // Never destroyed: a handle may be destroyed (or used) by a static destructor at exit.
  static auto* handles = new LiveHandles();
  return *handles;
}

bool is_live(cublasHandle_t handle) { return handle != nullptr && live_handles().contains(handle); }

bool is_valid_op(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

// One GEMM call's arguments; a plain GEMM is a batch of one.
template <class T>
struct Gemm {
  const char* call;
  cublasHandle_t handle;
  cublasOperation_t transa, transb;
  int m, n, k;
  const T* alpha;
  const T* a;
  int lda;
  long long stride_a;
  const T* b;
  int ldb;
  long long stride_b;
  const T* beta;
  T* c;
  int ldc;
  long long stride_c;
  int batch;
};

// Where a batch of column-major matrices lies: `offset` elements from the
// pointer (negative when the stride is) for `elements` elements.
struct Extent {
  long long offset;
  long long elements;
};

// The extent of `batch` matrices of rows x cols (both > 0) with leading
// dimension ld, `stride` elements apart; nullopt when it overflows.
std::optional<Extent> matrix_extent(long long rows, long long cols, long long ld, long long stride, long long batch) {
  long long one = 0;
  long long last_start = 0;
  long long elements = 0;
  if (__builtin_mul_overflow(cols - 1, ld, &one) || __builtin_add_overflow(one, rows, &one)) return std::nullopt;
  if (__builtin_mul_overflow(stride, batch - 1, &last_start)) return std::nullopt;
  const long long spread = last_start < 0 ? -last_start : last_start;
  if (__builtin_add_overflow(spread, one, &elements)) return std::nullopt;
  return Extent{std::min(0LL, last_start), elements};
}

// True when the whole extent is device memory; otherwise raises the illegal
// address a kernel reading it would fault on, naming the argument.
template <class T>
bool check_device_extent(const char* call, const char* argument, const T* ptr, std::optional<Extent> extent) {
  std::size_t bytes = 0;
  bool inside = false;
  std::uintptr_t first = reinterpret_cast<std::uintptr_t>(ptr);
  if (extent && !__builtin_mul_overflow(static_cast<std::size_t>(extent->elements), sizeof(T), &bytes)) {
    // Unsigned arithmetic: a bad pointer plus an offset must not be undefined behaviour.
    first += static_cast<std::uintptr_t>(extent->offset) * sizeof(T);
    inside = basin::emulator::is_device_range(reinterpret_cast<const void*>(first), bytes);
  }
  if (inside) return true;
  std::ostringstream detail;
  detail << call << ": " << argument << " at " << static_cast<const void*>(ptr);
  if (extent) {
    detail << " spans " << extent->elements << " elements (" << bytes << " bytes) from "
           << reinterpret_cast<const void*>(first) << ", which is not device memory";
  } else {
    detail << " spans more bytes than the address space holds";
  }
  basin::emulator::device_fault(cudaErrorIllegalAddress, detail.str());
  return false;
}

// The documented argument checks, in the documented order; SUCCESS means "go on".
template <class T>
cublasStatus_t validate(const Gemm<T>& g) {
  if (!is_live(g.handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (!is_valid_op(g.transa) || !is_valid_op(g.transb)) return CUBLAS_STATUS_INVALID_VALUE;
  // A leading dimension spans a stored column: op(A) is m x k, so A as stored has m rows untransposed, k transposed.
  const int rows_a = g.transa == CUBLAS_OP_N ? g.m : g.k;
  const int rows_b = g.transb == CUBLAS_OP_N ? g.k : g.n;
  if (g.lda < std::max(1, rows_a) || g.ldb < std::max(1, rows_b) || g.ldc < std::max(1, g.m)) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (g.alpha == nullptr || g.beta == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (g.c == nullptr && g.m > 0 && g.n > 0 && g.batch > 0) return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

// The scalars in device pointer mode: a kernel reads them from device memory.
template <class T>
bool check_device_scalars(const Gemm<T>& g) {
  if (g.handle->pointer_mode != CUBLAS_POINTER_MODE_DEVICE) return true;
  const std::optional<Extent> scalar = Extent{0, 1};
  return check_device_extent(g.call, "alpha (device pointer mode)", g.alpha, scalar) &&
         check_device_extent(g.call, "beta (device pointer mode)", g.beta, scalar);
}

// The matrices as a kernel would touch them: A and B when there is a product
// term to compute, C always. False after raising the fault.
template <class T>
bool check_device_matrices(const Gemm<T>& g, bool has_product) {
  if (has_product) {
    const bool a_plain = g.transa == CUBLAS_OP_N;
    const bool b_plain = g.transb == CUBLAS_OP_N;
    const auto a = matrix_extent(a_plain ? g.m : g.k, a_plain ? g.k : g.m, g.lda, g.stride_a, g.batch);
    const auto b = matrix_extent(b_plain ? g.k : g.n, b_plain ? g.n : g.k, g.ldb, g.stride_b, g.batch);
    if (!check_device_extent(g.call, "matrix A", g.a, a)) return false;
    if (!check_device_extent(g.call, "matrix B", g.b, b)) return false;
  }
  return check_device_extent(g.call, "matrix C", g.c, matrix_extent(g.m, g.n, g.ldc, g.stride_c, g.batch));
}

// Without a product term (has_product false: k == 0 or alpha == 0) A and B
// are not read; they may even be null.
template <class T>
void multiply(const Gemm<T>& g, T alpha, T beta, bool has_product) {
  const bool a_plain = g.transa == CUBLAS_OP_N;
  const bool b_plain = g.transb == CUBLAS_OP_N;
  for (long long batch = 0; batch < g.batch; ++batch) {
    const T* a = has_product ? g.a + batch * g.stride_a : nullptr;
    const T* b = has_product ? g.b + batch * g.stride_b : nullptr;
    T* c = g.c + batch * g.stride_c;
    for (long long j = 0; j < g.n; ++j) {
      for (long long i = 0; i < g.m; ++i) {
        T& out = c[i + j * g.ldc];
        if (!has_product) {
          out = beta == T(0) ? T(0) : beta * out;  // C is not read when beta is 0
          continue;
        }
        T sum = 0;
        for (long long l = 0; l < g.k; ++l) {
          const T a_il = a_plain ? a[i + l * g.lda] : a[l + i * g.lda];
          const T b_lj = b_plain ? b[l + j * g.ldb] : b[j + l * g.ldb];
          sum = sum + a_il * b_lj;
        }
        const T scaled = alpha * sum;
        out = beta == T(0) ? scaled : scaled + beta * out;
      }
    }
  }
}

template <class T>
cublasStatus_t run(const Gemm<T>& g) {
  if (const cublasStatus_t status = validate(g); status != CUBLAS_STATUS_SUCCESS) return status;
  if (g.m == 0 || g.n == 0 || g.batch == 0) return CUBLAS_STATUS_SUCCESS;
  // A context with a sticky error runs no more kernels.
  if (basin::emulator::sticky_error() != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
  if (!check_device_scalars(g)) return CUBLAS_STATUS_EXECUTION_FAILED;
  // In either pointer mode the emulator reads the scalars directly (device memory is host memory here).
  const T alpha = *g.alpha;
  const T beta = *g.beta;
  const bool has_product = g.k > 0 && alpha != T(0);
  if (!check_device_matrices(g, has_product)) return CUBLAS_STATUS_EXECUTION_FAILED;
  multiply(g, alpha, beta, has_product);
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasContext();
  live_handles().add(*handle);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  if (handle == nullptr || !live_handles().remove(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t* stream) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (stream == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *stream = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetPointerMode(cublasHandle_t handle, cublasPointerMode_t mode) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE) return CUBLAS_STATUS_INVALID_VALUE;
  handle->pointer_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetPointerMode(cublasHandle_t handle, cublasPointerMode_t* mode) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = handle->pointer_mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  // One of the four modes, optionally with the flag that disallows reduced-precision reductions.
  const int base = static_cast<int>(mode) & ~static_cast<int>(CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
  if (base < CUBLAS_DEFAULT_MATH || base > CUBLAS_TF32_TENSOR_OP_MATH) return CUBLAS_STATUS_INVALID_VALUE;
  handle->math_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
  if (!is_live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = handle->math_mode;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the handle is not initialized (null or destroyed)";
    case CUBLAS_STATUS_ALLOC_FAILED: return "a resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an argument has an invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "the device lacks a feature the call needs";
    case CUBLAS_STATUS_MAPPING_ERROR: return "access to device memory failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the work failed to run on the device";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the requested functionality is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "a license check failed";
  }
  return "unknown cuBLAS status";
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                           const float* beta, float* C, int ldc) {
  return run(Gemm<float>{"cublasSgemm", handle, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0,
                         1});
}

cublasStatus_t cublasDgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const double* alpha, const double* A, int lda, const double* B, int ldb,
                           const double* beta, double* C, int ldc) {
  return run(Gemm<double>{"cublasDgemm", handle, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc,
                          0, 1});
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float* alpha, const float* A, int lda,
                                         long long int strideA, const float* B, int ldb, long long int strideB,
                                         const float* beta, float* C, int ldc, long long int strideC,
                                         int batchCount) {
  return run(Gemm<float>{"cublasSgemmStridedBatched", handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb,
                         strideB, beta, C, ldc, strideC, batchCount});
}

cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const double* alpha, const double* A, int lda,
                                         long long int strideA, const double* B, int ldb, long long int strideB,
                                         const double* beta, double* C, int ldc, long long int strideC,
                                         int batchCount) {
  return run(Gemm<double>{"cublasDgemmStridedBatched", handle, transa, transb, m, n, k, alpha, A, lda, strideA, B,
                          ldb, strideB, beta, C, ldc, strideC, batchCount});
}

}  // extern "C"
