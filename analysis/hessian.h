// Second-order measurements: Hessian-vector products, the top eigenvalues of
// the Hessian and its trace.
//
// basin's autograd is first order (DESIGN.md, "Autograd"), so a
// Hessian-vector product is a central difference of two gradients:
//
//   H v  ~  (g(w + h u) - g(w - h u)) / (2 h) * ||v||,    u = v / ||v||,
//
// with the step h = step * max(1, ||w||). A network with ReLUs or max
// pooling is piecewise: the gradient jumps where an input of a ReLU changes
// sign or a window changes its winner, and a difference that straddles such a
// boundary sees the jump divided by 2h. Among the millions of ReLU inputs of a
// ResNet on a few hundred images some boundary is always near, and one
// crossing swamps the product. So both gradients are taken with the
// activation pattern of w held fixed (core/activation_pattern.h): recorded
// once by a forward pass at w, replayed at w +- h u. The difference is then
// that of a smooth function, the one PyTorch's double backward differentiates:
// exact for a quadratic, with an O(h^2) error from third derivatives
// (BatchNorm, softmax) and a rounding error of about eps * ||g|| / h
// otherwise. In float64 the default step keeps both near 1e-8 of the product
// (docs/sharpness.md has the measurements); float32 is too coarse for this.
#pragma once

#include <cstdint>
#include <vector>

#include "analysis/objective.h"
#include "core/activation_pattern.h"

namespace basin::analysis {

struct HessianOptions {
  // h = step * max(1, ||w||): relative to the weights' scale.
  BASIN_OPTION(double, step) = 1e-5;
  // Hold the activation pattern of w (above). Off, the differences see every
  // ReLU and max-pool boundary they cross: only for studying that effect.
  BASIN_OPTION(bool, freeze_pattern) = true;
};

// H v at the objective's current weights; each product costs two gradients
// (and making the operator one forward pass, to record the pattern, whose
// pieces it keeps: about as much memory as the activations of all the
// examples). The weights are put back exactly (from a copy) after each product.
class HessianVectorProduct {
 public:
  explicit HessianVectorProduct(const Objective& objective, const HessianOptions& options = {});

  // H v for a vector of the objective's arena layout (v = 0 gives 0 without any gradient).
  Tensor operator()(const Tensor& v);

  const Objective& objective() const { return objective_; }
  double step_length() const { return h_; }  // h in weight space
  std::int64_t products() const { return products_; }

 private:
  Objective objective_;
  HessianOptions options_;
  Tensor center_;  // the weights the products are taken at
  ActivationPattern pattern_;  // of the model at center_, over all batches in order
  double h_ = 0;
  std::int64_t products_ = 0;
};

struct EigenOptions {
  BASIN_OPTION(std::int64_t, top_k) = 1;
  // Per eigenvalue.
  BASIN_OPTION(std::int64_t, max_iterations) = 100;
  // Stop when |lambda_t - lambda_{t-1}| <= tolerance * |lambda_{t-1}| (PyHessian's rule, without its 1e-6).
  BASIN_OPTION(double, tolerance) = 1e-4;
  BASIN_OPTION(std::uint64_t, seed) = 0;
};

struct Eigenpair {
  double value = 0;          // the Rayleigh quotient v^T H v at the last iterate
  Tensor vector;             // unit norm, arena layout
  std::int64_t iterations = 0;
  double relative_change = 0;  // of the last iteration
  bool converged = false;
  std::vector<double> history;  // the estimate after each iteration
};

// The top_k eigenpairs of largest magnitude by power iteration with
// deflation: the k-th run starts from a seeded Gaussian vector and keeps its
// iterate orthogonal to the eigenvectors already found (Gram-Schmidt each
// iteration). A trained network's Hessian is dominated by its positive end,
// so these are lambda_max, lambda_2, ...; a negative eigenvalue of larger
// magnitude would come first and is reported with its sign.
std::vector<Eigenpair> top_eigenpairs(HessianVectorProduct& hvp, const EigenOptions& options = {},
                                      const ProgressFn& progress = nullptr);

struct TraceOptions {
  BASIN_OPTION(std::int64_t, samples) = 100;
  BASIN_OPTION(std::uint64_t, seed) = 0;
};

struct TraceEstimate {
  double mean = 0;            // the estimate of tr(H)
  double standard_error = 0;  // sample standard deviation / sqrt(samples); 0 for one sample
  std::vector<double> samples;  // z^T H z for each Rademacher z
};

// Hutchinson's estimator: tr(H) = E[z^T H z] for z with independent +-1
// entries (Rademacher), which has the least variance among such vectors. The
// entries are drawn on the host from the seed, so every device sees the same z.
TraceEstimate hutchinson_trace(HessianVectorProduct& hvp, const TraceOptions& options = {},
                               const ProgressFn& progress = nullptr);

}  // namespace basin::analysis
