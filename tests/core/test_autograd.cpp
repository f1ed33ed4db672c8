#include <catch2/catch.hpp>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/reduce.h"
#include "support/compare.h"

using namespace basin;

TEST_CASE("backward computes the gradient of a small expression", "[autograd]") {
  Tensor x = from_vector<double>({1.0, 2.0, 3.0}, {3}).requires_grad_();
  Tensor y = from_vector<double>({4.0, 5.0, 6.0}, {3}).requires_grad_();
  // L = sum(x*y + x^2)  ->  dL/dx = y + 2x, dL/dy = x
  sum(x * y + x * x).backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{6, 9, 12});
  CHECK(y.grad().to_vector<double>() == std::vector<double>{1, 2, 3});
}

TEST_CASE("gradients accumulate across backward calls and shared uses", "[autograd]") {
  Tensor w = full({2}, 3.0, kFloat64).requires_grad_();
  // Diamond: w feeds two branches that meet again.
  const Tensor a = w * 2.0;
  const Tensor b = w * w;
  sum(a + b).backward();  // d/dw = 2 + 2w = 8
  CHECK(w.grad().to_vector<double>() == std::vector<double>{8, 8});
  sum(w).backward();  // accumulates: 8 + 1
  CHECK(w.grad().to_vector<double>() == std::vector<double>{9, 9});
}

TEST_CASE("a leaf's gradient never aliases a temporary", "[autograd]") {
  Tensor w = zeros({3}, kFloat64).requires_grad_();
  const Tensor seed = ones({3}, kFloat64);
  w.backward(seed);
  CHECK(w.grad().storage() != seed.storage());
  // Gradients added into a preallocated buffer stay in that buffer.
  Tensor buffer = zeros({3}, kFloat64);
  w.set_grad(buffer);
  (w * 2.0).backward(seed);
  CHECK(w.grad().storage() == buffer.storage());
  CHECK(buffer.to_vector<double>() == std::vector<double>{2, 2, 2});
}

TEST_CASE("NoGradGuard and detach stop recording", "[autograd]") {
  Tensor w = ones({2}).requires_grad_();
  {
    NoGradGuard no_grad;
    const Tensor y = w * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  CHECK(grad_mode_enabled());
  const Tensor d = (w * 2.0).detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.storage() != w.storage());
  const Tensor y = w * 3.0;
  CHECK(y.requires_grad());
  CHECK(y.grad_fn()->name == "mul_scalar");
  CHECK_FALSE(y.is_leaf());
}

TEST_CASE("backward reports misuse clearly", "[autograd][errors]") {
  const Tensor x = ones({2});
  CHECK_THROWS_WITH(sum(x).backward(), Catch::Contains("does not require a gradient"));
  Tensor w = ones({2}).requires_grad_();
  CHECK_THROWS_WITH((w * 2.0).backward(), Catch::Contains("must hold one element (a loss), but it has shape [2]"));
  CHECK_THROWS_WITH((w * 2.0).backward(ones({3})), Catch::Contains("gradient of shape [3] for a tensor of shape [2]"));
  CHECK_THROWS_WITH((w * 2.0).requires_grad_(), Catch::Contains("only leaf tensors can be marked"));
}

TEST_CASE("a deep chain does not overflow the stack", "[autograd]") {
  Tensor w = ones({1}, kFloat64).requires_grad_();
  Tensor y = w;
  for (int i = 0; i < 20000; ++i) y = y * 1.0;
  sum(y).backward();
  CHECK(w.grad().item() == 1.0);
}

TEST_CASE("graphs free themselves once the outputs go away", "[autograd]") {
  const std::int64_t before = memory_stats(Device::cpu()).current_bytes;
  {
    Tensor w = ones({256, 256}).requires_grad_();
    const Tensor loss = sum(exp(w) * w);
    loss.backward();
  }
  CHECK(memory_stats(Device::cpu()).current_bytes == before);
}
