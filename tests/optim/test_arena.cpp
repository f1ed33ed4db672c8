// The flat parameter arena: layout, views, gradients landing in place,
// binding and re-binding.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/random.h"
#include "core/reduce.h"
#include "optim/arena.h"
#include "support/compare.h"
#include "support/cuda.h"

using namespace basin;
using basin::optim::ParameterArena;
using basin::testing::equal;

namespace {

// Odd sizes; the predicate picks tensors 0 and 2, so the layout order
// (0, 2, 1, 3, 4) differs from the given one.
const std::vector<Shape> kShapes = {{3, 5}, {7}, {2, 3, 4}, {1}, {65}};

std::vector<Tensor> make_params(DType dtype, Device device = Device::cpu()) {
  std::vector<Tensor> out;
  for (const Shape& shape : kShapes) {
    // In [1, 2): no zeros, so a lost value cannot pass for padding.
    out.push_back(rand(shape, TensorOptions(dtype).device(device), 1.0, 2.0).requires_grad_());
  }
  return out;
}

bool picks_0_and_2(std::size_t index, const Tensor&) { return index == 0 || index == 2; }

// Every element of `flat` outside the tensors' ranges.
std::vector<double> padding_of(const ParameterArena& arena, const Tensor& flat) {
  const std::vector<double> values = flat.to_vector<double>();
  std::vector<bool> used(values.size(), false);
  for (std::size_t i = 0; i < arena.size(); ++i) {
    for (std::int64_t j = 0; j < arena.tensors()[i].numel(); ++j) used[arena.offset(i) + j] = true;
  }
  std::vector<double> out;
  for (std::size_t k = 0; k < values.size(); ++k) {
    if (!used[k]) out.push_back(values[k]);
  }
  return out;
}

bool all_zero(const std::vector<double>& values) {
  for (double v : values) {
    if (v != 0.0) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("the arena puts each tensor on a 256-byte boundary, the adaptive run first", "[optim][arena]") {
  manual_seed(1);
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO(dtype_name(dtype));
    const std::vector<Tensor> params = make_params(dtype);
    const ParameterArena arena(params, picks_0_and_2);
    const std::int64_t a = 256 / static_cast<std::int64_t>(dtype_size(dtype));  // 64 or 32 elements

    REQUIRE(arena.size() == 5);
    for (std::size_t i = 0; i < arena.size(); ++i) {
      CHECK(arena.tensors()[i].impl() == params[i].impl());  // the given order, the given handles
      CHECK(arena.offset(i) * static_cast<std::int64_t>(dtype_size(dtype)) % 256 == 0);
    }
    // Run 1: tensors 0 (15 elements) and 2 (24); run 2: tensors 1 (7), 3 (1), 4 (65).
    CHECK(arena.offset(0) == 0);
    CHECK(arena.offset(2) == a);
    CHECK(arena.adaptive_end() == (a == 64 ? 128 : 64));  // end of tensor 2, rounded up
    CHECK(arena.offset(1) == arena.adaptive_end());
    CHECK(arena.offset(3) == arena.offset(1) + a);
    CHECK(arena.offset(4) == arena.offset(3) + a);
    CHECK(arena.padded_numel() == arena.offset(4) + (a == 64 ? 128 : 96));  // 65 rounded up
    CHECK(arena.padded_numel() % a == 0);
    CHECK(arena.params().shape() == Shape{arena.padded_numel()});
    CHECK(arena.grads().shape() == Shape{arena.padded_numel()});
    CHECK(arena.dtype() == dtype);
    CHECK(arena.device() == Device::cpu());
    CHECK(all_zero(padding_of(arena, arena.params())));
    CHECK(all_zero(padding_of(arena, arena.grads())));
  }

  SECTION("no adaptive tensor, or all of them") {
    const ParameterArena none(make_params(kFloat32));
    CHECK(none.adaptive_end() == 0);
    CHECK(none.offset(0) == 0);
    CHECK(none.offset(1) == 64);  // the given order
    const ParameterArena all(make_params(kFloat32), [](std::size_t, const Tensor&) { return true; });
    CHECK(all.adaptive_end() == all.padded_numel());
  }
}

TEST_CASE("packed parameters view the arena and keep their values and gradients", "[optim][arena]") {
  manual_seed(2);
  std::vector<Tensor> params = make_params(kFloat32);
  const std::vector<Tensor> before = testing::host_copies(params);
  const Tensor existing = rand({7}, kFloat32, 1.0, 2.0);
  params[1].set_grad(existing.clone());  // an existing gradient is carried over
  const Tensor handle = params[3];        // another handle to the same tensor follows it

  const ParameterArena arena(params, picks_0_and_2);
  for (std::size_t i = 0; i < params.size(); ++i) {
    INFO("parameter " << i);
    const Tensor& p = params[i];
    CHECK(p.storage() == arena.params().storage());
    CHECK(p.storage_offset() == arena.offset(i));
    CHECK(p.data_ptr() == static_cast<void*>(arena.params().data<float>() + arena.offset(i)));
    CHECK(p.shape() == kShapes[i]);
    CHECK(p.is_contiguous());
    CHECK(p.requires_grad());
    CHECK(equal(p.detach(), before[i]));
    REQUIRE(p.grad().defined());
    CHECK(p.grad().storage() == arena.grads().storage());
    CHECK(p.grad().storage_offset() == arena.offset(i));
    CHECK(p.grad().shape() == kShapes[i]);
    if (i == 1) {
      CHECK(equal(p.grad(), existing));
    } else {
      CHECK(all_zero(p.grad().to_vector<double>()));
    }
  }
  CHECK(handle.storage() == arena.params().storage());
  CHECK(arena.is_bound());

  // Writing through the flat buffer is seen by the parameter, and back.
  {
    NoGradGuard no_grad;
    Tensor flat = arena.params();
    flat.fill_(3.0);
  }
  CHECK(params[2].to_vector<double>() == std::vector<double>(24, 3.0));
}

TEST_CASE("backward accumulates gradients into the arena", "[optim][arena]") {
  std::vector<Tensor> params = {from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3}).requires_grad_(),
                                from_vector<double>({0.5, -1.5, 2.5}, {3}).requires_grad_()};
  ParameterArena arena(params);
  const auto grad_storage = arena.grads().storage();
  const Tensor& a = params[0];
  const Tensor& b = params[1];

