// The CPU engine's switch and threads (core/cpu_engine.h). The engine-vs-
// reference parity of each op sits beside its CUDA parity, in the op's own
// test file ("[engine]"); the cases here cover what those small odd shapes
// do not: tensors large enough to be split across threads.
#include <catch2/catch.hpp>

#include "core/batchnorm.h"
#include "core/conv.h"
#include "core/cpu_engine.h"
#include "core/elementwise.h"
#include "core/random.h"
#include "core/reduce.h"
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
