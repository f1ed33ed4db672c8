// basin-demo: a two-hidden-layer MLP learns to tell three interleaved spirals
// apart. It exercises the whole core on one screen: random data, matmul,
// broadcasting, relu, the fused cross-entropy, backward() and a hand-written
// gradient-descent update under NoGradGuard.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <numbers>

#include "basin.h"

namespace {

using namespace basin;

struct Spirals {
  Tensor points;  // [n, 2] float32
  Tensor labels;  // [n] int64
};

// Three arms of points at radius r and angle 4r + arm offset, with noise.
Spirals make_spirals(std::int64_t per_class, Device device) {
  const std::int64_t classes = 3;
  const std::vector<double> r = rand({per_class * classes}, kFloat64, 0.05, 1.0).to_vector<double>();
  const std::vector<double> noise = randn({per_class * classes}, kFloat64, 0.0, 0.15).to_vector<double>();
  std::vector<float> xy;
  std::vector<std::int64_t> labels;
  for (std::int64_t c = 0; c < classes; ++c) {
    for (std::int64_t i = 0; i < per_class; ++i) {
      const std::size_t k = static_cast<std::size_t>(c * per_class + i);
      const double angle = 4.0 * r[k] + 2.0 * std::numbers::pi * static_cast<double>(c) / classes + noise[k];
      xy.push_back(static_cast<float>(r[k] * std::cos(angle)));
      xy.push_back(static_cast<float>(r[k] * std::sin(angle)));
      labels.push_back(c);
    }
  }
  const std::int64_t n = per_class * classes;
  return {from_vector(xy, {n, 2}).to(device), from_vector(labels, {n}).to(device)};
}

// A parameter initialized like PyTorch's nn.Linear: uniform in +-1/sqrt(fan_in).
Tensor parameter(const Shape& shape, std::int64_t fan_in, Device device) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return rand(shape, TensorOptions(kFloat32).device(device), -bound, bound).requires_grad_();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"basin-demo: an MLP learns three spirals (a tour of basin's core)"};
  std::string device_name = "auto";
  int steps = 1000;
  double lr = 0.5;
  std::int64_t hidden = 64;
  std::int64_t per_class = 300;
  std::uint64_t seed = 0;
  app.add_option("--device", device_name, "auto, cpu or cuda")->capture_default_str();
  app.add_option("--steps", steps, "gradient steps")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--lr", lr, "learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--hidden", hidden, "hidden units per layer")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--points", per_class, "points per class")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "random seed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    const Device device = Device::parse(device_name);
    manual_seed(seed);
    const Spirals data = make_spirals(per_class, device);
    std::vector<Tensor> params = {parameter({2, hidden}, 2, device), parameter({hidden}, 2, device),
                                  parameter({hidden, hidden}, hidden, device), parameter({hidden}, hidden, device),
                                  parameter({hidden, 3}, hidden, device), parameter({3}, hidden, device)};
    auto forward = [&](const Tensor& x) {
      Tensor h = relu(matmul(x, params[0]) + params[1]);
      h = relu(matmul(h, params[2]) + params[3]);
      return matmul(h, params[4]) + params[5];
    };

    std::printf("basin-demo: 3 spirals, %lld points, MLP 2-%lld-%lld-3, %d steps of gradient descent (lr %g) on %s\n",
                static_cast<long long>(data.labels.numel()), static_cast<long long>(hidden),
                static_cast<long long>(hidden), steps, lr, describe(device).c_str());
    const auto start = std::chrono::steady_clock::now();
    const int report_every = std::max(1, steps / 10);
    for (int step = 1; step <= steps; ++step) {
      const Tensor logits = forward(data.points);
      const Tensor loss = cross_entropy(logits, data.labels);
      for (Tensor& p : params) p.set_grad(Tensor());
      loss.backward();
      {
        NoGradGuard no_grad;
        for (Tensor& p : params) p.add_(p.grad(), -lr);
      }
      if (step == 1 || step % report_every == 0) {
        NoGradGuard no_grad;
        const Tensor predicted = argmax(logits, 1);
        const std::vector<std::int64_t> guess = predicted.to_vector<std::int64_t>();
        const std::vector<std::int64_t> truth = data.labels.to_vector<std::int64_t>();
        std::int64_t correct = 0;
        for (std::size_t i = 0; i < guess.size(); ++i) correct += guess[i] == truth[i];
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("step %5d  loss %.4f  accuracy %5.1f%%  %.2fs\n", step, loss.item(),
                    100.0 * static_cast<double>(correct) / static_cast<double>(truth.size()), seconds);
      }
    }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "basin-demo: error: %s\n", error.what());
    return 1;
  }
}
