// cat, index_select and gather: values, the errors bad input gets, and one
// table of cases per op (support/op_table.h) driving the finite-difference
// gradients and the CUDA-vs-CPU parity of the forward and backward kernels.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/elementwise.h"
#include "core/indexing.h"
#include "core/random.h"
#include "core/reduce.h"
#include "kernels/indexing.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/op_table.h"

using namespace basin;
using basin::testing::OpCase;
using basin::testing::Runs;
using basin::testing::exact;
using basin::testing::indices;
using basin::testing::input;
using basin::testing::input_no_grad;

namespace {

Tensor longs(const std::vector<std::int64_t>& values, const Shape& shape) { return from_vector(values, shape); }

}  // namespace

// ---------------------------------------------------------------- values

TEST_CASE("cat joins tensors along a dim", "[cat]") {
  const Tensor a = arange(6, kFloat64).reshape({2, 3});
  const Tensor b = arange(10.0, 14.0, 1.0, kFloat64).reshape({2, 2});
  const Tensor c = arange(20.0, 23.0, 1.0, kFloat64).reshape({1, 3});
  CHECK(cat({a, b}, 1).shape() == Shape{2, 5});
  CHECK(cat({a, b}, 1).to_vector<double>() == std::vector<double>{0, 1, 2, 10, 11, 3, 4, 5, 12, 13});
  CHECK(cat({a, b}, -1).to_vector<double>() == cat({a, b}, 1).to_vector<double>());
  CHECK(cat({c, zeros({0, 3}, kFloat64), a}, 0).to_vector<double>() ==
        std::vector<double>{20, 21, 22, 0, 1, 2, 3, 4, 5});
  // Strided inputs are read through their strides.
  CHECK(cat({a.t(), b.t()}, 0).to_vector<double>() == std::vector<double>{0, 3, 1, 4, 2, 5, 10, 12, 11, 13});
  const Tensor ints = cat({arange(3, kInt64), arange(2, kInt64)}, 0);
  CHECK(ints.dtype() == kInt64);
  CHECK(ints.to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 1, 2, 0, 1});
  CHECK(cat({a}, 0).to_vector<double>() == a.to_vector<double>());
}

TEST_CASE("cat gives each input its slice of the gradient", "[cat]") {
  Tensor a = ones({2, 3}, kFloat64).requires_grad_();
  Tensor b = ones({2, 2}, kFloat64).requires_grad_();
  cat({a, b, a}, 1).backward(arange(16, kFloat64).reshape({2, 8}));
  // a appears twice (columns 0-2 and 5-7): its two slices add up.
  CHECK(a.grad().to_vector<double>() == std::vector<double>{0 + 5, 1 + 6, 2 + 7, 8 + 13, 9 + 14, 10 + 15});
  CHECK(b.grad().to_vector<double>() == std::vector<double>{3, 4, 11, 12});
}

TEST_CASE("index_select picks slices", "[index_select]") {
  const Tensor x = arange(12, kFloat64).reshape({3, 4});
  CHECK(index_select(x, 0, longs({2, 0, 2}, {3})).to_vector<double>() ==
        std::vector<double>{8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11});
  const Tensor columns = index_select(x, -1, from_vector<std::int32_t>({3, 1}, {2}));
  CHECK(columns.shape() == Shape{3, 2});
  CHECK(columns.to_vector<double>() == std::vector<double>{3, 1, 7, 5, 11, 9});
  CHECK(index_select(x, 1, longs({}, {0})).shape() == Shape{3, 0});
  const Tensor cube = arange(24, kFloat64).reshape({2, 3, 4});
  CHECK(index_select(cube, 1, longs({1}, {1})).to_vector<double>() ==
        std::vector<double>{4, 5, 6, 7, 16, 17, 18, 19});
  CHECK(index_select(x.t(), 0, longs({1}, {1})).to_vector<double>() == std::vector<double>{1, 5, 9});
  CHECK(index_select(arange(5, kInt64), 0, longs({4, 4}, {2})).to_vector<std::int64_t>() ==
        std::vector<std::int64_t>{4, 4});

  // Repeated indices add their gradients.
  Tensor leaf = x.clone().requires_grad_();
  sum(index_select(leaf, 0, longs({2, 0, 2}, {3}))).backward();
  CHECK(leaf.grad().to_vector<double>() == std::vector<double>{1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 2, 2});
}

