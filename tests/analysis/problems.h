// Problems with known answers for the analysis tests.
//
// QuadraticProblem: least squares on a linear model without bias,
//
//   L(w) = 1/(2N) sum_n (x_n . w - y_n)^2,   y = X w*,
//
// so L(w) = 1/2 (w - w*)^T H (w - w*) with H = X^T X / N exactly. X is built
// as sqrt(N) Lambda^(1/2) Q^T with Q a Householder reflection, which makes H =
// Q Lambda Q^T: its eigenvalues are the chosen lambdas and its eigenvectors
// the columns of Q, both known in closed form.
#pragma once

#include <cmath>
#include <memory>
#include <vector>

#include "analysis/objective.h"
#include "core/elementwise.h"
#include "core/reduce.h"
#include "nn/layers.h"

namespace basin::testing {

// The eigenvalues the analysis tests give their quadratics.
inline const std::vector<double> kQuadraticLambdas = {5.0, 3.0, 2.0, 1.0, 0.5, 0.25};

struct QuadraticProblem {
  std::vector<double> lambdas;        // eigenvalues of H, as given
  std::vector<std::vector<double>> q;  // q[i] = i-th eigenvector (column i of Q)
  std::vector<std::vector<double>> h;  // H, dense
  std::vector<double> w_star;
  std::shared_ptr<nn::Linear> model;  // weight [1, d], float64
  Tensor inputs, targets;             // X [N, d] and y [N, 1]
  std::vector<analysis::LabelledBatch> batches;  // their rows, in order

  std::size_t d() const { return lambdas.size(); }

  // H v on the host.
  std::vector<double> hessian_times(const std::vector<double>& v) const {
    std::vector<double> out(d(), 0.0);
    for (std::size_t i = 0; i < d(); ++i) {
      for (std::size_t j = 0; j < d(); ++j) out[i] += h[i][j] * v[j];
    }
    return out;
  }
  // The gradient H (w - w*) at w, on the host.
  std::vector<double> gradient_at(const std::vector<double>& w) const {
    std::vector<double> diff(d());
    for (std::size_t i = 0; i < d(); ++i) diff[i] = w[i] - w_star[i];
    return hessian_times(diff);
  }
  double loss_at(const std::vector<double>& w) const {
    std::vector<double> diff(d());
    for (std::size_t i = 0; i < d(); ++i) diff[i] = w[i] - w_star[i];
    const std::vector<double> hd = hessian_times(diff);
    double value = 0;
    for (std::size_t i = 0; i < d(); ++i) value += 0.5 * diff[i] * hd[i];
    return value;
  }
  std::vector<double> weights() const { return model->weight.to_vector<double>(); }
};

inline double host_dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Half the mean squared error of a batch: the criterion of QuadraticProblem.
inline Tensor half_mean_squared_error(const Tensor& output, const Tensor& target) {
  const Tensor diff = sub(output, target);
  return mul(sum(mul(diff, diff)), 0.5 / static_cast<double>(output.size(0)));
}

// `rotate` false keeps Q = I (H diagonal). The N = d examples are split into
// batches of `batch` rows. The weights start at w* + offset.
inline QuadraticProblem make_quadratic(const std::vector<double>& lambdas, bool rotate, std::int64_t batch,
                                       Device device = Device::cpu()) {
  QuadraticProblem p;
  p.lambdas = lambdas;
  const std::size_t d = lambdas.size();
  std::vector<double> u(d);
  for (std::size_t i = 0; i < d; ++i) u[i] = 1.0 + 0.5 * static_cast<double>(i) - 0.3 * static_cast<double>(i * i % 5);
  const double uu = host_dot(u, u);
  // Built, not assign()ed: GCC 12 warns falsely (-Wfree-nonheap-object) about assign on a nested vector.
  p.q = std::vector<std::vector<double>>(d, std::vector<double>(d, 0.0));  // p.q[i][k]: component k of eigenvector i
  for (std::size_t i = 0; i < d; ++i) {
    for (std::size_t k = 0; k < d; ++k) p.q[i][k] = (i == k ? 1.0 : 0.0) - (rotate ? 2.0 * u[i] * u[k] / uu : 0.0);
  }
  p.h = std::vector<std::vector<double>>(d, std::vector<double>(d, 0.0));
  for (std::size_t i = 0; i < d; ++i) {
    for (std::size_t j = 0; j < d; ++j) {
      for (std::size_t k = 0; k < d; ++k) p.h[i][j] += p.q[k][i] * lambdas[k] * p.q[k][j];
    }
  }
  // Row n of X is sqrt(N lambda_n) q_n^T.
  const auto n = static_cast<double>(d);
  std::vector<double> x(d * d);
  for (std::size_t r = 0; r < d; ++r) {
    for (std::size_t k = 0; k < d; ++k) x[r * d + k] = std::sqrt(n * lambdas[r]) * p.q[r][k];
  }
  p.w_star.resize(d);
  for (std::size_t i = 0; i < d; ++i) p.w_star[i] = 0.4 - 0.15 * static_cast<double>(i);
  std::vector<double> y(d, 0.0);
  for (std::size_t r = 0; r < d; ++r) {
    for (std::size_t k = 0; k < d; ++k) y[r] += x[r * d + k] * p.w_star[k];
  }
  p.model = std::make_shared<nn::Linear>(nn::LinearOptions(static_cast<std::int64_t>(d), 1).bias(false));
  p.model->to(kFloat64);
  std::vector<double> start(d);
  for (std::size_t i = 0; i < d; ++i) start[i] = p.w_star[i] + 0.3 + 0.2 * std::sin(static_cast<double>(i));
  p.model->weight.detach().copy_(from_vector(start, {1, static_cast<std::int64_t>(d)}));
  p.model->to(device);
  p.inputs = from_vector(x, {static_cast<std::int64_t>(d), static_cast<std::int64_t>(d)});
  p.targets = from_vector(y, {static_cast<std::int64_t>(d), 1});
  for (std::int64_t first = 0; first < static_cast<std::int64_t>(d); first += batch) {
    const std::int64_t last = std::min<std::int64_t>(first + batch, static_cast<std::int64_t>(d));
    p.batches.push_back({p.inputs.slice(0, first, last), p.targets.slice(0, first, last)});
  }
  return p;
}

inline analysis::ObjectiveOptions quadratic_options() {
  return analysis::ObjectiveOptions().criterion(half_mean_squared_error);
}

}  // namespace basin::testing
