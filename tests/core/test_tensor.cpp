#include <catch2/catch.hpp>

#include <sstream>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/random.h"
#include "core/reduce.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/op_table.h"

using namespace basin;
using basin::testing::OpCase;
using basin::testing::input;

TEST_CASE("factories make what they say", "[tensor]") {
  CHECK(zeros({2, 3}).to_vector<float>() == std::vector<float>(6, 0.0f));
  CHECK(ones({4}, kFloat64).to_vector<double>() == std::vector<double>(4, 1.0));
  CHECK(full({2}, 7.5).to_vector<float>() == std::vector<float>{7.5f, 7.5f});
  CHECK(arange(5, kInt64).to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 1, 2, 3, 4});
  CHECK(arange(1.0, 2.0, 0.25).to_vector<float>() == std::vector<float>{1.0f, 1.25f, 1.5f, 1.75f});
  const Tensor t = from_vector<std::uint8_t>({1, 2, 255}, {3});
  CHECK(t.dtype() == kUInt8);
  CHECK(t.to(kFloat32).to_vector<float>() == std::vector<float>{1, 2, 255});
  CHECK(zeros({0, 3}).numel() == 0);
  CHECK(full({}, 3.0).item() == 3.0);
}

TEST_CASE("a tensor with no elements is contiguous, wherever its zero size is", "[tensor][views]") {
  // Found by tests/fuzz/fuzz_safetensors.cpp: a tensor loaded with shape
  // [2, 0, 3] said it was not contiguous, though it was made with contiguous strides.
  for (const Shape& shape : {Shape{0}, Shape{0, 3}, Shape{2, 0, 3}, Shape{2, 3, 0}, Shape{4, 0, 0, 1}}) {
    INFO(shape_str(shape));
    const Tensor t = zeros(shape);
    CHECK(t.strides() == contiguous_strides(shape));
    CHECK(t.is_contiguous());
    CHECK(t.contiguous().storage() == t.storage());  // no copy made
  }
  CHECK(zeros({3, 4}).slice(1, 2, 2).is_contiguous());  // an empty view too
}

TEST_CASE("views share storage and compute the right strides", "[tensor][views]") {
  const Tensor x = arange(24, kFloat64).reshape({2, 3, 4});
  CHECK(x.strides() == Strides{12, 4, 1});

  const Tensor t = x.transpose(0, 2);
  CHECK(t.shape() == Shape{4, 3, 2});
  CHECK(t.storage() == x.storage());
  CHECK_FALSE(t.is_contiguous());
  CHECK(t.contiguous().is_contiguous());
  CHECK(t.contiguous().to_vector<double>()[1] == 12.0);  // t[0,0,1] = x[1,0,0]

  const Tensor s = x.slice(2, 1, 4, 2);  // columns 1 and 3
  CHECK(s.shape() == Shape{2, 3, 2});
  CHECK(s.to_vector<double>() == std::vector<double>{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23});
  CHECK(x.select(1, -1).to_vector<double>() == std::vector<double>{8, 9, 10, 11, 20, 21, 22, 23});

  const Tensor p = x.permute({1, 2, 0});
  CHECK(p.shape() == Shape{3, 4, 2});
  CHECK(p.contiguous().to_vector<double>()[1] == 12.0);

  CHECK(x.view({6, 4}).storage() == x.storage());
  CHECK(x.view({-1}).shape() == Shape{24});
  CHECK(x.flatten(1).shape() == Shape{2, 12});
  CHECK(x.unsqueeze(0).shape() == Shape{1, 2, 3, 4});
  CHECK(x.unsqueeze(-1).shape() == Shape{2, 3, 4, 1});
  CHECK(x.unsqueeze(0).squeeze(0).shape() == Shape{2, 3, 4});

  const Tensor e = from_vector<double>({1, 2, 3}, {3, 1}).expand({3, 4});
  CHECK(e.strides() == Strides{1, 0});
  CHECK(e.contiguous().to_vector<double>() == std::vector<double>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});
}

