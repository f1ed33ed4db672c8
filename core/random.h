// Seeded randomness. One default Generator feeds rand(), randn(), weight
// initialization and dropout masks (the data loader keys its own Philox
// draws by its seed, see data/loader.h). It is a Philox key (the
// seed) plus a counter offset that each draw advances, so the whole state is
// two integers: save them in a checkpoint and a resumed run draws the same numbers.
#pragma once

#include <cstdint>

namespace basin {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) : seed_(seed) {}

  void manual_seed(std::uint64_t seed) {
    seed_ = seed;
    offset_ = 0;
  }
  std::uint64_t seed() const { return seed_; }
  std::uint64_t offset() const { return offset_; }
  void set_state(std::uint64_t seed, std::uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }

  // Reserves counters for `count` values (four per counter) and returns the first one.
  std::uint64_t reserve(std::int64_t count) {
    const std::uint64_t first = offset_;
    offset_ += (static_cast<std::uint64_t>(count) + 3) / 4;
    return first;
  }

  // One 64-bit value on the host (shuffles, crop offsets).
  std::uint64_t next_u64();

 private:
  std::uint64_t seed_ = 0;
  std::uint64_t offset_ = 0;
};

// The process-wide generator (seed 0 until manual_seed is called).
Generator& default_generator();
void manual_seed(std::uint64_t seed);

}  // namespace basin
