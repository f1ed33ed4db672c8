#include "core/random.h"

#include "kernels/philox.h"

namespace basin {

std::uint64_t Generator::next_u64() {
  const kernels::PhiloxBlock block = kernels::philox4x32_10(reserve(4), seed_);
  return (static_cast<std::uint64_t>(block.v[0]) << 32) | block.v[1];
}

Generator& default_generator() {
  static Generator generator;
  return generator;
}

void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace basin
