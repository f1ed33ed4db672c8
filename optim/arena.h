// ParameterArena: all parameters of one device and dtype in one contiguous
// buffer, each tensor starting on a 256-byte boundary, with the gradients in
// a parallel buffer of the same layout. Parameters and their .grad become
// views into the two buffers (Tensor::set_data / set_grad), so modules,
// autograd and state_dict keep working while an optimizer updates every
// parameter with one kernel over flat memory: no per-tensor launches and no
// chunk metadata.
//
// Layout: the tensors are placed in two runs, first those the `adaptive`
// predicate selects (ASAM's "weight" tensors) and then the rest, each run in
// the order given, so a fused kernel needs a single boundary index
// (`adaptive_end()`) to tell them apart. Every tensor starts on a 256-byte
// boundary (256 / dtype size elements) and the total is padded to one, so a
// buffer is a whole number of 16-byte vector groups and each tensor's first
// element starts a group. Padding elements are zero in every buffer, so they
// add nothing to norms and never change. tensors() keeps the order the
// tensors were given in, and every index (offset(i), view(buffer, i)) refers
// to that order: the layout moves offsets, not indices.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace basin::optim {

inline constexpr std::int64_t kArenaAlignmentBytes = 256;

// The checks every list of parameters passes before it is packed, by an
// optimizer or an arena: not empty; each tensor defined, a floating leaf, of
// the first one's dtype and device, and listed once. `who` starts the
// messages ("SGD: parameter 2 ('fc.bias') is the same tensor as parameter 0");
// `names` is empty or one per tensor.
void check_parameter_list(const std::vector<Tensor>& params, const std::vector<std::string>& names,
                          const std::string& who);
// "parameter 2", or "parameter 2 ('fc.bias')" when there are names.
std::string parameter_label(const std::vector<std::string>& names, std::size_t index);

class ParameterArena {
 public:
  using Predicate = std::function<bool(std::size_t index, const Tensor& param)>;

  // Packs `params` (defined, distinct leaves, all on one device, one floating
  // dtype; checked) into a new arena; their values are copied in and existing
  // gradients too (else zero). `adaptive(i, param)` picks the tensors of the
  // first run.
  explicit ParameterArena(std::vector<Tensor> params, const Predicate& adaptive = nullptr);

  // Flat views over the whole arena ([padded_numel]): parameters and gradients.
  const Tensor& params() const { return params_flat_; }
  const Tensor& grads() const { return grads_flat_; }
  // A new zero buffer of the arena's layout, for optimizer state (momentum,
  // SAM's saved weights); view(buffer, i) gives parameter i's part of it.
  Tensor make_buffer() const;
  Tensor view(const Tensor& buffer, std::size_t index) const;

  std::int64_t padded_numel() const { return padded_numel_; }
  // Elements [0, adaptive_end) belong to the adaptive tensors (and their
  // padding): 0 when none is adaptive, padded_numel() when all are.
  std::int64_t adaptive_end() const { return adaptive_end_; }
  std::int64_t offset(std::size_t index) const { return offsets_[index]; }
  std::size_t size() const { return tensors_.size(); }
  const std::vector<Tensor>& tensors() const { return tensors_; }
  Device device() const { return params_flat_.device(); }
  DType dtype() const { return params_flat_.dtype(); }

  // One fill over the gradient buffer.
  void zero_grad();
  // True when every parameter and gradient still views this arena. A module
  // moved with to(device) after packing, or a gradient replaced or dropped by
  // hand (set_grad), breaks this. Compares pointers only: no
  // device work, cheap enough to call every step.
  bool is_bound() const;
  // Re-packs after is_bound() turned false (e.g. the model moved device):
  // copies the parameters' current values and gradients (else zeros) into new
  // buffers on their current device and moves the `state` buffers (made by
  // make_buffer; undefined ones are skipped) to that device. The layout must
  // not have changed (same shapes and dtype), or the state would not fit.
  void rebind(std::vector<Tensor*> state = {});

 private:
  void pack(std::vector<Tensor*> state);

  std::vector<Tensor> tensors_;
  std::vector<bool> adaptive_;  // which tensors go in the first run
  std::vector<std::int64_t> offsets_;
  std::int64_t padded_numel_ = 0;
  std::int64_t adaptive_end_ = 0;
  Tensor params_flat_;
  Tensor grads_flat_;
};

}  // namespace basin::optim