TEST_CASE("view refuses what needs a copy and reshape copies it", "[tensor][views]") {
  const Tensor x = arange(6, kFloat32).reshape({2, 3});
  const Tensor t = x.t();
  CHECK_THROWS_WITH(t.view({6}), Catch::Contains("use reshape() to copy"));
  const Tensor r = t.reshape({6});
  CHECK(r.to_vector<float>() == std::vector<float>{0, 3, 1, 4, 2, 5});
  CHECK(r.storage() != x.storage());
  // A transposed pair of dims can still split and merge where memory allows.
  CHECK(arange(24, kFloat32).reshape({2, 3, 4}).transpose(1, 2).view({2, 4, 3}).shape() == Shape{2, 4, 3});
  CHECK(arange(24, kFloat32).reshape({2, 3, 4}).permute({1, 0, 2}).view({3, 2, 2, 2}).shape() == Shape{3, 2, 2, 2});
}

namespace {

// View ops, and a round trip through float32, at [3, 4, 5]: gradients in
// float64 and CUDA parity (views and copies of strided data on the device).
std::vector<OpCase> view_cases() {
  return {
      {"reshape", [](const auto& v) { return v[0].reshape({12, 5}); }, {input({3, 4, 5})}},
      {"transpose",
       [](const auto& v) {
         const TensorOptions like = TensorOptions(v[0].dtype()).device(v[0].device());
         return v[0].transpose(0, 2) * arange(60, like).reshape({5, 4, 3});
       },
       {input({3, 4, 5})}},
      {"permute", [](const auto& v) { return v[0].permute({2, 0, 1}).reshape({-1}); }, {input({3, 4, 5})}},
      {"slice", [](const auto& v) { return v[0].slice(1, 1, 4, 2); }, {input({3, 4, 5})}},
      {"select", [](const auto& v) { return v[0].select(2, 3); }, {input({3, 4, 5})}},
      {"expand", [](const auto& v) { return v[0].slice(2, 0, 1).expand({2, 3, 4, 7}); }, {input({3, 4, 5})}},
      {"unsqueeze+squeeze", [](const auto& v) { return v[0].unsqueeze(1).squeeze(1).unsqueeze(3); },
       {input({3, 4, 5})}},
      {"flatten", [](const auto& v) { return v[0].flatten(0, 1); }, {input({3, 4, 5})}},
      {"clone", [](const auto& v) { return v[0].clone(); }, {input({3, 4, 5})}},
  };
}

}  // namespace

TEST_CASE("view ops have correct gradients", "[tensor][views][gradcheck]") {
  testing::run_gradient_checks(view_cases());
}

TEST_CASE("view ops on CUDA match the CPU", "[tensor][views][cuda]") {
  testing::run_cuda_parity(view_cases());
}

TEST_CASE("dtype conversion is differentiable between floating types", "[tensor][gradcheck]") {
  // float32 rounding in the middle: a coarser step and tolerances.
  testing::check_gradients({.name = "float64 to float32 and back",
                            .fn = [](const auto& v) { return v[0].to(kFloat32).to(kFloat64) * 2.0; },
                            .inputs = {input({3, 2})},
                            .gradcheck = {1e-3, 1e-5, 1e-3}});
}

TEST_CASE("tensors print like PyTorch", "[tensor]") {
  const Tensor x = arange(6, kFloat32).reshape({2, 3});
  CHECK(x.str() == "tensor([[0.0000, 1.0000, 2.0000],\n        [3.0000, 4.0000, 5.0000]], shape=[2, 3], "
                   "dtype=float32, device=cpu)");
  CHECK(arange(3, kInt64).str() == "tensor([0, 1, 2], shape=[3], dtype=int64, device=cpu)");
  std::ostringstream out;
  out << full({}, 2.5, kFloat64);
  CHECK(out.str() == "tensor(2.5000, shape=[], dtype=float64, device=cpu)");
  const std::string big = arange(5000, kFloat32).str();
  CHECK(big.find("...") != std::string::npos);
  CHECK(big.size() < 200);
}

