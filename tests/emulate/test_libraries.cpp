// The CUDA emulator's cuBLAS and cuDNN (kernels/cuda/emulator/cublas.cpp,
// cudnn.cpp), called through their C API on device memory from cudaMalloc,
// against naive loops written here from the documented definitions: GEMM as
// a triple loop, the convolution's backward passes as the scatter (adjoint) of
// the forward's taps, all accumulated in double. Also the documented argument
// checks and the emulator's faults for memory that is not device memory.
#include <catch2/catch.hpp>

#include <cublas_v2.h>
#include <cudnn.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "emulate/device_array.h"
#include "kernels/cuda/emulator/emulator.h"

namespace {

// ---------------------------------------------------------------- helpers
using basin::testing::DeviceArray;

// Clears the emulator's sticky error when a test that plants a fault ends,
// even by a failed REQUIRE. Declare it after the DeviceArrays, so that it runs
// before they are freed.
struct ResetEmulatorAtExit {
  ~ResetEmulatorAtExit() { basin::emulator::reset(); }
};

template <class T>
std::vector<T> random_values(std::size_t count, unsigned seed) {
  std::mt19937 generator(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<T> values(count);
  for (T& v : values) v = static_cast<T>(uniform(generator));
  return values;
}

template <class T>
constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();

// A value no computation here produces: memory that must stay untouched holds it.
template <class T>
constexpr T kSentinel = T(12345);

// Largest |x - y|; infinite when either side has a NaN.
template <class T>
double max_abs_diff(const std::vector<T>& x, const std::vector<double>& y) {
  REQUIRE(x.size() == y.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double d = std::abs(static_cast<double>(x[i]) - y[i]);
    if (std::isnan(d)) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, d);
  }
  return worst;
}

// Float results are summed in float by the library and in double here.
template <class T>
constexpr double kTolerance = std::is_same_v<T, float> ? 2e-5 : 1e-12;

// ---------------------------------------------------------------- GEMM
struct GemmCase {
  cublasOperation_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
  int m = 0, n = 0, k = 0;
  int lda = 1, ldb = 1, ldc = 1;

  int stored_cols_a() const { return transa == CUBLAS_OP_N ? k : m; }
  int stored_cols_b() const { return transb == CUBLAS_OP_N ? n : k; }
  std::size_t a_elements() const { return static_cast<std::size_t>(lda) * stored_cols_a(); }
  std::size_t b_elements() const { return static_cast<std::size_t>(ldb) * stored_cols_b(); }
  std::size_t c_elements() const { return static_cast<std::size_t>(ldc) * n; }
};

cublasStatus_t gemm(cublasHandle_t h, const GemmCase& g, const float* alpha, const float* a, const float* b,
                    const float* beta, float* c) {
  return cublasSgemm(h, g.transa, g.transb, g.m, g.n, g.k, alpha, a, g.lda, b, g.ldb, beta, c, g.ldc);
}
cublasStatus_t gemm(cublasHandle_t h, const GemmCase& g, const double* alpha, const double* a, const double* b,
                    const double* beta, double* c) {
  return cublasDgemm(h, g.transa, g.transb, g.m, g.n, g.k, alpha, a, g.lda, b, g.ldb, beta, c, g.ldc);
}
cublasStatus_t gemm_batched(cublasHandle_t h, const GemmCase& g, const float* alpha, const float* a, long long sa,
                            const float* b, long long sb, const float* beta, float* c, long long sc, int batch) {
  return cublasSgemmStridedBatched(h, g.transa, g.transb, g.m, g.n, g.k, alpha, a, g.lda, sa, b, g.ldb, sb, beta, c,
                                   g.ldc, sc, batch);
}
cublasStatus_t gemm_batched(cublasHandle_t h, const GemmCase& g, const double* alpha, const double* a, long long sa,
                            const double* b, long long sb, const double* beta, double* c, long long sc, int batch) {
  return cublasDgemmStridedBatched(h, g.transa, g.transb, g.m, g.n, g.k, alpha, a, g.lda, sa, b, g.ldb, sb, beta, c,
                                   g.ldc, sc, batch);
}

// Element (row, col) of op(X) for X stored column-major with leading dimension ld.
template <class T>
double op_element(const T* x, cublasOperation_t op, int ld, int row, int col) {
  const bool transposed = op != CUBLAS_OP_N;
  return static_cast<double>(transposed ? x[col + static_cast<long long>(row) * ld]
                                        : x[row + static_cast<long long>(col) * ld]);
}

// C = alpha op(A) op(B) + beta C over the m x n block of C (beta == 0: C not
// read); every other element of C keeps its value.
template <class T>
std::vector<double> naive_gemm(const GemmCase& g, double alpha, const T* a, const T* b, double beta,
                               const std::vector<T>& c_before, long long c_offset = 0) {
  std::vector<double> c(c_before.begin(), c_before.end());
  for (int j = 0; j < g.n; ++j) {
    for (int i = 0; i < g.m; ++i) {
      double sum = 0.0;
      for (int l = 0; l < g.k; ++l) sum += op_element(a, g.transa, g.lda, i, l) * op_element(b, g.transb, g.ldb, l, j);
      double& out = c[c_offset + i + static_cast<long long>(j) * g.ldc];
      out = beta == 0.0 ? alpha * sum : alpha * sum + beta * out;
    }
  }
  return c;
}

struct CublasHandle {
  cublasHandle_t handle = nullptr;
  CublasHandle() { REQUIRE(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS); }
  ~CublasHandle() { cublasDestroy(handle); }
};

const char* op_name(cublasOperation_t op) { return op == CUBLAS_OP_N ? "N" : op == CUBLAS_OP_T ? "T" : "C"; }

}  // namespace

TEMPLATE_TEST_CASE("emulated cuBLAS GEMM matches a naive triple loop for every pair of operations", "[emulator]",
                   float, double) {
  using T = TestType;
  CublasHandle h;
  for (cublasOperation_t transa : {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C}) {
    for (cublasOperation_t transb : {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C}) {
      CAPTURE(op_name(transa), op_name(transb));
      GemmCase g{transa, transb, 7, 5, 9, 0, 0, 0};
      // Leading dimensions larger than needed: the gaps must be neither read nor written.
      g.lda = (transa == CUBLAS_OP_N ? g.m : g.k) + 3;
      g.ldb = (transb == CUBLAS_OP_N ? g.k : g.n) + 2;
      g.ldc = g.m + 4;
      const std::vector<T> a = random_values<T>(g.a_elements(), 1);
      const std::vector<T> b = random_values<T>(g.b_elements(), 2);
      DeviceArray<T> da(a), db(b);

      {
        // alpha and beta over values; the gaps of C hold sentinels.
        std::vector<T> c = random_values<T>(g.c_elements(), 3);
        for (int j = 0; j < g.n; ++j) {
          for (int i = g.m; i < g.ldc; ++i) c[i + j * g.ldc] = kSentinel<T>;
        }
        DeviceArray<T> dc(c);
        const T alpha = T(1.5), beta = T(-0.75);
        REQUIRE(gemm(h.handle, g, &alpha, da.get(), db.get(), &beta, dc.get()) == CUBLAS_STATUS_SUCCESS);
        // The expectation keeps the sentinels in the gaps of C.
        CHECK(max_abs_diff(dc.read(), naive_gemm(g, 1.5, a.data(), b.data(), -0.75, c)) < kTolerance<T>);
      }
      {
        // beta == 0: C is not read, so NaN there is overwritten.
        std::vector<T> c(g.c_elements(), kNaN<T>);
        DeviceArray<T> dc(c);
        const T alpha = T(1), beta = T(0);
        REQUIRE(gemm(h.handle, g, &alpha, da.get(), db.get(), &beta, dc.get()) == CUBLAS_STATUS_SUCCESS);
        const std::vector<T> got = dc.read();
        const std::vector<double> want = naive_gemm(g, 1.0, a.data(), b.data(), 0.0, c);
        for (int j = 0; j < g.n; ++j) {
          for (int i = 0; i < g.ldc; ++i) {
            const std::size_t at = static_cast<std::size_t>(i + j * g.ldc);
            if (i < g.m) {
              CHECK(std::abs(got[at] - want[at]) < kTolerance<T>);
            } else {
              CHECK(std::isnan(got[at]));  // the gap of C is not written
            }
          }
        }
      }
    }
  }
}

