// CUDA elementwise kernels: one thread per element in a grid-stride loop.
//
// The op is a runtime argument: every thread of a launch takes the same
// branch, so the switch costs no divergence, and these kernels are bound by
// memory traffic, not by instruction count. Contiguous tensors skip the
// per-element index arithmetic of the strided path.
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/strided.cuh"
#include "kernels/dtype_dispatch.h"
#include "kernels/elementwise.h"

namespace basin::kernels::cuda {

namespace {

constexpr int kBlockSize = 256;

template <class T>
__device__ T apply_unary(UnaryOp op, T x, ScalarArgs s) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return exp(x);
    case UnaryOp::Log: return log(x);
    case UnaryOp::Sqrt: return sqrt(x);
    case UnaryOp::Abs: return fabs(x);
    case UnaryOp::Sign: return static_cast<T>((x > T(0)) - (x < T(0)));
    case UnaryOp::Relu: return x > T(0) || isnan(x) ? x : T(0);  // NaN stays NaN, as in PyTorch
    case UnaryOp::Sigmoid: return T(1) / (T(1) + exp(-x));
    case UnaryOp::Tanh: return tanh(x);
    case UnaryOp::Pow:  // PyTorch takes x^0.5 and x^-0.5 as sqrt and 1 / sqrt: NaN, not inf, at -inf
      return s.a == 0.5 ? sqrt(x) : s.a == -0.5 ? T(1) / sqrt(x) : pow(x, static_cast<T>(s.a));
    case UnaryOp::Clamp:  // fmin and fmax would drop a NaN; PyTorch keeps it
      return isnan(x) ? x : fmin(fmax(x, static_cast<T>(s.a)), static_cast<T>(s.b));
    case UnaryOp::AddScalar: return x + static_cast<T>(s.a);
    case UnaryOp::MulScalar: return x * static_cast<T>(s.a);
  }
  return x;
}

template <class T>
__device__ T apply_binary(BinaryOp op, T a, T b, ScalarArgs s) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::AddScaled: return a + static_cast<T>(s.a) * b;
    case BinaryOp::Equal: return a == b ? T(1) : T(0);
    case BinaryOp::ReluBackward: return b <= T(0) ? T(0) : a;  // a NaN input passes the gradient, as in PyTorch
    case BinaryOp::SigmoidBackward: return a * b * (T(1) - b);
    case BinaryOp::TanhBackward: return a * (T(1) - b * b);
    case BinaryOp::ClampBackward: return (b >= static_cast<T>(s.a) && b <= static_cast<T>(s.b)) ? a : T(0);
  }
  return a;
}

template <class T>
__global__ void unary_kernel(UnaryOp op, TensorArg out, TensorArg in, ScalarArgs s) {
  T* y = out.ptr<T>();
  const T* x = in.ptr<T>();
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < out.numel; i += stride) {
    y[strided_offset(out, i)] = apply_unary(op, x[strided_offset(in, i)], s);
  }
}

template <class T>
__global__ void binary_kernel(BinaryOp op, TensorArg out, TensorArg a, TensorArg b, ScalarArgs s) {
  T* y = out.ptr<T>();
  const T* pa = a.ptr<T>();
  const T* pb = b.ptr<T>();
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < out.numel; i += stride) {
    y[strided_offset(out, i)] = apply_binary(op, pa[strided_offset(a, i)], pb[strided_offset(b, i)], s);
  }
}

}  // namespace

void unary(UnaryOp op, const TensorArg& out, const TensorArg& in, ScalarArgs s) {
  if (out.numel == 0) return;
  BASIN_DISPATCH_FLOATING(out.dtype, "unary", T, [&] {
    launch(unary_kernel<T>, grid_for(out.numel, kBlockSize), kBlockSize, op, out, in, s);
  });
}

void binary(BinaryOp op, const TensorArg& out, const TensorArg& a, const TensorArg& b, ScalarArgs s) {
  if (out.numel == 0) return;
  BASIN_DISPATCH_FLOATING(out.dtype, "binary", T, [&] {
    launch(binary_kernel<T>, grid_for(out.numel, kBlockSize), kBlockSize, op, out, a, b, s);
  });
}

}  // namespace basin::kernels::cuda
