// CUDA convolution through cuDNN's convolution API (see kernels/conv.h for the math).
//
// The three directions map onto cuDNN's three calls, all on the same four
// descriptors (x [n, c, h, w], w [k, c, r, s], y [n, k, p, q], and the
// convolution: padding, stride, cross-correlation, compute in the data type):
//
//   forward          y  = conv(x, w)           cudnnConvolutionForward
//   backward_input   dx = conv^T(dy, w)        cudnnConvolutionBackwardData
//   backward_weight  dw = corr(x, dy)          cudnnConvolutionBackwardFilter
//
// followed, in the forward, by a small kernel that adds the bias.
//
// Choosing the algorithm. cuDNN has several per direction (implicit GEMM,
// FFT, Winograd, ...) and the fastest depends on the shapes and the GPU, so
// the first call of each (shapes, dtype, TF32 setting, direction) times them
// with cudnnFind*AlgorithmEx on the real buffers and caches the choice; later
// calls reuse it and cost only the cuDNN call. The choice, in Find's order
// (fastest first), is the first algorithm that
//  - succeeded,
//  - fits in kWorkspaceLimit bytes of workspace (FFT variants can ask for
//    gigabytes; a convolution must never be what runs a training job out of memory),
//  - keeps float32 exact when TF32 is off, and
//  - is deterministic (no atomics: the same inputs give the same bits, which the
//    SAM step and its tests rely on); only when no deterministic algorithm
//    qualifies is the fastest non-deterministic one taken.
// Workspace comes from basin's stream-ordered pool, never from cudaMalloc: a
// DeviceBuffer (kernels/cuda/runtime.h) allocated before the call and freed
// right after it, reused by the pool.
//
// Math type. On Ampere and later, CUDNN_DEFAULT_MATH lets cuDNN run float32
// convolutions on TF32 tensor cores (10-bit mantissa). Exact float32 therefore
// takes CUDNN_FMA_MATH, which admits only FMA kernels; with TF32 allowed the
// math type that Find reports for the chosen algorithm is used. float64 has no
// TF32 question and keeps whatever Find reports.
//
// In a build without cuDNN (BASIN_WITH_CUDNN undefined) every entry point
// throws: there is no silent fallback to some slower CUDA path.
#include "kernels/conv.h"
#include "kernels/cuda/check.cuh"
#include "kernels/dtype_dispatch.h"

#if BASIN_WITH_CUDNN

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cuda/cudnn.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/runtime.h"

namespace basin::kernels::cuda {

namespace {

constexpr std::size_t kWorkspaceLimit = std::size_t{256} << 20;  // 256 MiB
constexpr int kBiasBlock = 256;

// out[n, k, p, q] += bias[k]; out is contiguous [n, k, plane = p*q].
template <class T>
__global__ void add_bias_kernel(T* out, const T* bias, long long total, long long plane, long long channels) {
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < total; i += step) {
    out[i] += bias[(i / plane) % channels];
  }
}

cudnnDataType_t data_type(DType dtype) {
  switch (dtype) {
    case DType::Float32: return CUDNN_DATA_FLOAT;
    case DType::Float64: return CUDNN_DATA_DOUBLE;
    default: BASIN_FAIL("conv2d: dtype ", dtype_name(dtype), " is not supported (float32 or float64)");
  }
}

// Whether float32 results must stay exact (no TF32).
bool exact_float32(DType dtype, bool allow_tf32) { return dtype == DType::Float32 && !allow_tf32; }

// The math type set on the descriptor before Find.
cudnnMathType_t requested_math(DType dtype, bool allow_tf32) {
  if (exact_float32(dtype, allow_tf32)) return CUDNN_FMA_MATH;
  return dtype == DType::Float32 ? CUDNN_TENSOR_OP_MATH : CUDNN_DEFAULT_MATH;
}

// The largest power of two (up to 256) dividing the address: algorithms with
// vectorized loads may need more than element alignment, so a choice made for
// one alignment is not reused for another (a batch slice can start anywhere).
int alignment_of(const void* ptr) {
  const auto address = reinterpret_cast<std::uintptr_t>(ptr);
  int align = 1;
  while (align < 256 && address % (2 * static_cast<std::uintptr_t>(align)) == 0) align *= 2;
  return align;
}

// The legacy convolution API takes int sizes and at most INT_MAX elements per tensor.
void check_fits_cudnn(const Conv2dShape& g) {
  for (std::int64_t v : {g.n, g.c, g.h, g.w, g.k, g.r, g.s, g.p, g.q, g.stride_h, g.stride_w, g.pad_h, g.pad_w}) {
    BASIN_CHECK(v <= INT_MAX, "conv2d: size ", v, " is too large for cuDNN (int)");
  }
  const std::int64_t elements[] = {g.n * g.c * g.h * g.w, g.k * g.c * g.r * g.s, g.n * g.k * g.p * g.q};
  const char* names[] = {"input", "weight", "output"};
  for (int i = 0; i < 3; ++i) {
    BASIN_CHECK(elements[i] <= INT_MAX, "conv2d: the ", names[i], " has ", elements[i],
                " elements, more than cuDNN's convolution takes (2^31 - 1); split the batch");
  }
}

// What cuDNN's choice depends on.
struct Key {
  std::array<std::int64_t, 13> sizes{};  // n, c, h, w, k, r, s, p, q, stride_h, stride_w, pad_h, pad_w
  DType dtype = DType::Float32;
  bool allow_tf32 = false;
  int alignment = 1;  // the least alignment of the three buffers