TEST_CASE("emulated cuBLAS sums in the element type with k increasing, one multiply and one add per step",
          "[emulator]") {
  CublasHandle h;
  // 1 + 2^-24 rounds back to 1 in float, twice; summed the other way (or in
  // double) the two small terms would first make 2^-23 and survive.
  const float tiny = std::ldexp(1.0f, -24);
  DeviceArray<float> a({1.0f, tiny, tiny});  // a 1 x 3 row (lda 1)
  DeviceArray<float> b({1.0f, 1.0f, 1.0f});  // a 3 x 1 column
  DeviceArray<float> c({kNaN<float>});
  const float one = 1.0f, zero = 0.0f;
  REQUIRE(cublasSgemm(h.handle, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 3, &one, a.get(), 1, b.get(), 3, &zero, c.get(), 1) ==
          CUBLAS_STATUS_SUCCESS);
  CHECK(c.read()[0] == 1.0f);

  // -1 + (1 + 2^-12)^2: the product rounds to 1 + 2^-11 before the add, so the
  // sum is 2^-11 exactly; a fused multiply-add (or a product kept in double)
  // would keep the 2^-24 as well.
  const float near_one = 1.0f + std::ldexp(1.0f, -12);
  DeviceArray<float> a2({-1.0f, near_one});
  DeviceArray<float> b2({1.0f, near_one});
  REQUIRE(cublasSgemm(h.handle, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 2, &one, a2.get(), 1, b2.get(), 2, &zero, c.get(),
                      1) == CUBLAS_STATUS_SUCCESS);
  CHECK(c.read()[0] == std::ldexp(1.0f, -11));
}

TEMPLATE_TEST_CASE("emulated cuBLAS: k == 0, alpha == 0 and empty results", "[emulator]", float, double) {
  using T = TestType;
  CublasHandle h;
  const std::vector<T> c = random_values<T>(12, 4);
  const T one = T(1), two = T(2), zero = T(0);

  // k == 0: C = beta * C, and A and B are not read (null here).
  GemmCase empty_sum{CUBLAS_OP_N, CUBLAS_OP_N, 3, 4, 0, 3, 1, 3};
  DeviceArray<T> dc(c);
  REQUIRE(gemm(h.handle, empty_sum, &one, nullptr, nullptr, &two, dc.get()) == CUBLAS_STATUS_SUCCESS);
  std::vector<double> doubled(c.begin(), c.end());
  for (double& v : doubled) v *= 2.0;
  CHECK(max_abs_diff(dc.read(), doubled) == 0.0);

  // ... and with beta == 0 the result is zeros, whatever C held.
  DeviceArray<T> poisoned(std::vector<T>(12, kNaN<T>));
  REQUIRE(gemm(h.handle, empty_sum, &one, nullptr, nullptr, &zero, poisoned.get()) == CUBLAS_STATUS_SUCCESS);
  CHECK(max_abs_diff(poisoned.read(), std::vector<double>(12, 0.0)) == 0.0);

  // alpha == 0: C = beta * C without reading A or B (BLAS), even when k > 0.
  GemmCase no_product{CUBLAS_OP_N, CUBLAS_OP_N, 3, 4, 5, 3, 5, 3};
  DeviceArray<T> dc2(c);
  REQUIRE(gemm(h.handle, no_product, &zero, nullptr, nullptr, &two, dc2.get()) == CUBLAS_STATUS_SUCCESS);
  CHECK(max_abs_diff(dc2.read(), doubled) == 0.0);

  // m == 0, n == 0 or batchCount == 0: nothing is touched.
  const std::vector<double> unchanged(c.begin(), c.end());
  DeviceArray<T> dc3(c);
  GemmCase no_rows{CUBLAS_OP_N, CUBLAS_OP_N, 0, 4, 5, 1, 5, 1};
  GemmCase no_cols{CUBLAS_OP_N, CUBLAS_OP_N, 3, 0, 5, 3, 5, 3};
  CHECK(gemm(h.handle, no_rows, &one, nullptr, nullptr, &zero, dc3.get()) == CUBLAS_STATUS_SUCCESS);
  CHECK(gemm(h.handle, no_cols, &one, nullptr, nullptr, &zero, dc3.get()) == CUBLAS_STATUS_SUCCESS);
  CHECK(gemm_batched(h.handle, no_product, &one, nullptr, 0, nullptr, 0, &zero, dc3.get(), 12, 0) ==
        CUBLAS_STATUS_SUCCESS);
  CHECK(max_abs_diff(dc3.read(), unchanged) == 0.0);
}

TEMPLATE_TEST_CASE("emulated cuBLAS strided batched GEMM, with a stride of 0 broadcasting A", "[emulator]", float,
                   double) {
  using T = TestType;
  CublasHandle h;
  GemmCase g{CUBLAS_OP_T, CUBLAS_OP_N, 4, 3, 5, 0, 0, 0};
  g.lda = g.k + 1;  // A is stored k x m (transposed)
  g.ldb = g.k + 2;
  g.ldc = g.m + 1;
  const int batch = 3;
  // 0: one A for every batch; otherwise A's matrices lie apart like B's.
  const long long stride_a = GENERATE(0LL, 23LL);
  CAPTURE(stride_a);
  const long long stride_b = static_cast<long long>(g.b_elements()) + 7;
  const long long stride_c = static_cast<long long>(g.c_elements()) + 2;  // gaps between the C matrices
  const std::vector<T> a = random_values<T>(g.a_elements() + static_cast<std::size_t>(stride_a * (batch - 1)), 5);
  const std::vector<T> b = random_values<T>(static_cast<std::size_t>(stride_b * batch), 6);
  std::vector<T> c = random_values<T>(static_cast<std::size_t>(stride_c * batch), 7);
  for (int i = 0; i < batch; ++i) {
    c[static_cast<std::size_t>(stride_c * i + stride_c - 1)] = kSentinel<T>;
    c[static_cast<std::size_t>(stride_c * i + stride_c - 2)] = kSentinel<T>;
  }
  DeviceArray<T> da(a), db(b), dc(c);
  const T alpha = T(1), beta = T(0.5);
  REQUIRE(gemm_batched(h.handle, g, &alpha, da.get(), stride_a, db.get(), stride_b, &beta, dc.get(), stride_c,
                       batch) == CUBLAS_STATUS_SUCCESS);
  std::vector<double> want(c.begin(), c.end());
  for (int i = 0; i < batch; ++i) {
    const std::vector<double> one =
        naive_gemm(g, 1.0, a.data() + stride_a * i, b.data() + stride_b * i, 0.5, c, stride_c * i);
    for (long long e = 0; e < stride_c; ++e) want[stride_c * i + e] = one[stride_c * i + e];
  }
  CHECK(max_abs_diff(dc.read(), want) < kTolerance<T>);
}

