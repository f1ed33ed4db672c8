#include "nn/module.h"

#include <algorithm>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include "core/autograd.h"

namespace basin::nn {

namespace {
// While summary() runs a forward pass, each module's output shape lands here.
thread_local std::map<const Module*, Shape>* recorded_shapes = nullptr;
}  // namespace

Tensor Module::forward(const Tensor&) {
  BASIN_FAIL(type_name_, ": this module has no single-input forward()");
}

Tensor Module::operator()(const Tensor& input) {
  Tensor output = forward(input);
  if (recorded_shapes) (*recorded_shapes)[this] = output.shape();
  return output;
}

void Module::check_name(const std::string& name, const std::string& kind) {
  BASIN_CHECK(!name.empty() && name.find('.') == std::string::npos, "register_", kind, ": invalid name '", name,
              "' (must be non-empty and contain no '.')");
}

Tensor Module::register_parameter(const std::string& name, Tensor tensor, bool requires_grad) {
  check_name(name, "parameter");
  for (const auto& [existing, _] : parameters_) {
    BASIN_CHECK(existing != name, type_name_, ": parameter '", name, "' is registered twice");
  }
  if (tensor.defined() && requires_grad) tensor.requires_grad_(true);
  parameters_.emplace_back(name, tensor);
  return tensor;
}

Tensor Module::register_buffer(const std::string& name, Tensor tensor) {
  check_name(name, "buffer");
  for (const auto& [existing, _] : buffers_) {
    BASIN_CHECK(existing != name, type_name_, ": buffer '", name, "' is registered twice");
  }
  buffers_.emplace_back(name, tensor);
  return tensor;
}

void Module::add_child(const std::string& name, ModulePtr module) {
  check_name(name, "module");
  BASIN_CHECK(module != nullptr, type_name_, ": child module '", name, "' is null");
  for (const auto& [existing, _] : children_) {
    BASIN_CHECK(existing != name, type_name_, ": child module '", name, "' is registered twice");
  }
  children_.emplace_back(name, std::move(module));
}

Named<ModulePtr> Module::named_modules(const std::string& prefix) const {
  Named<ModulePtr> out;
  for (const auto& [name, child] : children_) {
    const std::string full = prefix.empty() ? name : prefix + "." + name;
    out.emplace_back(full, child);
    for (auto& entry : child->named_modules(full)) out.push_back(std::move(entry));
  }
  return out;
}

Named<Tensor> Module::named_parameters(bool recurse) const {
  Named<Tensor> out;
  for (const auto& entry : parameters_) {
    if (entry.second.defined()) out.push_back(entry);
  }
  if (!recurse) return out;
  for (const auto& [prefix, module] : named_modules()) {
    for (const auto& [name, tensor] : module->named_parameters(false)) out.emplace_back(prefix + "." + name, tensor);
  }
  return out;
}

Named<Tensor> Module::named_buffers(bool recurse) const {
  Named<Tensor> out;
  for (const auto& entry : buffers_) {
    if (entry.second.defined()) out.push_back(entry);
  }
  if (!recurse) return out;
  for (const auto& [prefix, module] : named_modules()) {
    for (const auto& [name, tensor] : module->named_buffers(false)) out.emplace_back(prefix + "." + name, tensor);
  }
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [_, tensor] : named_parameters(recurse)) out.push_back(tensor);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [_, tensor] : named_buffers(recurse)) out.push_back(tensor);
  return out;
}

void Module::apply(const std::function<void(Module&)>& fn) {
  fn(*this);
  for (auto& [_, child] : children_) child->apply(fn);
}

void Module::train(bool on) {
  apply([on](Module& m) { m.training_ = on; });
}

void Module::to(Device device) {
  NoGradGuard no_grad;
  for (const Tensor& t : parameters()) t.set_data(t.detach().to(device));
  for (const Tensor& t : buffers()) t.set_data(t.to(device));
  for (const Tensor& t : parameters()) {
    if (t.grad().defined()) t.set_grad(t.grad().to(device));
  }
}

void Module::to(DType dtype) {
  BASIN_CHECK(is_floating(dtype), type_name_, ".to(", dtype_name(dtype), "): modules convert to floating dtypes only");
  NoGradGuard no_grad;
  for (const Tensor& t : parameters()) {
    t.set_data(t.detach().to(dtype));
    if (t.grad().defined()) t.set_grad(t.grad().to(dtype));
  }
  for (const Tensor& t : buffers()) {
    if (is_floating(t.dtype())) t.set_data(t.to(dtype));
  }
}

