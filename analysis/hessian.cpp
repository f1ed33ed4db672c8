#include "analysis/hessian.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "core/autograd.h"
#include "core/random.h"

namespace basin::analysis {

namespace {

// A standard normal vector of the arena's layout from the default generator;
// the padding stays zero.
Tensor gaussian_vector(const Objective& objective) {
  NoGradGuard no_grad;
  Tensor v = objective.new_vector();
  const TensorOptions options = TensorOptions(objective.dtype()).device(objective.device());
  for (std::size_t i = 0; i < objective.arena().size(); ++i) {
    Tensor part = objective.view(v, i);
    part.copy_(randn(part.shape(), options));
  }
  return v;
}

// Independent +-1 entries drawn on the host, 64 per generator value, so that
// every device gets the same vector from the same seed.
Tensor rademacher_vector(const Objective& objective, Generator& generator) {
  NoGradGuard no_grad;
  Tensor z = objective.new_vector();
  for (std::size_t i = 0; i < objective.arena().size(); ++i) {
    Tensor part = objective.view(z, i);
    std::vector<double> signs(static_cast<std::size_t>(part.numel()));
    std::uint64_t bits = 0;
    for (std::size_t j = 0; j < signs.size(); ++j) {
      if (j % 64 == 0) bits = generator.next_u64();
      signs[j] = (bits >> (j % 64)) & 1 ? 1.0 : -1.0;
    }
    part.copy_(from_vector(signs, part.shape()));
  }
  return z;
}

// v minus its components along each (unit) vector of `basis`.
void orthogonalize(Tensor& v, const std::vector<Eigenpair>& basis) {
  NoGradGuard no_grad;
  for (const Eigenpair& pair : basis) v.add_(pair.vector, -dot(v, pair.vector));
}

std::string format_status(const char* label, double value, double change) {
  std::ostringstream out;
  out.precision(6);
  out << label << " " << value;
  if (std::isfinite(change)) {
    out.precision(2);
    out << std::scientific << ", change " << change;
  }
  return out.str();
}

}  // namespace

HessianVectorProduct::HessianVectorProduct(const Objective& objective, const HessianOptions& options)
    : objective_(objective), options_(options) {
  BASIN_CHECK(std::isfinite(options.step()) && options.step() > 0.0,
              "Hessian-vector products: the finite-difference step must be positive, got ", options.step());
  center_ = objective_.copy_of_weights();
  const double scale = norm(center_);
  BASIN_CHECK(std::isfinite(scale), "Hessian-vector products: the weights hold a NaN or an infinity");
  h_ = options.step() * std::max(1.0, scale);
  if (options.freeze_pattern()) {
    ActivationPatternScope record(pattern_, PatternMode::Record);
    objective_.evaluate();
  }
}

Tensor HessianVectorProduct::operator()(const Tensor& v) {
  objective_.check_vector(v, "Hessian-vector product");
  Tensor hv = objective_.new_vector();
  const double length = norm(v);
  BASIN_CHECK(std::isfinite(length), "Hessian-vector product: the vector holds a NaN or an infinity");
  if (length == 0.0) return hv;
  // w +- h u with u = v / ||v||: the step has length h whatever v's size.
  const double along = h_ / length;
  Tensor plus = objective_.new_vector(), minus = objective_.new_vector();
  Tensor w = objective_.weights();
  const auto gradient_at = [&](double t, Tensor& out) {
    {
      NoGradGuard no_grad;
      w.copy_(center_).add_(v, t);
    }
    if (!options_.freeze_pattern()) {
      objective_.gradient(out);
      return;
    }
    ActivationPatternScope replay(pattern_, PatternMode::Replay);
    objective_.gradient(out);
    replay.finish();
  };
  gradient_at(along, plus);
  gradient_at(-along, minus);
  NoGradGuard no_grad;
  w.copy_(center_);
  // (g+ - g-) / (2h) * ||v|| = (g+ - g-) / (2 * along)
  hv.copy_(plus).add_(minus, -1.0).mul_(0.5 / along);
  ++products_;
  return hv;
}

std::vector<Eigenpair> top_eigenpairs(HessianVectorProduct& hvp, const EigenOptions& options,
                                      const ProgressFn& progress) {
  const Objective& objective = hvp.objective();
  BASIN_CHECK(options.top_k() >= 1, "top eigenvalues: top_k must be at least 1, got ", options.top_k());
  BASIN_CHECK(options.top_k() <= objective.parameter_count(), "top eigenvalues: top_k ", options.top_k(),
              " exceeds the ", objective.parameter_count(), " parameters");
  BASIN_CHECK(options.max_iterations() >= 1, "top eigenvalues: max_iterations must be at least 1, got ",
              options.max_iterations());
  BASIN_CHECK(std::isfinite(options.tolerance()) && options.tolerance() >= 0.0,
              "top eigenvalues: the tolerance must be non-negative, got ", options.tolerance());
  const std::int64_t total = options.top_k() * options.max_iterations();
  std::int64_t done = 0;
  std::vector<Eigenpair> found;
  SeededDraws draws(options.seed());
  for (std::int64_t k = 0; k < options.top_k(); ++k) {
    Eigenpair pair;
    Tensor v = gaussian_vector(objective);
    orthogonalize(v, found);
    v.mul_(1.0 / norm(v));
    double previous = std::numeric_limits<double>::quiet_NaN();
    for (std::int64_t it = 1; it <= options.max_iterations(); ++it) {
      Tensor hv = hvp(v);
      const double value = dot(v, hv);  // the Rayleigh quotient of the unit v
      // Deflation: the iterate stays in the complement of the vectors found,
      // where the next eigenvalue is the largest.
      orthogonalize(hv, found);
      const double length = norm(hv);
      pair.value = value;
      pair.iterations = it;
      pair.history.push_back(value);
      pair.relative_change = std::abs(value - previous) / std::abs(previous);
      if (length == 0.0 || !std::isfinite(length)) {
        // H v = 0: v is an eigenvector of eigenvalue 0 (or the products broke down).
        pair.converged = length == 0.0;
        pair.vector = v;
        break;
      }
      {
        NoGradGuard no_grad;
        v = hv.mul_(1.0 / length);
      }
      pair.vector = v;  // H v / ||H v||: one iteration further along than the v that gave `value`
      ++done;
      if (progress) {
        progress(done, total, format_status(("lambda_" + std::to_string(k + 1)).c_str(), value, pair.relative_change));
      }
      if (it > 1 && pair.relative_change <= options.tolerance()) {
        pair.converged = true;
        break;
      }
      previous = value;
    }
    // Later runs keep to the complement of this vector.
    found.push_back(pair);
    done = (k + 1) * options.max_iterations();
  }
  return found;
}

TraceEstimate hutchinson_trace(HessianVectorProduct& hvp, const TraceOptions& options, const ProgressFn& progress) {
  BASIN_CHECK(options.samples() >= 1, "Hessian trace: samples must be at least 1, got ", options.samples());
  const Objective& objective = hvp.objective();
  Generator generator(options.seed());
  TraceEstimate estimate;
  for (std::int64_t s = 1; s <= options.samples(); ++s) {
    const Tensor z = rademacher_vector(objective, generator);
    estimate.samples.push_back(dot(z, hvp(z)));
    if (progress) progress(s, options.samples(), format_status("trace", sample_mean(estimate.samples).mean, std::nan("")));
  }
  const SampleMean stats = sample_mean(estimate.samples);
  estimate.mean = stats.mean;
  estimate.standard_error = stats.standard_error;
  return estimate;
}

}  // namespace basin::analysis
