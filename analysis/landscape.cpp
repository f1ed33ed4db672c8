#include "analysis/landscape.h"

#include <cmath>
#include <sstream>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/reduce.h"

namespace basin::analysis {

namespace {

// The norm of each filter (row of the [rows, rest] matrix), on the host.
std::vector<double> row_norms(const Tensor& matrix) {
  return sqrt(sum(mul(matrix, matrix).to(kFloat64), {1})).to_vector<double>();
}

std::string format_value(double x) {
  if (std::isnan(x)) return "nan";
  std::ostringstream out;
  out.precision(17);
  out << x;
  return out.str();
}

void report(const ProgressFn& progress, std::int64_t done, std::int64_t total, const Evaluation& value) {
  if (!progress) return;
  std::ostringstream status;
  status.precision(6);
  status << "loss " << value.loss;
  progress(done, total, status.str());
}

}  // namespace

void normalize_filters(const Objective& objective, Tensor& direction, bool ignore_bias_and_bn) {
  objective.check_vector(direction, "normalize_filters");
  NoGradGuard no_grad;
  for (std::size_t i = 0; i < objective.arena().size(); ++i) {
    const Tensor w = objective.view(objective.weights(), i);
    Tensor d = objective.view(direction, i);
    if (w.dim() <= 1) {
      if (ignore_bias_and_bn) {
        d.zero_();
      } else {
        d.copy_(w);
      }
      continue;
    }
    // A filter is everything that feeds one output: a conv weight's
    // [C, R, S] for one output channel, a linear weight's row.
    const std::int64_t filters = w.size(0);
    const Tensor w_rows = w.reshape({filters, -1});
    const Tensor d_rows = d.reshape({filters, -1});
    const std::vector<double> w_norms = row_norms(w_rows), d_norms = row_norms(d_rows);
    std::vector<double> factors(static_cast<std::size_t>(filters));
    for (std::size_t f = 0; f < factors.size(); ++f) factors[f] = d_norms[f] > 0.0 ? w_norms[f] / d_norms[f] : 0.0;
    const Tensor factor = from_vector(factors, {filters, 1}).to(d.dtype()).to(d.device());
    d.copy_(mul(d_rows, factor).reshape(d.shape()));
  }
}

Tensor random_direction(const Objective& objective, const DirectionOptions& options) {
  Tensor d = objective.new_vector();
  {
    SeededDraws draws(options.seed());
    NoGradGuard no_grad;
    const TensorOptions tensor_options = TensorOptions(objective.dtype()).device(objective.device());
    for (std::size_t i = 0; i < objective.arena().size(); ++i) {
      Tensor part = objective.view(d, i);
      part.copy_(randn(part.shape(), tensor_options));
    }
  }
  if (options.filter_normalize()) {
    normalize_filters(objective, d, options.ignore_bias_and_bn());
  } else if (options.ignore_bias_and_bn()) {
    NoGradGuard no_grad;
    for (std::size_t i = 0; i < objective.arena().size(); ++i) {
      Tensor part = objective.view(d, i);
      if (part.dim() <= 1) part.zero_();
    }
  }
  return d;
}

std::vector<double> linspace(double first, double last, std::int64_t n) {
  BASIN_CHECK(n >= 1, "linspace: the number of points must be at least 1, got ", n);
  BASIN_CHECK(std::isfinite(first) && std::isfinite(last), "linspace: the ends must be finite, got ", first, " and ",
              last);
  std::vector<double> values(static_cast<std::size_t>(n), first);
  for (std::int64_t i = 1; i < n; ++i) {
    // Interpolated from both ends so that the last value is exactly `last`.
    const double s = static_cast<double>(i) / static_cast<double>(n - 1);
    values[static_cast<std::size_t>(i)] = (1.0 - s) * first + s * last;
  }
  return values;
}

std::vector<LinePoint> line_along(const Objective& objective, const Tensor& direction, const std::vector<double>& ts,
                                  const ProgressFn& progress) {
  objective.check_vector(direction, "line_along");
  const Tensor center = objective.copy_of_weights();
  Tensor w = objective.weights();
  std::vector<LinePoint> points;
  for (double t : ts) {
    {
      NoGradGuard no_grad;
      w.copy_(center).add_(direction, t);
    }
    points.push_back({t, objective.evaluate()});
    report(progress, static_cast<std::int64_t>(points.size()), static_cast<std::int64_t>(ts.size()),
           points.back().value);
  }
  objective.set_weights(center);
  return points;
}

std::vector<LinePoint> line_between(const Objective& objective, const Tensor& a, const Tensor& b,
                                    const std::vector<double>& ts, const ProgressFn& progress) {
  objective.check_vector(a, "line_between");
  objective.check_vector(b, "line_between");
  const Tensor center = objective.copy_of_weights();
  Tensor w = objective.weights();
  NoGradGuard no_grad;
  const Tensor difference = sub(b, a);
  std::vector<LinePoint> points;
  for (double t : ts) {
    w.copy_(a).add_(difference, t);
    points.push_back({t, objective.evaluate()});
    report(progress, static_cast<std::int64_t>(points.size()), static_cast<std::int64_t>(ts.size()),
           points.back().value);
  }
  objective.set_weights(center);
  return points;
}

std::vector<SurfacePoint> surface(const Objective& objective, const Tensor& d1, const Tensor& d2,
                                  const std::vector<double>& xs, const std::vector<double>& ys,
                                  const ProgressFn& progress) {
  objective.check_vector(d1, "surface");
  objective.check_vector(d2, "surface");
  const Tensor center = objective.copy_of_weights();
  Tensor w = objective.weights();
  const auto total = static_cast<std::int64_t>(xs.size() * ys.size());
  std::vector<SurfacePoint> points;
  for (double y : ys) {
    for (double x : xs) {
      {
        NoGradGuard no_grad;
        w.copy_(center).add_(d1, x).add_(d2, y);
      }
      points.push_back({x, y, objective.evaluate()});
      report(progress, static_cast<std::int64_t>(points.size()), total, points.back().value);
    }
  }
  objective.set_weights(center);
  return points;
}

std::string to_csv(const std::vector<LinePoint>& line) {
  std::string out = "t,loss,accuracy\n";
  for (const LinePoint& p : line) {
    out += format_value(p.t) + "," + format_value(p.value.loss) + "," + format_value(p.value.accuracy) + "\n";
  }
  return out;
}

std::string to_csv(const std::vector<SurfacePoint>& surface) {
  std::string out = "x,y,loss,accuracy\n";
  for (const SurfacePoint& p : surface) {
    out += format_value(p.x) + "," + format_value(p.y) + "," + format_value(p.value.loss) + "," +
           format_value(p.value.accuracy) + "\n";
  }
  return out;
}

}  // namespace basin::analysis