  bool operator<(const Key& other) const {
    return std::tie(sizes, dtype, allow_tf32, alignment) <
           std::tie(other.sizes, other.dtype, other.allow_tf32, other.alignment);
  }
};

// The algorithm chosen for one direction.
struct Choice {
  int algo = 0;  // a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  std::size_t workspace = 0;  // bytes
};

// Descriptors for one key and the choices made for it so far (slot = direction).
struct Plan {
  cudnnTensorDescriptor_t x = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnTensorDescriptor_t y = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  std::optional<Choice> choice[3];
};

// The data of one call. In each direction one of the three is the output
// (y forward, x backward_input, w backward_weight); the others are read.
struct Buffers {
  void* x;
  void* w;
  void* y;
};

std::unique_ptr<Plan> make_plan(const Conv2dShape& g, DType dtype, bool allow_tf32) {
  const cudnnDataType_t type = data_type(dtype);
  auto plan = std::make_unique<Plan>();
  BASIN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->x));
  BASIN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan->w));
  BASIN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->y));
  BASIN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&plan->conv));
  const auto i = [](std::int64_t v) { return static_cast<int>(v); };  // in range: check_fits_cudnn
  BASIN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->x, CUDNN_TENSOR_NCHW, type, i(g.n), i(g.c), i(g.h), i(g.w)));
  BASIN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w, type, CUDNN_TENSOR_NCHW, i(g.k), i(g.c), i(g.r), i(g.s)));
  BASIN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->y, CUDNN_TENSOR_NCHW, type, i(g.n), i(g.k), i(g.p), i(g.q)));
  BASIN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(plan->conv, i(g.pad_h), i(g.pad_w), i(g.stride_h),
                                                    i(g.stride_w), 1, 1, CUDNN_CROSS_CORRELATION, type));
  BASIN_CUDNN_CHECK(cudnnSetConvolutionMathType(plan->conv, requested_math(dtype, allow_tf32)));
  // The output size is basin's arithmetic (core/conv.cpp); cuDNN must agree.
  int n = 0, k = 0, p = 0, q = 0;
  BASIN_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(plan->conv, plan->x, plan->w, &n, &k, &p, &q));
  BASIN_CHECK(n == g.n && k == g.k && p == g.p && q == g.q, "conv2d: cuDNN computes an output of [", n, ", ", k,
              ", ", p, ", ", q, "] where basin expects [", g.n, ", ", g.k, ", ", g.p, ", ", g.q, "]");
  return plan;
}