TEST_CASE("gather follows torch.gather", "[gather]") {
  const Tensor x = from_vector<double>({1, 2, 3, 4}, {2, 2});
  CHECK(gather(x, 1, longs({0, 0, 1, 0}, {2, 2})).to_vector<double>() == std::vector<double>{1, 1, 4, 3});
  CHECK(gather(x, -1, longs({0, 0, 1, 0}, {2, 2})).to_vector<double>() == std::vector<double>{1, 1, 4, 3});
  CHECK(gather(x, 0, from_vector<std::int32_t>({0, 1, 1, 0}, {2, 2})).to_vector<double>() ==
        std::vector<double>{1, 4, 3, 2});
  // An index smaller than x in the other dims reads only that corner.
  const Tensor wide = arange(12, kFloat64).reshape({3, 4});
  const Tensor corner = gather(wide, 1, longs({3, 0, 1, 1}, {2, 2}));
  CHECK(corner.shape() == Shape{2, 2});
  CHECK(corner.to_vector<double>() == std::vector<double>{3, 0, 5, 5});
  // Strided x: wide.t()[index[0][j]][j] = wide[j][index[0][j]].
  CHECK(gather(wide.t(), 0, longs({1, 2, 3}, {1, 3})).to_vector<double>() == std::vector<double>{1, 6, 11});
  CHECK(gather(wide, 0, longs({}, {0, 4})).shape() == Shape{0, 4});

  // The gradient scatter-adds: repeated positions accumulate, unread ones get zero.
  Tensor leaf = x.clone().requires_grad_();
  gather(leaf, 1, longs({0, 0, 1, 0}, {2, 2})).backward(from_vector<double>({1, 2, 3, 4}, {2, 2}));
  CHECK(leaf.grad().to_vector<double>() == std::vector<double>{3, 0, 4, 3});
  Tensor big = wide.clone().requires_grad_();
  sum(gather(big, 1, longs({3, 0, 1, 1}, {2, 2}))).backward();
  CHECK(big.grad().to_vector<double>() == std::vector<double>{1, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0});
}

// ---------------------------------------------------------------- the tables

