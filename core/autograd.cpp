// The backward engine. Read this file top to bottom: it is the whole of it.
#include "core/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "core/elementwise.h"

namespace basin {

namespace {
thread_local bool grad_mode = true;
}

bool grad_mode_enabled() { return grad_mode; }

NoGradGuard::NoGradGuard() : previous_(grad_mode) { grad_mode = false; }
NoGradGuard::~NoGradGuard() { grad_mode = previous_; }

Node::~Node() {
  std::vector<std::shared_ptr<Node>> orphans;
  auto adopt = [&orphans](std::vector<Edge>& edges) {
    for (Edge& edge : edges) {
      // Only a node we hold the last reference to would be destroyed here.
      if (edge.node && edge.node.use_count() == 1) orphans.push_back(std::move(edge.node));
    }
  };
  adopt(inputs);
  while (!orphans.empty()) {
    std::shared_ptr<Node> node = std::move(orphans.back());
    orphans.pop_back();
    adopt(node->inputs);
    // `node` is destroyed here with its input edges already emptied of unique nodes.
  }
}

Tensor record(const char* op, Tensor output, const TensorList& inputs, BackwardFn backward) {
  if (!grad_mode) return output;
  std::vector<Edge> edges(inputs.size());
  bool any = false;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& input = inputs[i];
    if (!input.defined() || !input.requires_grad()) continue;
    if (input.grad_fn()) {
      edges[i].node = input.grad_fn();
    } else {
      edges[i].leaf = input.impl_ptr();
    }
    any = true;
  }
  if (!any) return output;
  auto node = std::make_shared<Node>();
  node->name = op;
  node->inputs = std::move(edges);
  node->backward = std::move(backward);
  output.impl()->grad_fn = std::move(node);
  output.impl()->requires_grad = true;
  return output;
}

namespace {

// Adds `grad` into a leaf's .grad. The first gradient is copied so that the
// leaf never aliases a temporary; later ones are added in place, which also
// keeps a .grad that views a preallocated buffer (the optimizer arena) valid.
void accumulate_into_leaf(TensorImpl& leaf, const Tensor& grad) {
  BASIN_CHECK(grad.shape() == leaf.shape, "backward: gradient of shape ", shape_str(grad.shape()),
              " for a leaf of shape ", shape_str(leaf.shape));
  if (leaf.grad.defined()) {
    leaf.grad.add_(grad);
  } else {
    leaf.grad = grad.clone();
  }
}

// Nodes reachable from `root`, each after every node that consumes its output:
// an iterative depth-first search (deep networks would overflow a recursive one).
std::vector<Node*> topological_order(Node* root) {
  std::vector<Node*> post_order;
  std::unordered_set<Node*> visited{root};
  std::vector<std::pair<Node*, std::size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [node, next_input] = stack.back();
    if (next_input < node->inputs.size()) {
      Node* child = node->inputs[next_input++].node.get();
      if (child && visited.insert(child).second) stack.push_back({child, 0});
    } else {
      post_order.push_back(node);
      stack.pop_back();
    }
  }
  return {post_order.rbegin(), post_order.rend()};
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& grad_output) {
  BASIN_CHECK(root.requires_grad(), "backward: the tensor does not require a gradient (no parameter fed it, "
                                    "or it was computed under NoGradGuard)");
  BASIN_CHECK(grad_output.shape() == root.shape(), "backward: gradient of shape ", shape_str(grad_output.shape()),
              " for a tensor of shape ", shape_str(root.shape()));
  NoGradGuard no_grad;  // first-order only: backward math is not itself recorded
  if (!root.grad_fn()) {
    accumulate_into_leaf(*root.impl(), grad_output);
    return;
  }

  std::unordered_map<Node*, Tensor> pending;  // summed output gradient of each node
  pending[root.grad_fn().get()] = grad_output;
  for (Node* node : topological_order(root.grad_fn().get())) {
    auto found = pending.find(node);
    if (found == pending.end()) continue;  // nothing flowed here
    const Tensor grad = std::move(found->second);
    pending.erase(found);

    GradNeeds needs(node->inputs.size());
    for (std::size_t i = 0; i < needs.size(); ++i) needs[i] = node->inputs[i].needs_grad();
    const TensorList input_grads = node->backward(grad, needs);
    BASIN_CHECK(input_grads.size() == node->inputs.size(), "backward of ", node->name, " returned ",
                input_grads.size(), " gradients for ", node->inputs.size(), " inputs");

    for (std::size_t i = 0; i < input_grads.size(); ++i) {
      const Edge& edge = node->inputs[i];
      const Tensor& g = input_grads[i];
      if (!edge.needs_grad() || !g.defined()) continue;
      if (edge.leaf) {
        accumulate_into_leaf(*edge.leaf, g);
      } else if (Tensor& sum = pending[edge.node.get()]; sum.defined()) {
        sum = add(sum, g);
      } else {
        sum = g;
      }
    }
  }
}

}  // namespace basin