Plan& plan_for(const Key& key, const Conv2dShape& g) {
  // Never destroyed, like the handle: descriptors are host objects the
  // process may keep until it exits. One host thread queues basin's GPU work.
  static auto* plans = new std::map<Key, std::unique_ptr<Plan>>();
  auto found = plans->find(key);
  if (found == plans->end()) found = plans->emplace(key, make_plan(g, key.dtype, key.allow_tf32)).first;
  return *found->second;
}

// The three directions as one interface for choose() and run().
struct Forward {
  using Algo = cudnnConvolutionFwdAlgo_t;
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  static constexpr int kSlot = 0;
  static constexpr int kAlgoCount = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  static constexpr const char* kName = "forward";

  static cudnnStatus_t max_count(int* count) {
    return cudnnGetConvolutionForwardAlgorithmMaxCount(cudnn_handle(), count);
  }
  static cudnnStatus_t workspace(const Plan& p, Algo algo, std::size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(cudnn_handle(), p.x, p.w, p.conv, p.y, algo, bytes);
  }
  static cudnnStatus_t find(const Plan& p, const Buffers& b, int requested, int* returned, Perf* perf, void* ws,
                            std::size_t ws_bytes) {
    return cudnnFindConvolutionForwardAlgorithmEx(cudnn_handle(), p.x, b.x, p.w, b.w, p.conv, p.y, b.y, requested,
                                                  returned, perf, ws, ws_bytes);
  }
  static cudnnStatus_t run(const Plan& p, const Buffers& b, Algo algo, void* ws, std::size_t ws_bytes,
                           const void* one, const void* zero) {
    return cudnnConvolutionForward(cudnn_handle(), one, p.x, b.x, p.w, b.w, p.conv, algo, ws, ws_bytes, zero, p.y,
                                   b.y);
  }
};

struct BackwardData {
  using Algo = cudnnConvolutionBwdDataAlgo_t;
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  static constexpr int kSlot = 1;
  static constexpr int kAlgoCount = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  static constexpr const char* kName = "backward input";

  static cudnnStatus_t max_count(int* count) {
    return cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnn_handle(), count);
  }
  static cudnnStatus_t workspace(const Plan& p, Algo algo, std::size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(cudnn_handle(), p.w, p.y, p.conv, p.x, algo, bytes);
  }
  static cudnnStatus_t find(const Plan& p, const Buffers& b, int requested, int* returned, Perf* perf, void* ws,
                            std::size_t ws_bytes) {
    return cudnnFindConvolutionBackwardDataAlgorithmEx(cudnn_handle(), p.w, b.w, p.y, b.y, p.conv, p.x, b.x,
                                                       requested, returned, perf, ws, ws_bytes);
  }
  static cudnnStatus_t run(const Plan& p, const Buffers& b, Algo algo, void* ws, std::size_t ws_bytes,
                           const void* one, const void* zero) {
    return cudnnConvolutionBackwardData(cudnn_handle(), one, p.w, b.w, p.y, b.y, p.conv, algo, ws, ws_bytes, zero,
                                        p.x, b.x);
  }
};

struct BackwardFilter {
  using Algo = cudnnConvolutionBwdFilterAlgo_t;
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  static constexpr int kSlot = 2;
  static constexpr int kAlgoCount = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  static constexpr const char* kName = "backward weight";

  static cudnnStatus_t max_count(int* count) {
    return cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnn_handle(), count);
  }
  static cudnnStatus_t workspace(const Plan& p, Algo algo, std::size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnn_handle(), p.x, p.y, p.conv, p.w, algo, bytes);
  }
  static cudnnStatus_t find(const Plan& p, const Buffers& b, int requested, int* returned, Perf* perf, void* ws,
                            std::size_t ws_bytes) {
    return cudnnFindConvolutionBackwardFilterAlgorithmEx(cudnn_handle(), p.x, b.x, p.y, b.y, p.conv, p.w, b.w,
                                                         requested, returned, perf, ws, ws_bytes);
  }
  static cudnnStatus_t run(const Plan& p, const Buffers& b, Algo algo, void* ws, std::size_t ws_bytes,
                           const void* one, const void* zero) {
    return cudnnConvolutionBackwardFilter(cudnn_handle(), one, p.x, b.x, p.y, b.y, p.conv, algo, ws, ws_bytes, zero,
                                          p.w, b.w);
  }
};

