// bench_sam_kernels: the optimizer side of one SAM step (everything except
// the two forward/backward passes) on the exact parameter sets of ResNet-18,
// WRN-16-8 and WRN-28-10 (float32), in three implementations:
//
//   v1 per-tensor    what an eager framework runs: one launch per tensor per
//                    op. Per tensor a norm kernel, one launch to combine the
//                    norms into the scale, per tensor a perturb kernel (which
//                    also writes the saved copy), per tensor a restore copy and
//                    per tensor an SGD-momentum kernel: 4T + 1 launches for T
//                    tensors. A generous baseline: each op is one vectorized
//                    kernel, where eager PyTorch issues several per tensor.
//   v2 multi-tensor  apex / PyTorch multi_tensor_apply: the tensors stay
//                    scattered, so each launch carries a table of (pointer,
//                    size) per tensor and (tensor, chunk) per block, ~3 KB of
//                    kernel parameters; one block per 64K-element chunk, a new
//                    launch whenever the table fills. Restore and SGD are fused
//                    into one pass, as in v3, so v2 and v3 differ only in how
//                    they find their memory.
//   v3 fused arena   basin's own kernels (kernels::cuda::sam_norm, sam_perturb,
//                    sgd_update) over the ParameterArena that optim::SGD packs
//                    from the model: exactly what optim::SAM runs. One flat,
//                    16-byte-vectorized pass per phase: 4 launches per step.
//   and ASAM (T = |w| + eta on "weight" tensors) for v1 and v3.
//
// Phases: norm (||T g|| and the scale), perturb (saved = w; w += s T^2 g),
// restore + update (w = saved, then SGD with momentum and weight decay), and
// the whole optimizer side of a step. Each phase is reported with its median
// device time (CUDA events, gated so the host's launches are not in it; see
// common.cu), the host wall time from an idle stream, the launches it costs,
// and GB/s of the minimum traffic it must move, P parameters at 4 bytes:
//   norm 4P (ASAM + 4P for the weights' part of w), perturb 16P (read w, g;
//   write w, saved), restore + update 20P (read saved, g, momentum; write w,
//   momentum); as a fraction of the copy bandwidth measured first in this
//   process, and as the time that traffic takes at that bandwidth (the bound).
//
// Before anything is timed, every variant runs one step from the same inputs
// and its norm, perturbed weights, saved copy, updated weights and momentum
// are compared with the CPU reference (kernels::reference over the same arena,
// bench/sam_reference.h). A variant that does not match is reported as FAILED
// and not timed, and the program exits 1.
//
// Usage: bench_sam_kernels [--models resnet18,wrn16-8,wrn28-10] [--repeats 200]
//        [--warmup 20] [--no-flush] [--copy-mib 1024] [--validate-only] [--json FILE]
//        [--dump-shapes FILE] [--seed 1]
// --dump-shapes works without a GPU (the shapes come from the CPU models).
#include <algorithm>
#include <array>
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/common.h"
#include "bench/sam_reference.h"
#include "core/dispatch.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/runtime.h"
#include "nn/models/models.h"
#include "optim/sgd.h"

namespace basin::bench {

namespace {

// x[t] += x[t + half] down to x[0]: a fixed order, so every run gives the same bits.
template <int kCount, class T>
__device__ T block_tree_sum(T* x) {
  for (int half = kCount / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) x[threadIdx.x] += x[threadIdx.x + half];
    __syncthreads();
  }
  return x[0];
}

// Turns the sum of squares into the scale, in basin's layout (kernels/optim.h).
__device__ void write_scale(double* scale, double squares, double rho, double eps) {
  const double norm = sqrt(squares);
  scale[kernels::kSamScale] = rho / (norm + eps);
  scale[kernels::kSamNorm] = norm;
  scale[kernels::kSamFinite] = isfinite(norm) ? 1.0 : 0.0;
}

// One block: values[i] squared when they are norms, else taken as sums of
// squares, added in double in a fixed order.
constexpr int kFinishBlock = 256;
__global__ void __launch_bounds__(kFinishBlock)
    finish_norm_kernel(double* scale, const float* values, int count, bool values_are_norms, double rho, double eps) {
  __shared__ double sums[kFinishBlock];
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += kFinishBlock) {
    const double v = values[i];
    acc += values_are_norms ? v * v : v;
  }
  sums[threadIdx.x] = acc;
  __syncthreads();
  const double total = block_tree_sum<kFinishBlock>(sums);
  if (threadIdx.x == 0) write_scale(scale, total, rho, eps);
}

void launch_finish(const Tensor& scale, const Tensor& values, bool values_are_norms, const SamSettings& settings) {
  kernels::cuda::launch(finish_norm_kernel, 1, kFinishBlock, scale.data<double>(), values.data<float>(),
                        static_cast<int>(values.numel()), values_are_norms, settings.rho, settings.eps);
}

void check_vector_aligned(const Tensor& t, const std::string& name) {
  BASIN_CHECK(reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0, "bench: ", name,
              " is not 16-byte aligned; the baseline kernels load float4");
}

// ================================================================ v1: per tensor

constexpr int kV1Block = 256;
constexpr int kV1MaxBlocks = 512;  // partial slots per tensor

