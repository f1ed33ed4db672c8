// CPU reference for the elementwise kernels: one scalar function per op,
// applied along a strided walk. Written for clarity; the CUDA file is the fast one.
#include <cmath>

#include "kernels/reference/strided.h"
#include "kernels/dtype_dispatch.h"
#include "kernels/elementwise.h"

namespace basin::kernels::reference {

namespace {

template <class T>
T apply_unary(UnaryOp op, T x, ScalarArgs s) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Abs: return std::abs(x);
    case UnaryOp::Sign: return static_cast<T>((x > T(0)) - (x < T(0)));
    case UnaryOp::Relu: return x > T(0) || std::isnan(x) ? x : T(0);  // NaN stays NaN, as in PyTorch
    case UnaryOp::Sigmoid: return T(1) / (T(1) + std::exp(-x));
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Pow:  // PyTorch takes x^0.5 and x^-0.5 as sqrt and 1 / sqrt: NaN, not inf, at -inf
      return s.a == 0.5 ? std::sqrt(x) : s.a == -0.5 ? T(1) / std::sqrt(x) : std::pow(x, static_cast<T>(s.a));
    case UnaryOp::Clamp:  // fmin and fmax would drop a NaN; PyTorch keeps it
      return std::isnan(x) ? x : std::fmin(std::fmax(x, static_cast<T>(s.a)), static_cast<T>(s.b));
    case UnaryOp::AddScalar: return x + static_cast<T>(s.a);
    case UnaryOp::MulScalar: return x * static_cast<T>(s.a);
  }
  return x;
}

template <class T>
T apply_binary(BinaryOp op, T a, T b, ScalarArgs s) {
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

}  // namespace

void unary(UnaryOp op, const TensorArg& out, const TensorArg& in, ScalarArgs s) {
  BASIN_DISPATCH_FLOATING(out.dtype, "unary", T, [&] {
    T* y = out.ptr<T>();
    const T* x = in.ptr<T>();
    for_each_offset<2>({&out, &in}, [&](const auto& at) { y[at[0]] = apply_unary(op, x[at[1]], s); });
  });
}

void binary(BinaryOp op, const TensorArg& out, const TensorArg& a, const TensorArg& b, ScalarArgs s) {
  BASIN_DISPATCH_FLOATING(out.dtype, "binary", T, [&] {
    T* y = out.ptr<T>();
    const T* pa = a.ptr<T>();
    const T* pb = b.ptr<T>();
    for_each_offset<3>({&out, &a, &b},
                       [&](const auto& at) { y[at[0]] = apply_binary(op, pa[at[1]], pb[at[2]], s); });
  });
}

}  // namespace basin::kernels::reference
