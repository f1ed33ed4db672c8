// Reverse-mode automatic differentiation, define-by-run.
//
// Every differentiable op computes its result and then calls record(), which
// attaches a Node to the result when any input requires a gradient. A Node
// holds a backward function and one Edge per input: the Node that produced
// that input, or the leaf tensor whose .grad it feeds. backward() (autograd.cpp)
// orders the Nodes reachable from the loss and runs their backward functions
// last to first, summing gradients where a tensor was used more than once.
//
// An op is written in three steps (see core/elementwise.cpp):
//   Tensor y = ...compute...;
//   return record("exp", y, {x}, [y_saved = y.detach()](const Tensor& gy, const GradNeeds&) {
//     return TensorList{gy * y_saved};
//   });
// Save only what backward needs, and save it detached: a node that held its
// own output with its grad_fn would keep itself alive forever.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace basin {

using TensorList = std::vector<Tensor>;
// GradNeeds[i] is true when input i wants a gradient; backward may skip the others
// (and return an undefined Tensor in their place).
using GradNeeds = std::vector<bool>;
using BackwardFn = std::function<TensorList(const Tensor& grad_output, const GradNeeds& needs)>;

struct Edge {
  std::shared_ptr<Node> node;          // the input was produced by this node, or
  std::shared_ptr<TensorImpl> leaf;    // the input is this leaf, which accumulates .grad
  bool needs_grad() const { return node != nullptr || leaf != nullptr; }
};

struct Node {
  std::string name;  // the op, for error messages and graph printing
  std::vector<Edge> inputs;
  BackwardFn backward;

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Frees the chain of nodes behind this one without recursion: a long graph
  // would otherwise overflow the stack when its last tensor goes away.
  ~Node();
};

// Whether ops record a graph. Off inside a NoGradGuard (and during backward).
bool grad_mode_enabled();

// Turns recording off for its lifetime: optimizer updates, evaluation, init.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Attaches a Node named `op` to `output` when grad mode is on and any input
// requires a gradient; returns `output` either way.
Tensor record(const char* op, Tensor output, const TensorList& inputs, BackwardFn backward);

// Runs the backward pass from `root`, seeding it with `grad_output`.
void run_backward(const Tensor& root, const Tensor& grad_output);

}  // namespace basin
