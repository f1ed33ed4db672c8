// Uses an installed basin: builds y = sum(tanh(w * x)) with w a parameter of
// shape [3] broadcast against x of shape [2, 3], runs backward, and compares
// dy/dw with the gradient worked out by hand:
//
//   dy/dw[j] = sum_i x[i][j] * (1 - tanh(w[j] * x[i][j])^2)
//
// Exits 0 when every component agrees, 1 otherwise.
#include <basin.h>

#include <cmath>
#include <cstdio>
#include <exception>
#include <vector>

int main() {
  try {
    const std::vector<double> w_values = {0.5, -1.25, 2.0};
    const std::vector<double> x_values = {0.3, 0.7, -0.4,   // row 0
                                          -1.1, 0.2, 0.9};  // row 1

    basin::Tensor w = basin::from_vector(w_values, {3}, basin::TensorOptions(basin::kFloat64).requires_grad(true));
    basin::Tensor x = basin::from_vector(x_values, {2, 3});

    basin::Tensor y = basin::sum(basin::tanh(w * x));
    y.backward();

    const std::vector<double> grad = w.grad().to_vector<double>();
    double y_expected = 0.0;
    if (grad.size() != w_values.size()) {
      std::fprintf(stderr, "basin consumer: gradient has %zu values, expected %zu\n", grad.size(), w_values.size());
      return 1;
    }
    bool ok = true;
    std::printf("basin consumer: y = sum(tanh(w * x)) = %.12f  (CUDA backend built: %s)\n", y.item(),
                basin::cuda_is_built() ? "yes" : "no");
    for (std::size_t j = 0; j < w_values.size(); ++j) {
      double expected = 0.0;
      for (std::size_t i = 0; i < 2; ++i) {
        const double xij = x_values[i * 3 + j];
        const double t = std::tanh(w_values[j] * xij);
        expected += xij * (1.0 - t * t);
        y_expected += t;
      }
      const double error = std::fabs(grad[j] - expected);
      const bool match = error <= 1e-12 * (1.0 + std::fabs(expected));
      std::printf("  dy/dw[%zu] = %+.12f   expected %+.12f   %s\n", j, grad[j], expected, match ? "ok" : "MISMATCH");
      ok = ok && match;
    }
    if (std::fabs(y.item() - y_expected) > 1e-12 * (1.0 + std::fabs(y_expected))) {
      std::printf("  y = %.12f but expected %.12f   MISMATCH\n", y.item(), y_expected);
      ok = false;
    }
    std::printf("basin consumer: %s\n", ok ? "gradient matches" : "FAILED");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "basin consumer: error: %s\n", e.what());
    return 1;
  }
}