// ||T g|| of one tensor in one launch, accumulated in float as eager
// frameworks do for float32. Every block writes its partial sum; the block
// that takes the last ticket (an integer atomic: the order of arrival does not
// change the result) adds the partials in block order and resets the ticket
// for the next launch.
__global__ void __launch_bounds__(kV1Block)
    v1_norm_kernel(float* norm, float* partials, unsigned* ticket, const float* __restrict__ g,
                   const float* __restrict__ w, long long n, bool scaled, float eta) {
  __shared__ float sums[kV1Block];
  __shared__ bool last;
  const long long stride = static_cast<long long>(gridDim.x) * kV1Block;
  const long long first = static_cast<long long>(blockIdx.x) * kV1Block + threadIdx.x;
  const long long vectors = n / 4;
  const float4* g4 = reinterpret_cast<const float4*>(g);
  const float4* w4 = reinterpret_cast<const float4*>(w);
  float acc = 0.0f;
  for (long long j = first; j < vectors; j += stride) {
    const float4 gv = g4[j];
    const float4 wv = scaled ? w4[j] : make_float4(0.f, 0.f, 0.f, 0.f);
    acc += norm_term(wv.x, gv.x, scaled, eta);
    acc += norm_term(wv.y, gv.y, scaled, eta);
    acc += norm_term(wv.z, gv.z, scaled, eta);
    acc += norm_term(wv.w, gv.w, scaled, eta);
  }
  for (long long e = vectors * 4 + first; e < n; e += stride) acc += norm_term(scaled ? w[e] : 0.f, g[e], scaled, eta);
  sums[threadIdx.x] = acc;
  __syncthreads();
  const float block_sum = block_tree_sum<kV1Block>(sums);
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = block_sum;
    __threadfence();  // the partial is visible to every block before the ticket says it is there
    last = atomicAdd(ticket, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  float total = 0.0f;
  // __ldcg reads through L2, where the other blocks' partials are, not a stale L1 line.
  for (unsigned b = threadIdx.x; b < gridDim.x; b += kV1Block) total += __ldcg(&partials[b]);
  __syncthreads();
  sums[threadIdx.x] = total;
  __syncthreads();
  const float squares = block_tree_sum<kV1Block>(sums);
  if (threadIdx.x == 0) {
    *norm = sqrtf(squares);
    *ticket = 0;
  }
}

__global__ void v1_perturb_kernel(float* __restrict__ w, float* __restrict__ saved, const float* __restrict__ g,
                                  const double* scale, long long n, bool scaled, float eta) {
  const float s = static_cast<float>(scale[kernels::kSamScale]);
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  const long long first = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const long long vectors = n / 4;
  float4* w4 = reinterpret_cast<float4*>(w);
  float4* saved4 = reinterpret_cast<float4*>(saved);
  const float4* g4 = reinterpret_cast<const float4*>(g);
  for (long long j = first; j < vectors; j += stride) {
    float4 wv = w4[j];
    const float4 gv = g4[j];
    saved4[j] = wv;
    wv.x = perturbed_weight(wv.x, gv.x, s, scaled, eta);
    wv.y = perturbed_weight(wv.y, gv.y, s, scaled, eta);
    wv.z = perturbed_weight(wv.z, gv.z, s, scaled, eta);
    wv.w = perturbed_weight(wv.w, gv.w, s, scaled, eta);
    w4[j] = wv;
  }
  for (long long e = vectors * 4 + first; e < n; e += stride) {
    saved[e] = w[e];
    w[e] = perturbed_weight(w[e], g[e], s, scaled, eta);
  }
}

__global__ void v1_copy_kernel(float* __restrict__ dst, const float* __restrict__ src, long long n) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  const long long first = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const long long vectors = n / 4;
  for (long long j = first; j < vectors; j += stride) {
    reinterpret_cast<float4*>(dst)[j] = reinterpret_cast<const float4*>(src)[j];
  }
  for (long long e = vectors * 4 + first; e < n; e += stride) dst[e] = src[e];
}

__global__ void v1_sgd_kernel(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ buf, long long n,
                              SgdConstants c) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  const long long first = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const long long vectors = n / 4;
  float4* w4 = reinterpret_cast<float4*>(w);
  float4* b4 = reinterpret_cast<float4*>(buf);
  const float4* g4 = reinterpret_cast<const float4*>(g);
  for (long long j = first; j < vectors; j += stride) {
    float4 wv = w4[j];
    float4 bv = b4[j];
    const float4 gv = g4[j];
    wv.x = sgd_momentum_step(wv.x, gv.x, bv.x, c);
    wv.y = sgd_momentum_step(wv.y, gv.y, bv.y, c);
    wv.z = sgd_momentum_step(wv.z, gv.z, bv.z, c);
    wv.w = sgd_momentum_step(wv.w, gv.w, bv.w, c);
    w4[j] = wv;
    b4[j] = bv;
  }
  for (long long e = vectors * 4 + first; e < n; e += stride) w[e] = sgd_momentum_step(w[e], g[e], buf[e], c);
}

// Grid of a v1 elementwise launch: one thread per float4, capped as basin caps its own.
int v1_grid(long long n) { return kernels::cuda::grid_for(std::max(1LL, n / 4), kV1Block); }

