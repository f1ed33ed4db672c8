// Loss landscapes: the loss along a line and over a plane of weight space.
//
// Li et al. (2018, "Visualizing the Loss Landscape of Neural Nets") show that
// a plot along a random direction d means something only after the
// direction is scaled to the network: with BatchNorm a layer's weights can be
// rescaled without changing the function, so a direction of fixed size is
// huge for one layer and negligible for another. Filter normalization fixes
// that: each filter of d (one output channel of a convolution, one row of a
// linear layer) is rescaled to the norm of the same filter of w,
//
//   d_{i,j} <- d_{i,j} / ||d_{i,j}|| * ||w_{i,j}||,
//
// and one-dimensional tensors (biases, BatchNorm's scale and shift) are left
// out of the direction (zero), as in their plots ("ignore biasbn").
//
// A 1-D plot is L(w + t d), or L((1 - t) w_a + t w_b) between two solutions
// (Goodfellow et al. 2015); a 2-D plot is L(w + x d1 + y d2) over a grid, drawn
// as contours (scripts/plot_landscape.py).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "analysis/objective.h"

namespace basin::analysis {

struct DirectionOptions {
  BASIN_OPTION(std::uint64_t, seed) = 0;
  BASIN_OPTION(bool, filter_normalize) = true;
  // Li et al.'s default: biases and BatchNorm parameters (1-D tensors) get 0.
  // Off, they get the weights' own values (d = w), as their code does then.
  BASIN_OPTION(bool, ignore_bias_and_bn) = true;
};

// A Gaussian direction of the arena's layout, filter-normalized against the
// objective's current weights unless told otherwise.
Tensor random_direction(const Objective& objective, const DirectionOptions& options = {});
// Filter normalization of `direction` in place, against the current weights.
// A filter of w that is all zero gives a zero filter of d.
void normalize_filters(const Objective& objective, Tensor& direction, bool ignore_bias_and_bn = true);

// n evenly spaced values from first to last, both included (n >= 2, or n = 1: first).
std::vector<double> linspace(double first, double last, std::int64_t n);

struct LinePoint {
  double t = 0;
  Evaluation value;
};

// L(w + t d) at each t; the weights are put back afterwards.
std::vector<LinePoint> line_along(const Objective& objective, const Tensor& direction, const std::vector<double>& ts,
                                  const ProgressFn& progress = nullptr);
// L((1 - t) a + t b) at each t (t outside [0, 1] extrapolates); the weights are put back afterwards.
std::vector<LinePoint> line_between(const Objective& objective, const Tensor& a, const Tensor& b,
                                    const std::vector<double>& ts, const ProgressFn& progress = nullptr);

struct SurfacePoint {
  double x = 0, y = 0;
  Evaluation value;
};

// L(w + x d1 + y d2) over xs x ys (rows of constant y, x varying fastest);
// the weights are put back afterwards.
std::vector<SurfacePoint> surface(const Objective& objective, const Tensor& d1, const Tensor& d2,
                                  const std::vector<double>& xs, const std::vector<double>& ys,
                                  const ProgressFn& progress = nullptr);

// CSV with a header row: "t,loss,accuracy" and "x,y,loss,accuracy"; values
// printed with 17 significant digits, an undefined accuracy as "nan".
std::string to_csv(const std::vector<LinePoint>& line);
std::string to_csv(const std::vector<SurfacePoint>& surface);

}  // namespace basin::analysis
