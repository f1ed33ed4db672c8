// matmul: exact values, a layout table (plain, batched, broadcast, transposed,
// sliced and expanded operands; support/op_table.h) that drives both the
// gradient checks and the CUDA-vs-CPU parity checks, the GEMM entry points on
// poisoned outputs, and the errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/matmul.h"
#include "core/random.h"
#include "kernels/matmul.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/op_table.h"

using namespace basin;
using basin::testing::OpCase;
using basin::testing::Outputs;
using basin::testing::Runs;
using basin::testing::input;
using basin::testing::input_no_grad;
using basin::testing::max_abs_diff;
using basin::testing::relative;
using basin::testing::relative_error;

namespace {

// Each layout at a small shape for the finite-difference checks and at odd
// sizes (never multiples of a tile) for CUDA parity. cuBLAS sums float32 in
// float32 and the reference in double; TF32 would miss the float32 bound by
// two orders of magnitude.
std::vector<OpCase> matmul_cases() {
  const auto plain = [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); };
  const auto layout = [](std::string name, testing::OpFn fn, std::vector<Shape> small, std::vector<Shape> large) {
    OpCase c{.name = std::move(name), .fn = std::move(fn), .tolerances = relative(1e-5, 1e-12), .all_compared = true};
    for (std::size_t i = 0; i < small.size(); ++i) c.inputs.push_back(input(small[i], large[i]));
    return c;
  };
  std::vector<OpCase> cases = {
      layout("2-D", plain, {{3, 4}, {4, 5}}, {{37, 29}, {29, 53}}),
      layout("batched", plain, {{2, 3, 4}, {2, 4, 5}}, {{3, 37, 29}, {3, 29, 53}}),
      layout("3-D @ 2-D (one b for the batch)", plain, {{2, 3, 4}, {4, 5}}, {{3, 37, 29}, {29, 53}}),
      layout("2-D @ 3-D (one a for the batch)", plain, {{3, 4}, {2, 4, 5}}, {{37, 29}, {3, 29, 53}}),
      layout("4-D @ 3-D, both broadcast", plain, {{2, 1, 3, 4}, {3, 4, 5}}, {{2, 1, 37, 29}, {3, 29, 53}}),
      layout("size-1 batch of b", plain, {{3, 3, 4}, {1, 4, 5}}, {{3, 37, 29}, {1, 29, 53}}),
      layout("row times matrix", plain, {{1, 4}, {4, 5}}, {{1, 29}, {29, 53}}),
      layout("matrix times column", plain, {{3, 4}, {4, 1}}, {{37, 29}, {29, 1}}),
      layout("a^T @ b", [](const auto& x) { return matmul(x[0].t(), x[1]); }, {{4, 3}, {4, 5}}, {{29, 37}, {29, 53}}),
      layout("a @ b^T", [](const auto& x) { return matmul(x[0], x[1].t()); }, {{3, 4}, {5, 4}}, {{37, 29}, {53, 29}}),
      layout("a^T @ b^T", [](const auto& x) { return matmul(x[0].t(), x[1].t()); }, {{4, 3}, {5, 4}},
             {{29, 37}, {53, 29}}),
      layout("batched transposes", [](const auto& x) { return matmul(x[0].transpose(1, 2), x[1].transpose(1, 2)); },
             {{2, 4, 3}, {2, 5, 4}}, {{3, 29, 37}, {3, 53, 29}}),
      layout("transposed batch @ 2-D", [](const auto& x) { return matmul(x[0].transpose(1, 2), x[1]); },
             {{2, 4, 3}, {4, 5}}, {{3, 29, 37}, {29, 53}}),
      layout("2-D @ transposed batch", [](const auto& x) { return matmul(x[0], x[1].transpose(1, 2)); },
             {{3, 4}, {2, 5, 4}}, {{37, 29}, {3, 53, 29}}),
      // Row stride wider than the row: read in place with a larger leading dimension.
      layout("column slice of a", [](const auto& x) { return matmul(x[0].slice(1, 1, x[0].size(1) - 1), x[1]); },
             {{3, 6}, {4, 5}}, {{37, 31}, {29, 53}}),
      // Every other column: neither layout fits, so the operand is copied first.
      layout("strided columns of a", [](const auto& x) { return matmul(x[0].slice(1, 0, x[0].size(1), 2), x[1]); },
             {{3, 8}, {4, 5}}, {{37, 58}, {29, 53}}),
      layout("batch slice of b", [](const auto& x) { return matmul(x[0], x[1].slice(0, 1, x[1].size(0))); },
             {{2, 3, 4}, {3, 4, 5}}, {{3, 37, 29}, {4, 29, 53}}),
      // One row repeated (stride 0): copied first; its gradient sums over the copies.
      layout("expanded rows of a", [](const auto& x) { return matmul(x[0].expand({5, x[0].size(1)}), x[1]); },
             {{1, 4}, {4, 3}}, {{1, 29}, {29, 53}}),
      layout("chained", [](const auto& x) { return matmul(matmul(x[0], x[1]), x[1].t()); }, {{3, 4}, {4, 4}},
             {{37, 29}, {29, 29}}),
  };
#if BASIN_WITH_CUDA  // the CUDA kernel entry point exists only in CUDA builds
  // The GEMM entry points on NaN-poisoned outputs: a read column-major (a^T
  // given), one b for a batch of 3; and k == 0, which must write zeros (the
  // memset path on CUDA).
  cases.push_back(
      {.name = "GEMM on poisoned outputs",
       .fn = [](const auto& x) -> Outputs {
         const Tensor& a_t = x[0];  // [3, 29, 37]: a^T, read column-major
         const Tensor& b = x[1];    // [29, 53]: one b for the batch
         const DType dtype = a_t.dtype();
         const TensorOptions options = TensorOptions(dtype).device(a_t.device());
         const kernels::GemmOperand op_a{a_t.data_ptr(), true, 37, 29 * 37};
         const kernels::GemmOperand op_b{b.data_ptr(), false, 53, 0};
         const kernels::GemmOperand empty_a{a_t.data_ptr(), false, 1, 0};
         Tensor out = full({3, 37, 53}, NAN, options);
         Tensor zero_k = full({3, 37, 53}, NAN, options);
         run_kernel(
             a_t.device(),
             [&] {
               kernels::reference::gemm(dtype, {3, 37, 53, 29}, out.data_ptr(), op_a, op_b);
               kernels::reference::gemm(dtype, {3, 37, 53, 0}, zero_k.data_ptr(), empty_a, op_b);
             },
             [&] {
               kernels::cuda::gemm(dtype, {3, 37, 53, 29}, out.data_ptr(), op_a, op_b);
               kernels::cuda::gemm(dtype, {3, 37, 53, 0}, zero_k.data_ptr(), empty_a, op_b);
             });
         return {out, zero_k};
       },
       .inputs = {input_no_grad({3, 29, 37}), input_no_grad({29, 53})},
       .runs = Runs::Parity,
       .differentiable = false,
       .tolerances = relative(1e-5, 1e-12)});
#endif
  return cases;
}

