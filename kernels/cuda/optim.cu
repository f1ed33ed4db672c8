// CUDA fused optimizer kernels over the flat parameter arena (kernels/optim.h).
//
// Every pass is a grid-stride loop over 16-byte groups of elements, moved
// with one vector load or store each (4 float32 or 2 float64): arena buffers
// start on 256-byte boundaries and their length is a multiple of the group,
// so in training every access is a full 16-byte transaction. A pointer that is
// not 16-byte aligned, or a short last group, takes a scalar path with the
// same arithmetic. The passes are bound by memory traffic, so each reads every
// input once and writes every output once: the norm reads g (and w for ASAM),
// the perturbation reads w and g and writes w and the saved copy, the restore
// + SGD pass reads saved w, g and the momentum and writes w and the momentum.
//
// The norm is a two-stage reduction of a fixed shape: kNormPartials blocks of
// kNormThreads threads each write one double partial, then a single block adds
// the partials in a fixed tree and writes the scale, the norm and the finite
// flag to device memory, where the perturbation reads them: the host never
// waits. No atomics anywhere, so every run gives the same bits. Arithmetic is
// written with the round-to-nearest intrinsics (__dadd_rn, __fmul_rn...), which
// nvcc never fuses into a multiply-add: the CPU reference rounds each step
// separately, and the two must agree to the last bit.
#include <cstdint>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/dtype_dispatch.h"
#include "kernels/optim.h"
#include "kernels/optim_checks.h"

namespace basin::kernels::cuda {

namespace {

constexpr int kBlockSize = 256;

// One 16-byte group; alignas(16) makes a copy of it a single vector access.
template <class T>
struct alignas(kGroupBytes) Group {
  static constexpr int kWidth = kGroupBytes / static_cast<int>(sizeof(T));
  T v[kWidth];
};

template <class T>
__device__ Group<T> load_group(const T* base, long long j) {
  return reinterpret_cast<const Group<T>*>(base)[j];
}

template <class T>
__device__ void store_group(T* base, long long j, const Group<T>& group) {
  reinterpret_cast<Group<T>*>(base)[j] = group;
}

__device__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }
__device__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

// ---------------------------------------------------------------- norm

// (T g)^2 in double, T = |w| + eta where `scaled`, else 1.
template <class T>
__device__ double norm_term(T w, T g, bool scaled, double eta) {
  double v = static_cast<double>(g);
  if (scaled) v = __dmul_rn(__dadd_rn(fabs(static_cast<double>(w)), eta), v);
  return __dmul_rn(v, v);
}

// x[t] += x[t + half], halving down to one: the CPU reference's tree_sum.
template <int kCount>
__device__ double block_tree_sum(double* x) {
  for (int half = kCount / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) x[threadIdx.x] = __dadd_rn(x[threadIdx.x], x[threadIdx.x + half]);
    __syncthreads();
  }
  return x[0];
}

