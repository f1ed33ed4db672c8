// Helpers for comparing tensors in tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace basin::testing {

// Largest |x[i] - y[i]|; a NaN on either side makes it infinite.
inline double max_abs_diff(const std::vector<double>& x, const std::vector<double>& y) {
  BASIN_CHECK(x.size() == y.size(), "max_abs_diff: sizes ", x.size(), " and ", y.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double d = std::abs(x[i] - y[i]);
    if (std::isnan(d)) return INFINITY;
    worst = std::max(worst, d);
  }
  return worst;
}

// Largest |a - b| over all elements (compared on the host in float64).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  BASIN_CHECK(a.shape() == b.shape(), "max_abs_diff: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()));
  return max_abs_diff(a.to_vector<double>(), b.to_vector<double>());
}

// ||a - b|| / ||b||, the acceptance measure for whole tensors.
inline double relative_error(const Tensor& a, const Tensor& reference) {
  const std::vector<double> x = a.to_vector<double>();
  const std::vector<double> y = reference.to_vector<double>();
  BASIN_CHECK(x.size() == y.size(), "relative_error: sizes differ");
  double diff = 0.0, norm = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    diff += (x[i] - y[i]) * (x[i] - y[i]);
    norm += y[i] * y[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// True when every element of a equals b's exactly (bitwise for finite values).
inline bool equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector<double>() == b.to_vector<double>();
}

// True when every element of t equals value.
inline bool all_equal_to(const Tensor& t, double value) {
  for (double v : t.to_vector<double>()) {
    if (v != value) return false;
  }
  return true;
}

// True when no element of t is NaN or infinite.
inline bool all_finite(const Tensor& t) {
  for (double v : t.to_vector<double>()) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

inline bool all_finite(const std::vector<Tensor>& tensors) {
  return std::all_of(tensors.begin(), tensors.end(), [](const Tensor& t) { return all_finite(t); });
}

// True when some element of t is NaN: a kernel left a NaN-poisoned output
// element unwritten, or produced a NaN.
inline bool any_nan(const Tensor& t) {
  for (double v : t.to_vector<double>()) {
    if (std::isnan(v)) return true;
  }
  return false;
}

// A detached CPU copy of each tensor, owning its memory: a snapshot to
// compare against after the originals change.
inline std::vector<Tensor> host_copies(const std::vector<Tensor>& tensors) {
  std::vector<Tensor> out;
  for (const Tensor& t : tensors) out.push_back(t.detach().cpu().clone());
  return out;
}

}  // namespace basin::testing
