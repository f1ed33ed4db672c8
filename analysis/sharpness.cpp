#include "analysis/sharpness.h"

#include <cmath>
#include <sstream>

#include "core/autograd.h"
#include "core/elementwise.h"

namespace basin::analysis {

namespace {

void check_options(const SharpnessOptions& o) {
  BASIN_CHECK(std::isfinite(o.rho()) && o.rho() > 0.0, "sharpness: rho must be positive, got ", o.rho());
  BASIN_CHECK(o.ascent_steps() >= 1, "sharpness: ascent_steps must be at least 1, got ", o.ascent_steps());
  BASIN_CHECK(std::isfinite(o.eta()) && o.eta() >= 0.0, "sharpness: eta must be finite and >= 0, got ", o.eta());
  BASIN_CHECK(std::isfinite(o.eps()) && o.eps() >= 0.0, "sharpness: eps must be finite and >= 0, got ", o.eps());
}

// T of ASAM at the weights w, as optim::SAM uses it: |w| + eta on the
// "weight" tensors (the arena's first run) and 1 on the rest, or |w| on
// every tensor for AsamScope::AllTensors.
Tensor asam_scale(const Objective& objective, const Tensor& w, const SharpnessOptions& options) {
  NoGradGuard no_grad;
  Tensor t = objective.new_vector();
  if (options.scope() == optim::AsamScope::AllTensors) return t.copy_(abs(w));
  const std::int64_t end = objective.arena().adaptive_end();
  const std::int64_t all = objective.arena().padded_numel();
  if (end > 0) t.slice(0, 0, end).copy_(add(abs(w.slice(0, 0, end)), options.eta()));
  if (end < all) t.slice(0, end, all).fill_(1.0);
  return t;
}

}  // namespace

SharpnessEstimate sharpness(const Objective& objective, const SharpnessOptions& options, const ProgressFn& progress) {
  check_options(options);
  const Tensor center = objective.copy_of_weights();
  const Tensor t = options.adaptive() ? asam_scale(objective, center, options) : Tensor();
  Tensor w = objective.weights();
  Tensor u = objective.new_vector();  // e = T u, the constraint is ||u|| <= rho
  Tensor g = objective.new_vector();
  SharpnessEstimate result;
  const std::int64_t steps = options.ascent_steps();

  // Moves the model to w0 + T u.
  const auto move_to_perturbed = [&] {
    NoGradGuard no_grad;
    w.copy_(center).add_(t.defined() ? mul(t, u) : u);
  };
  // Each gradient also gives the loss at its point: the first is L(w), each
  // later one L(w + e) of the step before. A last evaluation gives the
  // loss of the last step.
  result.loss = objective.gradient(g);
  for (std::int64_t k = 1; k <= steps; ++k) {
    {
      NoGradGuard no_grad;
      const Tensor direction = t.defined() ? mul(t, g) : g;  // the gradient with respect to u
      const double length = norm(direction);
      u.add_(direction, options.rho() / (length + options.eps()));
      const double radius = norm(u);
      if (radius > options.rho()) u.mul_(options.rho() / radius);
    }
    move_to_perturbed();
    const double perturbed = k < steps ? objective.gradient(g) : objective.evaluate().loss;
    const double value = perturbed - result.loss;
    result.step_sharpness.push_back(value);
    if (k == 1 || value > result.sharpness) {
      result.sharpness = value;
      result.perturbed_loss = perturbed;
      result.best_step = k;
      result.scaled_norm = norm(u);
      NoGradGuard no_grad;
      result.perturbation_norm = t.defined() ? norm(mul(t, u)) : result.scaled_norm;
    }
    if (progress) {
      std::ostringstream status;
      status.precision(6);
      status << (options.adaptive() ? "ASAM" : "SAM") << " sharpness " << result.sharpness;
      progress(k, steps, status.str());
    }
  }
  objective.set_weights(center);
  return result;
}

MSharpnessEstimate m_sharpness(const Objective& objective, std::int64_t m, const SharpnessOptions& options,
                               const ProgressFn& progress) {
  check_options(options);
  BASIN_CHECK(m >= 1 && m <= objective.examples(), "m-sharpness: m must be in [1, ", objective.examples(),
              "] (the number of examples), got ", m);
  MSharpnessEstimate result;
  result.m = m;
  const std::int64_t groups = objective.examples() / m;
  for (std::int64_t i = 0; i < groups; ++i) {
    result.groups.push_back(sharpness(objective.subset(i * m, m), options).sharpness);
    if (progress) {
      std::ostringstream status;
      status.precision(6);
      status << "m-sharpness (m = " << m << ") " << sample_mean(result.groups).mean;
      progress(i + 1, groups, status.str());
    }
  }
  const SampleMean stats = sample_mean(result.groups);
  result.mean = stats.mean;
  result.standard_error = stats.standard_error;
  return result;
}

}  // namespace basin::analysis