TEST_CASE("emulated cuBLAS reads alpha and beta from device memory in device pointer mode", "[emulator]") {
  CublasHandle h;
  GemmCase g{CUBLAS_OP_N, CUBLAS_OP_T, 3, 4, 2, 3, 4, 5};
  const std::vector<float> a = random_values<float>(g.a_elements(), 8);
  const std::vector<float> b = random_values<float>(g.b_elements(), 9);
  const std::vector<float> c = random_values<float>(g.c_elements(), 10);
  DeviceArray<float> da(a), db(b), dc(c), scalars({2.0f, 0.5f});
  REQUIRE(cublasSetPointerMode(h.handle, CUBLAS_POINTER_MODE_DEVICE) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(gemm(h.handle, g, scalars.get(), da.get(), db.get(), scalars.get() + 1, dc.get()) == CUBLAS_STATUS_SUCCESS);
  CHECK(max_abs_diff(dc.read(), naive_gemm(g, 2.0, a.data(), b.data(), 0.5, c)) < kTolerance<float>);
}

TEST_CASE("emulated cuBLAS refuses every documented invalid argument", "[emulator]") {
  CublasHandle h;
  const GemmCase valid{CUBLAS_OP_N, CUBLAS_OP_N, 3, 2, 4, 3, 4, 3};
  const std::vector<float> sentinels(64, kSentinel<float>);
  DeviceArray<float> a(random_values<float>(64, 11)), b(random_values<float>(64, 12)), c(sentinels);
  const float one = 1.0f, zero = 0.0f;
  const auto call = [&](const GemmCase& g) { return gemm(h.handle, g, &one, a.get(), b.get(), &zero, c.get()); };
  const auto with = [&](const std::function<void(GemmCase&)>& change) {
    GemmCase g = valid;
    change(g);
    return g;
  };

  // The boundaries themselves are valid: ld == max(1, rows as stored).
  CHECK(call(valid) == CUBLAS_STATUS_SUCCESS);
  CHECK(call(with([](GemmCase& g) { g.transa = CUBLAS_OP_T; g.lda = g.k; })) == CUBLAS_STATUS_SUCCESS);
  CHECK(call(with([](GemmCase& g) { g.transb = CUBLAS_OP_T; g.ldb = g.n; })) == CUBLAS_STATUS_SUCCESS);
  DeviceArray<float> untouched(sentinels);

  const auto invalid = [&](const GemmCase& g) {
    return gemm(h.handle, g, &one, a.get(), b.get(), &zero, untouched.get());
  };
  CHECK(invalid(with([](GemmCase& g) { g.m = -1; })) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(invalid(with([](GemmCase& g) { g.n = -1; })) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(invalid(with([](GemmCase& g) { g.k = -1; })) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(invalid(with([](GemmCase& g) { g.transa = CUBLAS_OP_CONJG; })) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(invalid(with([](GemmCase& g) { g.transb = static_cast<cublasOperation_t>(7); })) ==
        CUBLAS_STATUS_INVALID_VALUE);
  CHECK(invalid(with([](GemmCase& g) { g.lda = g.m - 1; })) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(invalid(with([](GemmCase& g) { g.transa = CUBLAS_OP_T; g.lda = g.k - 1; })) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(invalid(with([](GemmCase& g) { g.ldb = g.k - 1; })) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(invalid(with([](GemmCase& g) { g.transb = CUBLAS_OP_C; g.ldb = g.n - 1; })) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(invalid(with([](GemmCase& g) { g.ldc = g.m - 1; })) == CUBLAS_STATUS_INVALID_VALUE);
  // max(1, 0): a leading dimension of 0 is invalid even for an empty matrix.
  CHECK(invalid(with([](GemmCase& g) { g.m = 0; g.lda = 0; g.ldc = 1; })) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(invalid(with([](GemmCase& g) { g.m = 0; g.lda = 1; g.ldc = 0; })) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(h.handle, valid, nullptr, a.get(), b.get(), &zero, untouched.get()) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(h.handle, valid, &one, a.get(), b.get(), nullptr, untouched.get()) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm(h.handle, valid, &one, a.get(), b.get(), &zero, nullptr) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK(gemm_batched(h.handle, valid, &one, a.get(), 0, b.get(), 0, &zero, untouched.get(), 0, -1) ==
        CUBLAS_STATUS_INVALID_VALUE);

  // A handle that is null or no longer alive.
  CHECK(gemm(nullptr, valid, &one, a.get(), b.get(), &zero, untouched.get()) == CUBLAS_STATUS_NOT_INITIALIZED);
  cublasHandle_t destroyed = nullptr;
  REQUIRE(cublasCreate(&destroyed) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(cublasDestroy(destroyed) == CUBLAS_STATUS_SUCCESS);
  CHECK(gemm(destroyed, valid, &one, a.get(), b.get(), &zero, untouched.get()) == CUBLAS_STATUS_NOT_INITIALIZED);
  CHECK(cublasDestroy(destroyed) == CUBLAS_STATUS_NOT_INITIALIZED);
  CHECK(cublasSetStream(nullptr, nullptr) == CUBLAS_STATUS_NOT_INITIALIZED);

  CHECK(max_abs_diff(untouched.read(), std::vector<double>(64, kSentinel<double>)) == 0.0);
}

TEST_CASE("emulated cuBLAS handle state, modes and status strings", "[emulator]") {
  CublasHandle h;
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(0x1);
  REQUIRE(cublasGetStream(h.handle, &stream) == CUBLAS_STATUS_SUCCESS);
  CHECK(stream == nullptr);  // the default stream until set
  const cudaStream_t remembered = reinterpret_cast<cudaStream_t>(0x40);  // only stored, never used
  REQUIRE(cublasSetStream(h.handle, remembered) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(cublasGetStream(h.handle, &stream) == CUBLAS_STATUS_SUCCESS);
  CHECK(stream == remembered);

  cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_DEVICE;
  REQUIRE(cublasGetPointerMode(h.handle, &pointer_mode) == CUBLAS_STATUS_SUCCESS);
  CHECK(pointer_mode == CUBLAS_POINTER_MODE_HOST);  // the documented default
  CHECK(cublasSetPointerMode(h.handle, static_cast<cublasPointerMode_t>(2)) == CUBLAS_STATUS_INVALID_VALUE);

  cublasMath_t math = CUBLAS_PEDANTIC_MATH;
  REQUIRE(cublasGetMathMode(h.handle, &math) == CUBLAS_STATUS_SUCCESS);
  CHECK(math == CUBLAS_DEFAULT_MATH);
  REQUIRE(cublasSetMathMode(h.handle, CUBLAS_TF32_TENSOR_OP_MATH) == CUBLAS_STATUS_SUCCESS);
  REQUIRE(cublasGetMathMode(h.handle, &math) == CUBLAS_STATUS_SUCCESS);
  CHECK(math == CUBLAS_TF32_TENSOR_OP_MATH);
  const int disallowing = CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
  CHECK(cublasSetMathMode(h.handle, static_cast<cublasMath_t>(disallowing)) == CUBLAS_STATUS_SUCCESS);
  CHECK(cublasSetMathMode(h.handle, static_cast<cublasMath_t>(4)) == CUBLAS_STATUS_INVALID_VALUE);

  // NVIDIA's numeric codes, and the names basin's error messages print.
  CHECK(CUBLAS_STATUS_INVALID_VALUE == 7);
  CHECK(CUBLAS_STATUS_EXECUTION_FAILED == 13);
  CHECK(CUBLAS_OP_C == 2);
  CHECK(std::string(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE)) == "CUBLAS_STATUS_INVALID_VALUE");
  CHECK(std::string(cublasGetStatusName(CUBLAS_STATUS_EXECUTION_FAILED)) == "CUBLAS_STATUS_EXECUTION_FAILED");
  CHECK(std::string(cublasGetStatusString(CUBLAS_STATUS_SUCCESS)) == "success");
  CHECK(std::string(cublasGetStatusName(static_cast<cublasStatus_t>(99))) == "CUBLAS_STATUS_UNKNOWN");
}

TEST_CASE("emulated cuBLAS faults on memory that is not device memory, and fails once the context is broken",
          "[emulator]") {
  CublasHandle h;
  const GemmCase g{CUBLAS_OP_N, CUBLAS_OP_N, 3, 2, 4, 3, 4, 3};
  const std::vector<float> a = random_values<float>(g.a_elements(), 13);
  const std::vector<float> b = random_values<float>(g.b_elements(), 14);
  const std::vector<float> sentinels(g.c_elements(), kSentinel<float>);
  DeviceArray<float> da(a), db(b), dc(sentinels), short_a(std::vector<float>(g.a_elements() - 1, 1.0f));
  const ResetEmulatorAtExit reset_at_exit;
  const float one = 1.0f, zero = 0.0f;

  SECTION("a host array as A") {
    CHECK(gemm(h.handle, g, &one, a.data(), db.get(), &zero, dc.get()) == CUBLAS_STATUS_EXECUTION_FAILED);
    CHECK(basin::emulator::sticky_error() == cudaErrorIllegalAddress);
    const std::string detail = basin::emulator::error_detail(cudaErrorIllegalAddress);
    CHECK_THAT(detail, Catch::Contains("cublasSgemm") && Catch::Contains("matrix A"));
  }
  SECTION("a device array one element too short for lda and k") {
    CHECK(gemm(h.handle, g, &one, short_a.get(), db.get(), &zero, dc.get()) == CUBLAS_STATUS_EXECUTION_FAILED);
    CHECK(basin::emulator::sticky_error() == cudaErrorIllegalAddress);
  }
  SECTION("a host alpha in device pointer mode") {
    REQUIRE(cublasSetPointerMode(h.handle, CUBLAS_POINTER_MODE_DEVICE) == CUBLAS_STATUS_SUCCESS);
    CHECK(gemm(h.handle, g, &one, da.get(), db.get(), dc.get(), dc.get()) == CUBLAS_STATUS_EXECUTION_FAILED);
    CHECK_THAT(basin::emulator::error_detail(cudaErrorIllegalAddress), Catch::Contains("alpha"));
  }
  SECTION("a batch whose last C lies past the allocation") {
    CHECK(gemm_batched(h.handle, g, &one, da.get(), 0, db.get(), 0, &zero, dc.get(), 1, 2) ==
          CUBLAS_STATUS_EXECUTION_FAILED);
    CHECK_THAT(basin::emulator::error_detail(cudaErrorIllegalAddress),
               Catch::Contains("cublasSgemmStridedBatched") && Catch::Contains("matrix C"));
  }
  CHECK(basin::emulator::sticky_error() == cudaErrorIllegalAddress);
  CHECK(cudaDeviceSynchronize() == cudaErrorIllegalAddress);

  // A valid call cannot run on the broken context: it fails and writes nothing.
  CHECK(gemm(h.handle, g, &one, da.get(), db.get(), &zero, dc.get()) == CUBLAS_STATUS_EXECUTION_FAILED);
  basin::emulator::reset();
  CHECK(max_abs_diff(dc.read(), std::vector<double>(sentinels.begin(), sentinels.end())) == 0.0);
}

// ---------------------------------------------------------------- convolution
namespace {

struct ConvCase {
  int n, c, h, w;  // x
  int k, r, s;     // w [k, c, r, s]
  int pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w;
  cudnnConvolutionMode_t mode;

  // The output size as cuDNN documents it.
  int p() const { return (h + 2 * pad_h - ((r - 1) * dilation_h + 1)) / stride_h + 1; }
  int q() const { return (w + 2 * pad_w - ((s - 1) * dilation_w + 1)) / stride_w + 1; }
  std::size_t x_elements() const { return static_cast<std::size_t>(n) * c * h * w; }
  std::size_t w_elements() const { return static_cast<std::size_t>(k) * c * r * s; }
  std::size_t y_elements() const { return static_cast<std::size_t>(n) * k * p() * q(); }
};

// Calls visit(x_index, w_index, y_index) once for every product term of the
// forward convolution: output y_index takes w[w_index] * x[x_index]. Taps in
// the padding have no term.
template <class Visit>
void for_each_term(const ConvCase& g, Visit visit) {
  for (int n = 0; n < g.n; ++n)
    for (int k = 0; k < g.k; ++k)
      for (int p = 0; p < g.p(); ++p)
        for (int q = 0; q < g.q(); ++q)
          for (int c = 0; c < g.c; ++c)
            for (int r = 0; r < g.r; ++r)
              for (int s = 0; s < g.s; ++s) {
                const int ih = p * g.stride_h - g.pad_h + r * g.dilation_h;
                const int iw = q * g.stride_w - g.pad_w + s * g.dilation_w;
                if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
                // True convolution meets the filter flipped.
                const int fr = g.mode == CUDNN_CONVOLUTION ? g.r - 1 - r : r;
                const int fs = g.mode == CUDNN_CONVOLUTION ? g.s - 1 - s : s;
                visit(((n * g.c + c) * g.h + ih) * g.w + iw, ((k * g.c + c) * g.r + fr) * g.s + fs,
                      ((n * g.k + k) * g.p() + p) * g.q() + q);
              }
}

enum class Direction { Forward, BackwardData, BackwardFilter };

// The expected output of one direction: alpha * sum + beta * before (beta == 0: before not read).
template <class T>
std::vector<double> naive_conv(Direction direction, const ConvCase& g, const std::vector<T>& x,
                               const std::vector<T>& w, const std::vector<T>& y, double alpha, double beta,
                               const std::vector<T>& before) {
  std::vector<double> sum(before.size(), 0.0);
  for_each_term(g, [&](int xi, int wi, int yi) {
    switch (direction) {
      case Direction::Forward: sum[yi] += double(w[wi]) * double(x[xi]); break;
      case Direction::BackwardData: sum[xi] += double(w[wi]) * double(y[yi]); break;  // the scatter of dy
      case Direction::BackwardFilter: sum[wi] += double(y[yi]) * double(x[xi]); break;
    }
  });
  for (std::size_t i = 0; i < sum.size(); ++i) {
    sum[i] = beta == 0.0 ? alpha * sum[i] : alpha * sum[i] + beta * before[i];
  }
  return sum;
}

template <class T>
constexpr cudnnDataType_t kDataType = std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;

struct CudnnHandle {
  cudnnHandle_t handle = nullptr;
  CudnnHandle() { REQUIRE(cudnnCreate(&handle) == CUDNN_STATUS_SUCCESS); }
  ~CudnnHandle() { cudnnDestroy(handle); }
};

// The four descriptors of one ConvCase, created and set.
struct ConvDescriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;

  ConvDescriptors(const ConvCase& g, cudnnDataType_t type) {
    REQUIRE(cudnnCreateTensorDescriptor(&x) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateTensorDescriptor(&y) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateFilterDescriptor(&w) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnCreateConvolutionDescriptor(&conv) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, type, g.n, g.c, g.h, g.w) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetFilter4dDescriptor(w, type, CUDNN_TENSOR_NCHW, g.k, g.c, g.r, g.s) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, type, g.n, g.k, g.p(), g.q()) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetConvolution2dDescriptor(conv, g.pad_h, g.pad_w, g.stride_h, g.stride_w, g.dilation_h,
                                            g.dilation_w, g.mode, type) == CUDNN_STATUS_SUCCESS);
  }
  ~ConvDescriptors() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
  ConvDescriptors(const ConvDescriptors&) = delete;
  ConvDescriptors& operator=(const ConvDescriptors&) = delete;
};

// One call in the given direction with the given algorithm id; the output is
// y, x or w's buffer respectively.
template <class T>
cudnnStatus_t convolve(Direction direction, cudnnHandle_t handle, const ConvDescriptors& d, int algo, const T* alpha,
                       const T* beta, T* x, T* w, T* y) {
  switch (direction) {
    case Direction::Forward:
      return cudnnConvolutionForward(handle, alpha, d.x, x, d.w, w, d.conv,
                                     static_cast<cudnnConvolutionFwdAlgo_t>(algo), nullptr, 0, beta, d.y, y);
    case Direction::BackwardData:
      return cudnnConvolutionBackwardData(handle, alpha, d.w, w, d.y, y, d.conv,
                                          static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), nullptr, 0, beta, d.x,
                                          x);
    case Direction::BackwardFilter:
      return cudnnConvolutionBackwardFilter(handle, alpha, d.x, x, d.y, y, d.conv,
                                            static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), nullptr, 0, beta,
                                            d.w, w);
  }
  return CUDNN_STATUS_INTERNAL_ERROR;
}

const char* direction_name(Direction direction) {
  switch (direction) {
    case Direction::Forward: return "forward";
    case Direction::BackwardData: return "backward data";
    case Direction::BackwardFilter: return "backward filter";
  }
  return "?";
}

constexpr Direction kDirections[] = {Direction::Forward, Direction::BackwardData, Direction::BackwardFilter};
constexpr int kAlgorithmCounts[] = {CUDNN_CONVOLUTION_FWD_ALGO_COUNT, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT};

const ConvCase kConvCases[] = {
    // stride 2, padding 1, non-square input and filter, C != K
    {2, 3, 7, 6, 4, 3, 2, 1, 1, 2, 2, 1, 1, CUDNN_CROSS_CORRELATION},
    {2, 3, 7, 6, 4, 3, 2, 1, 1, 2, 2, 1, 1, CUDNN_CONVOLUTION},
    // different strides, paddings and dilations per axis
    {1, 2, 9, 8, 3, 3, 3, 1, 0, 2, 3, 2, 1, CUDNN_CONVOLUTION},
    {3, 2, 5, 9, 5, 2, 4, 0, 2, 1, 2, 1, 2, CUDNN_CROSS_CORRELATION},
    // 1 x 1
    {3, 1, 5, 5, 2, 1, 1, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION},
};

}  // namespace

TEMPLATE_TEST_CASE("emulated cuDNN convolutions match naive loops in all three directions", "[emulator]", float,
                   double) {
  using T = TestType;
  CudnnHandle h;
  int case_number = 0;
  for (const ConvCase& g : kConvCases) {
    CAPTURE(case_number++);
    ConvDescriptors d(g, kDataType<T>);
    const std::vector<T> x = random_values<T>(g.x_elements(), 20);
    const std::vector<T> w = random_values<T>(g.w_elements(), 21);
    const std::vector<T> y = random_values<T>(g.y_elements(), 22);
    for (Direction direction : kDirections) {
      CAPTURE(direction_name(direction));
      const std::size_t out_elements = direction == Direction::Forward        ? g.y_elements()
                                       : direction == Direction::BackwardData ? g.x_elements()
                                                                              : g.w_elements();
      // alpha 1, beta 0 over a NaN-poisoned output; then alpha 0.5, beta -2 over values.
      for (const bool poisoned : {true, false}) {
        const T alpha = poisoned ? T(1) : T(0.5);
        const T beta = poisoned ? T(0) : T(-2);
        const std::vector<T> before =
            poisoned ? std::vector<T>(out_elements, kNaN<T>) : random_values<T>(out_elements, 23);
        DeviceArray<T> dx(direction == Direction::BackwardData ? before : x);
        DeviceArray<T> dw(direction == Direction::BackwardFilter ? before : w);
        DeviceArray<T> dy(direction == Direction::Forward ? before : y);
        const int algo = poisoned ? 0 : 1;
        REQUIRE(convolve<T>(direction, h.handle, d, algo, &alpha, &beta, dx.get(), dw.get(), dy.get()) ==
                CUDNN_STATUS_SUCCESS);
        const DeviceArray<T>& out = direction == Direction::Forward        ? dy
                                    : direction == Direction::BackwardData ? dx
                                                                           : dw;
        CHECK(max_abs_diff(out.read(), naive_conv(direction, g, x, w, y, double(alpha), double(beta), before)) <
              kTolerance<T>);
      }
    }
  }
}

TEST_CASE("emulated cuDNN sums in float for float data in the documented order, one multiply and one add per step",
          "[emulator]") {
  CudnnHandle h;
  const float one = 1.0f, zero = 0.0f;
  const float tiny = std::ldexp(1.0f, -24);
  const float near_one = 1.0f + std::ldexp(1.0f, -12);
  // Each direction reduces over one axis here (1 x 1 images and filters):
  // forward over c, backward data over k, backward filter over n. The terms
  // are u[i] * v[i]; see the cuBLAS test above for why these sums come out exact.
  struct Sum {
    std::vector<float> u, v;
    float expected;
  };
  const Sum sums[] = {{{1.0f, tiny, tiny}, {1.0f, 1.0f, 1.0f}, 1.0f},
                      {{-1.0f, near_one}, {1.0f, near_one}, std::ldexp(1.0f, -11)}};
  for (const Sum& sum : sums) {
    const int terms = static_cast<int>(sum.u.size());
    for (Direction direction : kDirections) {
      CAPTURE(direction_name(direction), terms);
      ConvCase g{1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION};
      if (direction == Direction::Forward) g.c = terms;
      if (direction == Direction::BackwardData) g.k = terms;
      if (direction == Direction::BackwardFilter) g.n = terms;
      ConvDescriptors d(g, CUDNN_DATA_FLOAT);
      const std::vector<float> poison(1, kNaN<float>);
      // The reduced axis is in both inputs of the direction; the output is a single element.
      DeviceArray<float> dx(direction == Direction::BackwardData ? poison : sum.u);
      DeviceArray<float> dw(direction == Direction::BackwardFilter ? poison : sum.v);
      DeviceArray<float> dy(direction == Direction::Forward ? poison : direction == Direction::BackwardData ? sum.u
                                                                                                           : sum.v);
      REQUIRE(convolve<float>(direction, h.handle, d, 0, &one, &zero, dx.get(), dw.get(), dy.get()) ==
              CUDNN_STATUS_SUCCESS);
      const float got = direction == Direction::Forward        ? dy.read()[0]
                        : direction == Direction::BackwardData ? dx.read()[0]
                                                               : dw.read()[0];
      CHECK(got == sum.expected);
    }
  }
}

TEST_CASE("emulated cuDNN computes the same result for every algorithm id", "[emulator]") {
  CudnnHandle h;
  const ConvCase g = kConvCases[2];
  ConvDescriptors d(g, CUDNN_DATA_FLOAT);
  const std::vector<float> x = random_values<float>(g.x_elements(), 30);
  const std::vector<float> w = random_values<float>(g.w_elements(), 31);
  const std::vector<float> y = random_values<float>(g.y_elements(), 32);
  const float one = 1.0f, zero = 0.0f;
  for (int i = 0; i < 3; ++i) {
    const Direction direction = kDirections[i];
    CAPTURE(direction_name(direction));
    std::vector<float> first;
    for (int algo = 0; algo < kAlgorithmCounts[i]; ++algo) {
      DeviceArray<float> dx(x), dw(w), dy(y);
      REQUIRE(convolve<float>(direction, h.handle, d, algo, &one, &zero, dx.get(), dw.get(), dy.get()) ==
              CUDNN_STATUS_SUCCESS);
      const std::vector<float> out = direction == Direction::Forward        ? dy.read()
                                     : direction == Direction::BackwardData ? dx.read()
                                                                            : dw.read();
      if (algo == 0) first = out;
      CHECK(std::memcmp(out.data(), first.data(), out.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("emulated cuDNN output size, and descriptors refused as documented", "[emulator]") {
  cudnnTensorDescriptor_t x = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  REQUIRE(cudnnCreateTensorDescriptor(&x) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnCreateFilterDescriptor(&w) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnCreateConvolutionDescriptor(&conv) == CUDNN_STATUS_SUCCESS);

  SECTION("the forward output size") {
    REQUIRE(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 3, 11, 8) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 5, 3, 3, 2) == CUDNN_STATUS_SUCCESS);
    // (11 + 2*2 - ((3-1)*2 + 1)) / 3 + 1 = 4 and (8 + 2*1 - ((2-1)*1 + 1)) / 2 + 1 = 5
    REQUIRE(cudnnSetConvolution2dDescriptor(conv, 2, 1, 3, 2, 2, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
            CUDNN_STATUS_SUCCESS);
    int n = 0, c = 0, h = 0, wd = 0;
    REQUIRE(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &n, &c, &h, &wd) == CUDNN_STATUS_SUCCESS);
    CHECK((n == 2 && c == 5 && h == 4 && wd == 5));
    // 6x6 input, 3x3 filter, stride 3: padding 0 and 1 both give 2x2.
    REQUIRE(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 3, 6, 6) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 1, 3, 3, 3) == CUDNN_STATUS_SUCCESS);
    for (int pad : {0, 1}) {
      REQUIRE(cudnnSetConvolution2dDescriptor(conv, pad, pad, 3, 3, 1, 1, CUDNN_CONVOLUTION, CUDNN_DATA_FLOAT) ==
              CUDNN_STATUS_SUCCESS);
      REQUIRE(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &n, &c, &h, &wd) == CUDNN_STATUS_SUCCESS);
      CHECK((h == 2 && wd == 2));
    }
    // A channel mismatch, a filter larger than the padded input, a type mismatch, a null output.
    REQUIRE(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 1, 4, 3, 3) == CUDNN_STATUS_SUCCESS);
    CHECK(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &n, &c, &h, &wd) == CUDNN_STATUS_BAD_PARAM);
    REQUIRE(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 1, 3, 9, 3) == CUDNN_STATUS_SUCCESS);
    CHECK(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &n, &c, &h, &wd) == CUDNN_STATUS_BAD_PARAM);
    REQUIRE(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_DOUBLE, CUDNN_TENSOR_NCHW, 1, 3, 3, 3) == CUDNN_STATUS_SUCCESS);
    CHECK(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &n, &c, &h, &wd) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &n, &c, nullptr, &wd) == CUDNN_STATUS_BAD_PARAM);
  }
  SECTION("tensor and filter descriptors") {
    CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 0, 3, 4, 4) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 3, -4, 4) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnSetTensor4dDescriptor(x, static_cast<cudnnTensorFormat_t>(7), CUDNN_DATA_FLOAT, 1, 3, 4, 4) ==
          CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, static_cast<cudnnDataType_t>(99), 1, 3, 4, 4) ==
          CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, 3, 4, 4) ==
          CUDNN_STATUS_NOT_SUPPORTED);
    CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_HALF, 1, 3, 4, 4) == CUDNN_STATUS_NOT_SUPPORTED);
    CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1 << 16, 1 << 16, 1, 1) ==
          CUDNN_STATUS_NOT_SUPPORTED);  // 2^32 elements
    CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_DOUBLE, CUDNN_TENSOR_NCHW, 2, 0, 3, 3) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_DOUBLE, CUDNN_TENSOR_NHWC, 2, 1, 3, 3) ==
          CUDNN_STATUS_NOT_SUPPORTED);
    CHECK(cudnnSetTensor4dDescriptor(nullptr, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 1, 1, 1) ==
          CUDNN_STATUS_BAD_PARAM);
  }
  SECTION("convolution descriptors and math types") {
    const auto set = [&](int pad_h, int pad_w, int u, int v, int dil_h, int dil_w, int mode, int type) {
      return cudnnSetConvolution2dDescriptor(conv, pad_h, pad_w, u, v, dil_h, dil_w,
                                             static_cast<cudnnConvolutionMode_t>(mode),
                                             static_cast<cudnnDataType_t>(type));
    };
    CHECK(set(0, 0, 1, 1, 1, 1, CUDNN_CONVOLUTION, CUDNN_DATA_DOUBLE) == CUDNN_STATUS_SUCCESS);
    CHECK(set(-1, 0, 1, 1, 1, 1, CUDNN_CONVOLUTION, CUDNN_DATA_FLOAT) == CUDNN_STATUS_BAD_PARAM);
    CHECK(set(0, -1, 1, 1, 1, 1, CUDNN_CONVOLUTION, CUDNN_DATA_FLOAT) == CUDNN_STATUS_BAD_PARAM);
    CHECK(set(0, 0, 0, 1, 1, 1, CUDNN_CONVOLUTION, CUDNN_DATA_FLOAT) == CUDNN_STATUS_BAD_PARAM);
    CHECK(set(0, 0, 1, -2, 1, 1, CUDNN_CONVOLUTION, CUDNN_DATA_FLOAT) == CUDNN_STATUS_BAD_PARAM);
    CHECK(set(0, 0, 1, 1, 0, 1, CUDNN_CONVOLUTION, CUDNN_DATA_FLOAT) == CUDNN_STATUS_BAD_PARAM);
    CHECK(set(0, 0, 1, 1, 1, 0, CUDNN_CONVOLUTION, CUDNN_DATA_FLOAT) == CUDNN_STATUS_BAD_PARAM);
    CHECK(set(0, 0, 1, 1, 1, 1, 2, CUDNN_DATA_FLOAT) == CUDNN_STATUS_BAD_PARAM);
    CHECK(set(0, 0, 1, 1, 1, 1, CUDNN_CONVOLUTION, 99) == CUDNN_STATUS_BAD_PARAM);
    CHECK(set(0, 0, 1, 1, 1, 1, CUDNN_CONVOLUTION, CUDNN_DATA_HALF) == CUDNN_STATUS_NOT_SUPPORTED);

    cudnnMathType_t math = CUDNN_FMA_MATH;
    REQUIRE(cudnnGetConvolutionMathType(conv, &math) == CUDNN_STATUS_SUCCESS);
    CHECK(math == CUDNN_DEFAULT_MATH);
    REQUIRE(cudnnSetConvolutionMathType(conv, CUDNN_TENSOR_OP_MATH) == CUDNN_STATUS_SUCCESS);
    REQUIRE(cudnnGetConvolutionMathType(conv, &math) == CUDNN_STATUS_SUCCESS);
    CHECK(math == CUDNN_TENSOR_OP_MATH);
    CHECK(cudnnSetConvolutionMathType(conv, static_cast<cudnnMathType_t>(4)) == CUDNN_STATUS_BAD_PARAM);
  }

  CHECK(cudnnDestroyTensorDescriptor(x) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnDestroyFilterDescriptor(w) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnDestroyConvolutionDescriptor(conv) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnDestroyTensorDescriptor(x) == CUDNN_STATUS_BAD_PARAM);  // twice
}

