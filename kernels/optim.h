// Fused optimizer kernels over a flat parameter arena (optim/arena.h).
//
// Every tensor argument is a contiguous 1-D view of one arena buffer, all of
// the same length and floating dtype. Elements [0, adaptive_end) belong to
// ASAM's "weight" tensors; padding elements are zero everywhere and stay so.
// Each entry point is one pass (one launch on CUDA, two for the norm), so a
// SAM step costs the same number of launches whatever the number of tensors.
//
// The SAM step, with T = |w| + eta on adaptive elements (ASAM) and T = 1 elsewhere
// (plain SAM: T = 1 everywhere):
//   1. sam_norm:     n = ||T g||,  s = rho / (n + eps)        (device memory, never the host)
//   2. sam_perturb:  saved = w;  w = w + s * T^2 * g
//   3. (second forward/backward at the perturbed w gives g')
//   4. sgd_update:   w = saved, then the SGD step with g'
//
// The CPU and CUDA versions compute the same values in the same order, so
// they agree bit for bit on IEEE hardware (the CUDA side forbids fused
// multiply-adds where the CPU reference has none):
//   - sam_norm sums (T g)^2 in double. Element e belongs to group e / V, where
//     V = kGroupBytes / element size (4 float32 or 2 float64: one vectorized
//     load on the GPU); the last group may be short. Group j is summed, in
//     element order, by "thread" j % (kNormPartials * kNormThreads), which
//     visits its groups in increasing j. Partial b combines the sums of
//     threads [b * kNormThreads, (b + 1) * kNormThreads) by a pairwise tree
//     (halving: x[t] += x[t + half]); the final stage combines the
//     kNormPartials partials by the same tree. Nothing depends on the device,
//     the pointer alignment or the launch configuration.
//   - sam_perturb computes w + (s * (T * T)) * g in double and rounds once.
//   - sgd_update computes in the parameter dtype, one rounding per operation
//     in PyTorch's order, with the hyper-parameters rounded to that dtype.
#pragma once

#include <cstdint>

#include "kernels/tensor_arg.h"

namespace basin::kernels {

// Blocks of the first stage of the norm reduction: fixed, so the summation
// order (and the result, bit for bit) depends on the length alone.
inline constexpr int kNormPartials = 512;
// Threads per block of that first stage; also part of the summation order.
inline constexpr int kNormThreads = 256;
// Elements are handled in groups of this many bytes: one vector load or store.
inline constexpr int kGroupBytes = 16;

struct SamArgs {
  double rho = 0.05;
  double eps = 1e-12;
  bool adaptive = false;          // ASAM
  double eta = 0.01;              // ASAM: T = |w| + eta
  std::int64_t adaptive_end = 0;  // ASAM: T applies to [0, adaptive_end); T = 1 after
};

// Results of sam_norm, in a float64 buffer of kSamScaleSlots on the device.
inline constexpr int kSamScale = 0;   // s = rho / (n + eps); 0 when n is not finite
inline constexpr int kSamNorm = 1;    // n = ||T g||
inline constexpr int kSamFinite = 2;  // 1 when n is finite, else 0
inline constexpr int kSamScaleSlots = 3;

struct SgdArgs {
  double lr = 0.1;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool first_step = false;  // PyTorch starts the momentum buffer at d_p itself
};

// An absent optional argument is a default TensorArg (data == nullptr).
// Bad arguments (lengths, dtypes, missing buffers) throw basin::Error naming the kernel.
namespace reference {
// scale: float64 [kSamScaleSlots]; partials: float64 [kNormPartials] scratch.
// params is read only when args.adaptive.
void sam_norm(const TensorArg& scale, const TensorArg& partials, const TensorArg& params, const TensorArg& grads,
              SamArgs args);
// saved = w; w += s * T^2 * g (nothing added when the norm was not finite:
// the update is selected away, so a NaN gradient cannot reach w).
void sam_perturb(const TensorArg& params, const TensorArg& saved, const TensorArg& grads, const TensorArg& scale,
                 SamArgs args);
// When saved is given (data != nullptr): w = saved first. Then, PyTorch's SGD:
//   d = g + weight_decay * w;  buf = first_step ? d : momentum * buf + (1 - dampening) * d;
//   d = nesterov ? d + momentum * buf : buf  (when momentum != 0);  w -= lr * d.
// momentum may be absent (data == nullptr) when args.momentum == 0.
void sgd_update(const TensorArg& params, const TensorArg& saved, const TensorArg& grads, const TensorArg& momentum,
                SgdArgs args);
// The pieces of sam_norm the CPU engine shares: the pairwise tree both stages
// add by (x[t] += x[t + half] for half = count / 2, ..., 1; count a power of
// two; x is overwritten), and stage 2, the kNormPartials partials to the
// norm and the scale slots.
double tree_sum(double* x, int count);
void finish_sam_norm(const double* partials, double* scale, const SamArgs& args);
}  // namespace reference

// The CPU engine (kernels/fast/optim.cpp): float32 on several threads, bit for
// bit the reference's results; float64 runs the reference.
namespace fast {
void sam_norm(const TensorArg& scale, const TensorArg& partials, const TensorArg& params, const TensorArg& grads,
              SamArgs args);
void sam_perturb(const TensorArg& params, const TensorArg& saved, const TensorArg& grads, const TensorArg& scale,
                 SamArgs args);
void sgd_update(const TensorArg& params, const TensorArg& saved, const TensorArg& grads, const TensorArg& momentum,
                SgdArgs args);
}  // namespace fast

namespace cuda {
void sam_norm(const TensorArg& scale, const TensorArg& partials, const TensorArg& params, const TensorArg& grads,
              SamArgs args);
void sam_perturb(const TensorArg& params, const TensorArg& saved, const TensorArg& grads, const TensorArg& scale,
                 SamArgs args);
void sgd_update(const TensorArg& params, const TensorArg& saved, const TensorArg& grads, const TensorArg& momentum,
                SgdArgs args);
}  // namespace cuda

}  // namespace basin::kernels
