// Elementwise ops: check, broadcast, run the kernel, record the backward.
#include "core/elementwise.h"
#include "core/activation_pattern.h"
#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/reduce.h"
#include "kernels/elementwise.h"

namespace basin {

using kernels::BinaryOp;
using kernels::ScalarArgs;
using kernels::UnaryOp;

namespace {

Tensor run_unary(const char* op_name, UnaryOp op, const Tensor& x, ScalarArgs s = {}) {
  check_same_floating_dtype(op_name, {&x});
  Tensor out = empty_like(x);
  BASIN_RUN_KERNEL(x.device(), unary, op, arg(out), arg(x), s);
  return out;
}

// out = op(a, b) after broadcasting both to their common shape.
Tensor run_binary(const char* op_name, BinaryOp op, const Tensor& a, const Tensor& b, ScalarArgs s = {}) {
  check_same_device(op_name, {&a, &b});
  check_same_floating_dtype(op_name, {&a, &b});
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), op_name);
  // Detached: the broadcast is bookkeeping for the kernel, not part of the graph.
  const Tensor a_wide = a.detach().expand(shape);
  const Tensor b_wide = b.detach().expand(shape);
  Tensor out = empty(shape, TensorOptions(a.dtype()).device(a.device()));
  BASIN_RUN_KERNEL(a.device(), binary, op, arg(out), arg(a_wide), arg(b_wide), s);
  return out;
}

}  // namespace