// Per-tensor device buffers, allocated separately as an eager framework's are.
class ScatteredVariant : public SamVariant {
 public:
  ScatteredVariant(const ParamSet& set, const SamSettings& settings) : set_(set), settings_(settings) {
    const TensorOptions f32 = TensorOptions(kFloat32).device(Device::cuda());
    for (const Shape& shape : set.shapes) {
      w_.push_back(empty(shape, f32));
      g_.push_back(empty(shape, f32));
      m_.push_back(empty(shape, f32));
      saved_.push_back(empty(shape, f32));
    }
    for (std::size_t i = 0; i < set.size(); ++i) {
      for (const Tensor* t : {&w_[i], &g_[i], &m_[i], &saved_[i]}) check_vector_aligned(*t, set.names[i]);
    }
    scale_ = zeros({kernels::kSamScaleSlots}, TensorOptions(kFloat64).device(Device::cuda()));
  }

  void load(const StepInputs& in) override {
    for (std::size_t i = 0; i < set_.size(); ++i) {
      w_[i].copy_(in.w[i]);
      g_[i].copy_(in.g[i]);
      m_[i].copy_(in.m[i]);
      saved_[i].fill_(std::numeric_limits<double>::quiet_NaN());
    }
  }
  void load_grads(const std::vector<Tensor>& grads) override {
    for (std::size_t i = 0; i < set_.size(); ++i) g_[i].copy_(grads[i]);
  }
  double read_norm() override { return scale_.to_vector<double>()[kernels::kSamNorm]; }
  std::vector<Tensor> read_weights() override { return to_host(w_); }
  std::vector<Tensor> read_saved() override { return to_host(saved_); }
  std::vector<Tensor> read_momentum() override { return to_host(m_); }

 protected:
  static std::vector<Tensor> to_host(const std::vector<Tensor>& ts) {
    std::vector<Tensor> out;
    for (const Tensor& t : ts) out.push_back(t.cpu());
    return out;
  }
  bool scaled(std::size_t i) const { return settings_.asam && set_.adaptive[i]; }

  const ParamSet& set_;
  SamSettings settings_;
  std::vector<Tensor> w_, g_, m_, saved_;
  Tensor scale_;  // float64 [kSamScaleSlots], basin's layout
};

class V1PerTensor : public ScatteredVariant {
 public:
  V1PerTensor(const ParamSet& set, const SamSettings& settings) : ScatteredVariant(set, settings) {
    const Device cuda = Device::cuda();
    const auto count = static_cast<std::int64_t>(set.size());
    norms_ = zeros({count}, TensorOptions(kFloat32).device(cuda));
    partials_ = zeros({count * kV1MaxBlocks}, TensorOptions(kFloat32).device(cuda));
    tickets_ = zeros({count}, TensorOptions(kInt32).device(cuda));
  }
  std::string name() const override { return "v1 per-tensor"; }

  void norm() override {
    const float eta = static_cast<float>(settings_.eta);
    for (std::size_t i = 0; i < set_.size(); ++i) {
      const long long n = set_.numels[i];
      const int grid = std::min(v1_grid(n), kV1MaxBlocks);
      kernels::cuda::launch(v1_norm_kernel, grid, kV1Block, norms_.data<float>() + i,
                            partials_.data<float>() + i * kV1MaxBlocks,
                            reinterpret_cast<unsigned*>(tickets_.data<std::int32_t>()) + i, g_[i].data<float>(),
                            w_[i].data<float>(), n, scaled(i), eta);
    }
    launch_finish(scale_, norms_, /*values_are_norms=*/true, settings_);
  }

  void perturb() override {
    const float eta = static_cast<float>(settings_.eta);
    for (std::size_t i = 0; i < set_.size(); ++i) {
      const long long n = set_.numels[i];
      kernels::cuda::launch(v1_perturb_kernel, v1_grid(n), kV1Block, w_[i].data<float>(), saved_[i].data<float>(),
                            g_[i].data<float>(), scale_.data<double>(), n, scaled(i), eta);
    }
  }

  void restore_update() override {
    const SgdConstants c = sgd_constants(settings_);
    for (std::size_t i = 0; i < set_.size(); ++i) {
      const long long n = set_.numels[i];
      kernels::cuda::launch(v1_copy_kernel, v1_grid(n), kV1Block, w_[i].data<float>(), saved_[i].data<float>(), n);
    }
    for (std::size_t i = 0; i < set_.size(); ++i) {
      const long long n = set_.numels[i];
      kernels::cuda::launch(v1_sgd_kernel, v1_grid(n), kV1Block, w_[i].data<float>(), g_[i].data<float>(),
                            m_[i].data<float>(), n, c);
    }
  }

 private:
  Tensor norms_;     // float32 [T]: per-tensor norms
  Tensor partials_;  // float32 [T * kV1MaxBlocks]: per-block partial sums
  Tensor tickets_;   // int32 [T]: finished-block counters, back to 0 after each launch
};

// ================================================================ v2: multi-tensor apply

constexpr int kChunk = 65536;             // elements per block
constexpr int kMaxChunksPerLaunch = 320;  // blocks per launch
constexpr int kV2Block = 512;

// Tensors per table: fewer for deeper lists, so the table stays under the
// 4 KB of kernel parameters every CUDA version accepts.
template <int kDepth>
constexpr int max_tensors() {
  return kDepth == 1 ? 110 : kDepth == 2 ? 64 : kDepth == 3 ? 48 : 36;
}

