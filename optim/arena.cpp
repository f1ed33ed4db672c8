// ParameterArena: packing parameters into one flat buffer (see arena.h).
#include "optim/arena.h"

#include <unordered_map>

#include "core/autograd.h"

namespace basin::optim {

namespace {

std::int64_t round_up(std::int64_t n, std::int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

struct Layout {
  std::vector<std::int64_t> offsets;
  std::int64_t padded_numel = 0;
  std::int64_t adaptive_end = 0;
};

// The adaptive run first, then the rest, each in the given order and each
// tensor on a 256-byte boundary. Padding the end as well makes the length a
// multiple of every vector width.
Layout plan(const std::vector<Tensor>& tensors, const std::vector<bool>& adaptive, DType dtype) {
  const std::int64_t alignment = kArenaAlignmentBytes / static_cast<std::int64_t>(dtype_size(dtype));
  Layout layout;
  layout.offsets.resize(tensors.size());
  std::int64_t cursor = 0;
  for (bool run : {true, false}) {
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      if (adaptive[i] != run) continue;
      cursor = round_up(cursor, alignment);
      layout.offsets[i] = cursor;
      cursor += tensors[i].numel();
    }
    cursor = round_up(cursor, alignment);
    if (run) layout.adaptive_end = cursor;
  }
  layout.padded_numel = cursor;
  return layout;
}

bool views(const Tensor& t, const Tensor& flat, std::int64_t offset) {
  return t.defined() && t.storage() == flat.storage() && t.storage_offset() == flat.storage_offset() + offset &&
         t.dtype() == flat.dtype() && t.is_contiguous();
}

}  // namespace

std::string parameter_label(const std::vector<std::string>& names, std::size_t index) {
  std::string out = "parameter " + std::to_string(index);
  if (index < names.size()) out += " ('" + names[index] + "')";
  return out;
}

void check_parameter_list(const std::vector<Tensor>& params, const std::vector<std::string>& names,
                          const std::string& who) {
  BASIN_CHECK(!params.empty(), who, ": the parameter list is empty");
  BASIN_CHECK(names.empty() || names.size() == params.size(), who, ": ", names.size(), " names for ", params.size(),
              " parameters");
  const auto label = [&names](std::size_t i) { return parameter_label(names, i); };
  std::unordered_map<const TensorImpl*, std::size_t> seen;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Tensor& t = params[i];
    BASIN_CHECK(t.defined(), who, ": ", label(i), " is undefined");
    BASIN_CHECK(is_floating(t.dtype()), who, ": ", label(i), " is ", dtype_name(t.dtype()),
                "; only floating tensors can be optimized");
    BASIN_CHECK(t.is_leaf(), who, ": ", label(i), " is not a leaf (it was made by ", t.grad_fn()->name,
                "); optimize the tensors the model owns");
    BASIN_CHECK(t.dtype() == params[0].dtype(), who, ": ", label(i), " is ", dtype_name(t.dtype()), " but ",
                label(0), " is ", dtype_name(params[0].dtype()), "; one optimizer takes one dtype");
    BASIN_CHECK(t.device() == params[0].device(), who, ": ", label(i), " is on ", t.device().str(), " but ",
                label(0), " is on ", params[0].device().str(), "; move the model with to(device) first");
    const auto [at, inserted] = seen.emplace(t.impl(), i);
    BASIN_CHECK(inserted, who, ": ", label(i), " is the same tensor as ", label(at->second),
                "; each parameter may appear once");
  }
}

ParameterArena::ParameterArena(std::vector<Tensor> params, const Predicate& adaptive) : tensors_(std::move(params)) {
  check_parameter_list(tensors_, {}, "ParameterArena");
  adaptive_.resize(tensors_.size(), false);
  if (adaptive) {
    for (std::size_t i = 0; i < tensors_.size(); ++i) adaptive_[i] = adaptive(i, tensors_[i]);
  }
  pack({});
}

void ParameterArena::pack(std::vector<Tensor*> state) {
  const bool repacking = params_flat_.defined();
  const char* op = repacking ? "ParameterArena::rebind" : "ParameterArena";
  check_parameter_list(tensors_, {}, op);
  const Device device = tensors_[0].device();
  const DType dtype = tensors_[0].dtype();
  const Layout layout = plan(tensors_, adaptive_, dtype);
  for (const Tensor* buffer : state) {
    if (buffer == nullptr || !buffer->defined()) continue;
    BASIN_CHECK(layout.offsets == offsets_ && layout.padded_numel == padded_numel_, op,
                ": the parameters changed shape or dtype since they were packed, so the optimizer state no "
                "longer fits them");
    BASIN_CHECK(buffer->dim() == 1 && buffer->numel() == padded_numel_, op, ": a state buffer has shape ",
                shape_str(buffer->shape()), " but the arena holds [", padded_numel_, "]");
  }

  // Copy everything into the new buffers first and re-point the tensors only
  // then, so a failing copy leaves the model as it was.
  NoGradGuard no_grad;
  const TensorOptions options = TensorOptions(dtype).device(device);
  Tensor params = zeros({layout.padded_numel}, options);
  Tensor grads = zeros({layout.padded_numel}, options);
  std::vector<Tensor> values, gradients;
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    const Strides strides = contiguous_strides(t.shape());
    values.push_back(make_view(params, t.shape(), strides, layout.offsets[i]));
    values.back().copy_(t.detach());
    gradients.push_back(make_view(grads, t.shape(), strides, layout.offsets[i]));
    if (t.grad().defined()) gradients.back().copy_(t.grad());
  }
  std::vector<Tensor> moved;
  for (Tensor* buffer : state) {
    moved.push_back(buffer != nullptr && buffer->defined() ? buffer->detach().to(device) : Tensor());
  }

  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    tensors_[i].set_data(values[i]);
    tensors_[i].set_grad(gradients[i]);
  }
  for (std::size_t k = 0; k < state.size(); ++k) {
    if (moved[k].defined()) *state[k] = moved[k];
  }
  offsets_ = layout.offsets;
  padded_numel_ = layout.padded_numel;
  adaptive_end_ = layout.adaptive_end;
  params_flat_ = params;
  grads_flat_ = grads;
}

Tensor ParameterArena::make_buffer() const { return zeros({padded_numel_}, TensorOptions(dtype()).device(device())); }

Tensor ParameterArena::view(const Tensor& buffer, std::size_t index) const {
  BASIN_CHECK(index < tensors_.size(), "ParameterArena::view: index ", index, " is out of range for ",
              tensors_.size(), " parameters");
  BASIN_CHECK(buffer.defined(), "ParameterArena::view: the buffer is undefined");
  BASIN_CHECK(buffer.dim() == 1 && buffer.numel() == padded_numel_ && buffer.is_contiguous(),
              "ParameterArena::view: expected a contiguous buffer of [", padded_numel_,
              "] (made by make_buffer), got ", shape_str(buffer.shape()));
  const Shape& shape = tensors_[index].shape();
  return make_view(buffer, shape, contiguous_strides(shape), buffer.storage_offset() + offsets_[index]);
}

void ParameterArena::zero_grad() { grads_flat_.zero_(); }

bool ParameterArena::is_bound() const {
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    if (!views(t, params_flat_, offsets_[i]) || !views(t.grad(), grads_flat_, offsets_[i])) return false;
  }
  return true;
}

void ParameterArena::rebind(std::vector<Tensor*> state) { pack(std::move(state)); }

}  // namespace basin::optim