// Stage 1: exactly kNormPartials blocks of kNormThreads. Thread gid takes
// groups gid, gid + threads, ... and adds their elements in order.
template <class T>
__global__ void __launch_bounds__(kNormThreads)
    norm_partials_kernel(double* partials, const T* w, const T* g, long long n, SamArgs args, bool vectorized) {
  constexpr int kWidth = Group<T>::kWidth;
  __shared__ double sums[kNormThreads];
  const long long threads = static_cast<long long>(kNormPartials) * kNormThreads;
  const long long groups = (n + kWidth - 1) / kWidth;
  const long long scaled_end = args.adaptive ? args.adaptive_end : 0;
  double acc = 0.0;
  for (long long j = static_cast<long long>(blockIdx.x) * kNormThreads + threadIdx.x; j < groups; j += threads) {
    const long long first = j * kWidth;
    if (vectorized && first + kWidth <= n) {
      const Group<T> gv = load_group(g, j);
      if (args.adaptive) {
        const Group<T> wv = load_group(w, j);
#pragma unroll
        for (int k = 0; k < kWidth; ++k) {
          acc = __dadd_rn(acc, norm_term(wv.v[k], gv.v[k], first + k < scaled_end, args.eta));
        }
      } else {
#pragma unroll
        for (int k = 0; k < kWidth; ++k) acc = __dadd_rn(acc, norm_term(T(0), gv.v[k], false, 0.0));
      }
    } else {
      const long long last = first + kWidth < n ? first + kWidth : n;
      for (long long e = first; e < last; ++e) {
        const bool scaled = e < scaled_end;
        acc = __dadd_rn(acc, norm_term(scaled ? w[e] : T(0), g[e], scaled, args.eta));
      }
    }
  }
  sums[threadIdx.x] = acc;
  __syncthreads();
  const double total = block_tree_sum<kNormThreads>(sums);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// Stage 2: one block of kNormPartials threads, one partial each.
__global__ void __launch_bounds__(kNormPartials)
    norm_finish_kernel(double* scale, const double* partials, double rho, double eps) {
  __shared__ double sums[kNormPartials];
  sums[threadIdx.x] = partials[threadIdx.x];
  __syncthreads();
  const double total = block_tree_sum<kNormPartials>(sums);
  if (threadIdx.x == 0) {
    const double norm = __dsqrt_rn(total);
    const bool finite = isfinite(norm);
    double s = finite ? __ddiv_rn(rho, __dadd_rn(norm, eps)) : 0.0;
    if (!isfinite(s)) s = 0.0;  // a zero gradient with eps = 0: nothing to perturb along
    scale[kSamScale] = s;
    scale[kSamNorm] = norm;
    scale[kSamFinite] = finite ? 1.0 : 0.0;
  }
}

// ---------------------------------------------------------------- perturbation

// w + s * T^2 * g in double, rounded once to T.
template <class T>
__device__ T perturbed(T w, T g, double s, bool scaled, double eta) {
  double coef = s;
  if (scaled) {
    const double t = __dadd_rn(fabs(static_cast<double>(w)), eta);
    coef = __dmul_rn(s, __dmul_rn(t, t));
  }
  return static_cast<T>(__dadd_rn(static_cast<double>(w), __dmul_rn(coef, static_cast<double>(g))));
}

template <class T>
__global__ void perturb_kernel(T* w, T* saved, const T* g, const double* scale, long long n, SamArgs args,
                               bool vectorized) {
  constexpr int kWidth = Group<T>::kWidth;
  const double s = scale[kSamScale];
  // When the norm was not finite the update is skipped, not scaled by zero:
  // 0 * NaN is NaN. The saved copy is written either way (the restore needs it).
  const bool finite = scale[kSamFinite] != 0.0;
  const long long scaled_end = args.adaptive ? args.adaptive_end : 0;
  const long long groups = (n + kWidth - 1) / kWidth;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long j = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; j < groups; j += stride) {
    const long long first = j * kWidth;
    if (vectorized && first + kWidth <= n) {
      Group<T> wv = load_group(w, j);
      store_group(saved, j, wv);
      if (finite) {
        const Group<T> gv = load_group(g, j);
#pragma unroll
        for (int k = 0; k < kWidth; ++k) wv.v[k] = perturbed(wv.v[k], gv.v[k], s, first + k < scaled_end, args.eta);
        store_group(w, j, wv);
      }
    } else {
      const long long last = first + kWidth < n ? first + kWidth : n;
      for (long long e = first; e < last; ++e) {
        const T x = w[e];
        saved[e] = x;
        if (finite) w[e] = perturbed(x, g[e], s, e < scaled_end, args.eta);
      }
    }
  }
}

// ---------------------------------------------------------------- restore + SGD

// The hyper-parameters rounded to the parameter dtype, as PyTorch's scalars are.
template <class T>
struct SgdScalars {
  T lr, momentum, keep, decay;  // keep = 1 - dampening
  bool use_decay, use_momentum, nesterov, first_step;
};

// One element of PyTorch's SGD; `buf` is read unless first_step and written
// when momentum is on.
template <class T>
__device__ T sgd_step(T w, T g, T& buf, const SgdScalars<T>& c) {
  T d = g;
  if (c.use_decay) d = add_rn(d, mul_rn(c.decay, w));
  if (c.use_momentum) {
    buf = c.first_step ? d : add_rn(mul_rn(buf, c.momentum), mul_rn(c.keep, d));
    d = c.nesterov ? add_rn(d, mul_rn(c.momentum, buf)) : buf;
  }
  return sub_rn(w, mul_rn(c.lr, d));
}