std::string describe(const Conv2dShape& g) {
  return detail::concat("input [", g.n, ", ", g.c, ", ", g.h, ", ", g.w, "], weight [", g.k, ", ", g.c, ", ", g.r,
                        ", ", g.s, "], stride (", g.stride_h, ", ", g.stride_w, "), padding (", g.pad_h, ", ",
                        g.pad_w, ")");
}

// Times the algorithms on the real buffers (it writes the output buffer, which
// the real call then overwrites) and picks one as described at the top.
template <class Ops>
Choice choose(Plan& plan, const Buffers& buffers, const Conv2dShape& g, DType dtype, bool allow_tf32) {
  const bool exact = exact_float32(dtype, allow_tf32);
  BASIN_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, requested_math(dtype, allow_tf32)));

  // Room for Find to try every algorithm that fits the limit, and no more.
  std::size_t find_bytes = 0;
  for (int a = 0; a < Ops::kAlgoCount; ++a) {
    std::size_t bytes = 0;
    // Unsupported algorithms answer with an error status: they are simply not candidates.
    if (Ops::workspace(plan, static_cast<typename Ops::Algo>(a), &bytes) == CUDNN_STATUS_SUCCESS &&
        bytes <= kWorkspaceLimit) {
      find_bytes = std::max(find_bytes, bytes);
    }
  }
  int requested = 0;
  BASIN_CUDNN_CHECK(Ops::max_count(&requested));
  std::vector<typename Ops::Perf> results(static_cast<std::size_t>(std::max(requested, 1)));
  int returned = 0;
  {
    DeviceBuffer scratch(find_bytes);
    BASIN_CUDNN_CHECK(Ops::find(plan, buffers, static_cast<int>(results.size()), &returned, results.data(),
                                scratch.get(), scratch.bytes()));
  }

  std::optional<Choice> fastest_nondeterministic;
  for (int i = 0; i < returned; ++i) {
    const typename Ops::Perf& r = results[static_cast<std::size_t>(i)];
    if (r.status != CUDNN_STATUS_SUCCESS) continue;
    // Down-conversion (to half precision) is never wanted; tensor cores only when TF32 is.
    if (r.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    if (exact && r.mathType == CUDNN_TENSOR_OP_MATH) continue;
    const cudnnMathType_t math = exact ? CUDNN_FMA_MATH : r.mathType;
    // The workspace for the math type the call will run with, asked again
    // rather than taken from Find (which may have timed another math type).
    BASIN_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, math));
    std::size_t bytes = 0;
    if (Ops::workspace(plan, r.algo, &bytes) != CUDNN_STATUS_SUCCESS || bytes > kWorkspaceLimit) continue;
    const Choice choice{static_cast<int>(r.algo), math, bytes};
    if (r.determinism == CUDNN_DETERMINISTIC) return choice;
    if (!fastest_nondeterministic) fastest_nondeterministic = choice;
  }
  BASIN_CHECK(fastest_nondeterministic.has_value(), "conv2d: cuDNN found no ", Ops::kName, " algorithm for ",
              describe(g), " (", dtype_name(dtype), ", TF32 ", allow_tf32 ? "on" : "off", ") within ",
              kWorkspaceLimit >> 20, " MiB of workspace");
  return *fastest_nondeterministic;
}