// out[i, j] = sum_p a[i, p] b[p, j] in double, straight from the definition.
std::vector<double> naive_matmul(const Tensor& a, const Tensor& b) {
  const std::int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  const std::vector<double> x = a.to_vector<double>();
  const std::vector<double> y = b.to_vector<double>();
  std::vector<double> out(static_cast<std::size_t>(m * n), 0.0);
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double total = 0.0;
      for (std::int64_t p = 0; p < k; ++p) total += x[i * k + p] * y[p * n + j];
      out[i * n + j] = total;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("matmul gives exact small products", "[matmul]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO(dtype_name(dtype));
    const Tensor a = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3}, dtype);
    const Tensor b = from_vector<double>({7, 8, 9, 10, 11, 12}, {3, 2}, dtype);
    const Tensor c = matmul(a, b);
    CHECK(c.shape() == Shape{2, 2});
    CHECK(c.dtype() == dtype);
    CHECK(c.to_vector<double>() == std::vector<double>{58, 64, 139, 154});
    // Transposed views: (b^T a^T) = (a b)^T, read in place.
    CHECK(matmul(b.t(), a.t()).to_vector<double>() == std::vector<double>{58, 139, 64, 154});

    // One b for a batch of two a's; then one a for a batch of two b's.
    const Tensor batch_a = from_vector<double>({1, 0, 0, 1, 0, 1, 1, 0}, {2, 2, 2}, dtype);
    const Tensor m = from_vector<double>({1, 2, 3, 4}, {2, 2}, dtype);
    const Tensor left = matmul(batch_a, m);
    CHECK(left.shape() == Shape{2, 2, 2});
    CHECK(left.to_vector<double>() == std::vector<double>{1, 2, 3, 4, 3, 4, 1, 2});
    const Tensor right = matmul(m, batch_a);
    CHECK(right.shape() == Shape{2, 2, 2});
    CHECK(right.to_vector<double>() == std::vector<double>{1, 2, 3, 4, 2, 1, 4, 3});
  }
}

