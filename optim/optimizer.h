// Optimizer: the interface every optimizer shares, as in libtorch:
// step(closure), zero_grad(), state_dict()/load_state_dict().
//
// The base class packs the parameters into a ParameterArena (optim/arena.h):
// the tensors then view one flat buffer (and their gradients another), so an
// update is one kernel over flat memory while modules, autograd and
// state_dict keep working as before.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/serialization.h"
#include "core/tensor.h"
#include "optim/arena.h"

namespace basin::optim {

// Re-evaluates the model and returns the loss (after calling backward()).
using Closure = std::function<Tensor()>;

// The parameters to optimize, optionally with their names (model.named_parameters()).
// Names let ASAM tell "weight" tensors from the rest; they are not needed otherwise.
// Whether ASAM scales a tensor of this name (conv and linear weights, BN
// scales): the name contains "weight".
inline bool is_weight_tensor(const std::string& name) { return name.find("weight") != std::string::npos; }

struct ParamList {
  ParamList(std::vector<Tensor> params) : tensors(std::move(params)) {}  // NOLINT: implicit on purpose
  ParamList(const std::vector<std::pair<std::string, Tensor>>& named);   // NOLINT
  std::vector<Tensor> tensors;
  std::vector<std::string> names;  // empty, or one per tensor
};

class Optimizer {
 public:
  // Checks the list (check_parameter_list, and every tensor requires grad)
  // and packs it; tensors named "...weight..." go first in the arena.
  explicit Optimizer(const ParamList& params, const char* name);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update. When a closure is given it is called first (to compute the
  // loss and gradients) and its loss is returned; otherwise an undefined Tensor.
  virtual Tensor step(const Closure& closure = nullptr) = 0;

  // Puts the weights back to `saved` (an arena-shaped buffer, arena().make_buffer())
  // and then steps with the current gradients: how SAM's second step ends.
  // The default copies, then calls step(); an optimizer with a fused update
  // (SGD) does both in one pass.
  virtual void restore_and_step(const Tensor& saved);

  // Zeroes every gradient in place with one fill (gradients stay arena views).
  // Gradients stay defined (zero), unlike PyTorch's default set_to_none, so
  // that the arena keeps its layout; the update then treats every parameter as
  // having a gradient (a parameter that no loss reached still decays).
  // nn::Module::zero_grad() keeps the same contract.
  void zero_grad();

  // Everything needed to continue exactly: copies of the arena-shaped buffers
  // ("momentum_buffer", "exp_avg"...), the step count ("step", int64, 0-dim)
  // and the optimizer ("type": its name as uint8 bytes). Loading checks the
  // type, the names, dtypes and shapes before it changes anything, and says
  // what does not fit; the buffers keep their identity (values are copied in).
  // The lr is not part of the state: it comes from the options or a schedule.
  virtual TensorMap state_dict() const = 0;
  virtual void load_state_dict(const TensorMap& state) = 0;

  double lr() const { return lr_; }
  // For schedules; lr must be finite and >= 0 (0 is allowed, as in PyTorch).
  // A wrapper (SAM) passes it on to the optimizer it wraps.
  virtual void set_lr(double lr);
  const std::string& name() const { return name_; }
  const std::vector<Tensor>& params() const { return arena_->tensors(); }
  const std::vector<std::string>& param_names() const { return names_; }
  ParameterArena& arena() { return *arena_; }
  const ParameterArena& arena() const { return *arena_; }

 protected:
  // For an optimizer that wraps another (SAM): it works on the same arena and names.
  Optimizer(Optimizer& wrapped, const char* name);

  // Re-packs when the model moved since packing (see ParameterArena::rebind),
  // moving the given optimizer buffers along. Call at the start of step().
  void ensure_bound(std::vector<Tensor*> state = {});

  // Checks restore_and_step's buffer: defined, contiguous, and the arena's
  // shape, dtype and device.
  void check_saved_buffer(const Tensor& saved) const;

  // state_dict()'s common entries: "type" (this optimizer's name) and "step".
  TensorMap state_header(std::int64_t steps) const;
  // Checks a state for load_state_dict(): the type, the step, exactly the
  // given arena-shaped buffers (dtype and shape) and nothing else. Returns the step.
  std::int64_t check_state(const TensorMap& state, const std::vector<std::string>& buffers) const;

  std::string name_;
  std::vector<std::string> names_;
  std::shared_ptr<ParameterArena> arena_;  // shared with a wrapper
  double lr_ = 0.0;
};

}  // namespace basin::optim