  // loss = sum(a * b) + sum(b * b): dL/da = b (broadcast), dL/db = colsum(a) + 2b
  const std::vector<double> grad_a = {0.5, -1.5, 2.5, 0.5, -1.5, 2.5};
  const std::vector<double> grad_b = {1 + 4 + 1.0, 2 + 5 - 3.0, 3 + 6 + 5.0};
  (sum(mul(a, b)) + sum(mul(b, b))).backward();
  CHECK(a.grad().storage() == grad_storage);
  CHECK(b.grad().storage() == grad_storage);
  const std::vector<double> flat = arena.grads().to_vector<double>();
  for (std::size_t j = 0; j < 6; ++j) CHECK(flat[arena.offset(0) + j] == grad_a[j]);
  for (std::size_t j = 0; j < 3; ++j) CHECK(flat[arena.offset(1) + j] == grad_b[j]);
  CHECK(all_zero(padding_of(arena, arena.grads())));

  // A second backward adds to the same memory.
  (sum(mul(a, b)) + sum(mul(b, b))).backward();
  CHECK(arena.grads().storage() == grad_storage);
  CHECK(b.grad().to_vector<double>() == std::vector<double>{2 * grad_b[0], 2 * grad_b[1], 2 * grad_b[2]});

  // zero_grad is one fill of the buffer: the gradients stay arena views.
  arena.zero_grad();
  CHECK(all_zero(arena.grads().to_vector<double>()));
  CHECK(a.grad().storage() == grad_storage);
  CHECK(arena.is_bound());
  sum(mul(a, b)).backward();
  CHECK(a.grad().to_vector<double>() == grad_a);
}