void Module::zero_grad() {
  NoGradGuard no_grad;
  for (const Tensor& t : parameters()) {
    if (t.grad().defined()) t.grad().zero_();
  }
}

RunningStatsFreeze::RunningStatsFreeze(Module& root) {
  root.apply([this](Module& m) {
    saved_.emplace_back(&m, m.running_stats_frozen());
    m.set_running_stats_frozen(true);
  });
}

RunningStatsFreeze::~RunningStatsFreeze() {
  for (auto& [module, previous] : saved_) module->set_running_stats_frozen(previous);
}

TensorMap Module::state_dict() const {
  TensorMap out;
  for (const auto& [name, tensor] : named_parameters()) out[name] = tensor.detach();
  for (const auto& [name, tensor] : named_buffers()) out[name] = tensor.detach();
  return out;
}

void Module::load_state_dict(const TensorMap& state) {
  const TensorMap own = state_dict();
  std::vector<std::string> missing, unexpected, mismatched, wrong_dtype;
  for (const auto& [name, tensor] : own) {
    auto found = state.find(name);
    if (found == state.end()) {
      missing.push_back(name);
    } else if (found->second.shape() != tensor.shape()) {
      mismatched.push_back(name + " (expected " + shape_str(tensor.shape()) + ", got " +
                           shape_str(found->second.shape()) + ")");
    } else if (found->second.dtype() != tensor.dtype()) {
      // No silent conversion: an int64 weight, or float64 into float32, is a different model.
      wrong_dtype.push_back(name + " (expected " + dtype_name(tensor.dtype()) + ", got " +
                            dtype_name(found->second.dtype()) + ")");
    }
  }
  for (const auto& [name, _] : state) {
    if (!own.count(name)) unexpected.push_back(name);
  }
  auto join = [](const std::vector<std::string>& names) {
    std::string out;
    for (std::size_t i = 0; i < names.size() && i < 8; ++i) out += (i ? ", " : "") + names[i];
    if (names.size() > 8) out += ", ... (" + std::to_string(names.size()) + " in all)";
    return out;
  };
  BASIN_CHECK(missing.empty() && unexpected.empty() && mismatched.empty() && wrong_dtype.empty(),
              "load_state_dict: the state does not fit ", type_name_,
              (missing.empty() ? "" : "; missing: " + join(missing)),
              (unexpected.empty() ? "" : "; unexpected: " + join(unexpected)),
              (mismatched.empty() ? "" : "; wrong shape: " + join(mismatched)),
              (wrong_dtype.empty() ? "" : "; wrong dtype: " + join(wrong_dtype)));
  NoGradGuard no_grad;
  for (const auto& [name, tensor] : own) tensor.detach().copy_(state.at(name));
  apply([](Module& m) { m.on_state_loaded(); });
}

std::int64_t parameter_count(const Module& module) {
  std::int64_t total = 0;
  for (const Tensor& t : module.parameters()) total += t.numel();
  return total;
}

std::string Module::summary(const Tensor& input) {
  std::map<const Module*, Shape> shapes;
  Shape output_shape;
  if (input.defined()) {
    const bool was_training = is_training();
    eval();
    NoGradGuard no_grad;
    recorded_shapes = &shapes;
    try {
      output_shape = (*this)(input).shape();
    } catch (...) {
      recorded_shapes = nullptr;
      train(was_training);
      throw;
    }
    recorded_shapes = nullptr;
    train(was_training);
  }
  std::ostringstream out;
  out << std::left << std::setw(28) << "name" << std::setw(16) << "type" << std::setw(20) << "output"
      << std::right << std::setw(12) << "parameters" << "  " << "configuration\n";
  out << std::string(100, '-') << "\n";
  for (const auto& [name, module] : named_modules()) {
    std::int64_t own = 0;
    for (const Tensor& t : module->parameters(false)) own += t.numel();
    auto shape = shapes.find(module.get());
    out << std::left << std::setw(28) << name << std::setw(16) << module->type_name() << std::setw(20)
        << (shape == shapes.end() ? "-" : shape_str(shape->second)) << std::right << std::setw(12) << own << "  "
        << module->describe() << "\n";
  }
  out << std::string(100, '-') << "\n";
  if (input.defined()) out << "input " << shape_str(input.shape()) << " -> output " << shape_str(output_shape) << "\n";
  out << "total parameters: " << parameter_count(*this) << "\n";
  return out.str();
}

}  // namespace basin::nn