namespace {

// Gradients at small shapes, with hand-picked indices that repeat and skip;
// parity on CUDA at [37, 41, 5] with random indices (repeats included), bit
// for bit: both sides sum repeated indices in the same order.

std::vector<OpCase> cat_cases() {
  return {
      {.name = "cat dim 1",
       .fn = [](const auto& v) { return cat({v[0], v[1], v[0]}, 1); },
       .inputs = {input({4, 5}), input({4, 2})},
       .runs = Runs::Gradients},
      {.name = "cat dim 0 transposed",
       .fn = [](const auto& v) { return cat({v[1].t(), v[0].t()}, 0); },
       .inputs = {input({4, 5}), input({4, 2})},
       .runs = Runs::Gradients},
      {.name = "cat dim -2 of three",
       .fn = [](const auto& v) { return cat({v[0], v[1], v[2]}, -2); },
       .inputs = {input({7, 3, 5}), input({7, 11, 5}), input({7, 2, 5})},
       .runs = Runs::Parity,
       .tolerances = exact()},
  };
}

std::vector<OpCase> index_select_cases() {
  const Tensor rows = longs({2, 0, 2, 3, 2}, {5});
  const Tensor columns = from_vector<std::int32_t>({1, 1, 4, 0}, {4});
  std::vector<OpCase> cases = {
      {.name = "index_select dim 0",
       .fn = [rows](const auto& v) { return index_select(v[0], 0, rows); },
       .inputs = {input({4, 5})},
       .runs = Runs::Gradients},
      {.name = "index_select dim -1",
       .fn = [columns](const auto& v) { return index_select(v[0], -1, columns); },
       .inputs = {input({4, 5})},
       .runs = Runs::Gradients},
      {.name = "index_select transposed",
       .fn = [rows](const auto& v) { return index_select(v[0].t(), 1, rows); },
       .inputs = {input({4, 5})},
       .runs = Runs::Gradients},
  };
  const Shape shape{37, 41, 5};
  for (DType index_dtype : {kInt32, kInt64}) {
    for (std::int64_t dim : {0, 1, 2, -1}) {
      cases.push_back({.name = "index_select dim " + std::to_string(dim) + ", " + dtype_name(index_dtype) + " index",
                       .fn = [dim](const auto& v) { return index_select(v[0], dim, v[1]); },
                       .inputs = {input(shape), indices({53}, shape[dim < 0 ? dim + 3 : dim], index_dtype)},
                       .runs = Runs::Parity,
                       .tolerances = exact()});
    }
  }
  // The backward kernel on a poisoned output: every element must be written.
  cases.push_back({.name = "index_select backward kernel on a poisoned output",
                   .fn = [shape](const auto& v) {
                     const Tensor &g = v[0], &index = v[1];
                     Tensor grad_in = full(shape, NAN, TensorOptions(g.dtype()).device(g.device()));
                     const kernels::SelectShape layout{37, 41, 9, 5};
                     run_kernel(
                         g.device(),
                         [&] { kernels::reference::index_select_backward(arg(grad_in), arg(g), arg(index), layout); },
                         [&] { kernels::cuda::index_select_backward(arg(grad_in), arg(g), arg(index), layout); });
                     return grad_in;
                   },
                   .inputs = {input_no_grad({37, 9, 5}), indices({9}, 41)},
                   .runs = Runs::Parity,
                   .differentiable = false,
                   .tolerances = exact()});
  return cases;
}

std::vector<OpCase> gather_cases() {
  const Tensor gather_rows = longs({0, 2, 2, 1, 3, 3, 0, 2}, {2, 4});
  const Tensor gather_columns = from_vector<std::int32_t>({4, 4, 0, 1, 2, 3}, {3, 2});
  std::vector<OpCase> cases = {
      {.name = "gather dim 0",
       .fn = [gather_rows](const auto& v) { return gather(v[0], 0, gather_rows); },
       .inputs = {input({4, 5})},
       .runs = Runs::Gradients},
      {.name = "gather dim -1",
       .fn = [gather_columns](const auto& v) { return gather(v[0], -1, gather_columns); },
       .inputs = {input({4, 5})},
       .runs = Runs::Gradients},
      {.name = "gather transposed",
       .fn = [gather_rows](const auto& v) { return gather(v[0].t(), 1, gather_rows.t()); },
       .inputs = {input({4, 5})},
       .runs = Runs::Gradients},
  };
  // Index shapes no larger than x off the gathered dim, and longer than x along it.
  const Shape shape{37, 41, 5};
  const std::vector<std::pair<std::int64_t, Shape>> index_shapes = {
      {0, {59, 41, 3}}, {1, {31, 67, 5}}, {2, {37, 40, 9}}, {-1, {1, 13, 7}}};
  for (DType index_dtype : {kInt32, kInt64}) {
    for (const auto& [dim, index_shape] : index_shapes) {
      const std::int64_t gathered = dim;
      cases.push_back({.name = "gather dim " + std::to_string(dim) + ", " + dtype_name(index_dtype) + " index",
                       .fn = [gathered](const auto& v) { return gather(v[0], gathered, v[1]); },
                       .inputs = {input(shape), indices(index_shape, shape[dim < 0 ? dim + 3 : dim], index_dtype)},
                       .runs = Runs::Parity,
                       .tolerances = exact()});
    }
  }
  // A strided x, read through its strides on the GPU.
  cases.push_back({.name = "gather of a transposed x",
                   .fn = [](const auto& v) { return gather(v[0].t(), 1, v[1]); },
                   .inputs = {input({41, 37}), indices({37, 23}, 41)},
                   .runs = Runs::Parity,
                   .tolerances = exact()});
  // The backward kernel on a poisoned output, with an index smaller than x:
  // the elements no index reaches must be written as zeros.
  cases.push_back({.name = "gather backward kernel on a poisoned output",
                   .fn = [shape](const auto& v) {
                     const Tensor &g = v[0], &index = v[1];
                     Tensor grad_in = full(shape, NAN, TensorOptions(g.dtype()).device(g.device()));
                     run_kernel(
                         g.device(), [&] { kernels::reference::gather_backward(arg(grad_in), arg(g), arg(index), 2); },
                         [&] { kernels::cuda::gather_backward(arg(grad_in), arg(g), arg(index), 2); });
                     return grad_in;
                   },
                   .inputs = {input_no_grad({29, 41, 2}), indices({29, 41, 2}, 5, kInt32)},
                   .runs = Runs::Parity,
                   .differentiable = false,
                   .tolerances = exact()});
  return cases;
}

}  // namespace

