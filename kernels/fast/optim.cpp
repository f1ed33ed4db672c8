// CPU engine optimizer passes over the flat parameter arena (kernels/optim.h).
//
// These passes are memory-bound: one read (and for most, one write) of every
// parameter per step. The engine splits each pass across threads and
// otherwise computes exactly what the reference computes, element by element,
// so the engine, the reference and the CUDA kernels agree bit for bit:
//   - sgd_update and sam_perturb are elementwise: the same arithmetic on a
//     different thread gives the same bits.
//   - sam_norm keeps the float64 accumulation and the fixed summation order
//     that kernels/optim.h specifies (131072 strided "thread" sums, two
//     pairwise trees). That contract is what lets the CPU and CUDA norms be
//     compared to the last bit, and a float32 sum in another order would
//     break it; the engine gains its speed from threads instead. Each engine
//     thread takes whole first-stage blocks, so no partial sum is ever split
//     between threads and the thread count cannot change the result.
// float64 arenas run the reference. The argument checks are the shared ones
// (kernels/optim_checks.h), run before any work, so both kernel sets reject
// the same mistakes with the same messages.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/fast/parallel.h"
#include "kernels/optim.h"
#include "kernels/optim_checks.h"

namespace basin::kernels::fast {

namespace {

// The first stage of sam_norm over float32, as kernels/optim.h specifies it.
struct NormPass {
  const float* g;
  const float* w;            // read on [0, scaled_end) only
  std::int64_t n;            // elements
  std::int64_t scaled_end;   // T = |w| + eta before it, 1 from it on
  double eta;
  double* sums;              // kNormPartials * kNormThreads "thread" sums, zeroed
  double* partials;          // kNormPartials block sums
};

// Blocks [b0, b1) of the first stage: "thread" t (of kNormPartials *
// kNormThreads) sums the squares (T g)^2 of groups t, t + threads, t + 2 *
// threads, ... in that order, and block b's partial is the tree sum of its
// kNormThreads "threads". Walking the arena round by round (a round is one
// group for each "thread"), each round reads one contiguous span of memory.
// Everything arrives by value, so the compiler keeps it in registers.
void norm_blocks(NormPass p, std::int64_t b0, std::int64_t b1) {
  constexpr std::int64_t width = kGroupBytes / static_cast<std::int64_t>(sizeof(float));  // 4 elements a group
  constexpr std::int64_t threads = static_cast<std::int64_t>(kNormPartials) * kNormThreads;
  const std::int64_t groups = (p.n + width - 1) / width;
  for (std::int64_t first = 0; first < groups; first += threads) {
    const std::int64_t t_end = std::min(b1 * kNormThreads, groups - first);
    for (std::int64_t t = b0 * kNormThreads; t < t_end; ++t) {
      const std::int64_t e0 = (first + t) * width;
      const std::int64_t e1 = std::min(p.n, e0 + width);
      double acc = p.sums[t];
      for (std::int64_t e = e0; e < e1; ++e) {
        double v = static_cast<double>(p.g[e]);
        if (e < p.scaled_end) v = (std::abs(static_cast<double>(p.w[e])) + p.eta) * v;
        acc += v * v;
      }
      p.sums[t] = acc;
    }
  }
  for (std::int64_t b = b0; b < b1; ++b) {
    p.partials[b] = reference::tree_sum(p.sums + b * kNormThreads, kNormThreads);
  }
}

// SGD's constants, in float32.
struct SgdStep {
  float lr, momentum, keep, decay;
  bool use_decay, use_momentum, first_step, nesterov;
};

// One thread's range [begin, end) of the SGD update. The constants arrive by
// value, in registers: the compiler then knows that no store to w or buf can
// change them, so it tests the flags once, not per element (loop
// unswitching), and vectorizes each variant of the loop.
void sgd_range(SgdStep c, float* w, const float* source, const float* g, float* buf, std::int64_t begin,
               std::int64_t end) {
  for (std::int64_t e = begin; e < end; ++e) {
    const float x = source[e];
    float d = g[e];
    if (c.use_decay) d = d + c.decay * x;
    if (c.use_momentum) {
      const float b = c.first_step ? d : buf[e] * c.momentum + c.keep * d;
      buf[e] = b;
      d = c.nesterov ? d + c.momentum * b : b;
    }
    w[e] = x - c.lr * d;
  }
}

}  // namespace

void sam_norm(const TensorArg& scale, const TensorArg& partials, const TensorArg& params, const TensorArg& grads,
              SamArgs args) {
  optim_checks::check_sam_norm(scale, partials, params, grads, args);
  if (grads.dtype != DType::Float32) {
    reference::sam_norm(scale, partials, params, grads, args);
    return;
  }
  // Stage 1: a range of engine threads owns the "threads" of whole blocks
  // (norm_blocks); blocks per range such that a range covers about
  // kMinPerThread elements, so a small arena stays on one thread.
  std::vector<double> sums(static_cast<std::size_t>(kNormPartials) * kNormThreads, 0.0);
  double* partial = partials.ptr<double>();
  const NormPass pass{.g = grads.ptr<float>(),
                      .w = args.adaptive ? params.ptr<float>() : nullptr,
                      .n = grads.numel,
                      .scaled_end = args.adaptive ? args.adaptive_end : 0,
                      .eta = args.eta,
                      .sums = sums.data(),
                      .partials = partial};
  const std::int64_t grain =
      std::max<std::int64_t>(1, kNormPartials * kMinPerThread / std::max<std::int64_t>(pass.n, 1));
  parallel_for(kNormPartials, [&](std::int64_t b0, std::int64_t b1) { norm_blocks(pass, b0, b1); }, grain);

  // Stage 2: the 512 partials by the same tree, on one thread (a few hundred adds).
  reference::finish_sam_norm(partial, scale.ptr<double>(), args);
}

void sam_perturb(const TensorArg& params, const TensorArg& saved, const TensorArg& grads, const TensorArg& scale,
                 SamArgs args) {
  optim_checks::check_sam_perturb(params, saved, grads, scale, args);
  if (grads.dtype != DType::Float32) {
    reference::sam_perturb(params, saved, grads, scale, args);
    return;
  }
  float* w = params.ptr<float>();
  float* keep = saved.ptr<float>();
  const float* g = grads.ptr<float>();
  const double s = scale.ptr<double>()[kSamScale];
  const bool finite = scale.ptr<double>()[kSamFinite] != 0.0;
  const std::int64_t scaled_end = args.adaptive ? args.adaptive_end : 0;
  parallel_for(grads.numel, [&](std::int64_t begin, std::int64_t end) {
    // Only copy when the norm was not finite: skipping, not multiplying by a
    // zero scale, keeps a NaN gradient out of w (0 * NaN is NaN).
    if (!finite) {
      std::copy(w + begin, w + end, keep + begin);
      return;
    }
    // The adaptive run [0, scaled_end) and the plain rest, each a loop
    // without a per-element branch. w + coef * g in double, rounded once.
    const std::int64_t split = std::clamp(scaled_end, begin, end);
    for (std::int64_t e = begin; e < split; ++e) {
      const float x = w[e];
      keep[e] = x;
      const double t = std::abs(static_cast<double>(x)) + args.eta;
      w[e] = static_cast<float>(static_cast<double>(x) + (s * (t * t)) * static_cast<double>(g[e]));
    }
    for (std::int64_t e = split; e < end; ++e) {
      const float x = w[e];
      keep[e] = x;
      w[e] = static_cast<float>(static_cast<double>(x) + s * static_cast<double>(g[e]));
    }
  });
}

void sgd_update(const TensorArg& params, const TensorArg& saved, const TensorArg& grads, const TensorArg& momentum,
                SgdArgs args) {
  optim_checks::check_sgd_update(params, saved, grads, momentum, args);
  if (grads.dtype != DType::Float32) {
    reference::sgd_update(params, saved, grads, momentum, args);
    return;
  }
  // Hyper-parameters rounded to float32, as PyTorch's scalar arguments are;
  // sgd_range applies the reference's operations in its order, one rounding each.
  const SgdStep step{.lr = static_cast<float>(args.lr),
                     .momentum = static_cast<float>(args.momentum),
                     .keep = static_cast<float>(1.0 - args.dampening),
                     .decay = static_cast<float>(args.weight_decay),
                     .use_decay = args.weight_decay != 0.0,
                     .use_momentum = args.momentum != 0.0,
                     .first_step = args.first_step,
                     .nesterov = args.nesterov};
  float* w = params.ptr<float>();
  const float* source = saved.data != nullptr ? saved.ptr<float>() : w;
  const float* g = grads.ptr<float>();
  float* buf = step.use_momentum ? momentum.ptr<float>() : nullptr;
  parallel_for(grads.numel,
               [&](std::int64_t begin, std::int64_t end) { sgd_range(step, w, source, g, buf, begin, end); });
}

}  // namespace basin::kernels::fast
