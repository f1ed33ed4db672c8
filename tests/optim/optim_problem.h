// The small fixed problem of tests/reference/gen_optim_fixtures.py, for the
// optimizer trajectory tests: parameters w1 [5, 3], b1 [5], w2 [2, 5] and
//   loss = sum(c * tanh(tanh(x @ w1^T + b1) @ w2^T))
// with x [4, 3] and c [4, 2] read from optim_trajectories.safetensors.
// Also random parameters, for the optimizer tests that need no fixture.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/elementwise.h"
#include "core/matmul.h"
#include "core/random.h"
#include "core/reduce.h"
#include "core/serialization.h"
#include "core/tensor.h"
#include "support/fixtures.h"

namespace basin::testing {

inline const std::vector<std::string>& problem_param_names() {
  static const std::vector<std::string> names{"w1", "b1", "w2"};
  return names;
}

struct OptimProblem {
  Tensor x, c;
  // "w1", "b1", "w2" in that order (the order PyTorch saw them in).
  std::vector<std::pair<std::string, Tensor>> params;

  // dtype_tag: "f32" or "f64". Fresh leaves that require grad, at the initial values.
  OptimProblem(const TensorMap& fixture, const std::string& dtype_tag)
      : x(fixture_tensor(fixture, dtype_tag + ".x")), c(fixture_tensor(fixture, dtype_tag + ".c")) {
    for (const std::string& name : problem_param_names()) {
      Tensor p = fixture_tensor(fixture, dtype_tag + ".init." + name).clone();
      p.requires_grad_();
      params.emplace_back(name, p);
    }
  }

  Tensor param(const std::string& name) const {
    for (const auto& [n, t] : params) {
      if (n == name) return t;
    }
    BASIN_FAIL("no parameter ", name);
  }

  Tensor loss() const {
    const Tensor h = tanh(add(matmul(x, param("w1").t()), param("b1")));
    return sum(mul(c, tanh(matmul(h, param("w2").t()))));
  }

  std::vector<Tensor> tensors() const {
    std::vector<Tensor> out;
    for (const auto& [n, t] : params) out.push_back(t);
    return out;
  }
};

// Leaves that require grad, one per shape, drawn from the default generator.
inline std::vector<Tensor> random_params(const std::vector<Shape>& shapes, const TensorOptions& options) {
  std::vector<Tensor> out;
  for (const Shape& s : shapes) out.push_back(randn(s, options).requires_grad_());
  return out;
}

}  // namespace basin::testing
