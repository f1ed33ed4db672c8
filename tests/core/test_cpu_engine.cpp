// The CPU engine's switch and threads (core/cpu_engine.h). The engine-vs-
// reference parity of each op sits beside its CUDA parity, in the op's own
// test file ("[engine]"); the cases here cover what those small odd shapes
// do not: tensors large enough to be split across threads, and the float64
// convolutions and GEMM (OpenBLAS), which the op tables' engine parity, a
// float32 comparison, does not run.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/batchnorm.h"
#include "core/conv.h"
#include "core/cpu_engine.h"
#include "core/elementwise.h"
#include "core/random.h"
#include "core/reduce.h"
#include "kernels/conv.h"
#include "kernels/matmul.h"
#include "support/compare.h"
#include "support/cpu_threads.h"

using namespace basin;

TEST_CASE("the CPU kernel switch is scoped and describes itself", "[engine]") {
  const CpuKernels before = cpu_kernels();
  {
    const CpuKernelsScope reference(CpuKernels::reference);
    CHECK(cpu_kernels() == CpuKernels::reference);
    CHECK(describe_cpu_engine() == "reference kernels (1 thread)");
    {
      const CpuKernelsScope fast(CpuKernels::fast);
      CHECK(cpu_kernels() == CpuKernels::fast);
      CHECK_THAT(describe_cpu_engine(), Catch::StartsWith("fast kernels ("));
    }
    CHECK(cpu_kernels() == CpuKernels::reference);
  }
  CHECK(cpu_kernels() == before);
  CHECK(std::string(cpu_kernels_name(CpuKernels::fast)) == "fast");
  CHECK(std::string(cpu_kernels_name(CpuKernels::reference)) == "reference");
}

TEST_CASE("the CPU thread count must be positive", "[engine][errors]") {
  CHECK_THROWS_WITH(set_cpu_threads(0), Catch::Contains("the CPU thread count must be at least 1, got 0"));
  CHECK(cpu_threads() >= 1);
}

TEST_CASE("CPU engine kernels split across threads agree with the reference", "[engine]") {
  // 3 threads: ranges of uneven length, none a multiple of a SIMD width.
  const testing::CpuThreadsScope threads(3);
  manual_seed(91);
  const Tensor x = randn({5, 7, 61, 67});  // 143,045 elements, 28,609 per channel
  const Tensor y = randn({5, 7, 61, 67});
  const Tensor weight = randn({7});
  const Tensor bias = randn({7});
  const Tensor filters = randn({6, 7, 3, 3});

  const auto run = [&](CpuKernels kernels) {
    const CpuKernelsScope scope(kernels);
    const Tensor a = x.clone().requires_grad_(true);
    const Tensor w = weight.clone().requires_grad_(true);
    const Tensor f = filters.clone().requires_grad_(true);
    BatchNormState state{zeros({7}), ones({7}), 0.1, 1e-5};
    const Tensor normalized = batch_norm(relu(add(a, y)), w, bias, state, true, true);
    const Tensor out = conv2d(mul(normalized, y), f, Tensor(), {2, 1}, {1, 0});
    sum(mul(out, out)).backward();
    return std::vector<Tensor>{out.detach(), a.grad(), w.grad(), f.grad(), state.running_var};
  };
  const std::vector<Tensor> want = run(CpuKernels::reference);
  const std::vector<Tensor> got = run(CpuKernels::fast);
  const char* names[] = {"output", "input gradient", "batch-norm weight gradient", "filter gradient",
                         "running variance"};
  // float32 sums against the reference's float64 ones, through five ops: the
  // batch-norm gradients add 28,609 terms a channel, whose float32 rounding
  // alone reaches about sqrt(n) * 6e-8 = 1e-5 relative (the exact figure
  // moves with the compiler's vectorization). A wrong index or a lost range
  // is off by far more.
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO(names[i]);
    CHECK(testing::relative_error(got[i], want[i]) < 1e-4);
  }
}

TEST_CASE("CPU engine results repeat bit for bit at one thread count", "[engine]") {
  const testing::CpuThreadsScope threads(2);
  manual_seed(92);
  const Tensor x = randn({4, 8, 47, 45});
  const auto stats = [&] {
    BatchNormState state{zeros({8}), ones({8}), 0.1, 1e-5};
    const Tensor out = batch_norm(x, Tensor(), Tensor(), state, true, true);
    return std::vector<Tensor>{out, state.running_mean, state.running_var};
  };
  const std::vector<Tensor> first = stats();
  const std::vector<Tensor> second = stats();
  for (std::size_t i = 0; i < first.size(); ++i) CHECK(testing::equal(first[i], second[i]));
}