TEST_CASE("cat, index_select and gather match finite differences", "[cat][index_select][gather][gradcheck]") {
  std::vector<OpCase> cases = cat_cases();
  for (auto more : {index_select_cases(), gather_cases()}) cases.insert(cases.end(), more.begin(), more.end());
  testing::run_gradient_checks(cases);
}

TEST_CASE("index backward CPU kernels write every element", "[index_select][gather]") {
  manual_seed(62);
  const Tensor index = longs({3, 3, 0}, {3});
  const kernels::SelectShape layout{2, 5, 3, 4};
  const Tensor g = randn({2, 3, 4}, kFloat64);
  Tensor grad_in = full({2, 5, 4}, NAN, kFloat64);
  kernels::reference::index_select_backward(arg(grad_in), arg(g), arg(index), layout);
  Tensor leaf = randn({2, 5, 4}, kFloat64).requires_grad_();
  index_select(leaf, 1, index).backward(g);
  CHECK(testing::equal(grad_in, leaf.grad()));  // no NaN survives (NaN compares unequal)

  const Tensor gather_index = longs({4, 0, 0, 1, 2, 4}, {2, 3});
  const Tensor gy = randn({2, 3}, kFloat64);
  Tensor gather_grad = full({3, 5}, NAN, kFloat64);
  kernels::reference::gather_backward(arg(gather_grad), arg(gy), arg(gather_index), 1);
  Tensor x = randn({3, 5}, kFloat64).requires_grad_();
  gather(x, 1, gather_index).backward(gy);
  CHECK(testing::equal(gather_grad, x.grad()));
}

// ---------------------------------------------------------------- CUDA parity

TEST_CASE("index_select CUDA kernels match the CPU kernels", "[index_select][cuda]") {
  testing::run_cuda_parity(index_select_cases());
}

TEST_CASE("gather CUDA kernels match the CPU kernels", "[gather][cuda]") {
  testing::run_cuda_parity(gather_cases());
}

TEST_CASE("cat on CUDA matches the CPU", "[cat][cuda]") {
  testing::run_cuda_parity(cat_cases());
}

// ---------------------------------------------------------------- errors

TEST_CASE("cat rejects inputs that do not fit together", "[cat][errors]") {
  const Tensor a = zeros({2, 3});
  CHECK_THROWS_WITH(cat({}, 0), Catch::Contains("cat: expected at least one tensor"));
  CHECK_THROWS_WITH(cat({a, zeros({2, 4}), zeros({3, 3})}, 0),
                    Catch::Contains("cat: tensor 1 has shape [2, 4] but tensor 0 has shape [2, 3]; they must agree "
                                    "in every dimension except 0"));
  CHECK_THROWS_WITH(cat({a, zeros({3})}, 0),
                    Catch::Contains("cat: tensor 1 has shape [3] but tensor 0 has shape [2, 3]"));
  CHECK_THROWS_WITH(cat({a, a, zeros({2, 3}, kFloat64)}, 1),
                    Catch::Contains("cat: tensor 2 is float64 but tensor 0 is float32"));
  CHECK_THROWS_WITH(cat({a}, 2), Catch::Contains("cat: dimension 2 is out of range"));
  CHECK_THROWS_WITH(cat({full({}, 1.0)}, 0), Catch::Contains("cat: tensor 0 is a scalar"));
}