TEST_CASE("matmul matches the definition on odd batched and strided shapes", "[matmul]") {
  manual_seed(31);
  const Tensor a = randn({3, 7, 5}, kFloat64);
  const Tensor b = randn({3, 5, 9}, kFloat64);
  const Tensor c = matmul(a, b);
  REQUIRE(c.shape() == Shape{3, 7, 9});
  for (std::int64_t i = 0; i < 3; ++i) {
    CHECK(max_abs_diff(c.select(0, i).to_vector<double>(), naive_matmul(a.select(0, i), b.select(0, i))) < 1e-12);
  }
  // Every layout the operand description handles gives bit-identical results to
  // the same values laid out contiguously: the CPU kernel adds in the same order.
  const Tensor wide = randn({9, 14}, kFloat64);
  const Tensor t = randn({5, 9}, kFloat64).t();        // column-major
  const Tensor sliced = wide.slice(1, 2, 7);           // row-major, ld 14
  const Tensor stepped = wide.slice(1, 0, 10, 2);      // no BLAS layout
  const Tensor expanded = randn({1, 9}, kFloat64).expand({4, 9});
  for (const Tensor& lhs : {sliced.t(), stepped.t(), randn({5, 9}, kFloat64)}) {
    for (const Tensor& rhs : {t, sliced, stepped, expanded.t()}) {
      INFO(shape_str(lhs.shape()) << " @ " << shape_str(rhs.shape()) << " strides " << shape_str(lhs.strides())
                                  << " / " << shape_str(rhs.strides()));
      const Tensor got = matmul(lhs, rhs);
      CHECK(testing::equal(got, matmul(lhs.contiguous(), rhs.contiguous())));
      CHECK(max_abs_diff(got.to_vector<double>(), naive_matmul(lhs.contiguous(), rhs.contiguous())) < 1e-12);
    }
  }
}

TEST_CASE("matmul handles zero sizes", "[matmul]") {
  // k == 0: an empty sum, so zeros; gradients are empty.
  Tensor a = randn({3, 0}, kFloat64).requires_grad_();
  Tensor b = randn({0, 4}, kFloat64).requires_grad_();
  const Tensor c = matmul(a, b);
  CHECK(c.shape() == Shape{3, 4});
  CHECK(testing::all_equal_to(c, 0.0));
  c.backward(ones({3, 4}, kFloat64));
  CHECK(a.grad().shape() == Shape{3, 0});
  CHECK(b.grad().shape() == Shape{0, 4});
  // Empty rows, columns and batches give empty results.
  CHECK(matmul(randn({0, 3}), randn({3, 4})).shape() == Shape{0, 4});
  CHECK(matmul(randn({2, 3}), randn({3, 0})).shape() == Shape{2, 0});
  CHECK(matmul(randn({0, 2, 3}), randn({3, 4})).shape() == Shape{0, 2, 4});
  CHECK(matmul(randn({2, 5, 0}), randn({0, 4})).shape() == Shape{2, 5, 4});
  CHECK(testing::all_equal_to(matmul(randn({2, 5, 0}), randn({2, 0, 4})), 0.0));
}

TEST_CASE("matmul matches finite differences", "[matmul][gradcheck]") {
  testing::run_gradient_checks(matmul_cases());
}

TEST_CASE("matmul computes only the gradients that are needed", "[matmul]") {
  manual_seed(33);
  const Tensor a = randn({2, 3, 4}, kFloat64);
  Tensor b = randn({4, 5}, kFloat64).requires_grad_();
  matmul(a, b).backward(ones({2, 3, 5}, kFloat64));
  CHECK_FALSE(a.grad().defined());
  REQUIRE(b.grad().defined());
  // d(sum(a b))/db[p, j] = sum over batch and rows of a[..., p].
  const std::vector<double> x = a.to_vector<double>();
  const std::vector<double> g = b.grad().to_vector<double>();
  for (std::int64_t p = 0; p < 4; ++p) {
    double column = 0.0;
    for (std::int64_t r = 0; r < 6; ++r) column += x[r * 4 + p];
    for (std::int64_t j = 0; j < 5; ++j) CHECK(g[p * 5 + j] == Approx(column).epsilon(1e-12));
  }

  Tensor a2 = randn({3, 4}, kFloat64).requires_grad_();
  const Tensor b2 = randn({4, 5}, kFloat64);
  matmul(a2, b2).backward(ones({3, 5}, kFloat64));
  CHECK(a2.grad().shape() == Shape{3, 4});
  CHECK_FALSE(b2.grad().defined());
}