namespace {

kernels::Conv2dShape conv_geometry(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t k,
                                   std::int64_t r, std::int64_t s, Pair stride, Pair padding) {
  kernels::Conv2dShape g;
  g.n = n, g.c = c, g.h = h, g.w = w, g.k = k, g.r = r, g.s = s;
  g.stride_h = stride[0], g.stride_w = stride[1], g.pad_h = padding[0], g.pad_w = padding[1];
  g.p = (h + 2 * padding[0] - r) / stride[0] + 1;
  g.q = (w + 2 * padding[1] - s) / stride[1] + 1;
  return g;
}

}  // namespace

TEST_CASE("CPU engine float64 convolutions match the reference kernels", "[engine][conv]") {
  // Odd channel counts and sizes; stride 2 with padding 0 and 1; non-square
  // inputs, kernels, strides and paddings; a kernel wider than the input but
  // for its padding; at stride 1, fewer and more than 8 input channels (the
  // engine's two ways to backward_input) and padding wider than the kernel
  // (grad_out then cropped); the 1x1 convolutions (stride 1, which needs no
  // unfolding, and stride 2, a ResNet shortcut); and batches of 1 (fewer
  // images than threads), 3 and 7 (uneven runs of images per thread).
  const std::vector<kernels::Conv2dShape> shapes = {
      conv_geometry(3, 5, 9, 7, 4, 3, 3, {1, 1}, {1, 1}),  conv_geometry(3, 5, 9, 7, 6, 3, 3, {2, 2}, {1, 1}),
      conv_geometry(3, 3, 9, 11, 5, 3, 3, {2, 2}, {0, 0}), conv_geometry(3, 3, 8, 11, 5, 3, 2, {2, 1}, {0, 1}),
      conv_geometry(7, 7, 6, 5, 3, 1, 1, {1, 1}, {0, 0}),  conv_geometry(3, 7, 9, 9, 5, 1, 1, {2, 2}, {0, 0}),
      conv_geometry(1, 3, 4, 3, 2, 5, 5, {3, 2}, {2, 2}),  conv_geometry(7, 1, 10, 10, 3, 3, 3, {1, 1}, {1, 1}),
      conv_geometry(3, 9, 7, 8, 5, 3, 3, {1, 1}, {1, 1}),  conv_geometry(3, 9, 5, 6, 3, 1, 3, {1, 1}, {1, 3}),
  };
  manual_seed(93);
  for (const kernels::Conv2dShape& g : shapes) {
    INFO("input [" << g.n << ", " << g.c << ", " << g.h << ", " << g.w << "], weight [" << g.k << ", " << g.c << ", "
                   << g.r << ", " << g.s << "], stride (" << g.stride_h << ", " << g.stride_w << "), padding ("
                   << g.pad_h << ", " << g.pad_w << ")");
    const Shape input{g.n, g.c, g.h, g.w}, weight{g.k, g.c, g.r, g.s}, output{g.n, g.k, g.p, g.q};
    const Tensor x = randn(input, kFloat64), w = randn(weight, kFloat64), b = randn({g.k}, kFloat64);
    const Tensor gy = randn(output, kFloat64);
    // Every output starts as NaN, so an element a kernel fails to write shows.
    const auto run = [&](auto forward, auto backward_input, auto backward_weight) {
      Tensor out = full(output, NAN, kFloat64), out_no_bias = full(output, NAN, kFloat64);
      Tensor gx = full(input, NAN, kFloat64), gw = full(weight, NAN, kFloat64);
      forward(kFloat64, g, out.data_ptr(), x.data_ptr(), w.data_ptr(), b.data_ptr());
      forward(kFloat64, g, out_no_bias.data_ptr(), x.data_ptr(), w.data_ptr(), nullptr);
      backward_input(kFloat64, g, gx.data_ptr(), gy.data_ptr(), w.data_ptr());
      backward_weight(kFloat64, g, gw.data_ptr(), gy.data_ptr(), x.data_ptr());
      return std::vector<Tensor>{out, out_no_bias, gx, gw};
    };
    const std::vector<Tensor> want = run(kernels::reference::conv2d_forward, kernels::reference::conv2d_backward_input,
                                         kernels::reference::conv2d_backward_weight);
    testing::for_engine_thread_counts([&] {
      const std::vector<Tensor> got = run(kernels::fast::conv2d_forward, kernels::fast::conv2d_backward_input,
                                          kernels::fast::conv2d_backward_weight);
      const char* names[] = {"forward", "forward without bias", "backward (input)", "backward (weight)"};
      for (std::size_t i = 0; i < want.size(); ++i) {
        INFO(names[i]);
        CHECK_FALSE(testing::any_nan(got[i]));
        CHECK(testing::relative_error(got[i], want[i]) < 1e-12);
      }
      // The weight gradient sums its runs of images in a fixed order: the same
      // bits again at the same thread count.
      Tensor again = full(weight, NAN, kFloat64);
      kernels::fast::conv2d_backward_weight(kFloat64, g, again.data_ptr(), gy.data_ptr(), x.data_ptr());
      CHECK(testing::equal(again, got[3]));
    });
  }

  // An empty batch: nothing to write forward, a zero weight gradient.
  kernels::Conv2dShape empty = conv_geometry(0, 3, 5, 5, 2, 3, 3, {1, 1}, {1, 1});
  Tensor gw = full({2, 3, 3, 3}, NAN, kFloat64);
  kernels::fast::conv2d_backward_weight(kFloat64, empty, gw.data_ptr(), nullptr, nullptr);
  CHECK(testing::all_equal_to(gw, 0.0));
}