// The metadata each launch carries: (pointers, size) per tensor, and which
// tensor and chunk each block works on.
template <int kDepth>
struct ChunkTable {
  float* ptrs[kDepth][max_tensors<kDepth>()];
  int numel[max_tensors<kDepth>()];
  unsigned char tensor_of[kMaxChunksPerLaunch];
  int chunk_of[kMaxChunksPerLaunch];
  int first_chunk;  // chunks handled by earlier launches of the same pass
};
static_assert(sizeof(ChunkTable<4>) <= 4096 && sizeof(ChunkTable<3>) <= 4096 && sizeof(ChunkTable<1>) <= 4096,
              "a chunk table must fit in the 4 KB of kernel parameters");
static_assert(max_tensors<1>() <= 256, "tensor_of is a byte");

// Where this block's chunk lives: the pointer offset and its length.
template <int kDepth>
__device__ int chunk_length(const ChunkTable<kDepth>& table, int& tensor, long long& offset) {
  tensor = table.tensor_of[blockIdx.x];
  offset = static_cast<long long>(table.chunk_of[blockIdx.x]) * kChunk;
  return static_cast<int>(min(static_cast<long long>(kChunk), table.numel[tensor] - offset));
}

__global__ void __launch_bounds__(kV2Block) v2_norm_kernel(ChunkTable<1> table, float* partials) {
  __shared__ float sums[kV2Block];
  int t;
  long long offset;
  const int n = chunk_length(table, t, offset);
  const float* g = table.ptrs[0][t] + offset;  // chunks start at multiples of 64K elements: 16-byte aligned
  const int vectors = n / 4;
  float acc = 0.0f;
  for (int j = threadIdx.x; j < vectors; j += kV2Block) {
    const float4 v = reinterpret_cast<const float4*>(g)[j];
    acc += norm_term(0.f, v.x, false, 0.f);
    acc += norm_term(0.f, v.y, false, 0.f);
    acc += norm_term(0.f, v.z, false, 0.f);
    acc += norm_term(0.f, v.w, false, 0.f);
  }
  for (int e = vectors * 4 + threadIdx.x; e < n; e += kV2Block) acc += norm_term(0.f, g[e], false, 0.f);
  sums[threadIdx.x] = acc;
  __syncthreads();
  const float total = block_tree_sum<kV2Block>(sums);
  if (threadIdx.x == 0) partials[table.first_chunk + blockIdx.x] = total;
}

// ptrs: w, g, saved
__global__ void __launch_bounds__(kV2Block) v2_perturb_kernel(ChunkTable<3> table, const double* scale) {
  const float s = static_cast<float>(scale[kernels::kSamScale]);
  int t;
  long long offset;
  const int n = chunk_length(table, t, offset);
  float* w = table.ptrs[0][t] + offset;
  const float* g = table.ptrs[1][t] + offset;
  float* saved = table.ptrs[2][t] + offset;
  const int vectors = n / 4;
  for (int j = threadIdx.x; j < vectors; j += kV2Block) {
    float4 wv = reinterpret_cast<float4*>(w)[j];
    const float4 gv = reinterpret_cast<const float4*>(g)[j];
    reinterpret_cast<float4*>(saved)[j] = wv;
    wv.x = perturbed_weight(wv.x, gv.x, s, false, 0.f);
    wv.y = perturbed_weight(wv.y, gv.y, s, false, 0.f);
    wv.z = perturbed_weight(wv.z, gv.z, s, false, 0.f);
    wv.w = perturbed_weight(wv.w, gv.w, s, false, 0.f);
    reinterpret_cast<float4*>(w)[j] = wv;
  }
  for (int e = vectors * 4 + threadIdx.x; e < n; e += kV2Block) {
    saved[e] = w[e];
    w[e] = perturbed_weight(w[e], g[e], s, false, 0.f);
  }
}

// ptrs: saved, g, momentum, w. The restore is fused: w is computed from saved.
__global__ void __launch_bounds__(kV2Block) v2_update_kernel(ChunkTable<4> table, SgdConstants c) {
  int t;
  long long offset;
  const int n = chunk_length(table, t, offset);
  const float* saved = table.ptrs[0][t] + offset;
  const float* g = table.ptrs[1][t] + offset;
  float* buf = table.ptrs[2][t] + offset;
  float* w = table.ptrs[3][t] + offset;
  const int vectors = n / 4;
  for (int j = threadIdx.x; j < vectors; j += kV2Block) {
    float4 wv = reinterpret_cast<const float4*>(saved)[j];
    float4 bv = reinterpret_cast<float4*>(buf)[j];
    const float4 gv = reinterpret_cast<const float4*>(g)[j];
    wv.x = sgd_momentum_step(wv.x, gv.x, bv.x, c);
    wv.y = sgd_momentum_step(wv.y, gv.y, bv.y, c);
    wv.z = sgd_momentum_step(wv.z, gv.z, bv.z, c);
    wv.w = sgd_momentum_step(wv.w, gv.w, bv.w, c);
    reinterpret_cast<float4*>(w)[j] = wv;
    reinterpret_cast<float4*>(buf)[j] = bv;
  }
  for (int e = vectors * 4 + threadIdx.x; e < n; e += kV2Block) w[e] = sgd_momentum_step(saved[e], g[e], buf[e], c);
}

