// Optimizer: the checks every optimizer shares, the packing into the
// parameter arena, and the common part of state_dict().
#include "optim/optimizer.h"

#include <cmath>

#include "core/autograd.h"
#include "core/error.h"

namespace basin::optim {

namespace {

// The "type" entry: the optimizer's name as bytes, so a state dict says which
// optimizer wrote it and survives a round trip through a safetensors file.
Tensor type_marker(const std::string& name) {
  std::vector<std::uint8_t> bytes(name.begin(), name.end());
  return from_vector(bytes, {static_cast<std::int64_t>(bytes.size())});
}

std::string read_type_marker(const Tensor& marker) {
  if (marker.dtype() != kUInt8 || marker.dim() != 1) return "<not a type marker>";
  const std::vector<std::uint8_t> bytes = marker.to_vector<std::uint8_t>();
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

ParamList::ParamList(const std::vector<std::pair<std::string, Tensor>>& named) {
  tensors.reserve(named.size());
  names.reserve(named.size());
  for (const auto& [name, tensor] : named) {
    names.push_back(name);
    tensors.push_back(tensor);
  }
}

Optimizer::Optimizer(const ParamList& params, const char* name) : name_(name), names_(params.names) {
  const std::vector<Tensor>& tensors = params.tensors;
  check_parameter_list(tensors, names_, name_);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    BASIN_CHECK(tensors[i].requires_grad(), name_, ": ", parameter_label(names_, i), " does not require grad");
  }

  // ASAM tells conv/linear weights and BN scales from biases by name; without
  // names nothing is adaptive (the arena keeps the given order).
  ParameterArena::Predicate adaptive;
  if (!names_.empty()) {
    adaptive = [names = names_](std::size_t index, const Tensor&) {
      return is_weight_tensor(names[index]);
    };
  }
  arena_ = std::make_shared<ParameterArena>(tensors, adaptive);
  // tensors() keeps the given order (the predicate only moves the offsets),
  // so names_ stays aligned with params().
}

Optimizer::Optimizer(Optimizer& wrapped, const char* name)
    : name_(name), names_(wrapped.names_), arena_(wrapped.arena_), lr_(wrapped.lr_) {}

void Optimizer::check_saved_buffer(const Tensor& saved) const {
  BASIN_CHECK(saved.defined(), name_, ": restore_and_step: the saved buffer is undefined");
  const Tensor& params = arena_->params();
  BASIN_CHECK(saved.shape() == params.shape() && saved.dtype() == params.dtype() &&
                  saved.device() == params.device() && saved.is_contiguous(),
              name_, ": restore_and_step: the saved buffer is ", dtype_name(saved.dtype()), " ",
              shape_str(saved.shape()), " on ", saved.device().str(), " but the arena is ",
              dtype_name(params.dtype()), " ", shape_str(params.shape()), " on ", params.device().str());
}

void Optimizer::restore_and_step(const Tensor& saved) {
  check_saved_buffer(saved);
  {
    NoGradGuard no_grad;
    Tensor flat = arena_->params();
    flat.copy_(saved);
  }
  step();
}

void Optimizer::set_lr(double lr) {
  BASIN_CHECK(std::isfinite(lr) && lr >= 0.0, name_, ": lr must be finite and >= 0, got ", lr);
  lr_ = lr;
}

void Optimizer::zero_grad() {
  if (arena_->is_bound()) {
    arena_->zero_grad();
    return;
  }
  // Unbound (the model moved, or a gradient was replaced): zero what the
  // tensors hold now; the next step() re-packs them, gradients included.
  for (const Tensor& p : arena_->tensors()) {
    if (p.grad().defined()) p.grad().zero_();
  }
}

void Optimizer::ensure_bound(std::vector<Tensor*> state) {
  if (!arena_->is_bound()) arena_->rebind(std::move(state));
}

TensorMap Optimizer::state_header(std::int64_t steps) const {
  return {{"type", type_marker(name_)}, {"step", from_vector<std::int64_t>({steps}, {})}};
}

std::int64_t Optimizer::check_state(const TensorMap& state, const std::vector<std::string>& buffers) const {
  const auto type = state.find("type");
  BASIN_CHECK(type != state.end(), name_, ": load_state_dict: the state has no \"type\" entry (not an optimizer state)");
  const std::string saved_by = read_type_marker(type->second);
  BASIN_CHECK(saved_by == name_, name_, ": load_state_dict: the state was saved by ", saved_by, ", not ", name_);

  const auto step = state.find("step");
  BASIN_CHECK(step != state.end(), name_, ": load_state_dict: the state has no \"step\" entry");
  BASIN_CHECK(step->second.dtype() == kInt64 && step->second.numel() == 1, name_,
              ": load_state_dict: \"step\" must be one int64, got ", dtype_name(step->second.dtype()), " of shape ",
              shape_str(step->second.shape()));
  const auto steps = step->second.to_vector<std::int64_t>()[0];
  BASIN_CHECK(steps >= 0, name_, ": load_state_dict: \"step\" is negative (", steps, ")");

  const Shape arena_shape{arena_->padded_numel()};
  for (const std::string& key : buffers) {
    const auto found = state.find(key);
    BASIN_CHECK(found != state.end(), name_, ": load_state_dict: the state has no \"", key, "\" entry");
    const Tensor& t = found->second;
    BASIN_CHECK(t.dtype() == arena_->dtype() && t.shape() == arena_shape, name_, ": load_state_dict: \"", key,
                "\" is ", dtype_name(t.dtype()), " ", shape_str(t.shape()), " but this optimizer's arena is ",
                dtype_name(arena_->dtype()), " ", shape_str(arena_shape),
                " (a different model, or different parameters?)");
  }
  for (const auto& [key, value] : state) {
    bool known = key == "type" || key == "step";
    for (const std::string& b : buffers) known = known || key == b;
    BASIN_CHECK(known, name_, ": load_state_dict: unexpected entry \"", key, "\" (this ", name_,
                "'s options do not use it)");
  }
  return steps;
}

}  // namespace basin::optim
