// The CPU engine's float32 reductions of a run of terms (kernels/fast/:
// sums, softmax, cross-entropy). Internal to the engine.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace basin::kernels::fast {

// The engine's float32 reduction of a run of n terms, shared by its sums,
// softmax and cross-entropy: term(r) goes to partial result ("lane") r %
// kLanes, and the lanes are combined by halving (lane k with lane k + half).
// The compiler keeps the lanes in one SIMD register, and the order depends on
// n alone, not on the vector width the compiler chose or the thread count, so
// results repeat bit for bit.
inline constexpr int kLanes = 8;
// lane_sum adds a long run in blocks of this many terms, each summed in
// lanes, the block sums in order: its rounding error then grows with
// kLaneBlock / kLanes and the number of blocks, not with n / kLanes.
inline constexpr std::int64_t kLaneBlock = 4096;

// combine(acc, v) folds v into a lane, starting from `init`.
template <class Term, class Combine>
float lane_reduce(std::int64_t n, float init, Term&& term, Combine&& combine) {
  float lanes[kLanes];
  for (float& lane : lanes) lane = init;
  std::int64_t r = 0;
  for (; r + kLanes <= n; r += kLanes) {
    for (int k = 0; k < kLanes; ++k) lanes[k] = combine(lanes[k], term(r + k));
  }
  for (int k = 0; r < n; ++r, ++k) lanes[k] = combine(lanes[k], term(r));
  for (int half = kLanes / 2; half > 0; half /= 2) {
    for (int k = 0; k < half; ++k) lanes[k] = combine(lanes[k], lanes[k + half]);
  }
  return lanes[0];
}

// sum_r term(r): blocks of kLaneBlock terms in lanes, the blocks in order.
template <class Term>
float lane_sum(std::int64_t n, Term&& term) {
  const auto plus = [](float a, float b) { return a + b; };
  float total = 0.0f;
  for (std::int64_t begin = 0; begin < n; begin += kLaneBlock) {
    const auto shifted = [&term, begin](std::int64_t r) { return term(begin + r); };
    total += lane_reduce(std::min(kLaneBlock, n - begin), 0.0f, shifted, plus);
  }
  return total;
}

// max_r term(r), starting from -inf; a NaN term is passed over (v > m is
// false), as in the reference softmax, whose NaN then shows up in the sum.
template <class Term>
float lane_max(std::int64_t n, Term&& term) {
  return lane_reduce(n, -INFINITY, term, [](float m, float v) { return v > m ? v : m; });
}

}  // namespace basin::kernels::fast
