// Piecewise-linear ops with their pieces held fixed.
//
// ReLU and max pooling are linear on pieces of their input space: which
// inputs are positive, which element wins each window. Autograd's derivative
// of them is the derivative within the current piece. A finite difference of
// two gradients that straddles a piece boundary also sees the jump at the
// boundary, divided by the step: one such crossing among millions of ReLU
// inputs can swamp a Hessian-vector product (analysis/hessian.h).
//
// While an ActivationPatternScope records, relu() and max_pool2d() note their
// piece for every call, in call order: the mask x > 0, the position of each
// window's maximum. While one replays, the same calls compute the same linear
// function on the noted pieces (x * mask; the input at the noted positions),
// whatever their input now is, and autograd differentiates that. So
// gradients at w + h u and w - h u taken with the pattern of w differ by
// exactly what the derivative within w's pieces says, as PyTorch's double
// backward does.
//
// The noted pieces are tensors on the inputs' device, as large as the
// activations of every relu() and max_pool2d() call recorded: for ResNet-20
// about 190,000 values per image.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace basin {

enum class PatternMode { Record, Replay };

class ActivationPattern {
 public:
  struct Piece {
    std::string op;     // "relu", "max_pool2d"
    Shape input_shape;  // of the call that recorded it
    Tensor value;       // the mask, or the winners' positions
  };
  std::vector<Piece> pieces;  // in call order
  std::size_t cursor = 0;     // the next piece a replay hands out

  std::size_t size() const { return pieces.size(); }
};

// While alive, relu() and max_pool2d() on this thread record into `pattern`
// (cleared first) or replay it from its first piece. Scopes do not nest.
class ActivationPatternScope {
 public:
  ActivationPatternScope(ActivationPattern& pattern, PatternMode mode);
  ~ActivationPatternScope();
  ActivationPatternScope(const ActivationPatternScope&) = delete;
  ActivationPatternScope& operator=(const ActivationPatternScope&) = delete;

  // A replay must use every piece, or the computation was not the recorded
  // one: throws basin::Error saying how many were used.
  void finish() const;

 private:
  ActivationPattern& pattern_;
  PatternMode mode_;
};

namespace detail {
// Whether a scope is active on this thread, and in which mode.
bool pattern_active();
PatternMode pattern_mode();
// Record: stores `piece` (for an op whose input has `shape`) and returns it.
// Replay: returns the next stored piece, checking that it came from the same
// op and an input of the same shape; `piece` is ignored (pass Tensor()).
Tensor pattern_piece(const char* op, const Shape& shape, const Tensor& piece);
}  // namespace detail

}  // namespace basin
