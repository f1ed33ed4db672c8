// CPU engine elementwise kernels: the reference's scalar functions
// (kernels/reference/elementwise.cpp) as tight float32 loops over contiguous
// memory. The op is chosen once per call, outside the loop, so each loop body
// is one expression the compiler turns into SIMD code; parallel_for splits
// large tensors across threads. Strided views and float64 run the reference.
#include <cmath>

#include "kernels/elementwise.h"
#include "kernels/fast/parallel.h"

namespace basin::kernels::fast {

namespace {

bool engine_takes(std::initializer_list<const TensorArg*> args) {
  for (const TensorArg* arg : args) {
    if (arg->dtype != DType::Float32 || !arg->contiguous) return false;
  }
  return true;
}

// y[i] = f(x[i]) over [0, n).
template <class F>
void map(std::int64_t n, float* y, const float* x, F f) {
  parallel_for(n, [&](std::int64_t begin, std::int64_t end) {
#pragma omp simd
    for (std::int64_t i = begin; i < end; ++i) y[i] = f(x[i]);
  });
}

// y[i] = f(a[i], b[i]) over [0, n).
template <class F>
void map(std::int64_t n, float* y, const float* a, const float* b, F f) {
  parallel_for(n, [&](std::int64_t begin, std::int64_t end) {
#pragma omp simd
    for (std::int64_t i = begin; i < end; ++i) y[i] = f(a[i], b[i]);
  });
}

}  // namespace

void unary(UnaryOp op, const TensorArg& out, const TensorArg& in, ScalarArgs s) {
  if (!engine_takes({&out, &in})) {
    reference::unary(op, out, in, s);
    return;
  }
  const std::int64_t n = out.numel;
  float* y = out.ptr<float>();
  const float* x = in.ptr<float>();
  const float a = static_cast<float>(s.a);
  const float b = static_cast<float>(s.b);
  switch (op) {
    case UnaryOp::Neg: return map(n, y, x, [](float v) { return -v; });
    case UnaryOp::Abs: return map(n, y, x, [](float v) { return std::fabs(v); });
    case UnaryOp::Sign: return map(n, y, x, [](float v) { return static_cast<float>((v > 0.0f) - (v < 0.0f)); });
    // v != v is true for NaN only: NaN stays NaN, as in the reference and PyTorch.
    case UnaryOp::Relu: return map(n, y, x, [](float v) { return v > 0.0f || v != v ? v : 0.0f; });
    case UnaryOp::AddScalar: return map(n, y, x, [a](float v) { return v + a; });
    case UnaryOp::MulScalar: return map(n, y, x, [a](float v) { return v * a; });
    case UnaryOp::Sqrt: return map(n, y, x, [](float v) { return std::sqrt(v); });
    case UnaryOp::Clamp: return map(n, y, x, [a, b](float v) { return v != v ? v : std::fmin(std::fmax(v, a), b); });
    // The transcendental ones gain threads but no SIMD (no vector libm without -ffast-math).
    case UnaryOp::Exp: return map(n, y, x, [](float v) { return std::exp(v); });
    case UnaryOp::Log: return map(n, y, x, [](float v) { return std::log(v); });
    case UnaryOp::Sigmoid: return map(n, y, x, [](float v) { return 1.0f / (1.0f + std::exp(-v)); });
    case UnaryOp::Tanh: return map(n, y, x, [](float v) { return std::tanh(v); });
    case UnaryOp::Pow: break;  // its special cases live in the reference
  }
  reference::unary(op, out, in, s);
}

void binary(BinaryOp op, const TensorArg& out, const TensorArg& a, const TensorArg& b, ScalarArgs s) {
  if (!engine_takes({&out, &a, &b})) {
    reference::binary(op, out, a, b, s);
    return;
  }
  const std::int64_t n = out.numel;
  float* y = out.ptr<float>();
  const float* pa = a.ptr<float>();
  const float* pb = b.ptr<float>();
  const float lo = static_cast<float>(s.a);
  const float hi = static_cast<float>(s.b);
  switch (op) {
    case BinaryOp::Add: return map(n, y, pa, pb, [](float u, float v) { return u + v; });
    case BinaryOp::Sub: return map(n, y, pa, pb, [](float u, float v) { return u - v; });
    case BinaryOp::Mul: return map(n, y, pa, pb, [](float u, float v) { return u * v; });
    case BinaryOp::Div: return map(n, y, pa, pb, [](float u, float v) { return u / v; });
    case BinaryOp::AddScaled: return map(n, y, pa, pb, [lo](float u, float v) { return u + lo * v; });
    case BinaryOp::Equal: return map(n, y, pa, pb, [](float u, float v) { return u == v ? 1.0f : 0.0f; });
    case BinaryOp::ReluBackward: return map(n, y, pa, pb, [](float g, float v) { return v <= 0.0f ? 0.0f : g; });
    case BinaryOp::SigmoidBackward:
      return map(n, y, pa, pb, [](float g, float v) { return g * v * (1.0f - v); });
    case BinaryOp::TanhBackward: return map(n, y, pa, pb, [](float g, float v) { return g * (1.0f - v * v); });
    case BinaryOp::ClampBackward:
      return map(n, y, pa, pb, [lo, hi](float g, float v) { return v >= lo && v <= hi ? g : 0.0f; });
  }
  reference::binary(op, out, a, b, s);
}

}  // namespace basin::kernels::fast