TEST_CASE("emulated cuDNN refuses inconsistent descriptors and arguments", "[emulator]") {
  CudnnHandle h;
  const ConvCase g = kConvCases[0];
  ConvDescriptors d(g, CUDNN_DATA_FLOAT);
  const std::vector<float> sentinels(g.x_elements() + g.w_elements() + g.y_elements(), kSentinel<float>);
  DeviceArray<float> dx(sentinels), dw(sentinels), dy(sentinels);  // larger than any descriptor here needs
  const float one = 1.0f, zero = 0.0f;

  // Every direction and its workspace query with one descriptor replaced.
  struct Swap {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
  };
  const auto statuses = [&](const Swap& s, int algo = 0) {
    std::vector<cudnnStatus_t> got;
    std::size_t bytes = 0;
    got.push_back(cudnnConvolutionForward(h.handle, &one, s.x, dx.get(), s.w, dw.get(), s.conv,
                                          static_cast<cudnnConvolutionFwdAlgo_t>(algo), nullptr, 0, &zero, s.y,
                                          dy.get()));
    got.push_back(cudnnConvolutionBackwardData(h.handle, &one, s.w, dw.get(), s.y, dy.get(), s.conv,
                                               static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), nullptr, 0, &zero,
                                               s.x, dx.get()));
    got.push_back(cudnnConvolutionBackwardFilter(h.handle, &one, s.x, dx.get(), s.y, dy.get(), s.conv,
                                                 static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), nullptr, 0,
                                                 &zero, s.w, dw.get()));
    got.push_back(cudnnGetConvolutionForwardWorkspaceSize(h.handle, s.x, s.w, s.conv, s.y,
                                                          static_cast<cudnnConvolutionFwdAlgo_t>(algo), &bytes));
    got.push_back(cudnnGetConvolutionBackwardDataWorkspaceSize(
        h.handle, s.w, s.y, s.conv, s.x, static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), &bytes));
    got.push_back(cudnnGetConvolutionBackwardFilterWorkspaceSize(
        h.handle, s.x, s.y, s.conv, s.w, static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), &bytes));
    return got;
  };
  const auto all = [](cudnnStatus_t status) { return std::vector<cudnnStatus_t>(6, status); };
  const Swap valid{d.x, d.y, d.w, d.conv};

  ConvCase wrong = g;
  wrong.c = g.c + 1;  // x has more channels than w expects
  ConvDescriptors more_channels(wrong, CUDNN_DATA_FLOAT);
  CHECK(statuses({more_channels.x, d.y, d.w, d.conv}) == all(CUDNN_STATUS_BAD_PARAM));
  CHECK(statuses({d.x, d.y, more_channels.w, d.conv}) == all(CUDNN_STATUS_BAD_PARAM));

  cudnnTensorDescriptor_t y_wrong = nullptr;
  REQUIRE(cudnnCreateTensorDescriptor(&y_wrong) == CUDNN_STATUS_SUCCESS);
  SECTION("y is not the forward output of x and w") {
    const int dims[][4] = {{g.n + 1, g.k, g.p(), g.q()},
                           {g.n, g.k + 1, g.p(), g.q()},
                           {g.n, g.k, g.p() + 1, g.q()},
                           {g.n, g.k, g.p(), g.q() - 1}};
    for (const auto& dim : dims) {
      REQUIRE(cudnnSetTensor4dDescriptor(y_wrong, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, dim[0], dim[1], dim[2],
                                         dim[3]) == CUDNN_STATUS_SUCCESS);
      CHECK(statuses({d.x, y_wrong, d.w, d.conv}) == all(CUDNN_STATUS_BAD_PARAM));
    }
  }
  SECTION("the data types differ") {
    REQUIRE(cudnnSetTensor4dDescriptor(y_wrong, CUDNN_TENSOR_NCHW, CUDNN_DATA_DOUBLE, g.n, g.k, g.p(), g.q()) ==
            CUDNN_STATUS_SUCCESS);
    CHECK(statuses({d.x, y_wrong, d.w, d.conv}) == all(CUDNN_STATUS_BAD_PARAM));
  }
  SECTION("a descriptor created but never set") {
    CHECK(statuses({d.x, y_wrong, d.w, d.conv}) == all(CUDNN_STATUS_BAD_PARAM));
  }
  SECTION("a destroyed descriptor") {
    REQUIRE(cudnnDestroyTensorDescriptor(y_wrong) == CUDNN_STATUS_SUCCESS);
    CHECK(statuses({d.x, y_wrong, d.w, d.conv}) == all(CUDNN_STATUS_BAD_PARAM));
    y_wrong = nullptr;
  }
  SECTION("a compute type other than the data type is valid but not computed") {
    ConvDescriptors double_compute(g, CUDNN_DATA_DOUBLE);
    CHECK(statuses({d.x, d.y, d.w, double_compute.conv}) == all(CUDNN_STATUS_NOT_SUPPORTED));
  }
  SECTION("algorithm ids out of range") {
    CHECK(statuses(valid, -1) == all(CUDNN_STATUS_BAD_PARAM));
    CHECK(statuses(valid, CUDNN_CONVOLUTION_FWD_ALGO_COUNT) == all(CUDNN_STATUS_BAD_PARAM));
    // Each direction's own count is the first id out of its range.
    std::size_t bytes = 0;
    CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h.handle, d.w, d.y, d.conv, d.x,
                                                       CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                       &bytes) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h.handle, d.x, d.y, d.conv, d.w,
                                                         CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                         &bytes) == CUDNN_STATUS_BAD_PARAM);
  }
  SECTION("null pointers and handles") {
    CHECK(cudnnConvolutionForward(h.handle, nullptr, d.x, dx.get(), d.w, dw.get(), d.conv,
                                  CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, d.y,
                                  dy.get()) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnConvolutionForward(h.handle, &one, d.x, dx.get(), d.w, dw.get(), d.conv,
                                  CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, nullptr, d.y,
                                  dy.get()) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnConvolutionForward(h.handle, &one, d.x, nullptr, d.w, dw.get(), d.conv,
                                  CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, d.y,
                                  dy.get()) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnConvolutionForward(nullptr, &one, d.x, dx.get(), d.w, dw.get(), d.conv,
                                  CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, d.y,
                                  dy.get()) == CUDNN_STATUS_BAD_PARAM);
    std::size_t bytes = 0;
    CHECK(cudnnGetConvolutionForwardWorkspaceSize(h.handle, d.x, d.w, d.conv, d.y,
                                                  CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                  nullptr) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnGetConvolutionForwardWorkspaceSize(nullptr, d.x, d.w, d.conv, d.y,
                                                  CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                  &bytes) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnSetStream(nullptr, nullptr) == CUDNN_STATUS_BAD_PARAM);
  }
  cudnnDestroyTensorDescriptor(y_wrong);

  // Nothing was written by any refused call.
  for (const DeviceArray<float>* buffer : {&dx, &dw, &dy}) {
    CHECK(max_abs_diff(buffer->read(), std::vector<double>(sentinels.begin(), sentinels.end())) == 0.0);
  }
}