// Fills chunk tables from the tensor list and calls launch(table, blocks) each
// time one is full (of chunks, or of tensors once the last one is complete) and
// at the end. A tensor cut by a full table continues in slot 0 of the next.
template <int kDepth, class Launch>
void for_each_table(const std::vector<std::array<float*, kDepth>>& tensors, const std::vector<std::int64_t>& numels,
                    Launch&& launch) {
  constexpr int kMaxTensors = max_tensors<kDepth>();
  ChunkTable<kDepth> table{};
  int slots = 0, chunks = 0, done = 0;
  const auto flush = [&] {
    table.first_chunk = done;
    launch(table, chunks);
    done += chunks;
    chunks = 0;
  };
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    const std::int64_t n = numels[t];
    if (n == 0) continue;
    for (int d = 0; d < kDepth; ++d) table.ptrs[d][slots] = tensors[t][d];
    table.numel[slots] = static_cast<int>(n);
    ++slots;
    const std::int64_t count = (n + kChunk - 1) / kChunk;
    for (std::int64_t c = 0; c < count; ++c) {
      table.tensor_of[chunks] = static_cast<unsigned char>(slots - 1);
      table.chunk_of[chunks] = static_cast<int>(c);
      ++chunks;
      const bool tensor_done = c == count - 1;
      if (chunks == kMaxChunksPerLaunch || (slots == kMaxTensors && tensor_done)) {
        flush();
        if (tensor_done) {
          slots = 0;
        } else {
          for (int d = 0; d < kDepth; ++d) table.ptrs[d][0] = table.ptrs[d][slots - 1];
          table.numel[0] = table.numel[slots - 1];
          slots = 1;
        }
      }
    }
  }
  if (chunks > 0) flush();
}

class V2MultiTensor : public ScatteredVariant {
 public:
  V2MultiTensor(const ParamSet& set, const SamSettings& settings) : ScatteredVariant(set, settings) {
    BASIN_CHECK(!settings.asam, "v2 multi-tensor: no ASAM variant");
    std::int64_t chunks = 0;
    for (const std::int64_t n : set.numels) {
      BASIN_CHECK(n < (std::int64_t(1) << 31), "v2 multi-tensor: ", n, " elements overflow a chunk table's int");
      chunks += (n + kChunk - 1) / kChunk;
    }
    partials_ = zeros({chunks}, TensorOptions(kFloat32).device(Device::cuda()));
  }
  std::string name() const override { return "v2 multi-tensor"; }

  void norm() override {
    std::vector<std::array<float*, 1>> lists;
    for (std::size_t i = 0; i < set_.size(); ++i) lists.push_back({g_[i].data<float>()});
    float* partials = partials_.data<float>();
    for_each_table<1>(lists, set_.numels, [&](const ChunkTable<1>& table, int blocks) {
      kernels::cuda::launch(v2_norm_kernel, blocks, kV2Block, table, partials);
    });
    launch_finish(scale_, partials_, /*values_are_norms=*/false, settings_);
  }

  void perturb() override {
    std::vector<std::array<float*, 3>> lists;
    for (std::size_t i = 0; i < set_.size(); ++i) {
      lists.push_back({w_[i].data<float>(), g_[i].data<float>(), saved_[i].data<float>()});
    }
    const double* scale = scale_.data<double>();
    for_each_table<3>(lists, set_.numels, [&](const ChunkTable<3>& table, int blocks) {
      kernels::cuda::launch(v2_perturb_kernel, blocks, kV2Block, table, scale);
    });
  }

  void restore_update() override {
    std::vector<std::array<float*, 4>> lists;
    for (std::size_t i = 0; i < set_.size(); ++i) {
      lists.push_back({saved_[i].data<float>(), g_[i].data<float>(), m_[i].data<float>(), w_[i].data<float>()});
    }
    const SgdConstants c = sgd_constants(settings_);
    for_each_table<4>(lists, set_.numels, [&](const ChunkTable<4>& table, int blocks) {
      kernels::cuda::launch(v2_update_kernel, blocks, kV2Block, table, c);
    });
  }

 private:
  Tensor partials_;  // float32 [total chunks]: one sum of squares per chunk
};

// ================================================================ v3: basin's fused kernels

class V3FusedArena : public SamVariant {
 public:
  V3FusedArena(const ParamSet& set, const SamSettings& settings) : set_(set), settings_(settings) {
    // The real model and the real optimizer's packing: the arena is laid out
    // as in training ("weight" tensors first, each on a 256-byte boundary).
    model_ = nn::create_model(set.model);
    model_->to(Device::cuda());
    sgd_ = std::make_unique<optim::SGD>(
        model_->named_parameters(),
        optim::SGDOptions(settings.lr).momentum(settings.momentum).weight_decay(settings.weight_decay));
    const optim::ParameterArena& arena = sgd_->arena();
    BASIN_CHECK(arena.size() == set.size(), "v3: the arena holds ", arena.size(), " tensors, the set ", set.size());
    for (std::size_t i = 0; i < set.size(); ++i) {
      BASIN_CHECK(arena.tensors()[i].shape() == set.shapes[i], "v3: arena tensor ", i, " is ",
                  shape_str(arena.tensors()[i].shape()), " but ", set.names[i], " is ", shape_str(set.shapes[i]));
    }
    momentum_ = arena.make_buffer();
    saved_ = arena.make_buffer();
    const TensorOptions f64 = TensorOptions(kFloat64).device(Device::cuda());
    scale_ = zeros({kernels::kSamScaleSlots}, f64);
    partials_ = zeros({kernels::kNormPartials}, f64);
    args_ = settings.sam_args(arena.adaptive_end());
  }
  std::string name() const override { return "v3 fused arena"; }

