#include "support/gradcheck.h"

#include <cmath>
#include <sstream>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/random.h"
#include "core/reduce.h"

namespace basin::testing {

GradcheckResult gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& options) {
  GradcheckResult result;
  std::vector<Tensor> leaves;
  for (const Tensor& input : inputs) {
    BASIN_CHECK(input.dtype() == kFloat64 && input.device().is_cpu(), "gradcheck: inputs must be float64 on the CPU");
    Tensor leaf = input.detach().clone();
    leaf.requires_grad_(true);
    leaves.push_back(leaf);
  }

  // A fixed random weighting of the outputs turns any fn into a scalar loss.
  Generator saved = default_generator();
  manual_seed(12345);
  const Tensor first_output = fn(leaves);
  const Tensor weights = randn(first_output.shape(), kFloat64);
  default_generator() = saved;
  auto loss_of = [&](const std::vector<Tensor>& xs) { return sum(mul(fn(xs), weights)).item(); };

  sum(mul(first_output, weights)).backward();

  std::ostringstream report;
  for (std::size_t t = 0; t < leaves.size(); ++t) {
    const Tensor analytic = leaves[t].grad().defined() ? leaves[t].grad() : zeros_like(leaves[t]);
    const std::vector<double> analytic_values = analytic.to_vector<double>();
    Tensor probe = leaves[t].detach();  // perturbed in place; shares storage with the leaf
    double* x = probe.contiguous().data<double>();
    BASIN_CHECK(probe.is_contiguous(), "gradcheck: inputs must be contiguous");
    NoGradGuard no_grad;
    for (std::int64_t i = 0; i < probe.numel(); ++i) {
      const double original = x[i];
      const double center = loss_of(leaves);
      x[i] = original + options.step;
      const double plus = loss_of(leaves);
      x[i] = original - options.step;
      const double minus = loss_of(leaves);
      x[i] = original;

      const double right = (plus - center) / options.step;
      const double left = (center - minus) / options.step;
      if (std::abs(right - left) > options.kink_tolerance * std::max({1.0, std::abs(right), std::abs(left)})) {
        ++result.kinks;
        continue;
      }
      const double numeric = (plus - minus) / (2.0 * options.step);
      const double got = analytic_values[static_cast<std::size_t>(i)];
      ++result.compared;
      if (std::abs(got - numeric) > options.atol + options.rtol * std::abs(numeric)) {
        if (result.ok || report.tellp() < 2000) {
          report << "input " << t << " element " << i << ": backward " << got << ", finite difference " << numeric
                 << "\n";
        }
        result.ok = false;
      }
    }
  }
  result.report = report.str();
  return result;
}

}  // namespace basin::testing