TEST_CASE("emulated cuDNN algorithm counts, workspace sizes and Find", "[emulator]") {
  CudnnHandle h;
  const ConvCase g = kConvCases[1];
  ConvDescriptors d(g, CUDNN_DATA_DOUBLE);
  REQUIRE(cudnnSetConvolutionMathType(d.conv, CUDNN_FMA_MATH) == CUDNN_STATUS_SUCCESS);
  const std::vector<double> x = random_values<double>(g.x_elements(), 40);
  const std::vector<double> w = random_values<double>(g.w_elements(), 41);
  const std::vector<double> y = random_values<double>(g.y_elements(), 42);

  int count = 0;
  REQUIRE(cudnnGetConvolutionForwardAlgorithmMaxCount(h.handle, &count) == CUDNN_STATUS_SUCCESS);
  CHECK(count == 8);
  REQUIRE(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h.handle, &count) == CUDNN_STATUS_SUCCESS);
  CHECK(count == 6);
  REQUIRE(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h.handle, &count) == CUDNN_STATUS_SUCCESS);
  CHECK(count == 7);
  CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h.handle, nullptr) == CUDNN_STATUS_BAD_PARAM);

  // No algorithm needs workspace here.
  for (int algo = 0; algo < CUDNN_CONVOLUTION_FWD_ALGO_COUNT; ++algo) {
    std::size_t bytes = 99;
    REQUIRE(cudnnGetConvolutionForwardWorkspaceSize(h.handle, d.x, d.w, d.conv, d.y,
                                                    static_cast<cudnnConvolutionFwdAlgo_t>(algo),
                                                    &bytes) == CUDNN_STATUS_SUCCESS);
    CHECK(bytes == 0);
  }
  for (int algo = 0; algo < CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT; ++algo) {
    std::size_t bytes = 99;
    REQUIRE(cudnnGetConvolutionBackwardDataWorkspaceSize(h.handle, d.w, d.y, d.conv, d.x,
                                                         static_cast<cudnnConvolutionBwdDataAlgo_t>(algo),
                                                         &bytes) == CUDNN_STATUS_SUCCESS);
    CHECK(bytes == 0);
  }
  for (int algo = 0; algo < CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT; ++algo) {
    std::size_t bytes = 99;
    REQUIRE(cudnnGetConvolutionBackwardFilterWorkspaceSize(h.handle, d.x, d.y, d.conv, d.w,
                                                           static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo),
                                                           &bytes) == CUDNN_STATUS_SUCCESS);
    CHECK(bytes == 0);
  }

  // Find runs the operation once on the buffers (its output was NaN) and reports one deterministic algorithm.
  const auto nan = [](std::size_t count) { return std::vector<double>(count, kNaN<double>); };
  const auto check_perf = [](const auto& perf, int algo) {
    CHECK(static_cast<int>(perf.algo) == algo);
    CHECK(perf.status == CUDNN_STATUS_SUCCESS);
    CHECK(perf.time == 0.0f);
    CHECK(perf.memory == 0);
    CHECK(perf.determinism == CUDNN_DETERMINISTIC);
    CHECK(perf.mathType == CUDNN_FMA_MATH);
  };
  int returned = -1;
  {
    DeviceArray<double> dx(x), dw(w), dy(nan(y.size()));
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT] = {};
    REQUIRE(cudnnFindConvolutionForwardAlgorithmEx(h.handle, d.x, dx.get(), d.w, dw.get(), d.conv, d.y, dy.get(),
                                                   CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf, nullptr,
                                                   0) == CUDNN_STATUS_SUCCESS);
    CHECK(returned == 1);
    check_perf(perf[0], CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
    CHECK(max_abs_diff(dy.read(), naive_conv(Direction::Forward, g, x, w, y, 1.0, 0.0, y)) < kTolerance<double>);
    CHECK(cudnnFindConvolutionForwardAlgorithmEx(h.handle, d.x, dx.get(), d.w, dw.get(), d.conv, d.y, dy.get(), 0,
                                                 &returned, perf, nullptr, 0) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnFindConvolutionForwardAlgorithmEx(h.handle, d.x, dx.get(), d.w, dw.get(), d.conv, d.y, dy.get(), 1,
                                                 nullptr, perf, nullptr, 0) == CUDNN_STATUS_BAD_PARAM);
  }
  {
    DeviceArray<double> dx(nan(x.size())), dw(w), dy(y), workspace(std::vector<double>(4, 0.0));
    cudnnConvolutionBwdDataAlgoPerf_t perf[1] = {};
    REQUIRE(cudnnFindConvolutionBackwardDataAlgorithmEx(h.handle, d.w, dw.get(), d.y, dy.get(), d.conv, d.x,
                                                        dx.get(), 1, &returned, perf, workspace.get(),
                                                        4 * sizeof(double)) == CUDNN_STATUS_SUCCESS);
    CHECK(returned == 1);
    check_perf(perf[0], CUDNN_CONVOLUTION_BWD_DATA_ALGO_1);
    CHECK(max_abs_diff(dx.read(), naive_conv(Direction::BackwardData, g, x, w, y, 1.0, 0.0, x)) <
          kTolerance<double>);
  }
  {
    DeviceArray<double> dx(x), dw(nan(w.size())), dy(y);
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT] = {};
    REQUIRE(cudnnFindConvolutionBackwardFilterAlgorithmEx(h.handle, d.x, dx.get(), d.y, dy.get(), d.conv, d.w,
                                                          dw.get(), CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                          &returned, perf, nullptr, 0) == CUDNN_STATUS_SUCCESS);
    CHECK(returned == 1);
    check_perf(perf[0], CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1);
    CHECK(max_abs_diff(dw.read(), naive_conv(Direction::BackwardFilter, g, x, w, y, 1.0, 0.0, w)) <
          kTolerance<double>);
  }
}

