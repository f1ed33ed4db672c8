// Elementwise kernels: out[i] = f(in[i]) and out[i] = f(a[i], b[i]).
//
// Contract (checked by core/elementwise.cpp, not here): out, in, a and b have
// the same ndim and sizes (broadcast operands arrive expanded, with stride 0),
// any strides, and the same floating dtype. out may alias an input exactly
// (in-place ops), never partially.
#pragma once

#include "kernels/tensor_arg.h"

namespace basin::kernels {

enum class UnaryOp {
  Neg,        // -x
  Exp,        // e^x
  Log,        // ln x
  Sqrt,       // sqrt x
  Abs,        // |x|
  Sign,       // -1, 0 or 1
  Relu,       // max(x, 0); NaN stays NaN
  Sigmoid,    // 1 / (1 + e^-x)
  Tanh,       // tanh x
  Pow,        // x^s.a (x^0.5 and x^-0.5 as sqrt and 1 / sqrt, as PyTorch)
  Clamp,      // min(max(x, s.a), s.b); NaN stays NaN
  AddScalar,  // x + s.a
  MulScalar,  // x * s.a
};

enum class BinaryOp {
  Add,              // a + b
  Sub,              // a - b
  Mul,              // a * b
  Div,              // a / b
  AddScaled,        // a + s.a * b
  Equal,            // 1 where a == b, else 0
  ReluBackward,     // b <= 0 ? 0 : a           a = grad, b = relu input (NaN passes a)
  SigmoidBackward,  // a * b * (1 - b)         a = grad, b = sigmoid output
  TanhBackward,     // a * (1 - b * b)         a = grad, b = tanh output
  ClampBackward,    // a * (s.a <= b <= s.b)   a = grad, b = clamp input
};

// Scalar operands of the ops above (exponent, bounds, factor).
struct ScalarArgs {
  double a = 0.0;
  double b = 0.0;
};

namespace reference {
void unary(UnaryOp op, const TensorArg& out, const TensorArg& in, ScalarArgs s);
void binary(BinaryOp op, const TensorArg& out, const TensorArg& a, const TensorArg& b, ScalarArgs s);
}  // namespace reference

// The CPU engine: contiguous float32 in SIMD loops across threads; the rest
// (strided views, float64, Pow) on the reference.
namespace fast {
void unary(UnaryOp op, const TensorArg& out, const TensorArg& in, ScalarArgs s);
void binary(BinaryOp op, const TensorArg& out, const TensorArg& a, const TensorArg& b, ScalarArgs s);
}  // namespace fast

namespace cuda {
void unary(UnaryOp op, const TensorArg& out, const TensorArg& in, ScalarArgs s);
void binary(BinaryOp op, const TensorArg& out, const TensorArg& a, const TensorArg& b, ScalarArgs s);
}  // namespace cuda

}  // namespace basin::kernels
