// Planted faults: proof that basin's CUDA-vs-CPU parity tests, run on the
// emulated device, catch a misuse of cuBLAS or cuDNN. Each test runs a minimal
// copy of basin's real library call with one planted mistake, and asserts
// both that its result differs from the CPU reference and that basin's real
// CUDA path matches that reference on the same inputs, so neither half can
// pass vacuously.
#include <catch2/catch.hpp>

#include <cublas_v2.h>
#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/conv.h"
#include "kernels/cuda/cublas.cuh"
#include "kernels/cuda/cudnn.cuh"
#include "kernels/cuda/runtime.h"
#include "kernels/matmul.h"

namespace {

namespace cuda = basin::kernels::cuda;
using basin::kernels::Conv2dShape;
using basin::kernels::GemmOperand;
using basin::kernels::GemmShape;

std::vector<float> random_values(std::size_t count, unsigned seed) {
  std::mt19937 generator(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(count);
  for (float& v : values) v = uniform(generator);
  return values;
}

// Device memory from basin's allocator holding a copy of `values`.
class DeviceFloats {
 public:
  explicit DeviceFloats(const std::vector<float>& values) : size_(values.size()) {
    ptr_ = static_cast<float*>(cuda::allocate(size_ * sizeof(float)));
    cuda::copy_host_to_device(ptr_, values.data(), size_ * sizeof(float));
  }
  ~DeviceFloats() { cuda::deallocate(ptr_); }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;

  float* get() const { return ptr_; }
  std::vector<float> read() const {
    std::vector<float> values(size_);
    cuda::copy_device_to_host(values.data(), ptr_, size_ * sizeof(float));  // waits for basin's stream
    return values;
  }

 private:
  std::size_t size_;
  float* ptr_ = nullptr;
};

std::vector<float> nan_filled(std::size_t count) {
  return std::vector<float>(count, std::numeric_limits<float>::quiet_NaN());
}

// Largest |x - y|; infinite when either side has a NaN.
double max_abs_diff(const std::vector<float>& x, const std::vector<float>& y) {
  REQUIRE(x.size() == y.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double d = std::abs(static_cast<double>(x[i]) - static_cast<double>(y[i]));
    if (std::isnan(d)) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, d);
  }
  return worst;
}

// ---------------------------------------------------------------- (a) GEMM transpose flags
// A copy of gemm_typed's single-matrix call (kernels/cuda/matmul.cu) for float.
cublasOperation_t op_of(const GemmOperand& operand) { return operand.column_major ? CUBLAS_OP_T : CUBLAS_OP_N; }

void gemm_with_swapped_flags(GemmShape s, float* out, const GemmOperand& a, const GemmOperand& b) {
  const float one = 1.0f, zero = 0.0f;
  const auto* pa = static_cast<const float*>(a.data);
  const auto* pb = static_cast<const float*>(b.data);
  const int m = static_cast<int>(s.m), n = static_cast<int>(s.n), k = static_cast<int>(s.k);
  const int lda = static_cast<int>(a.ld), ldb = static_cast<int>(b.ld);
  // PLANTED FAULT: op_of(a), op_of(b); basin passes op_of(b), op_of(a) (b is cuBLAS' first operand).
  BASIN_CUBLAS_CHECK(cublasSgemm(cuda::cublas_handle(), op_of(a), op_of(b), n, m, k, &one, pb, ldb, pa, lda, &zero,
                                 out, n));
}

// ---------------------------------------------------------------- (b) convolution padding
// A copy of make_plan's descriptor setup (kernels/cuda/conv.cu) for float,
// followed by the forward call with a fixed algorithm (no workspace needed).
void conv_forward_with_wrong_padding(const Conv2dShape& g, float* out, const float* input, const float* weight) {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  BASIN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
  BASIN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
  BASIN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
  BASIN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
  const auto i = [](std::int64_t v) { return static_cast<int>(v); };
  BASIN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, i(g.n), i(g.c), i(g.h), i(g.w)));
  BASIN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, i(g.k), i(g.c), i(g.r), i(g.s)));
  BASIN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, i(g.n), i(g.k), i(g.p), i(g.q)));
  // PLANTED FAULT: padding 0, 0; basin passes i(g.pad_h), i(g.pad_w).
  BASIN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, 0, 0, i(g.stride_h), i(g.stride_w), 1, 1,
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  BASIN_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH));
  // basin's own safeguard, copied too: cuDNN's output size must equal basin's. It passes here.
  int n = 0, k = 0, p = 0, q = 0;
  BASIN_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &n, &k, &p, &q));
  REQUIRE((n == g.n && k == g.k && p == g.p && q == g.q));

  const float one = 1.0f, zero = 0.0f;
  BASIN_CUDNN_CHECK(cudnnConvolutionForward(cuda::cudnn_handle(), &one, x, input, w, weight, conv,
                                            CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, y, out));
  BASIN_CUDNN_CHECK(cudnnDestroyConvolutionDescriptor(conv));
  BASIN_CUDNN_CHECK(cudnnDestroyTensorDescriptor(y));
  BASIN_CUDNN_CHECK(cudnnDestroyFilterDescriptor(w));
  BASIN_CUDNN_CHECK(cudnnDestroyTensorDescriptor(x));
}

}  // namespace