TEST_CASE("emulated cuDNN version, status codes and strings", "[emulator]") {
  CHECK(CUDNN_MAJOR == 9);
  CHECK(CUDNN_VERSION == 90000);
  CHECK(cudnnGetVersion() == static_cast<std::size_t>(CUDNN_VERSION));
  // cuDNN 9's numeric codes.
  CHECK(CUDNN_STATUS_BAD_PARAM == 2000);
  CHECK(CUDNN_STATUS_NOT_SUPPORTED == 3000);
  CHECK(CUDNN_STATUS_EXECUTION_FAILED == 5000);
  CHECK(CUDNN_CROSS_CORRELATION == 1);
  CHECK(CUDNN_FMA_MATH == 3);
  CHECK(std::string(cudnnGetErrorString(CUDNN_STATUS_SUCCESS)) == "CUDNN_STATUS_SUCCESS");
  CHECK(std::string(cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM)) == "CUDNN_STATUS_BAD_PARAM");
  CHECK(std::string(cudnnGetErrorString(CUDNN_STATUS_EXECUTION_FAILED)) == "CUDNN_STATUS_EXECUTION_FAILED");

  CudnnHandle h;
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(0x1);
  REQUIRE(cudnnGetStream(h.handle, &stream) == CUDNN_STATUS_SUCCESS);
  CHECK(stream == nullptr);
  const cudaStream_t remembered = reinterpret_cast<cudaStream_t>(0x40);  // only stored, never used
  REQUIRE(cudnnSetStream(h.handle, remembered) == CUDNN_STATUS_SUCCESS);
  REQUIRE(cudnnGetStream(h.handle, &stream) == CUDNN_STATUS_SUCCESS);
  CHECK(stream == remembered);
}