TEST_CASE("matmul rejects bad inputs with clear errors", "[matmul][errors]") {
  testing::check_bad_inputs(
      [](const auto& x) { return matmul(x[0], x[1]); },
      {
          {{zeros({2, 3}), zeros({4, 5})}, "matmul: a is [2, 3] but b is [4, 5]"},
          {{zeros({2, 2, 3}), zeros({4, 5})}, "matmul: a is [2, 2, 3] but b is [4, 5]"},
          {{zeros({2, 3}), zeros({3, 5}, kFloat64)}, "matmul: dtypes differ (float32 and float64)"},
          {{zeros({2, 3}, kInt64), zeros({3, 5}, kInt64)}, "matmul: expected a floating tensor, got int64"},
          {{zeros({3}), zeros({3, 5})}, "matmul: a is [3] and b is [3, 5]; both need at least 2 dims"},
          {{zeros({2, 3}), zeros({3})}, "matmul: a is [2, 3] and b is [3]; both need at least 2 dims"},
          {{zeros({}), zeros({3, 5})}, "matmul: a is [] and b is [3, 5]; both need at least 2 dims"},
          {{zeros({2, 3, 4}), zeros({5, 4, 6})},
           "matmul: a is [2, 3, 4] but b is [5, 4, 6]: batch dims [2] and [5] cannot be broadcast"},
          {{zeros({2, 3, 3, 4}), zeros({2, 4, 6})}, "batch dims [2, 3] and [2] cannot be broadcast"},
      });
}

TEST_CASE("matmul CPU GEMM overwrites a poisoned output", "[matmul]") {
  const CpuKernelsScope reference(CpuKernels::reference);  // the expected values come from the reference too
  manual_seed(34);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO(dtype_name(dtype));
    // a column-major (a t() view), b broadcast over a batch of 3.
    const Tensor a_t = randn({3, 5, 7}, dtype);  // holds a^T
    const Tensor b = randn({5, 4}, dtype);
    Tensor out = full({3, 7, 4}, nan, dtype);
    kernels::GemmOperand op_a{a_t.data_ptr(), true, 7, 35};
    kernels::GemmOperand op_b{b.data_ptr(), false, 4, 0};
    kernels::reference::gemm(dtype, {3, 7, 4, 5}, out.data_ptr(), op_a, op_b);
    const Tensor expected = matmul(a_t.transpose(1, 2).contiguous(), b.expand({3, 5, 4}).contiguous());
    CHECK(max_abs_diff(out, expected) == 0.0);

    Tensor zero_k = full({2, 3}, nan, dtype);
    kernels::reference::gemm(dtype, {1, 2, 3, 0}, zero_k.data_ptr(), op_a, op_b);
    CHECK(testing::all_equal_to(zero_k, 0.0));
  }
}

TEST_CASE("matmul cuBLAS GEMM overwrites a poisoned output", "[matmul][cuda]") {
  BASIN_REQUIRE_CUDA();
#if BASIN_WITH_CUDA  // the GEMM case exists only in CUDA builds
  testing::run_cuda_parity(matmul_cases(), testing::kernels_only);
#endif
}

TEST_CASE("matmul CUDA forward and backward match the CPU", "[matmul][cuda]") {
  testing::run_cuda_parity(matmul_cases(), testing::through_autograd);
}

TEST_CASE("matmul on CUDA is deterministic and handles zero sizes", "[matmul][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(37);
  const Tensor a = randn({5, 37, 61}, TensorOptions().device(Device::cuda()));
  const Tensor b = randn({61, 43}, TensorOptions().device(Device::cuda()));
  CHECK(testing::equal(matmul(a, b), matmul(a, b)));
  CHECK(testing::all_equal_to(matmul(randn({3, 0}, TensorOptions().device(Device::cuda())),
                            randn({0, 5}, TensorOptions().device(Device::cuda()))),
                     0.0));
  CHECK(matmul(randn({0, 3}, TensorOptions().device(Device::cuda())), b.slice(0, 0, 3)).shape() == Shape{0, 43});
  CHECK_THROWS_WITH(matmul(a, b.cpu()), Catch::Contains("matmul: tensors are on different devices"));
}

TEST_CASE("matmul CPU engine (oneDNN sgemm) matches the reference", "[matmul][engine]") {
  testing::run_engine_parity(matmul_cases(), testing::through_autograd);
}