TEST_CASE("planted fault: swapped cuBLAS transpose flags are caught by GEMM parity", "[emulator][planted]") {
  // Square, so the swapped call is still a valid one; a is a transposed (column-major) view.
  const GemmShape shape{1, 5, 5, 5};
  const std::vector<float> a_storage = random_values(25, 1);
  const std::vector<float> b_storage = random_values(25, 2);
  const GemmOperand a_host{a_storage.data(), true, 5, 0};
  const GemmOperand b_host{b_storage.data(), false, 5, 0};
  std::vector<float> reference(25);
  basin::kernels::reference::gemm(basin::kFloat32, shape, reference.data(), a_host, b_host);

  const DeviceFloats a(a_storage), b(b_storage);
  const GemmOperand a_device{a.get(), true, 5, 0};
  const GemmOperand b_device{b.get(), false, 5, 0};

  const DeviceFloats real_out(nan_filled(25));
  cuda::gemm(basin::kFloat32, shape, real_out.get(), a_device, b_device);
  CHECK(max_abs_diff(real_out.read(), reference) < 1e-5);

  const DeviceFloats planted_out(nan_filled(25));
  gemm_with_swapped_flags(shape, planted_out.get(), a_device, b_device);
  CHECK(max_abs_diff(planted_out.read(), reference) > 1e-3);
}

TEST_CASE("planted fault: a wrong cuDNN padding is caught by convolution parity", "[emulator][planted]") {
  // 6x6 input, 3x3 filter, stride 3: padding 1 (the real one) and 0 both give a 2x2 output.
  const Conv2dShape shape{.n = 2, .c = 3, .h = 6, .w = 6, .k = 4, .r = 3, .s = 3, .p = 2, .q = 2,
                          .stride_h = 3, .stride_w = 3, .pad_h = 1, .pad_w = 1};
  const std::vector<float> input_values = random_values(2 * 3 * 6 * 6, 3);
  const std::vector<float> weight_values = random_values(4 * 3 * 3 * 3, 4);
  std::vector<float> reference(2 * 4 * 2 * 2);
  basin::kernels::reference::conv2d_forward(basin::kFloat32, shape, reference.data(), input_values.data(),
                                      weight_values.data(), nullptr);

  const DeviceFloats input(input_values), weight(weight_values);
  const DeviceFloats real_out(nan_filled(reference.size()));
  cuda::conv2d_forward(basin::kFloat32, shape, real_out.get(), input.get(), weight.get(), nullptr, false);
  CHECK(max_abs_diff(real_out.read(), reference) < 1e-5);

  const DeviceFloats planted_out(nan_filled(reference.size()));
  conv_forward_with_wrong_padding(shape, planted_out.get(), input.get(), weight.get());
  CHECK(max_abs_diff(planted_out.read(), reference) > 1e-3);
}
