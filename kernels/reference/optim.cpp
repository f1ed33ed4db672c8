// CPU reference for the fused optimizer kernels (kernels/optim.h): one plain
// loop per pass over the flat arena. The norm walks the same partition and the
// same summation tree as the CUDA launch (the header spells it out), so the
// two norms can be compared to the last bit; the elementwise passes use the
// same arithmetic, element by element, as the GPU.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/dtype_dispatch.h"
#include "kernels/optim.h"
#include "kernels/optim_checks.h"

namespace basin::kernels::reference {

static_assert((kNormThreads & (kNormThreads - 1)) == 0 && (kNormPartials & (kNormPartials - 1)) == 0,
              "the summation trees halve: their sizes must be powers of two");

// The order a shared-memory tree in one CUDA block adds in.
double tree_sum(double* x, int count) {
  for (int half = count / 2; half > 0; half /= 2) {
    for (int t = 0; t < half; ++t) x[t] += x[t + half];
  }
  return x[0];
}

void finish_sam_norm(const double* partials, double* scale, const SamArgs& args) {
  std::vector<double> last(partials, partials + kNormPartials);
  const double norm = std::sqrt(tree_sum(last.data(), kNormPartials));
  const bool finite = std::isfinite(norm);
  double s = finite ? args.rho / (norm + args.eps) : 0.0;
  if (!std::isfinite(s)) s = 0.0;  // a zero gradient with eps = 0: nothing to perturb along
  scale[kSamScale] = s;
  scale[kSamNorm] = norm;
  scale[kSamFinite] = finite ? 1.0 : 0.0;
}

void sam_norm(const TensorArg& scale, const TensorArg& partials, const TensorArg& params, const TensorArg& grads,
              SamArgs args) {
  optim_checks::check_sam_norm(scale, partials, params, grads, args);
  BASIN_DISPATCH_FLOATING(grads.dtype, "sam_norm", T, [&] {
    const T* g = grads.ptr<T>();
    const T* w = args.adaptive ? params.ptr<T>() : nullptr;
    const std::int64_t n = grads.numel;
    const std::int64_t width = kGroupBytes / static_cast<std::int64_t>(sizeof(T));
    const std::int64_t groups = (n + width - 1) / width;
    const std::int64_t threads = static_cast<std::int64_t>(kNormPartials) * kNormThreads;
    const std::int64_t scaled_end = args.adaptive ? args.adaptive_end : 0;

    // Stage 1: group j goes to thread j % threads, which adds its elements in order.
    std::vector<double> sums(static_cast<std::size_t>(threads), 0.0);
    for (std::int64_t j = 0; j < groups; ++j) {
      double& acc = sums[static_cast<std::size_t>(j % threads)];
      for (std::int64_t e = j * width; e < std::min(n, (j + 1) * width); ++e) {
        double v = static_cast<double>(g[e]);
        if (e < scaled_end) v = (std::abs(static_cast<double>(w[e])) + args.eta) * v;
        acc += v * v;
      }
    }
    double* partial = partials.ptr<double>();
    for (int b = 0; b < kNormPartials; ++b) {
      partial[b] = tree_sum(&sums[static_cast<std::size_t>(b) * kNormThreads], kNormThreads);
    }

    // Stage 2: the partials, by the same tree.
    finish_sam_norm(partial, scale.ptr<double>(), args);
  });
}

void sam_perturb(const TensorArg& params, const TensorArg& saved, const TensorArg& grads, const TensorArg& scale,
                 SamArgs args) {
  optim_checks::check_sam_perturb(params, saved, grads, scale, args);
  BASIN_DISPATCH_FLOATING(grads.dtype, "sam_perturb", T, [&] {
    T* w = params.ptr<T>();
    T* keep = saved.ptr<T>();
    const T* g = grads.ptr<T>();
    const double s = scale.ptr<double>()[kSamScale];
    const bool finite = scale.ptr<double>()[kSamFinite] != 0.0;
    const std::int64_t scaled_end = args.adaptive ? args.adaptive_end : 0;
    for (std::int64_t e = 0; e < grads.numel; ++e) {
      const T x = w[e];
      keep[e] = x;
      // Skipped, not multiplied by a zero scale: 0 * NaN would still be NaN.
      if (!finite) continue;
      double coef = s;
      if (e < scaled_end) {
        const double t = std::abs(static_cast<double>(x)) + args.eta;
        coef = s * (t * t);
      }
      w[e] = static_cast<T>(static_cast<double>(x) + coef * static_cast<double>(g[e]));
    }
  });
}

void sgd_update(const TensorArg& params, const TensorArg& saved, const TensorArg& grads, const TensorArg& momentum,
                SgdArgs args) {
  optim_checks::check_sgd_update(params, saved, grads, momentum, args);
  const bool restore = saved.data != nullptr;
  const bool use_momentum = args.momentum != 0.0;
  BASIN_DISPATCH_FLOATING(grads.dtype, "sgd_update", T, [&] {
    T* w = params.ptr<T>();
    const T* source = restore ? saved.ptr<T>() : w;
    const T* g = grads.ptr<T>();
    T* buf = use_momentum ? momentum.ptr<T>() : nullptr;
    // Hyper-parameters in the parameter dtype, as PyTorch's scalar arguments are.
    const T lr = static_cast<T>(args.lr);
    const T m = static_cast<T>(args.momentum);
    const T keep = static_cast<T>(1.0 - args.dampening);
    const T decay = static_cast<T>(args.weight_decay);
    for (std::int64_t e = 0; e < grads.numel; ++e) {
      const T x = source[e];
      T d = g[e];
      if (args.weight_decay != 0.0) d = d + decay * x;
      if (use_momentum) {
        const T b = args.first_step ? d : buf[e] * m + keep * d;
        buf[e] = b;
        d = args.nesterov ? d + m * b : b;
      }
      w[e] = x - lr * d;
    }
  });
}

}  // namespace basin::kernels::reference
