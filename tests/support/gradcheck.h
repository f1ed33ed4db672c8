// Finite-difference gradient checking, the way every differentiable op is tested.
//
// gradcheck(fn, inputs) compares the gradient backward() computes with central
// differences (f(x + h) - f(x - h)) / 2h, element by element, in float64 on
// the CPU. fn may return any shape: it is reduced to a scalar by a fixed
// random weighting so that every output element's gradient is exercised.
// Kinks are skipped: where the one-sided differences (f(x+h) - f(x)) / h and
// (f(x) - f(x-h)) / h disagree, f is not differentiable at x (relu at 0,
// max at a tie, clamp at a bound) and that element is not compared.
#pragma once

#include <functional>
#include <string>

#include "core/tensor.h"

namespace basin::testing {

struct GradcheckOptions {
  double step = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-4;
  double kink_tolerance = 1e-3;  // relative disagreement of one-sided slopes that marks a kink
};

struct GradcheckResult {
  bool ok = true;
  int compared = 0;     // elements whose gradient was checked
  int kinks = 0;        // elements skipped as kinks
  std::string report;   // the first mismatches, for the test log
};

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

// inputs must be float64 CPU tensors; they are marked requires_grad internally.
GradcheckResult gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& options = {});

}  // namespace basin::testing