TEST_CASE("make_buffer and view give arena-shaped optimizer state", "[optim][arena]") {
  manual_seed(3);
  const std::vector<Tensor> params = make_params(kFloat64);
  const ParameterArena arena(params, picks_0_and_2);
  Tensor buffer = arena.make_buffer();
  CHECK(buffer.shape() == Shape{arena.padded_numel()});
  CHECK(buffer.dtype() == kFloat64);
  CHECK(buffer.storage() != arena.params().storage());
  CHECK(all_zero(buffer.to_vector<double>()));

  const Tensor part = arena.view(buffer, 4);
  CHECK(part.shape() == kShapes[4]);
  CHECK(part.storage() == buffer.storage());
  part.detach().fill_(2.0);
  const std::vector<double> values = buffer.to_vector<double>();
  for (std::int64_t k = 0; k < arena.padded_numel(); ++k) {
    const bool inside = k >= arena.offset(4) && k < arena.offset(4) + 65;
    REQUIRE(values[k] == (inside ? 2.0 : 0.0));
  }

  // A view of a slice of a larger buffer starts where the slice does.
  const Tensor big = zeros({2 * arena.padded_numel()}, kFloat64);
  const Tensor second = big.slice(0, arena.padded_numel(), 2 * arena.padded_numel());
  CHECK(arena.view(second, 1).storage_offset() == arena.padded_numel() + arena.offset(1));

  CHECK_THROWS_WITH(arena.view(buffer, 5), Catch::Contains("ParameterArena::view: index 5 is out of range for 5"));
  CHECK_THROWS_WITH(arena.view(zeros({10}, kFloat64), 0),
                    Catch::Contains("expected a contiguous buffer of [" + std::to_string(arena.padded_numel()) +
                                    "] (made by make_buffer), got [10]"));
  CHECK_THROWS_WITH(arena.view(Tensor(), 0), Catch::Contains("ParameterArena::view: the buffer is undefined"));
}

TEST_CASE("arena: is_bound notices a re-pointed tensor and rebind re-packs it", "[optim][arena]") {
  manual_seed(4);
  std::vector<Tensor> params = make_params(kFloat32);
  ParameterArena arena(params, picks_0_and_2);
  Tensor state = arena.make_buffer();
  {
    NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) arena.view(state, i).fill_(10.0 + static_cast<double>(i));
    params[2].grad().fill_(-1.0);
  }
  const std::vector<double> state_before = state.to_vector<double>();
  const auto old_params = arena.params().storage();
  REQUIRE(arena.is_bound());

  SECTION("parameter data replaced (as Module::to does)") {
    params[3].set_data(full({1}, 42.0));
    CHECK_FALSE(arena.is_bound());
    const Tensor state_handle = state;
    arena.rebind({&state});
    CHECK(arena.is_bound());
    CHECK(arena.params().storage() != old_params);
    CHECK(params[3].storage() == arena.params().storage());
    CHECK(params[3].item() == 42.0);                                        // the new value was copied in
    CHECK(params[2].grad().to_vector<double>() == std::vector<double>(24, -1.0));  // and the gradients
    CHECK(state.to_vector<double>() == state_before);  // same layout: the state still fits
    CHECK(state.storage() == state_handle.storage());  // same device: not even copied
    CHECK(all_zero(padding_of(arena, arena.params())));
  }
  SECTION("gradient dropped (as Module::zero_grad does)") {
    params[0].set_grad(Tensor());
    CHECK_FALSE(arena.is_bound());
    arena.rebind();
    CHECK(arena.is_bound());
    CHECK(all_zero(params[0].grad().to_vector<double>()));
    CHECK(params[0].grad().storage() == arena.grads().storage());
    CHECK(params[2].grad().to_vector<double>() == std::vector<double>(24, -1.0));
  }
  SECTION("gradient replaced by hand") {
    params[4].set_grad(full({65}, 5.0));
    CHECK_FALSE(arena.is_bound());
    arena.rebind();
    CHECK(params[4].grad().to_vector<double>() == std::vector<double>(65, 5.0));
    CHECK(arena.is_bound());
  }
  SECTION("a tensor re-pointed to another place in the arena") {
    params[1].set_data(make_view(arena.params(), {7}, {1}, params[1].storage_offset() + 1));
    CHECK_FALSE(arena.is_bound());
  }
  SECTION("a shape change no longer fits the state") {
    params[1].set_data(zeros({300}));
    params[1].set_grad(Tensor());
    CHECK_THROWS_WITH(arena.rebind({&state}),
                      Catch::Contains("ParameterArena::rebind: the parameters changed shape or dtype since they "
                                      "were packed, so the optimizer state no longer fits them"));
    CHECK(state.to_vector<double>() == state_before);  // nothing moved
    arena.rebind();  // without state to carry, a new layout is fine
    CHECK(arena.is_bound());
    CHECK(params[1].numel() == 300);
    CHECK(arena.padded_numel() > static_cast<std::int64_t>(state_before.size()));
  }
}