// ---------------------------------------------------------------- tensor (op) tensor

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = run_binary("add", BinaryOp::Add, a, b);
  return record("add", out, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const GradNeeds& needs) {
    return TensorList{needs[0] ? sum_to(g, sa) : Tensor(), needs[1] ? sum_to(g, sb) : Tensor()};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = run_binary("sub", BinaryOp::Sub, a, b);
  return record("sub", out, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const GradNeeds& needs) {
    return TensorList{needs[0] ? sum_to(g, sa) : Tensor(), needs[1] ? sum_to(neg(g), sb) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = run_binary("mul", BinaryOp::Mul, a, b);
  return record("mul", out, {a, b}, [a_ = a.detach(), b_ = b.detach()](const Tensor& g, const GradNeeds& needs) {
    return TensorList{needs[0] ? sum_to(mul(g, b_), a_.shape()) : Tensor(),
                      needs[1] ? sum_to(mul(g, a_), b_.shape()) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = run_binary("div", BinaryOp::Div, a, b);
  return record("div", out, {a, b}, [a_ = a.detach(), b_ = b.detach()](const Tensor& g, const GradNeeds& needs) {
    // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
    return TensorList{needs[0] ? sum_to(div(g, b_), a_.shape()) : Tensor(),
                      needs[1] ? sum_to(neg(div(mul(g, a_), mul(b_, b_))), b_.shape()) : Tensor()};
  });
}

// ---------------------------------------------------------------- tensor (op) scalar

Tensor add(const Tensor& a, double b) {
  Tensor out = run_unary("add", UnaryOp::AddScalar, a, {b});
  return record("add_scalar", out, {a}, [](const Tensor& g, const GradNeeds&) { return TensorList{g}; });
}

Tensor sub(const Tensor& a, double b) { return add(a, -b); }

Tensor mul(const Tensor& a, double b) {
  Tensor out = run_unary("mul", UnaryOp::MulScalar, a, {b});
  return record("mul_scalar", out, {a}, [b](const Tensor& g, const GradNeeds&) { return TensorList{mul(g, b)}; });
}

Tensor div(const Tensor& a, double b) { return mul(a, 1.0 / b); }

// ---------------------------------------------------------------- unary

Tensor neg(const Tensor& x) {
  Tensor out = run_unary("neg", UnaryOp::Neg, x);
  return record("neg", out, {x}, [](const Tensor& g, const GradNeeds&) { return TensorList{neg(g)}; });
}

Tensor exp(const Tensor& x) {
  Tensor out = run_unary("exp", UnaryOp::Exp, x);
  return record("exp", out, {x}, [y = out.detach()](const Tensor& g, const GradNeeds&) {
    return TensorList{mul(g, y)};
  });
}

Tensor log(const Tensor& x) {
  Tensor out = run_unary("log", UnaryOp::Log, x);
  return record("log", out, {x}, [x_ = x.detach()](const Tensor& g, const GradNeeds&) {
    return TensorList{div(g, x_)};
  });
}

Tensor sqrt(const Tensor& x) {
  Tensor out = run_unary("sqrt", UnaryOp::Sqrt, x);
  return record("sqrt", out, {x}, [y = out.detach()](const Tensor& g, const GradNeeds&) {
    return TensorList{div(mul(g, 0.5), y)};
  });
}

Tensor pow(const Tensor& x, double exponent) {
  Tensor out = run_unary("pow", UnaryOp::Pow, x, {exponent});
  return record("pow", out, {x}, [x_ = x.detach(), exponent](const Tensor& g, const GradNeeds&) {
    return TensorList{mul(g, mul(pow(x_, exponent - 1.0), exponent))};
  });
}

Tensor abs(const Tensor& x) {
  Tensor out = run_unary("abs", UnaryOp::Abs, x);
  return record("abs", out, {x}, [x_ = x.detach()](const Tensor& g, const GradNeeds&) {
    return TensorList{mul(g, sign(x_))};
  });
}

Tensor sign(const Tensor& x) { return run_unary("sign", UnaryOp::Sign, x.detach()); }

Tensor eq(const Tensor& a, const Tensor& b) {
  // Integers compare exactly as float64 up to 2^53: labels and indices always do.
  const DType dtype = is_floating(a.dtype()) ? a.dtype() : kFloat64;
  return run_binary("eq", BinaryOp::Equal, a.detach().to(dtype), b.detach().to(dtype));
}

Tensor relu(const Tensor& x) {
  // A replayed activation pattern (core/activation_pattern.h) fixes which
  // inputs pass: the op is then the linear x * mask.
  if (detail::pattern_active() && detail::pattern_mode() == PatternMode::Replay) {
    return mul(x, detail::pattern_piece("relu", x.shape(), Tensor()));
  }
  Tensor out = run_unary("relu", UnaryOp::Relu, x);
  if (detail::pattern_active()) detail::pattern_piece("relu", x.shape(), sign(out));  // 1 where x > 0, else 0
  return record("relu", out, {x}, [x_ = x.detach()](const Tensor& g, const GradNeeds&) {
    return TensorList{run_binary("relu_backward", BinaryOp::ReluBackward, g, x_)};
  });
}

Tensor sigmoid(const Tensor& x) {
  Tensor out = run_unary("sigmoid", UnaryOp::Sigmoid, x);
  return record("sigmoid", out, {x}, [y = out.detach()](const Tensor& g, const GradNeeds&) {
    return TensorList{run_binary("sigmoid_backward", BinaryOp::SigmoidBackward, g, y)};
  });
}

Tensor tanh(const Tensor& x) {
  Tensor out = run_unary("tanh", UnaryOp::Tanh, x);
  return record("tanh", out, {x}, [y = out.detach()](const Tensor& g, const GradNeeds&) {
    return TensorList{run_binary("tanh_backward", BinaryOp::TanhBackward, g, y)};
  });
}

Tensor clamp(const Tensor& x, double min, double max) {
  BASIN_CHECK(min <= max, "clamp: min ", min, " is greater than max ", max);
  Tensor out = run_unary("clamp", UnaryOp::Clamp, x, {min, max});
  return record("clamp", out, {x}, [x_ = x.detach(), min, max](const Tensor& g, const GradNeeds&) {
    return TensorList{run_binary("clamp_backward", BinaryOp::ClampBackward, g, x_, {min, max})};
  });
}

// ---------------------------------------------------------------- in place

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_same_device("add_", {this, &other});
  check_same_floating_dtype("add_", {this, &other});
  BASIN_CHECK(!(requires_grad() && grad_mode_enabled()),
              "add_: in-place update of a tensor that requires grad; wrap it in NoGradGuard");
  const Tensor wide = other.detach().expand(shape());
  BASIN_RUN_KERNEL(device(), binary, BinaryOp::AddScaled, arg(*this), arg(*this), arg(wide), {alpha});
  return *this;
}

Tensor& Tensor::mul_(double factor) {
  check_same_floating_dtype("mul_", {this});
  BASIN_CHECK(!(requires_grad() && grad_mode_enabled()),
              "mul_: in-place update of a tensor that requires grad; wrap it in NoGradGuard");
  BASIN_RUN_KERNEL(device(), unary, UnaryOp::MulScalar, arg(*this), arg(*this), {factor});
  return *this;
}

}  // namespace basin
