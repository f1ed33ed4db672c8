#include "core/activation_pattern.h"

namespace basin {

namespace {

struct Active {
  ActivationPattern* pattern = nullptr;
  PatternMode mode = PatternMode::Record;
};

thread_local Active active;

}  // namespace

ActivationPatternScope::ActivationPatternScope(ActivationPattern& pattern, PatternMode mode)
    : pattern_(pattern), mode_(mode) {
  BASIN_CHECK(active.pattern == nullptr, "ActivationPatternScope: another scope is active on this thread");
  if (mode == PatternMode::Record) pattern.pieces.clear();
  pattern.cursor = 0;
  active.pattern = &pattern;
  active.mode = mode;
}

ActivationPatternScope::~ActivationPatternScope() { active.pattern = nullptr; }

void ActivationPatternScope::finish() const {
  if (mode_ != PatternMode::Replay) return;
  BASIN_CHECK(pattern_.cursor == pattern_.pieces.size(), "activation pattern: the replay used ", pattern_.cursor,
              " of the ", pattern_.pieces.size(), " recorded pieces: the computation was not the recorded one");
}

namespace detail {

bool pattern_active() { return active.pattern != nullptr; }
PatternMode pattern_mode() { return active.mode; }

Tensor pattern_piece(const char* op, const Shape& shape, const Tensor& piece) {
  ActivationPattern& pattern = *active.pattern;
  if (active.mode == PatternMode::Record) {
    pattern.pieces.push_back({op, shape, piece});
    return piece;
  }
  const std::size_t i = pattern.cursor;
  BASIN_CHECK(i < pattern.pieces.size(), "activation pattern: ", op, " call ", i + 1, " was not recorded (only ",
              pattern.pieces.size(), " were): the computation was not the recorded one");
  const ActivationPattern::Piece& recorded = pattern.pieces[i];
  BASIN_CHECK(recorded.op == op && recorded.input_shape == shape, "activation pattern: call ", i + 1, " is ", op,
              " of ", shape_str(shape), " but ", recorded.op, " of ", shape_str(recorded.input_shape),
              " was recorded: the computation was not the recorded one");
  ++pattern.cursor;
  return recorded.value;
}

}  // namespace detail

}  // namespace basin