TEST_CASE("emulated cuDNN faults on memory that is not device memory, and fails once the context is broken",
          "[emulator]") {
  CudnnHandle h;
  const ConvCase g = kConvCases[0];
  ConvDescriptors d(g, CUDNN_DATA_FLOAT);
  const std::vector<float> x = random_values<float>(g.x_elements(), 50);
  const std::vector<float> w = random_values<float>(g.w_elements(), 51);
  const std::vector<float> sentinels(g.y_elements(), kSentinel<float>);
  DeviceArray<float> dx(x), dw(w), dy(sentinels), short_y(std::vector<float>(g.y_elements() - 1, 0.0f));
  const ResetEmulatorAtExit reset_at_exit;
  const float one = 1.0f, zero = 0.0f;
  const auto forward = [&](const float* in, float* out, void* workspace, std::size_t workspace_bytes) {
    return cudnnConvolutionForward(h.handle, &one, d.x, in, d.w, dw.get(), d.conv,
                                   CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, workspace, workspace_bytes, &zero, d.y,
                                   out);
  };

  SECTION("a host array as x") {
    CHECK(forward(x.data(), dy.get(), nullptr, 0) == CUDNN_STATUS_EXECUTION_FAILED);
    CHECK_THAT(basin::emulator::error_detail(cudaErrorIllegalAddress),
               Catch::Contains("cudnnConvolutionForward: x at"));
  }
  SECTION("a device array one element too short for y") {
    CHECK(forward(dx.get(), short_y.get(), nullptr, 0) == CUDNN_STATUS_EXECUTION_FAILED);
    CHECK_THAT(basin::emulator::error_detail(cudaErrorIllegalAddress), Catch::Contains("y (output)"));
  }
  SECTION("a host workspace") {
    std::vector<char> host_workspace(64);
    CHECK(forward(dx.get(), dy.get(), host_workspace.data(), host_workspace.size()) ==
          CUDNN_STATUS_EXECUTION_FAILED);
    CHECK_THAT(basin::emulator::error_detail(cudaErrorIllegalAddress), Catch::Contains("workspace"));
  }
  SECTION("a host array as the output of backward filter") {
    std::vector<float> host_dw(g.w_elements());
    CHECK(cudnnConvolutionBackwardFilter(h.handle, &one, d.x, dx.get(), d.y, dy.get(), d.conv,
                                         CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, nullptr, 0, &zero, d.w,
                                         host_dw.data()) == CUDNN_STATUS_EXECUTION_FAILED);
    CHECK_THAT(basin::emulator::error_detail(cudaErrorIllegalAddress),
               Catch::Contains("cudnnConvolutionBackwardFilter") && Catch::Contains("dw (output)"));
  }
  CHECK(basin::emulator::sticky_error() == cudaErrorIllegalAddress);
  CHECK(cudaDeviceSynchronize() == cudaErrorIllegalAddress);

  // A valid call cannot run on the broken context: it fails and writes nothing.
  CHECK(forward(dx.get(), dy.get(), nullptr, 0) == CUDNN_STATUS_EXECUTION_FAILED);
  basin::emulator::reset();
  CHECK(max_abs_diff(dy.read(), std::vector<double>(sentinels.begin(), sentinels.end())) == 0.0);
}
