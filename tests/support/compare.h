// Helpers for comparing tensors in tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace basin::testing {

// Largest |a - b| over all elements (compared on the host in float64).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  BASIN_CHECK(a.shape() == b.shape(), "max_abs_diff: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()));
  const std::vector<double> x = a.to_vector<double>();
  const std::vector<double> y = b.to_vector<double>();
  double worst = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double d = std::abs(x[i] - y[i]);
    if (std::isnan(d)) return INFINITY;
    worst = std::max(worst, d);
  }
  return worst;
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

}  // namespace basin::testing
