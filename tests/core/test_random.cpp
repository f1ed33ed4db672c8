#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/random.h"
#include "core/reduce.h"
#include "core/elementwise.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "kernels/philox.h"

using namespace basin;

TEST_CASE("Philox4x32-10 matches the published known-answer vectors", "[random]") {
  // Random123's kat_vectors: philox4x32 10 rounds, counter 0, key 0.
  // Our counter puts the 64-bit value in words 0-1 and zero in words 2-3.
  const kernels::PhiloxBlock zero = kernels::philox4x32_10(0, 0);
  CHECK(zero.v[0] == 0x6627e8d5u);
  CHECK(zero.v[1] == 0xe169c58du);
  CHECK(zero.v[2] == 0xbc57ac4cu);
  CHECK(zero.v[3] == 0x9b00dbd8u);
}

TEST_CASE("the same seed gives the same numbers", "[random]") {
  manual_seed(42);
  const Tensor a = randn({100});
  const Tensor b = rand({7, 3}, kFloat64);
  manual_seed(42);
  CHECK(testing::equal(randn({100}), a));
  CHECK(testing::equal(rand({7, 3}, kFloat64), b));
  manual_seed(43);
  CHECK_FALSE(testing::equal(randn({100}), a));
}

TEST_CASE("successive draws differ and the generator state round-trips", "[random]") {
  manual_seed(7);
  const Tensor first = rand({5});
  const Generator saved = default_generator();
  const Tensor second = rand({5});
  CHECK_FALSE(testing::equal(first, second));
  default_generator().set_state(saved.seed(), saved.offset());
  CHECK(testing::equal(rand({5}), second));
}

TEST_CASE("uniform and normal draws have the right moments", "[random]") {
  manual_seed(11);
  const Tensor u = rand({200000}, kFloat64, -1.0, 3.0);
  CHECK(mean(u).item() == Approx(1.0).margin(0.01));
  const std::vector<double> values = u.to_vector<double>();
  CHECK(*std::min_element(values.begin(), values.end()) >= -1.0);
  CHECK(*std::max_element(values.begin(), values.end()) < 3.0);
  const Tensor n = randn({200000}, kFloat64, 2.0, 0.5);
  CHECK(mean(n).item() == Approx(2.0).margin(0.01));
  const double variance = mean(pow(n - 2.0, 2.0)).item();
  CHECK(variance == Approx(0.25).margin(0.005));
}

TEST_CASE("CUDA draws the same streams as the CPU", "[random][cuda]") {
  BASIN_REQUIRE_CUDA();
  // Ranges other than [0, 1) too: low + (high - low) * u is where a fused
  // multiply-add on the GPU would change the last bit.
  const std::pair<double, double> ranges[] = {{0.0, 1.0}, {-2.0, 3.0}, {0.1, 0.7}, {-1e3, 1e-3}};
  for (DType dtype : {kFloat32, kFloat64}) {
    for (const auto& [low, high] : ranges) {
      INFO(dtype_name(dtype) << " [" << low << ", " << high << ")");
      manual_seed(99);
      const Tensor cpu_u = rand({1001}, dtype, low, high);
      const Tensor cpu_n = randn({1001}, dtype, low, high);
      manual_seed(99);
      const Tensor gpu_u = rand({1001}, TensorOptions(dtype).device(Device::cuda()), low, high);
      const Tensor gpu_n = randn({1001}, TensorOptions(dtype).device(Device::cuda()), low, high);
      CHECK(testing::max_abs_diff(gpu_u, cpu_u) == 0.0);
      CHECK(testing::max_abs_diff(gpu_n, cpu_n) <= 1e-6 * std::max(1.0, std::abs(high)));  // log/sin/cos ulps differ
    }
  }
}

TEST_CASE("the CPU fills equal the per-element Philox formulas", "[random]") {
  manual_seed(5);
  const std::uint64_t offset = default_generator().offset();
  const Tensor u = rand({4099}, kFloat64, -2.0, 3.0);
  const Tensor n = randn({4099}, kFloat64, 1.0, 2.0);
  const std::vector<double> uv = u.to_vector<double>();
  const std::vector<double> nv = n.to_vector<double>();
  const std::uint64_t normal_offset = offset + (4099 + 3) / 4;
  for (std::int64_t i : {0, 1, 2, 3, 4, 1001, 4097, 4098}) {
    CHECK(uv[i] == kernels::philox_uniform(5, offset, i, -2.0, 3.0));
    CHECK(nv[i] == kernels::philox_normal(5, normal_offset, i, 1.0, 2.0));
  }
}
