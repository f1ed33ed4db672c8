// The host side of the SAM optimizer benchmark (bench_sam_kernels.cu), kept
// in plain C++ so the CPU self-check (bench_sam_check.cpp) runs every line of
// it on a machine without a GPU:
//   - parameter sets with the exact tensor shapes of basin's models, taken
//     from create_model(name)->named_parameters();
//   - the inputs of one SAM step (w, g, the second gradient g', momentum);
//   - the CPU reference of that step: kernels::reference::sam_norm, sam_perturb and
//     sgd_update over the ParameterArena that optim::SGD packs, i.e. exactly
//     what optim::SAM computes;
//   - SamVariant, the interface every implementation under test offers, and
//     the check that runs one step of a variant and compares it with the
//     reference. A variant that fails the check is not timed.
//   - the element math of the baseline variants (v1, v2), shared by their
//     CUDA kernels and the CPU replica that the self-check validates.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/host_device.h"
#include "kernels/optim.h"

namespace basin::bench {

// ---------------------------------------------------------------- parameter sets

struct ParamSet {
  std::string model;
  std::vector<std::string> names;  // model.named_parameters() order
  std::vector<Shape> shapes;
  std::vector<std::int64_t> numels;
  std::vector<bool> adaptive;  // ASAM scales it: the name contains "weight" (optim::SAM's default scope)
  std::int64_t params = 0;     // P, the parameter count
  std::int64_t adaptive_params = 0;
  std::size_t size() const { return names.size(); }
};

// The parameters of create_model(model) (CIFAR-10 head), shapes only.
ParamSet param_set(const std::string& model);
// Writes {"models": {name: {"params": P, "tensors": [{"name", "shape", "adaptive"}...]}}}
// for bench/pytorch/sam_optimizer.py --shapes.
void dump_shapes(const std::vector<ParamSet>& sets, const std::string& path);

// ---------------------------------------------------------------- one step

// The hyper-parameters of the benchmarked step (basin-train's defaults).
struct SamSettings {
  bool asam = false;
  double rho = 0.05;  // ASAM: 0.5
  double eps = 1e-12;
  double eta = 0.01;  // ASAM: T = |w| + eta on "weight" tensors
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 5e-4;

  kernels::SamArgs sam_args(std::int64_t adaptive_end) const;
  // first_step false: the momentum buffer is read, as in every step after the first.
  kernels::SgdArgs sgd_args() const;
};
SamSettings sam_settings(bool asam);

// Per-tensor float32 tensors of the parameters' shapes, on one device.
// Scales as in training: weights ~ 0.05 N(0, 1); gradients and momentum
// ~ N(0, 1) / sqrt(P), so ||g|| is about 1 and the perturbation and the
// update change every weight by far more than the check's tolerance.
struct StepInputs {
  std::vector<Tensor> w, g, g2, m;  // weights, first and second gradient, momentum
};
StepInputs make_inputs(const ParamSet& set, Device device, std::uint64_t seed);
StepInputs to_cpu(const StepInputs& in);

// What one step produced, per tensor, on the CPU.
struct StepResults {
  double norm = 0.0;              // ||T g||
  std::vector<Tensor> perturbed;  // w after the perturbation
  std::vector<Tensor> saved;      // the saved copy (must equal w exactly)
  std::vector<Tensor> updated;    // w after restore + SGD with g'
  std::vector<Tensor> momentum;   // the momentum buffer after it
};

// kernels::reference over optim::SGD's arena, from CPU inputs.
StepResults reference_step(const ParamSet& set, const StepInputs& cpu_inputs, const SamSettings& settings);

// An implementation of the optimizer side of a SAM step.
class SamVariant {
 public:
  virtual ~SamVariant() = default;
  virtual std::string name() const = 0;
  // w = in.w, g = in.g, momentum = in.m; the saved copy is poisoned with NaN.
  virtual void load(const StepInputs& in) = 0;
  // g = grads (the second backward pass).
  virtual void load_grads(const std::vector<Tensor>& grads) = 0;
  virtual void norm() = 0;            // ||T g|| and the scale, left on the device
  virtual void perturb() = 0;         // saved = w; w += s T^2 g
  virtual void restore_update() = 0;  // w = saved; SGD with momentum
  virtual double read_norm() = 0;
  // Per-tensor copies on the CPU, in the parameter set's order.
  virtual std::vector<Tensor> read_weights() = 0;
  virtual std::vector<Tensor> read_saved() = 0;
  virtual std::vector<Tensor> read_momentum() = 0;
};

// load(in), norm, perturb, load_grads(in.g2), restore_update, reading the
// results after each phase.
StepResults run_step(SamVariant& variant, const StepInputs& in);

struct Check {
  std::string what;
  double worst = 0.0;  // the largest relative error (0 for an exact match)
  std::string where;   // the worst element: "layer1.0.conv1.weight[17]: 0.1234 vs 0.1233"
  bool ok = false;
};

struct Verdict {
  std::vector<Check> checks;
  bool ok() const;
  // "ok (worst relative error 3.2e-08)" or "FAILED: perturbed weights: ..."
  std::string summary() const;
};

// Relative errors |x - r| / (|r| + floor), floor = the RMS of the reference
// buffer: float32 rounding scales with the operands, not with a result that
// cancels to almost nothing, so such elements are judged on the buffer's
// scale. NaN fails. The saved copy must match bit for bit.
Verdict compare_step(const ParamSet& set, const StepResults& got, const StepResults& ref, double rtol);

// ---------------------------------------------------------------- baseline element math

// float32 throughout, as an eager framework computes it (the fused kernels
// compute in double and round once; the check's tolerance covers both).
struct SgdConstants {
  float lr, momentum, keep, decay;  // keep = 1 - dampening
};
SgdConstants sgd_constants(const SamSettings& settings);

// (T g)^2, T = |w| + eta where `scaled`, else 1.
BASIN_HOST_DEVICE inline float norm_term(float w, float g, bool scaled, float eta) {
  const float v = scaled ? (fabsf(w) + eta) * g : g;
  return v * v;
}

// w + s T^2 g.
BASIN_HOST_DEVICE inline float perturbed_weight(float w, float g, float s, bool scaled, float eta) {
  float coef = s;
  if (scaled) {
    const float t = fabsf(w) + eta;
    coef = s * (t * t);
  }
  return w + coef * g;
}

// PyTorch's SGD with momentum (no Nesterov) for one element, from the restored weight.
BASIN_HOST_DEVICE inline float sgd_momentum_step(float w, float g, float& buf, const SgdConstants& c) {
  const float d = g + c.decay * w;
  buf = buf * c.momentum + c.keep * d;
  return w - c.lr * buf;
}

}  // namespace basin::bench
