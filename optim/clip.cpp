// Gradient clipping by the global norm (see clip.h).
#include "optim/clip.h"

#include <cmath>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/elementwise.h"
#include "core/reduce.h"
#include "kernels/optim.h"

namespace basin::optim {

namespace {

void check_limits(double max_norm, double eps) {
  BASIN_CHECK(std::isfinite(max_norm) && max_norm > 0.0, "clip_grad_norm_: max_norm must be positive and finite, got ",
              max_norm);
  BASIN_CHECK(std::isfinite(eps) && eps >= 0.0, "clip_grad_norm_: eps must be non-negative and finite, got ", eps);
}

// grad *= min(1, coef) with coef a 0-dim float64 tensor on grad's device.
// clamp also maps a NaN factor to 0 (fmax ignores NaN), so one bad gradient
// cannot turn every other one into NaN.
void scale_in_place(const Tensor& grad, const Tensor& coef) {
  const Tensor factor = clamp(coef, 0.0, 1.0).to(grad.dtype());
  Tensor target = grad;
  target.copy_(mul(grad, factor));
}

}  // namespace

Tensor clip_grad_norm_(ParameterArena& arena, double max_norm, double eps) {
  check_limits(max_norm, eps);
  if (!arena.is_bound()) return clip_grad_norm_(arena.tensors(), max_norm, eps);
  NoGradGuard no_grad;
  const TensorOptions options = TensorOptions(kFloat64).device(arena.device());
  const Tensor scale = empty({kernels::kSamScaleSlots}, options);
  const Tensor partials = empty({kernels::kNormPartials}, options);
  // The SAM norm with rho = max_norm is exactly the clipping factor:
  // scale = max_norm / (n + eps), and 0 when n is not finite.
  kernels::SamArgs args;
  args.rho = max_norm;
  args.eps = eps;
  args.adaptive = false;
  const Tensor& grads = arena.grads();
  BASIN_RUN_KERNEL(arena.device(), sam_norm, arg(scale), arg(partials), kernels::TensorArg{}, arg(grads), args);
  scale_in_place(grads, scale.select(0, kernels::kSamScale));
  return scale.select(0, kernels::kSamNorm);
}

Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double eps) {
  check_limits(max_norm, eps);
  std::vector<Tensor> grads;
  for (std::size_t i = 0; i < params.size(); ++i) {
    BASIN_CHECK(params[i].defined(), "clip_grad_norm_: parameter ", i, " is undefined");
    const Tensor g = params[i].grad();
    if (!g.defined()) continue;
    BASIN_CHECK(g.device() == params[i].device(), "clip_grad_norm_: the gradient of parameter ", i, " is on ",
                g.device().str(), " but the parameter is on ", params[i].device().str());
    BASIN_CHECK(grads.empty() || g.device() == grads[0].device(), "clip_grad_norm_: gradients are on different "
                "devices (", grads.empty() ? "" : grads[0].device().str(), " and ", g.device().str(), ")");
    grads.push_back(g);
  }
  const Device device = params.empty() ? Device::cpu() : params[0].device();
  if (grads.empty()) return zeros({}, TensorOptions(kFloat64).device(device));

  NoGradGuard no_grad;
  Tensor total;
  for (const Tensor& g : grads) {
    const Tensor wide = g.detach().to(kFloat64);  // squares of float32 values are summed in double
    const Tensor squares = sum(mul(wide, wide));
    total = total.defined() ? add(total, squares) : squares;
  }
  const Tensor norm = sqrt(total);
  const Tensor coef = div(full_like(norm, max_norm), add(norm, eps));
  for (const Tensor& g : grads) scale_in_place(g, coef);
  return norm;
}

}  // namespace basin::optim