// source is the saved copy when restoring, else w itself.
template <class T>
__global__ void sgd_kernel(T* w, const T* source, const T* g, T* buf, long long n, SgdScalars<T> c,
                           bool vectorized) {
  constexpr int kWidth = Group<T>::kWidth;
  const bool read_buf = c.use_momentum && !c.first_step;
  const long long groups = (n + kWidth - 1) / kWidth;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long j = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; j < groups; j += stride) {
    const long long first = j * kWidth;
    if (vectorized && first + kWidth <= n) {
      Group<T> wv = load_group(source, j);
      const Group<T> gv = load_group(g, j);
      Group<T> bv{};
      if (read_buf) bv = load_group(buf, j);
#pragma unroll
      for (int k = 0; k < kWidth; ++k) wv.v[k] = sgd_step(wv.v[k], gv.v[k], bv.v[k], c);
      store_group(w, j, wv);
      if (c.use_momentum) store_group(buf, j, bv);
    } else {
      const long long last = first + kWidth < n ? first + kWidth : n;
      for (long long e = first; e < last; ++e) {
        T b = read_buf ? buf[e] : T(0);
        w[e] = sgd_step(source[e], g[e], b, c);
        if (c.use_momentum) buf[e] = b;
      }
    }
  }
}

// ---------------------------------------------------------------- argument checks

bool aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % kGroupBytes == 0; }

}  // namespace

void sam_norm(const TensorArg& scale, const TensorArg& partials, const TensorArg& params, const TensorArg& grads,
              SamArgs args) {
  optim_checks::check_sam_norm(scale, partials, params, grads, args);
  // Even an empty arena gets both launches: the scale buffer must be written.
  BASIN_DISPATCH_FLOATING(grads.dtype, "sam_norm", T, [&] {
    const T* w = args.adaptive ? params.ptr<T>() : nullptr;
    const bool vectorized = aligned(grads.data) && (!args.adaptive || aligned(w));
    launch(norm_partials_kernel<T>, kNormPartials, kNormThreads, partials.ptr<double>(), w, grads.ptr<T>(), grads.numel,
           args, vectorized);
  });
  launch(norm_finish_kernel, 1, kNormPartials, scale.ptr<double>(), partials.ptr<double>(), args.rho, args.eps);
}

void sam_perturb(const TensorArg& params, const TensorArg& saved, const TensorArg& grads, const TensorArg& scale,
                 SamArgs args) {
  optim_checks::check_sam_perturb(params, saved, grads, scale, args);
  if (grads.numel == 0) return;
  BASIN_DISPATCH_FLOATING(grads.dtype, "sam_perturb", T, [&] {
    const long long groups = (grads.numel + Group<T>::kWidth - 1) / Group<T>::kWidth;
    const bool vectorized = aligned(params.data) && aligned(saved.data) && aligned(grads.data);
    launch(perturb_kernel<T>, grid_for(groups, kBlockSize), kBlockSize, params.ptr<T>(), saved.ptr<T>(), grads.ptr<T>(),
           scale.ptr<double>(), grads.numel, args, vectorized);
  });
}

void sgd_update(const TensorArg& params, const TensorArg& saved, const TensorArg& grads, const TensorArg& momentum,
                SgdArgs args) {
  optim_checks::check_sgd_update(params, saved, grads, momentum, args);
  const bool restore = saved.data != nullptr;
  const bool use_momentum = args.momentum != 0.0;
  if (grads.numel == 0) return;
  BASIN_DISPATCH_FLOATING(grads.dtype, "sgd_update", T, [&] {
    SgdScalars<T> c;
    c.lr = static_cast<T>(args.lr);
    c.momentum = static_cast<T>(args.momentum);
    c.keep = static_cast<T>(1.0 - args.dampening);
    c.decay = static_cast<T>(args.weight_decay);
    c.use_decay = args.weight_decay != 0.0;
    c.use_momentum = use_momentum;
    c.nesterov = args.nesterov;
    c.first_step = args.first_step;
    T* w = params.ptr<T>();
    const T* source = restore ? saved.ptr<T>() : w;
    T* buf = use_momentum ? momentum.ptr<T>() : nullptr;
    const long long groups = (grads.numel + Group<T>::kWidth - 1) / Group<T>::kWidth;
    const bool vectorized = aligned(w) && aligned(source) && aligned(grads.data) && (!use_momentum || aligned(buf));
    launch(sgd_kernel<T>, grid_for(groups, kBlockSize), kBlockSize, w, source, grads.ptr<T>(), buf, grads.numel, c,
           vectorized);
  });
}

}  // namespace basin::kernels::cuda