  void load(const StepInputs& in) override {
    const optim::ParameterArena& arena = sgd_->arena();
    for (std::size_t i = 0; i < set_.size(); ++i) {
      arena.view(arena.params(), i).copy_(in.w[i]);
      arena.view(arena.grads(), i).copy_(in.g[i]);
      arena.view(momentum_, i).copy_(in.m[i]);
      arena.view(saved_, i).fill_(std::numeric_limits<double>::quiet_NaN());
    }
  }
  void load_grads(const std::vector<Tensor>& grads) override {
    const optim::ParameterArena& arena = sgd_->arena();
    for (std::size_t i = 0; i < set_.size(); ++i) arena.view(arena.grads(), i).copy_(grads[i]);
  }

  void norm() override {
    const optim::ParameterArena& arena = sgd_->arena();
    kernels::cuda::sam_norm(arg(scale_), arg(partials_), arg(arena.params()), arg(arena.grads()), args_);
  }
  void perturb() override {
    const optim::ParameterArena& arena = sgd_->arena();
    kernels::cuda::sam_perturb(arg(arena.params()), arg(saved_), arg(arena.grads()), arg(scale_), args_);
  }
  void restore_update() override {
    const optim::ParameterArena& arena = sgd_->arena();
    kernels::cuda::sgd_update(arg(arena.params()), arg(saved_), arg(arena.grads()), arg(momentum_),
                              settings_.sgd_args());
  }

  double read_norm() override { return scale_.to_vector<double>()[kernels::kSamNorm]; }
  std::vector<Tensor> read_weights() override { return views(sgd_->arena().params()); }
  std::vector<Tensor> read_saved() override { return views(saved_); }
  std::vector<Tensor> read_momentum() override { return views(momentum_); }

 private:
  std::vector<Tensor> views(const Tensor& buffer) const {
    std::vector<Tensor> out;
    for (std::size_t i = 0; i < set_.size(); ++i) out.push_back(sgd_->arena().view(buffer, i).cpu());
    return out;
  }

  const ParamSet& set_;
  SamSettings settings_;
  nn::ModulePtr model_;
  std::unique_ptr<optim::SGD> sgd_;
  Tensor momentum_, saved_, scale_, partials_;
  kernels::SamArgs args_;
};

// ================================================================ the benchmark

struct Options {
  std::vector<std::string> models = {"resnet18", "wrn16-8", "wrn28-10"};
  TimingOptions timing;
  bool validate_only = false;
  std::string json;
  std::string dump_shapes;
  std::int64_t copy_mib = 1024;
  std::uint64_t seed = 1;
};

constexpr double kRelativeTolerance = 1e-5;

struct VariantSpec {
  std::string label;  // "v1 per-tensor"
  std::string key;    // "v1-per-tensor"
  bool asam;
};

const std::vector<VariantSpec>& variant_specs() {
  static const std::vector<VariantSpec> specs = {
      {"v1 per-tensor", "v1-per-tensor", false}, {"v2 multi-tensor", "v2-multi-tensor", false},
      {"v3 fused arena", "v3-fused", false},     {"v1 per-tensor ASAM", "v1-per-tensor", true},
      {"v3 fused arena ASAM", "v3-fused", true},
  };
  return specs;
}

std::unique_ptr<SamVariant> make_variant(const VariantSpec& spec, const ParamSet& set) {
  const SamSettings settings = sam_settings(spec.asam);
  if (spec.key == "v1-per-tensor") return std::make_unique<V1PerTensor>(set, settings);
  if (spec.key == "v2-multi-tensor") return std::make_unique<V2MultiTensor>(set, settings);
  return std::make_unique<V3FusedArena>(set, settings);
}

struct Phase {
  const char* label;
  const char* key;
};
constexpr Phase kPhases[] = {
    {"norm", "norm"}, {"perturb", "perturb"}, {"restore+update", "restore_update"}, {"whole step", "step"}};

// The minimum bytes each phase must move (see the header comment).
double phase_bytes(const ParamSet& set, bool asam, int phase) {
  const double p = 4.0 * static_cast<double>(set.params);
  const double norm = p + (asam ? 4.0 * static_cast<double>(set.adaptive_params) : 0.0);
  switch (phase) {
    case 0:
      return norm;
    case 1:
      return 4 * p;
    case 2:
      return 5 * p;
    default:
      return norm + 9 * p;
  }
}

void run_phase(SamVariant& v, int phase) {
  if (phase == 0 || phase == 3) v.norm();
  if (phase == 1 || phase == 3) v.perturb();
  if (phase == 2 || phase == 3) v.restore_update();
}

