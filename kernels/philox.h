// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011): a counter-based generator. Output block = f(counter, key), with no
// state to carry, so element i of a random tensor can be computed on its own,
// on any thread, on the CPU or the GPU, and come out the same.
//
// basin's convention: the key is the seed; element i of a draw uses counter
// (offset + i / 4) and lane i % 4 of the four 32-bit outputs.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/host_device.h"

namespace basin::kernels {

struct PhiloxBlock {
  std::uint32_t v[4];
};

BASIN_HOST_DEVICE inline PhiloxBlock philox4x32_10(std::uint64_t counter, std::uint64_t seed) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  std::uint32_t c[4] = {static_cast<std::uint32_t>(counter), static_cast<std::uint32_t>(counter >> 32), 0u, 0u};
  std::uint32_t k[2] = {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)};
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(kMul0) * c[0];
    const std::uint64_t p1 = static_cast<std::uint64_t>(kMul1) * c[2];
    const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    c[0] = hi1 ^ c[1] ^ k[0];
    c[1] = lo1;
    c[2] = hi0 ^ c[3] ^ k[1];
    c[3] = lo0;
    k[0] += kWeyl0;
    k[1] += kWeyl1;
  }
  return {{c[0], c[1], c[2], c[3]}};
}

// A 32-bit output mapped to the open interval (0, 1): never 0, so log() is safe.
BASIN_HOST_DEVICE inline double philox_unit(std::uint32_t bits) {
  return (static_cast<double>(bits) + 0.5) * (1.0 / 4294967296.0);
}

// a * b + c with the product rounded before the sum, on both devices. nvcc
// would otherwise fuse the two into one FMA, which rounds once and so differs
// from the CPU in the last bit.
BASIN_HOST_DEVICE inline double multiply_then_add(double a, double b, double c) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(__dmul_rn(a, b), c);
#else
  return a * b + c;  // host builds never contract (-ffp-contract=off under the emulator, ISO C++ otherwise)
#endif
}

// Uniform in [low, high) for element i of a draw: the same bits on the CPU and the GPU.
BASIN_HOST_DEVICE inline double philox_uniform(std::uint64_t seed, std::uint64_t offset, std::int64_t i, double low,
                                               double high) {
  const PhiloxBlock block = philox4x32_10(offset + static_cast<std::uint64_t>(i) / 4, seed);
  return multiply_then_add(high - low, philox_unit(block.v[i % 4]), low);
}

// Normal(mean, stddev) for element i: Box-Muller on lanes (0, 1) or (2, 3),
// cosine for even i and sine for odd i, so each pair of lanes gives two values.
BASIN_HOST_DEVICE inline double philox_normal(std::uint64_t seed, std::uint64_t offset, std::int64_t i, double mean,
                                              double stddev) {
  const PhiloxBlock block = philox4x32_10(offset + static_cast<std::uint64_t>(i) / 4, seed);
  const int pair = (i % 4) / 2;
  const double radius = std::sqrt(-2.0 * std::log(philox_unit(block.v[2 * pair])));
  const double angle = 6.283185307179586 * philox_unit(block.v[2 * pair + 1]);
  return multiply_then_add(stddev * radius, i % 2 == 0 ? std::cos(angle) : std::sin(angle), mean);
}

}  // namespace basin::kernels