TEST_CASE("CPU engine float64 conv2d through autograd matches the reference", "[engine][conv]") {
  // The op-level path (core/conv.cpp): forward, then both gradients, at 2 threads.
  const testing::CpuThreadsScope threads(2);
  manual_seed(94);
  const Tensor x = randn({3, 5, 11, 9}, kFloat64), w = randn({7, 5, 3, 3}, kFloat64), b = randn({7}, kFloat64);
  const auto run = [&](CpuKernels kernels) {
    const CpuKernelsScope scope(kernels);
    const Tensor xi = x.clone().requires_grad_(true), wi = w.clone().requires_grad_(true);
    const Tensor out = conv2d(xi, wi, b, {2, 2}, {1, 1});
    sum(mul(out, out)).backward();
    return std::vector<Tensor>{out.detach(), xi.grad(), wi.grad()};
  };
  const std::vector<Tensor> want = run(CpuKernels::reference);
  const std::vector<Tensor> got = run(CpuKernels::fast);
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(testing::relative_error(got[i], want[i]) < 1e-12);
}

TEST_CASE("CPU engine float64 GEMM matches the reference kernel", "[engine][matmul]") {
  manual_seed(95);
  // Batch 3 of [m, k] @ [k, n] with odd sizes, each operand row- or
  // column-major, with a padded leading dimension and as a broadcast (batch
  // stride 0); one product small enough, one large enough for OpenBLAS's threads.
  for (const auto& [m, n, k] : {std::array<std::int64_t, 3>{5, 7, 9}, std::array<std::int64_t, 3>{67, 131, 45}}) {
    for (bool a_columns : {false, true}) {
      for (bool b_columns : {false, true}) {
        INFO("[" << m << ", " << k << "] @ [" << k << ", " << n << "], a " << (a_columns ? "column" : "row")
                 << "-major, b " << (b_columns ? "column" : "row") << "-major");
        // a: 3 matrices, ld 2 more than a stored row; b: one matrix, broadcast.
        const std::int64_t a_ld = (a_columns ? m : k) + 2, b_ld = b_columns ? k : n;
        const Tensor a = randn({3, (a_columns ? k : m) * a_ld}, kFloat64);
        const Tensor b = randn({(b_columns ? n : k) * b_ld}, kFloat64);
        const kernels::GemmOperand op_a{a.data_ptr(), a_columns, a_ld, (a_columns ? k : m) * a_ld};
        const kernels::GemmOperand op_b{b.data_ptr(), b_columns, b_ld, 0};
        const kernels::GemmShape shape{3, m, n, k};
        Tensor want = full({3, m, n}, NAN, kFloat64), got = full({3, m, n}, NAN, kFloat64);
        kernels::reference::gemm(kFloat64, shape, want.data_ptr(), op_a, op_b);
        testing::for_engine_thread_counts([&] {
          kernels::fast::gemm(kFloat64, shape, got.data_ptr(), op_a, op_b);
          CHECK_FALSE(testing::any_nan(got));
          CHECK(testing::relative_error(got, want) < 1e-12);
        });
      }
    }
  }
  // k == 0: zeros over the poison.
  const Tensor a = randn({4}, kFloat64);
  Tensor zero_k = full({2, 3}, NAN, kFloat64);
  kernels::fast::gemm(kFloat64, {1, 2, 3, 0}, zero_k.data_ptr(), {a.data_ptr(), false, 1, 0},
                      {a.data_ptr(), false, 3, 0});
  CHECK(testing::all_equal_to(zero_k, 0.0));
}