struct ModelSummary {
  std::string model;
  double step_us[3] = {0, 0, 0};  // v1, v2, v3 (SAM); 0 when failed
  double v3_copy_fraction = 0.0;
};

int run(const Options& options) {
  if (options.dump_shapes.empty() && !cuda_device_present()) {
    std::cout << kNoDeviceMessage << "\n";
    return 0;
  }
  std::vector<ParamSet> sets;
  for (const std::string& model : options.models) sets.push_back(param_set(model));
  if (!options.dump_shapes.empty()) {
    dump_shapes(sets, options.dump_shapes);
    std::cout << "wrote the parameter shapes of " << sets.size() << " models to " << options.dump_shapes << "\n";
  }
  if (!cuda_device_present()) {
    std::cout << kNoDeviceMessage << "\n";
    return 0;
  }
  // The emulated device checks every variant and times none.
  const bool validate_only = options.validate_only || cuda_device_emulated();
  JsonLines json(options.json);
  std::cout << "bench_sam_kernels: the optimizer side of a SAM step, float32\n"
            << "device: " << cuda_environment() << "\n";
  if (cuda_device_emulated()) std::cout << kEmulatedMessage << "\n";
  json.write(cuda_environment_record().set("bench", "environment").set("side", "basin"));

  CopyMeasurement copy;
  if (!validate_only) {
    copy = copy_bandwidth(options.copy_mib << 20, options.timing);
    std::cout << "copy bandwidth: " << fixed(copy.gbps(), 0) << " GB/s (" << copy.method << ", " << (copy.bytes >> 20)
              << " MiB), the reference for every % below\n";
    json.write(Record()
                   .set("bench", "copy_bandwidth")
                   .set("side", "basin")
                   .set("method", copy.method)
                   .set("bytes", copy.bytes)
                   .set("gbps", copy.gbps()));
  }
  std::cout << "timing: median of " << options.timing.repeats << " repeats after " << options.timing.warmup
            << " warm-up runs, " << (options.timing.flush_l2 ? "L2 flushed before each" : "L2 not flushed")
            << "; GPU us = device time with the launches queued ahead, wall us = host enqueue + device from an "
               "idle stream\n\n";

  bool all_ok = true;
  std::vector<ModelSummary> summaries;
  for (const ParamSet& set : sets) {
    std::cout << set.model << ": " << set.size() << " tensors, " << grouped(set.params) << " parameters ("
              << fixed(4.0 * static_cast<double>(set.params) / 1e6, 1) << " MB per float32 buffer)\n";
    const StepInputs inputs = make_inputs(set, Device::cuda(), options.seed);
    const StepInputs host_inputs = to_cpu(inputs);
    const StepResults reference[2] = {reference_step(set, host_inputs, sam_settings(false)),
                                      reference_step(set, host_inputs, sam_settings(true))};

    Table table(
        {"variant", "phase", "launches", "GPU us", "p10-p90 us", "wall us", "min MB", "GB/s", "% copy", "bound us"});
    ModelSummary summary;
    summary.model = set.model;
    for (const VariantSpec& spec : variant_specs()) {
      std::unique_ptr<SamVariant> variant = make_variant(spec, set);
      const Verdict verdict = compare_step(set, run_step(*variant, inputs), reference[spec.asam], kRelativeTolerance);
      std::cout << "  check " << spec.label << ": " << verdict.summary() << "\n";
      const std::string method = spec.asam ? "asam" : "sam";
      if (!verdict.ok()) {
        all_ok = false;
        table.add_note(spec.label + ": FAILED the check against the CPU reference, not timed");
        json.write(Record()
                       .set("bench", "sam_optimizer")
                       .set("side", "basin")
                       .set("model", set.model)
                       .set("variant", spec.key)
                       .set("method", method)
                       .set("status", "failed")
                       .set("detail", verdict.summary()));
        continue;
      }
      if (validate_only) continue;
      for (int phase = 0; phase < 4; ++phase) {
        const long long before = cuda_kernel_launches();
        run_phase(*variant, phase);
        kernels::cuda::synchronize();
        const long long launches = cuda_kernel_launches() - before;
        const Stats gpu = time_cuda([&] { run_phase(*variant, phase); }, options.timing);
        const Stats wall = time_wall([&] { run_phase(*variant, phase); }, options.timing);
        const double bytes = phase_bytes(set, spec.asam, phase);
        const double gbps = bytes / (gpu.median_ms * 1e-3) / 1e9;
        const double bound_us = bytes / (copy.gbps() * 1e9) * 1e6;
        table.add_row({phase == 0 ? spec.label : "", kPhases[phase].label, std::to_string(launches),
                       fixed(gpu.median_us(), 1), fixed(gpu.p10_ms * 1e3, 1) + "-" + fixed(gpu.p90_ms * 1e3, 1),
                       fixed(wall.median_us(), 1), fixed(bytes / 1e6, 1), fixed(gbps, 0),
                       fixed(100.0 * gbps / copy.gbps(), 1), fixed(bound_us, 1)});
        json.write(Record()
                       .set("bench", "sam_optimizer")
                       .set("side", "basin")
                       .set("model", set.model)
                       .set("variant", spec.key)
                       .set("method", method)
                       .set("phase", kPhases[phase].key)
                       .set("status", "ok")
                       .set("params", set.params)
                       .set("tensors", static_cast<std::int64_t>(set.size()))
                       .set("launches", static_cast<std::int64_t>(launches))
                       .set("median_us", gpu.median_us())
                       .set("p10_us", gpu.p10_ms * 1e3)
                       .set("p90_us", gpu.p90_ms * 1e3)
                       .set("wall_us", wall.median_us())
                       .set("repeats", gpu.repeats)
                       .set("bytes", bytes)
                       .set("gbps", gbps)
                       .set("copy_gbps", copy.gbps())
                       .set("copy_fraction", gbps / copy.gbps())
                       .set("bound_us", bound_us));
        if (phase == 3 && !spec.asam) {
          const int index = spec.key == "v1-per-tensor" ? 0 : spec.key == "v2-multi-tensor" ? 1 : 2;
          summary.step_us[index] = gpu.median_us();
          if (index == 2) summary.v3_copy_fraction = gbps / copy.gbps();
        }
      }
    }
    if (!validate_only) {
      std::string conclusion = set.model + " SAM step, optimizer side: ";
      if (summary.step_us[2] > 0) {
        conclusion += "v3 fused arena " + fixed(summary.step_us[2], 1) + " us (" +
                      fixed(100.0 * summary.v3_copy_fraction, 0) + "% of copy bandwidth)";
        if (summary.step_us[0] > 0)
          conclusion += ", v1 per-tensor " + fixed(summary.step_us[0] / summary.step_us[2], 1) + "x that";
        if (summary.step_us[1] > 0)
          conclusion += ", v2 multi-tensor " + fixed(summary.step_us[1] / summary.step_us[2], 1) + "x that";
      } else {
        conclusion += "v3 fused arena FAILED its check";
      }
      table.print(std::cout, conclusion);
      std::cout << "\n";
    }
    summaries.push_back(summary);
  }

  if (!validate_only && !summaries.empty()) {
    Table overall({"model", "v1 per-tensor us", "v2 multi-tensor us", "v3 fused us", "v3 % copy", "v1 / v3"});
    for (const ModelSummary& s : summaries) {
      const auto cell = [](double us) { return us > 0 ? fixed(us, 1) : std::string("FAILED"); };
      overall.add_row({s.model, cell(s.step_us[0]), cell(s.step_us[1]), cell(s.step_us[2]),
                       fixed(100.0 * s.v3_copy_fraction, 0),
                       s.step_us[0] > 0 && s.step_us[2] > 0 ? fixed(s.step_us[0] / s.step_us[2], 1) + "x" : "-"});
    }
    const ModelSummary& last = summaries.back();
    std::string conclusion = "SAM optimizer side of a " + last.model + " step: ";
    conclusion += last.step_us[2] > 0 ? "v3 fused arena " + fixed(last.step_us[2], 1) + " us at " +
                                            fixed(100.0 * last.v3_copy_fraction, 0) + "% of copy bandwidth"
                                      : "v3 FAILED its check";
    if (last.step_us[0] > 0 && last.step_us[2] > 0) {
      conclusion += ", " + fixed(last.step_us[0] / last.step_us[2], 1) + "x faster than v1 per-tensor";
    }
    std::cout << "summary (whole optimizer side of a SAM step, GPU us)\n";
    overall.print(std::cout, conclusion);
  }
  if (!all_ok) {
    std::cout << "some variants FAILED their check against the CPU reference (see above)\n";
    return 1;
  }
  if (validate_only) std::cout << "every variant matches the CPU reference\n";
  return 0;
}

}  // namespace

}  // namespace basin::bench