TEST_CASE("index_select and gather reject bad indices", "[index_select][gather][errors]") {
  const Tensor x = zeros({3, 4});
  CHECK_THROWS_WITH(index_select(x, 0, zeros({2})),
                    Catch::Contains("index_select: index must be int32 or int64, got float32"));
  CHECK_THROWS_WITH(index_select(x, 0, longs({0, 1, 2, 0}, {2, 2})),
                    Catch::Contains("index_select: index must be 1-D, got shape [2, 2]"));
  CHECK_THROWS_WITH(index_select(x, 0, longs({0, 5, 1}, {3})),
                    Catch::Contains("index_select: index 5 is out of range for dimension 0 of size 3"));
  CHECK_THROWS_WITH(index_select(x, -1, from_vector<std::int32_t>({-1, 2}, {2})),
                    Catch::Contains("index_select: index -1 is out of range for dimension 1 of size 4"));
  CHECK_THROWS_WITH(index_select(x, 2, longs({0}, {1})), Catch::Contains("index_select: dimension 2 is out of range"));
  CHECK_THROWS_WITH(index_select(full({}, 1.0), 0, longs({0}, {1})),
                    Catch::Contains("index_select: x must have at least one dimension"));

  CHECK_THROWS_WITH(gather(x, 1, zeros({3, 4}, kFloat64)),
                    Catch::Contains("gather: index must be int32 or int64, got float64"));
  CHECK_THROWS_WITH(gather(x, 1, longs({0, 1}, {2})),
                    Catch::Contains("gather: index has shape [2] but x has shape [3, 4]; they must have the same "
                                    "number of dimensions"));
  CHECK_THROWS_WITH(gather(x, 1, longs({0, 0, 0, 0}, {4, 1})),
                    Catch::Contains("gather: index has shape [4, 1], larger than x's shape [3, 4] in dimension 0"));
  CHECK_THROWS_WITH(gather(x, 0, longs({0, 3}, {1, 2})),
                    Catch::Contains("gather: index 3 is out of range for dimension 0 of size 3"));
  CHECK_THROWS_WITH(gather(x, -2, longs({-2}, {1, 1})),
                    Catch::Contains("gather: index -2 is out of range for dimension 0 of size 3"));
}

TEST_CASE("indexing ops reject tensors on different devices and bad CUDA indices",
          "[cat][index_select][gather][cuda][errors]") {
  BASIN_REQUIRE_CUDA();
  const Tensor x = zeros({37, 4});
  const Tensor index = longs({0, 1}, {2});
  CHECK_THROWS_WITH(index_select(x, 0, index.to(Device::cuda())),
                    Catch::Contains("index_select: tensors are on different devices"));
  CHECK_THROWS_WITH(gather(x.to(Device::cuda()), 0, longs({0, 1}, {2, 1})),
                    Catch::Contains("gather: tensors are on different devices"));
  CHECK_THROWS_WITH(cat({x, x.to(Device::cuda())}, 0), Catch::Contains("cat: tensor 1 is on cuda"));

  // The CUDA range check: a bad value late in a long index (past one block's
  // worth of threads), too large and negative.
  std::vector<std::int64_t> values(2001, 7);
  values[1777] = 37;
  const Tensor d = x.to(Device::cuda());
  CHECK_THROWS_WITH(index_select(d, 0, longs(values, {2001}).to(Device::cuda())),
                    Catch::Contains("index_select: index 37 is out of range for dimension 0 of size 37"));
  values[1777] = 7;
  values[1999] = -3;
  CHECK_THROWS_WITH(gather(d, 0, longs(values, {2001, 1}).to(kInt32).to(Device::cuda())),
                    Catch::Contains("gather: index -3 is out of range for dimension 0 of size 37"));
  values[1999] = 36;
  CHECK(index_select(d, 0, longs(values, {2001}).to(Device::cuda())).shape() == Shape{2001, 4});
}