TEST_CASE("the arena rejects what it cannot pack", "[optim][arena]") {
  const Tensor a = randn({3}).requires_grad_();
  const Tensor b = randn({2, 2}).requires_grad_();
  CHECK_THROWS_WITH(ParameterArena({}), Catch::Contains("ParameterArena: the parameter list is empty"));
  CHECK_THROWS_WITH(ParameterArena({a, Tensor()}), Catch::Contains("ParameterArena: parameter 1 is undefined"));
  CHECK_THROWS_WITH(ParameterArena({a, arange(3, kInt64)}),
                    Catch::Contains("ParameterArena: parameter 1 is int64; only floating tensors can be optimized"));
  CHECK_THROWS_WITH(ParameterArena({a, randn({2}, kFloat64)}),
                    Catch::Contains("ParameterArena: parameter 1 is float64 but parameter 0 is float32"));
  CHECK_THROWS_WITH(ParameterArena({a, b, a}),
                    Catch::Contains("ParameterArena: parameter 2 is the same tensor as parameter 0"));
  CHECK_THROWS_WITH(ParameterArena({a, mul(a, 2.0)}),
                    Catch::Contains("ParameterArena: parameter 1 is not a leaf (it was made by mul_scalar)"));
  // Nothing was re-pointed by a failed packing.
  const auto storage = a.storage();
  CHECK_THROWS(ParameterArena({a, Tensor()}));
  CHECK(a.storage() == storage);
}

TEST_CASE("the arena packs CUDA parameters and follows them from CPU to CUDA", "[optim][arena][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(5);
  std::vector<Tensor> params = make_params(kFloat32);
  ParameterArena arena(params, picks_0_and_2);
  {
    NoGradGuard no_grad;
    params[4].grad().copy_(randn({65}));
  }
  Tensor state = arena.make_buffer();
  state.copy_(rand({arena.padded_numel()}));
  const std::vector<Tensor> values = testing::host_copies(params);
  const Tensor grad4 = params[4].grad().clone();
  const std::vector<double> state_before = state.to_vector<double>();

  // What nn::Module::to(device) does to each parameter.
  for (const Tensor& p : params) {
    p.set_data(p.detach().to(Device::cuda()));
    p.set_grad(p.grad().to(Device::cuda()));
  }
  CHECK_FALSE(arena.is_bound());
  arena.rebind({&state});
  CHECK(arena.is_bound());
  CHECK(arena.device().is_cuda());
  CHECK(state.device().is_cuda());
  CHECK(state.to_vector<double>() == state_before);
  for (std::size_t i = 0; i < params.size(); ++i) {
    CHECK(params[i].device().is_cuda());
    CHECK(params[i].storage() == arena.params().storage());
    CHECK(equal(params[i].detach().cpu(), values[i]));
  }
  CHECK(equal(params[4].grad().cpu(), grad4));
  CHECK(all_zero(padding_of(arena, arena.params())));

  // zero_grad is a single fill launch; backward on the GPU lands in the arena.
  const long long launches = cuda_kernel_launches();
  arena.zero_grad();
  CHECK(cuda_kernel_launches() - launches == 1);
  CHECK(all_zero(arena.grads().to_vector<double>()));
  sum(mul(params[1], params[1])).backward();
  CHECK(params[1].grad().storage() == arena.grads().storage());
  CHECK(equal(params[1].grad().cpu(), mul(values[1], 2.0)));
  CHECK(arena.is_bound());

  // An arena holds one device.
  const Tensor on_cpu = randn({3}).requires_grad_();
  const Tensor on_gpu = randn({3}, Device::cuda()).requires_grad_();
  CHECK_THROWS_WITH(ParameterArena({on_cpu, on_gpu}),
                    Catch::Contains("ParameterArena: parameter 1 is on cuda:0 but parameter 0 is on cpu"));
}