int main(int argc, char** argv) {
  basin::bench::Options options;
  std::string models = "resnet18,wrn16-8,wrn28-10";
  bool no_flush = false;
  CLI::App app{"bench_sam_kernels: SAM optimizer kernels, per-tensor vs multi-tensor vs basin's fused arena"};
  app.add_option("--models", models, "comma-separated model names (create_model)")->capture_default_str();
  app.add_option("--repeats", options.timing.repeats, "timed repetitions per figure (>= 100)")
      ->capture_default_str()
      ->check(CLI::Range(100, 1000000));
  app.add_option("--warmup", options.timing.warmup, "untimed runs before timing")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_flag("--no-flush", no_flush, "do not evict the L2 cache before each repetition");
  app.add_flag("--validate-only", options.validate_only, "check every variant against the CPU reference, time nothing");
  app.add_option("--copy-mib", options.copy_mib, "size of the copy that sets the bandwidth reference, MiB")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app.add_option("--json", options.json, "append one JSON line per result to this file");
  app.add_option("--dump-shapes", options.dump_shapes,
                 "write the models' parameter names and shapes as JSON (for bench/pytorch/sam_optimizer.py)");
  app.add_option("--seed", options.seed, "seed of the random inputs")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  options.timing.flush_l2 = !no_flush;
  try {
    options.models = basin::bench::split_list(models);
    for (const std::string& m : options.models) basin::nn::check_model_name(m);
    BASIN_CHECK(!options.models.empty(), "--models: no model named");
    return basin::bench::run(options);
  } catch (const std::exception& e) {
    std::cerr << "bench_sam_kernels: " << e.what() << "\n";
    return 1;
  }
}