template <class Ops>
void run(const Conv2dShape& g, DType dtype, bool allow_tf32, const Buffers& buffers) {
  check_fits_cudnn(g);
  Key key;
  key.sizes = {g.n, g.c, g.h, g.w, g.k, g.r, g.s, g.p, g.q, g.stride_h, g.stride_w, g.pad_h, g.pad_w};
  key.dtype = dtype;
  key.allow_tf32 = allow_tf32;
  key.alignment = std::min({alignment_of(buffers.x), alignment_of(buffers.w), alignment_of(buffers.y)});
  Plan& plan = plan_for(key, g);
  std::optional<Choice>& choice = plan.choice[Ops::kSlot];
  if (!choice) choice = choose<Ops>(plan, buffers, g, dtype, allow_tf32);

  // The descriptor is shared by the three directions; each sets its own math type.
  BASIN_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, choice->math));
  DeviceBuffer scratch(choice->workspace);
  // Scaling factors are double for double data and float otherwise; beta = 0 overwrites the output.
  const float one_f = 1.0f, zero_f = 0.0f;
  const double one_d = 1.0, zero_d = 0.0;
  const bool is_double = dtype == DType::Float64;
  const void* one = is_double ? static_cast<const void*>(&one_d) : static_cast<const void*>(&one_f);
  const void* zero = is_double ? static_cast<const void*>(&zero_d) : static_cast<const void*>(&zero_f);
  BASIN_CUDNN_CHECK(Ops::run(plan, buffers, static_cast<typename Ops::Algo>(choice->algo), scratch.get(),
                             scratch.bytes(), one, zero));
}

}  // namespace

void conv2d_forward(DType dtype, const Conv2dShape& shape, void* out, const void* input, const void* weight,
                    const void* bias, bool allow_tf32) {
  if (shape.n == 0) return;  // cuDNN rejects empty tensors; there is nothing to write
  run<Forward>(shape, dtype, allow_tf32, {const_cast<void*>(input), const_cast<void*>(weight), out});
  if (bias == nullptr) return;
  const long long total = shape.n * shape.k * shape.p * shape.q;
  BASIN_DISPATCH_FLOATING(dtype, "conv2d", T, [&] {
    launch(add_bias_kernel<T>, grid_for(total, kBiasBlock), kBiasBlock, static_cast<T*>(out),
           static_cast<const T*>(bias), total, shape.p * shape.q, shape.k);
  });
}

void conv2d_backward_input(DType dtype, const Conv2dShape& shape, void* grad_input, const void* grad_out,
                           const void* weight, bool allow_tf32) {
  if (shape.n == 0) return;
  run<BackwardData>(shape, dtype, allow_tf32, {grad_input, const_cast<void*>(weight), const_cast<void*>(grad_out)});
}

void conv2d_backward_weight(DType dtype, const Conv2dShape& shape, void* grad_weight, const void* grad_out,
                            const void* input, bool allow_tf32) {
  if (shape.n == 0) {
    // An empty batch contributes nothing: the gradient is zero (all-zero bytes are +0.0).
    const std::size_t bytes = static_cast<std::size_t>(shape.k * shape.c * shape.r * shape.s) * dtype_size(dtype);
    BASIN_CUDA_CHECK(cudaMemsetAsync(grad_weight, 0, bytes, stream()));
    return;
  }
  run<BackwardFilter>(shape, dtype, allow_tf32, {const_cast<void*>(input), grad_weight, const_cast<void*>(grad_out)});
}

}  // namespace basin::kernels::cuda

#else  // no cuDNN in this build

namespace basin::kernels::cuda {

namespace {

[[noreturn]] void without_cudnn() {
  BASIN_FAIL("conv2d: basin was built without cuDNN, which CUDA convolutions need; reconfigure with cuDNN 9 "
             "installed (or point -DCUDNN_ROOT=... at it) and rebuild, or run the convolution on the CPU");
}

}  // namespace

void conv2d_forward(DType, const Conv2dShape&, void*, const void*, const void*, const void*, bool) {
  without_cudnn();
}
void conv2d_backward_input(DType, const Conv2dShape&, void*, const void*, const void*, bool) { without_cudnn(); }
void conv2d_backward_weight(DType, const Conv2dShape&, void*, const void*, const void*, bool) { without_cudnn(); }

}  // namespace basin::kernels::cuda

#endif
