// Module: the building block of networks, in the vocabulary of the libtorch
// C++ frontend. A module owns named parameters (tensors that train), named
// buffers (state that does not: BatchNorm's running statistics) and named
// child modules. Names compose with dots, so a ResNet's parameters are
// "layer1.0.conv1.weight" exactly as in the PyTorch model, and a state_dict
// moves between the two frameworks unchanged.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/serialization.h"
#include "core/tensor.h"

namespace basin::nn {

class Module;
using ModulePtr = std::shared_ptr<Module>;
template <class T>
using Named = std::vector<std::pair<std::string, T>>;

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The computation. Layers with one input and one output (all of basin's) override it.
  virtual Tensor forward(const Tensor& input);
  // forward(), plus the bookkeeping summary() needs. Parents call children this way.
  Tensor operator()(const Tensor& input);

  // "Conv2d", "BasicBlock"...: the class, for summaries and errors.
  const std::string& type_name() const { return type_name_; }
  // One line of configuration for summaries: "3, 16, kernel_size=3, stride=1".
  virtual std::string describe() const { return ""; }

  // ---- registration (call from the constructor, in the order PyTorch does)
  Tensor register_parameter(const std::string& name, Tensor tensor, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor tensor);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // ---- traversal (registration order, depth first, parents before children)
  std::vector<Tensor> parameters(bool recurse = true) const;
  Named<Tensor> named_parameters(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  Named<Tensor> named_buffers(bool recurse = true) const;
  Named<ModulePtr> named_children() const { return children_; }
  Named<ModulePtr> named_modules(const std::string& prefix = "") const;  // every descendant, depth first; not this module
  // Calls fn on every module, this one included, parents first.
  void apply(const std::function<void(Module&)>& fn);

  // ---- state
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Moves every parameter and buffer; handles held by layers stay valid.
  void to(Device device);
  // Converts every floating parameter and buffer (and existing gradients) to a
  // floating dtype; integer buffers (BatchNorm's num_batches_tracked) stay
  // as they are. Handles held by layers stay valid.
  void to(DType dtype);
  // Zeroes every parameter's gradient in place, as optim::Optimizer::zero_grad
  // does: a gradient never becomes undefined (one that was never computed
  // stays undefined), so an optimizer's arena views stay in place.
  void zero_grad();

  // Running statistics (BatchNorm2d's) stay fixed while frozen: a training-mode
  // forward still normalizes with the batch's statistics. A module without any
  // ignores the call. SAM's second pass runs frozen (RunningStatsFreeze).
  virtual void set_running_stats_frozen(bool /*frozen*/) {}
  virtual bool running_stats_frozen() const { return false; }

  // Parameters and buffers by dotted name.
  TensorMap state_dict() const;
  // Copies values into the existing tensors (on their current device). Every
  // name must match and every shape agree; the error lists what differs.
  void load_state_dict(const TensorMap& state);

  // A table of every module: name, type, configuration, output shape (from a
  // forward pass of `input` when given) and parameter count, with the total.
  std::string summary(const Tensor& input = Tensor());

 protected:
  // Called on every module after load_state_dict() wrote new values.
  virtual void on_state_loaded() {}

 private:
  void add_child(const std::string& name, ModulePtr module);
  static void check_name(const std::string& name, const std::string& kind);

  std::string type_name_;
  bool training_ = true;
  Named<Tensor> parameters_;
  Named<Tensor> buffers_;
  Named<ModulePtr> children_;
};

// While alive, every module in the tree keeps its running statistics fixed
// (Module::set_running_stats_frozen); each module's previous setting comes
// back on destruction.
class RunningStatsFreeze {
 public:
  explicit RunningStatsFreeze(Module& root);
  ~RunningStatsFreeze();
  RunningStatsFreeze(const RunningStatsFreeze&) = delete;
  RunningStatsFreeze& operator=(const RunningStatsFreeze&) = delete;

 private:
  std::vector<std::pair<Module*, bool>> saved_;
};

// Total number of elements over the parameters.
std::int64_t parameter_count(const Module& module);

}  // namespace basin::nn