TEST_CASE("bad shapes and indices are clear errors", "[tensor][errors]") {
  const Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH(x.reshape({4, 2}), Catch::Contains("cannot reshape [2, 3] (6 elements) into [4, 2]"));
  CHECK_THROWS_WITH(x.transpose(0, 2), Catch::Contains("dimension 2 is out of range for a tensor with 2 dimensions"));
  CHECK_THROWS_WITH(x.select(1, 3), Catch::Contains("select: index 3 is out of range for dimension 1 of size 3"));
  CHECK_THROWS_WITH(x.expand({4, 3}), Catch::Contains("expand: cannot expand [2, 3] to [4, 3]"));
  CHECK_THROWS_WITH(x.permute({0, 0}), Catch::Contains("permute: dimension 0 appears twice"));
  CHECK_THROWS_WITH(x.item(), Catch::Contains("item: the tensor must hold exactly one element"));
  CHECK_THROWS_WITH(x.data<double>(), Catch::Contains("tensor is float32, not float64"));
  CHECK_THROWS_WITH(zeros({2, -1}), Catch::Contains("negative size in shape [2, -1]"));
  CHECK_THROWS_WITH(from_vector<float>({1, 2, 3}, {2, 2}), Catch::Contains("3 values do not fill shape [2, 2]"));
  CHECK_THROWS_WITH(zeros({2}, kInt64).requires_grad_(), Catch::Contains("only floating tensors have gradients"));
  CHECK_THROWS_AS(Device::parse("tpu"), Error);
}

TEST_CASE("asking for CUDA without a GPU is a clear error", "[tensor][errors]") {
  if (cuda_is_available()) {
    CHECK(Device::parse("cuda").is_cuda());
    return;
  }
  CHECK_THROWS_WITH(Device::cuda(), Catch::Contains("a CUDA device was requested"));
  CHECK_THROWS_WITH(zeros({2}).to(Device::cuda()), Catch::Contains("a CUDA device was requested"));
  CHECK(Device::parse("auto").is_cpu());
}

TEST_CASE("memory counters track live storage", "[tensor]") {
  const Device cpu = Device::cpu();
  const std::int64_t before = memory_stats(cpu).current_bytes;
  {
    const Tensor big = empty({1024, 256});
    CHECK(memory_stats(cpu).current_bytes - before == 1024 * 256 * 4);
    CHECK(memory_stats(cpu).peak_bytes >= memory_stats(cpu).current_bytes);
  }
  CHECK(memory_stats(cpu).current_bytes == before);
}

TEST_CASE("CUDA tensors round-trip and copy across devices", "[tensor][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(6);
  const Tensor x = randn({33, 17}, kFloat64);
  const Tensor d = x.to(Device::cuda());
  CHECK(d.device().is_cuda());
  CHECK(testing::equal(d.to(Device::cpu()), x));
  // Strided source across devices, with a dtype change on the way.
  Tensor target = zeros({17, 33}, TensorOptions(kFloat32).device(Device::cuda()));
  target.copy_(x.t());
  CHECK(testing::max_abs_diff(target.cpu(), x.t().to(kFloat32)) == 0.0);
  // The pool keeps the counters honest.
  const std::int64_t before = memory_stats(Device::cuda()).current_bytes;
  { const Tensor big = empty({1 << 20}, Device::cuda()); CHECK(memory_stats(Device::cuda()).current_bytes - before == 4 << 20); }
  CHECK(memory_stats(Device::cuda()).current_bytes == before);
  CHECK(zeros({5}, Device::cuda()).fill_(2.0).to_vector<float>() == std::vector<float>(5, 2.0f));
  CHECK(arange(7, TensorOptions(kInt32).device(Device::cuda())).to_vector<std::int32_t>()[6] == 6);
}
