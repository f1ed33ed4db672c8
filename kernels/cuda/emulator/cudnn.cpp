// cuDNN for basin's CUDA emulator: the handle, 4-d NCHW tensor and filter
// descriptors, 2-d convolution descriptors and the legacy convolution API
// that basin calls (output size, algorithm counts, workspace sizes, Find,
// forward, backward data, backward filter), computed on the host.
//
// Written from cuDNN 9's documented semantics of those calls:
//
//   forward          y[n,k,p,q] = alpha * sum_{c,r,s} w[k,c,r',s'] * x[n,c, p*u - pad_h + r*dil_h,
//                                                                         q*v - pad_w + s*dil_w]
//                                   + beta * y[n,k,p,q]
//   backward data    dx = alpha * (the adjoint of forward in x, applied to dy) + beta * dx
//   backward filter  dw = alpha * (the adjoint of forward in w, applied to dy and x) + beta * dw
//
// where (u, v) is the stride, (r', s') = (r, s) in CUDNN_CROSS_CORRELATION
// mode and the flipped (R-1-r, S-1-s) in CUDNN_CONVOLUTION mode, taps outside
// the input read zero, and the output size is
// (in + 2*pad - ((filter-1)*dilation + 1)) / stride + 1.
// beta == 0 means the output is not read (NaN in it is overwritten); alpha and
// beta are host values, float for float data and double for double.
//
// Checks, with cuDNN's status codes: a null or destroyed handle or descriptor,
// a descriptor that was never set, a dimension <= 0, a negative padding, a
// stride or dilation < 1, an enum value cuDNN does not define, descriptors
// that disagree with each other (input channels of x and w, y not the forward
// output of x and w, different data types), a filter larger than the padded
// input, an algorithm id out of range, or a null pointer argument:
// CUDNN_STATUS_BAD_PARAM. Valid values the emulator does not compute with
// (layouts other than NCHW, data types other than float and double, a compute
// type different from the data type, tensors over 2^31 - 1 elements):
// CUDNN_STATUS_NOT_SUPPORTED. Then, as for a kernel on a GPU: with a sticky
// device error the work cannot run, and a tensor (or a non-empty workspace)
// that is not wholly device memory is the illegal address a kernel would fault
// on; the emulator raises that sticky error. Both return
// CUDNN_STATUS_EXECUTION_FAILED.
//
// Algorithms: every id in range is accepted and computes the same math with
// direct loops; none needs workspace (0 bytes). The Find calls run the
// operation once on the given buffers (alpha 1, beta 0, as the real Find
// writes the output buffer) and report exactly one deterministic algorithm
// (forward IMPLICIT_GEMM, backward data ALGO_1, backward filter ALGO_1) with
// time 0: there is no clock here, so Find measures nothing. Sums accumulate in
// the data type (float for float), one multiply and one add per step (the
// emulated build compiles with -ffp-contract=off), in a fixed order:
//   forward over (c, r, s), backward data over (k, r, s), backward filter over (n, p, q),
// each index increasing, then scaled: alpha * sum, plus beta * output when beta != 0.
//
// Deliberately not modelled: the real algorithms' numerics (implicit GEMM,
// FFT and Winograd round differently; compare with a tolerance), tensor cores
// and TF32 (the math type is stored and reported; float stays exact under
// CUDNN_TENSOR_OP_MATH), non-deterministic algorithms, workspace needs,
// asynchrony (the call finishes before it returns; the stream is only
// remembered) and timing. It shares no code with basin's CPU kernels, so a
// parity test of basin's cuDNN path against them compares two independent
// implementations.
#include <cudnn.h>

#include <climits>
#include <cstdint>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include "kernels/cuda/emulator/emulator.h"

// ---------------------------------------------------------------- the objects behind the handles
struct cudnnContext {
  cudaStream_t stream = nullptr;  // the default stream until cudnnSetStream
};

struct cudnnTensorStruct {
  bool is_set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
};

struct cudnnFilterStruct {
  bool is_set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int k = 0, c = 0, r = 0, s = 0;  // output channels, input channels, height, width
};

struct cudnnConvolutionStruct {
  bool is_set = false;
  int pad_h = 0, pad_w = 0;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnDataType_t compute_type = CUDNN_DATA_FLOAT;
  cudnnMathType_t math_type = CUDNN_DEFAULT_MATH;  // may be set before the 2-d descriptor
};

namespace {

// ---------------------------------------------------------------- live objects
// The objects of one kind that Create made and Destroy has not destroyed yet,
// so a destroyed or made-up handle or descriptor is refused instead of read.
template <class Object>
class Registry {
 public:
  Object* create() {
    auto* object = new Object();
    const std::lock_guard<std::mutex> lock(mutex_);
    live_.insert(object);
    return object;
  }
  bool destroy(Object* object) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (live_.erase(object) == 0) return false;
    }
    delete object;
    return true;
  }
  bool contains(const Object* object) {
    const std::lock_guard<std::mutex> lock(mutex_);
    return object != nullptr && live_.count(object) == 1;
  }

 private:
  std::mutex mutex_;
  std::unordered_set<const Object*> live_;
};

template <class Object>
Registry<Object>& registry() {
  // Never destroyed: a static destructor may still release cuDNN objects at exit.
  static auto* objects = new Registry<Object>();
  return *objects;
}

template <class Object>
cudnnStatus_t create(Object** out) {
  if (out == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *out = registry<Object>().create();
  return CUDNN_STATUS_SUCCESS;
}

template <class Object>
cudnnStatus_t destroy(Object* object) {
  if (object == nullptr) return CUDNN_STATUS_SUCCESS;  // like free(NULL)
  return registry<Object>().destroy(object) ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_BAD_PARAM;
}

bool is_live(const cudnnContext* handle) { return registry<cudnnContext>().contains(handle); }

// The descriptor when it is live and has been set, else null.
template <class Object>
const Object* set_descriptor(const Object* descriptor) {
  return registry<Object>().contains(descriptor) && descriptor->is_set ? descriptor : nullptr;
}

// ---------------------------------------------------------------- enum values
bool is_defined(cudnnDataType_t type) { return type >= CUDNN_DATA_FLOAT && type <= CUDNN_DATA_FAST_FLOAT_FOR_FP8; }
bool is_defined(cudnnTensorFormat_t format) {
  return format == CUDNN_TENSOR_NCHW || format == CUDNN_TENSOR_NHWC || format == CUDNN_TENSOR_NCHW_VECT_C;
}
bool is_computed(cudnnDataType_t type) { return type == CUDNN_DATA_FLOAT || type == CUDNN_DATA_DOUBLE; }

// The common checks of the 4-d tensor and filter descriptors.
cudnnStatus_t check_4d(cudnnTensorFormat_t format, cudnnDataType_t type, int d0, int d1, int d2, int d3) {
  if (!is_defined(format) || !is_defined(type)) return CUDNN_STATUS_BAD_PARAM;
  // Documented for negative sizes; an empty tensor is refused as well.
  if (d0 <= 0 || d1 <= 0 || d2 <= 0 || d3 <= 0) return CUDNN_STATUS_BAD_PARAM;
  if (format != CUDNN_TENSOR_NCHW || !is_computed(type)) return CUDNN_STATUS_NOT_SUPPORTED;
  const long long elements = static_cast<long long>(d0) * d1 * d2 * d3;
  if (elements > INT_MAX) return CUDNN_STATUS_NOT_SUPPORTED;  // cuDNN's 2 giga-element limit
  return CUDNN_STATUS_SUCCESS;
}

// ---------------------------------------------------------------- one convolution
// The forward output size along one axis, or 0 when the dilated filter is
// larger than the padded input.
int output_size(int input, int pad, int filter, int stride, int dilation) {
  const long long padded = static_cast<long long>(input) + 2LL * pad;
  const long long reach = (static_cast<long long>(filter) - 1) * dilation + 1;
  if (reach > padded) return 0;
  return static_cast<int>((padded - reach) / stride + 1);
}

// Everything the loops need, as 64-bit sizes for the index arithmetic.
struct Geometry {
  long long n, c, h, w;  // x [n, c, h, w]
  long long k, r, s;     // w [k, c, r, s]
  long long p, q;        // y [n, k, p, q]
  long long pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w;
  bool flip;  // CUDNN_CONVOLUTION: filter element (r, s) meets input tap (R-1-r, S-1-s)

  long long x_index(long long in, long long ic, long long ih, long long iw) const {
    return ((in * c + ic) * h + ih) * w + iw;
  }
  long long w_index(long long ok, long long ic, long long fr, long long fs) const {
    return ((ok * c + ic) * r + fr) * s + fs;
  }
  long long y_index(long long in, long long ok, long long op, long long oq) const {
    return ((in * k + ok) * p + op) * q + oq;
  }
  // The filter row that meets input tap `tap` (and, the flip being its own inverse, the converse).
  long long filter_row(long long tap) const { return flip ? r - 1 - tap : tap; }
  long long filter_col(long long tap) const { return flip ? s - 1 - tap : tap; }
};

// The four descriptors of one call, checked against each other.
struct Problem {
  const cudnnTensorStruct* x;
  const cudnnFilterStruct* w;
  const cudnnTensorStruct* y;
  const cudnnConvolutionStruct* conv;
  Geometry geometry;
};

cudnnStatus_t make_problem(const cudnnTensorStruct* x_desc, const cudnnFilterStruct* w_desc,
                           const cudnnConvolutionStruct* conv_desc, const cudnnTensorStruct* y_desc,
                           Problem* problem) {
  const cudnnTensorStruct* x = set_descriptor(x_desc);
  const cudnnFilterStruct* w = set_descriptor(w_desc);
  const cudnnTensorStruct* y = set_descriptor(y_desc);
  const cudnnConvolutionStruct* conv = set_descriptor(conv_desc);
  if (x == nullptr || w == nullptr || y == nullptr || conv == nullptr) return CUDNN_STATUS_BAD_PARAM;
  if (x->type != w->type || x->type != y->type) return CUDNN_STATUS_BAD_PARAM;
  if (x->c != w->c) return CUDNN_STATUS_BAD_PARAM;
  const int p = output_size(x->h, conv->pad_h, w->r, conv->stride_h, conv->dilation_h);
  const int q = output_size(x->w, conv->pad_w, w->s, conv->stride_w, conv->dilation_w);
  if (p == 0 || q == 0) return CUDNN_STATUS_BAD_PARAM;
  if (y->n != x->n || y->c != w->k || y->h != p || y->w != q) return CUDNN_STATUS_BAD_PARAM;
  // Valid, but not a configuration cuDNN computes: float data takes a float
  // compute type, double data a double one.
  if (conv->compute_type != x->type) return CUDNN_STATUS_NOT_SUPPORTED;
  problem->x = x;
  problem->w = w;
  problem->y = y;
  problem->conv = conv;
  problem->geometry = Geometry{.n = x->n,
                               .c = x->c,
                               .h = x->h,
                               .w = x->w,
                               .k = w->k,
                               .r = w->r,
                               .s = w->s,
                               .p = p,
                               .q = q,
                               .pad_h = conv->pad_h,
                               .pad_w = conv->pad_w,
                               .stride_h = conv->stride_h,
                               .stride_w = conv->stride_w,
                               .dilation_h = conv->dilation_h,
                               .dilation_w = conv->dilation_w,
                               .flip = conv->mode == CUDNN_CONVOLUTION};
  return CUDNN_STATUS_SUCCESS;
}

// ---------------------------------------------------------------- the three directions
enum class Direction { Forward, BackwardData, BackwardFilter };

const char* call_name(Direction direction) {
  switch (direction) {
    case Direction::Forward: return "cudnnConvolutionForward";
    case Direction::BackwardData: return "cudnnConvolutionBackwardData";
    case Direction::BackwardFilter: return "cudnnConvolutionBackwardFilter";
  }
  return "cudnnConvolution";
}

int algorithm_count(Direction direction) {
  switch (direction) {
    case Direction::Forward: return CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
    case Direction::BackwardData: return CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
    case Direction::BackwardFilter: return CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  }
  return 0;
}

// The buffers of one call: in each direction one of x, w, y is written.
struct Buffers {
  const void* x;
  const void* w;
  const void* y;
  void* output;
};

// out = alpha * sum, plus beta * out unless beta is 0 (then out is not read).
template <class T>
void store(T& out, T sum, T alpha, T beta) {
  const T scaled = alpha * sum;
  out = beta == T(0) ? scaled : scaled + beta * out;
}

// Where each filter tap of one output position reads along one axis: tap[i]
// is the input index, or -1 when it falls in the padding. Computed once per
// output position, so the loops over channels only add.
void input_taps(long long out, long long taps, long long stride, long long pad, long long dilation, long long size,
                std::vector<long long>& tap) {
  tap.resize(static_cast<std::size_t>(taps));
  for (long long t = 0; t < taps; ++t) {
    const long long in = out * stride - pad + t * dilation;
    tap[static_cast<std::size_t>(t)] = in >= 0 && in < size ? in : -1;
  }
}

// Sum order: c, then r, then s, for each output element.
template <class T>
void forward(const Geometry& g, const T* x, const T* w, T* y, T alpha, T beta) {
  std::vector<long long> rows, cols;
  for (long long n = 0; n < g.n; ++n) {
    for (long long k = 0; k < g.k; ++k) {
      for (long long p = 0; p < g.p; ++p) {
        input_taps(p, g.r, g.stride_h, g.pad_h, g.dilation_h, g.h, rows);
        for (long long q = 0; q < g.q; ++q) {
          input_taps(q, g.s, g.stride_w, g.pad_w, g.dilation_w, g.w, cols);
          T sum = 0;
          for (long long c = 0; c < g.c; ++c) {
            for (long long r = 0; r < g.r; ++r) {
              const long long ih = rows[static_cast<std::size_t>(r)];
              if (ih < 0) continue;
              for (long long s = 0; s < g.s; ++s) {
                const long long iw = cols[static_cast<std::size_t>(s)];
                if (iw < 0) continue;
                sum = sum + w[g.w_index(k, c, g.filter_row(r), g.filter_col(s))] * x[g.x_index(n, c, ih, iw)];
              }
            }
          }
          store(y[g.y_index(n, k, p, q)], sum, alpha, beta);
        }
      }
    }
  }
}

// The output position whose tap at `tap` reads input position `input` along
// one axis, or -1 when there is none (the tap falls between strides or off the output).
long long output_reading(long long input, long long tap, long long pad, long long stride, long long dilation,
                         long long outputs) {
  const long long offset = input + pad - tap * dilation;  // = output * stride
  if (offset < 0 || offset % stride != 0) return -1;
  const long long output = offset / stride;
  return output < outputs ? output : -1;
}

// output_reading for every tap of one input position.
void output_taps(long long input, long long taps, long long pad, long long stride, long long dilation,
                 long long outputs, std::vector<long long>& tap) {
  tap.resize(static_cast<std::size_t>(taps));
  for (long long t = 0; t < taps; ++t) {
    tap[static_cast<std::size_t>(t)] = output_reading(input, t, pad, stride, dilation, outputs);
  }
}

// Sum order: k, then r, then s, for each input element.
template <class T>
void backward_data(const Geometry& g, const T* w, const T* dy, T* dx, T alpha, T beta) {
  std::vector<long long> rows, cols;
  for (long long n = 0; n < g.n; ++n) {
    for (long long c = 0; c < g.c; ++c) {
      for (long long ih = 0; ih < g.h; ++ih) {
        output_taps(ih, g.r, g.pad_h, g.stride_h, g.dilation_h, g.p, rows);
        for (long long iw = 0; iw < g.w; ++iw) {
          output_taps(iw, g.s, g.pad_w, g.stride_w, g.dilation_w, g.q, cols);
          T sum = 0;
          for (long long k = 0; k < g.k; ++k) {
            for (long long r = 0; r < g.r; ++r) {
              const long long p = rows[static_cast<std::size_t>(r)];
              if (p < 0) continue;
              for (long long s = 0; s < g.s; ++s) {
                const long long q = cols[static_cast<std::size_t>(s)];
                if (q < 0) continue;
                sum = sum + w[g.w_index(k, c, g.filter_row(r), g.filter_col(s))] * dy[g.y_index(n, k, p, q)];
              }
            }
          }
          store(dx[g.x_index(n, c, ih, iw)], sum, alpha, beta);
        }
      }
    }
  }
}

// Sum order: n, then p, then q, for each filter element.
template <class T>
void backward_filter(const Geometry& g, const T* x, const T* dy, T* dw, T alpha, T beta) {
  for (long long k = 0; k < g.k; ++k) {
    for (long long c = 0; c < g.c; ++c) {
      for (long long fr = 0; fr < g.r; ++fr) {
        for (long long fs = 0; fs < g.s; ++fs) {
          const long long r = g.filter_row(fr);  // the input tap this filter element meets
          const long long s = g.filter_col(fs);
          T sum = 0;
          for (long long n = 0; n < g.n; ++n) {
            for (long long p = 0; p < g.p; ++p) {
              const long long ih = p * g.stride_h - g.pad_h + r * g.dilation_h;
              if (ih < 0 || ih >= g.h) continue;
              const T* dy_row = dy + g.y_index(n, k, p, 0);
              const T* x_row = x + g.x_index(n, c, ih, 0);
              for (long long q = 0; q < g.q; ++q) {
                const long long iw = q * g.stride_w - g.pad_w + s * g.dilation_w;
                if (iw < 0 || iw >= g.w) continue;
                sum = sum + dy_row[q] * x_row[iw];
              }
            }
          }
          store(dw[g.w_index(k, c, fr, fs)], sum, alpha, beta);
        }
      }
    }
  }
}

template <class T>
void compute(Direction direction, const Geometry& g, const Buffers& b, const void* alpha, const void* beta) {
  const T a = *static_cast<const T*>(alpha);
  const T z = *static_cast<const T*>(beta);
  switch (direction) {
    case Direction::Forward:
      forward(g, static_cast<const T*>(b.x), static_cast<const T*>(b.w), static_cast<T*>(b.output), a, z);
      break;
    case Direction::BackwardData:
      backward_data(g, static_cast<const T*>(b.w), static_cast<const T*>(b.y), static_cast<T*>(b.output), a, z);
      break;
    case Direction::BackwardFilter:
      backward_filter(g, static_cast<const T*>(b.x), static_cast<const T*>(b.y), static_cast<T*>(b.output), a, z);
      break;
  }
}

// True when [ptr, ptr + bytes) is device memory; otherwise raises the illegal
// address a kernel touching it would fault on, naming the argument.
bool check_device_range(Direction direction, const char* argument, const void* ptr, std::size_t bytes) {
  if (basin::emulator::is_device_range(ptr, bytes)) return true;
  std::ostringstream detail;
  detail << call_name(direction) << ": " << argument << " at " << ptr << " spans " << bytes
         << " bytes, which is not device memory";
  basin::emulator::device_fault(cudaErrorIllegalAddress, detail.str());
  return false;
}

// One convolution call in any direction, from the handle check to the stores.
cudnnStatus_t convolve(Direction direction, cudnnHandle_t handle, const void* alpha, const cudnnTensorStruct* x_desc,
                       const cudnnFilterStruct* w_desc, const cudnnTensorStruct* y_desc,
                       const cudnnConvolutionStruct* conv_desc, int algo, const Buffers& buffers, void* workspace,
                       std::size_t workspace_bytes, const void* beta) {
  if (!is_live(handle)) return CUDNN_STATUS_BAD_PARAM;
  Problem problem{};
  if (const cudnnStatus_t status = make_problem(x_desc, w_desc, conv_desc, y_desc, &problem);
      status != CUDNN_STATUS_SUCCESS) {
    return status;
  }
  if (algo < 0 || algo >= algorithm_count(direction)) return CUDNN_STATUS_BAD_PARAM;
  if (alpha == nullptr || beta == nullptr) return CUDNN_STATUS_BAD_PARAM;
  if (buffers.x == nullptr || buffers.w == nullptr || buffers.y == nullptr) return CUDNN_STATUS_BAD_PARAM;

  // From here on it is a kernel's work.
  if (basin::emulator::sticky_error() != cudaSuccess) return CUDNN_STATUS_EXECUTION_FAILED;
  const Geometry& g = problem.geometry;
  const std::size_t element = problem.x->type == CUDNN_DATA_DOUBLE ? sizeof(double) : sizeof(float);
  const std::size_t x_bytes = static_cast<std::size_t>(g.n * g.c * g.h * g.w) * element;
  const std::size_t w_bytes = static_cast<std::size_t>(g.k * g.c * g.r * g.s) * element;
  const std::size_t y_bytes = static_cast<std::size_t>(g.n * g.k * g.p * g.q) * element;
  const bool forward = direction == Direction::Forward;
  const bool data = direction == Direction::BackwardData;
  const bool filter = direction == Direction::BackwardFilter;
  if (!check_device_range(direction, data ? "dx (output)" : "x", buffers.x, x_bytes) ||
      !check_device_range(direction, filter ? "dw (output)" : "w", buffers.w, w_bytes) ||
      !check_device_range(direction, forward ? "y (output)" : "dy", buffers.y, y_bytes) ||
      (workspace != nullptr && workspace_bytes > 0 &&
       !check_device_range(direction, "the workspace", workspace, workspace_bytes))) {
    return CUDNN_STATUS_EXECUTION_FAILED;
  }
  if (problem.x->type == CUDNN_DATA_DOUBLE) {
    compute<double>(direction, g, buffers, alpha, beta);
  } else {
    compute<float>(direction, g, buffers, alpha, beta);
  }
  return CUDNN_STATUS_SUCCESS;
}

// The workspace-size query shared by the three directions: the descriptors
// must describe a convolution the call would run; the answer is always 0.
cudnnStatus_t workspace_size(Direction direction, cudnnHandle_t handle, const cudnnTensorStruct* x,
                             const cudnnFilterStruct* w, const cudnnTensorStruct* y,
                             const cudnnConvolutionStruct* conv, int algo, std::size_t* bytes) {
  if (!is_live(handle) || bytes == nullptr) return CUDNN_STATUS_BAD_PARAM;
  Problem problem{};
  if (const cudnnStatus_t status = make_problem(x, w, conv, y, &problem); status != CUDNN_STATUS_SUCCESS) {
    return status;
  }
  if (algo < 0 || algo >= algorithm_count(direction)) return CUDNN_STATUS_BAD_PARAM;
  *bytes = 0;
  return CUDNN_STATUS_SUCCESS;
}

// Find: runs the operation once with the deterministic algorithm it reports.
template <class Perf, class Algo>
cudnnStatus_t find(Direction direction, Algo algo, cudnnHandle_t handle, const cudnnTensorStruct* x_desc,
                   const cudnnFilterStruct* w_desc, const cudnnTensorStruct* y_desc,
                   const cudnnConvolutionStruct* conv_desc, const Buffers& buffers, int requested, int* returned,
                   Perf* results, void* workspace, std::size_t workspace_bytes) {
  if (requested < 1 || returned == nullptr || results == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *returned = 0;
  const float one_f = 1.0f, zero_f = 0.0f;
  const double one_d = 1.0, zero_d = 0.0;
  // The scale type follows the data type; an unset descriptor is refused by convolve().
  const bool is_double = set_descriptor(x_desc) != nullptr && x_desc->type == CUDNN_DATA_DOUBLE;
  const void* one = is_double ? static_cast<const void*>(&one_d) : static_cast<const void*>(&one_f);
  const void* zero = is_double ? static_cast<const void*>(&zero_d) : static_cast<const void*>(&zero_f);
  const cudnnStatus_t status = convolve(direction, handle, one, x_desc, w_desc, y_desc, conv_desc,
                                        static_cast<int>(algo), buffers, workspace, workspace_bytes, zero);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  results[0] = Perf{};
  results[0].algo = algo;
  results[0].status = CUDNN_STATUS_SUCCESS;
  results[0].time = 0.0f;  // nothing is measured
  results[0].memory = 0;
  results[0].determinism = CUDNN_DETERMINISTIC;
  results[0].mathType = conv_desc->math_type;
  *returned = 1;
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace

// ---------------------------------------------------------------- the API
extern "C" {

// The cuDNN API level the emulator follows (9.0.0 as 90000), not a library installed anywhere.
std::size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char* cudnnGetErrorString(cudnnStatus_t status) {
  switch (status) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH: return "CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH";
    case CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH: return "CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH";
    case CUDNN_STATUS_DEPRECATED: return "CUDNN_STATUS_DEPRECATED";
    case CUDNN_STATUS_LICENSE_ERROR: return "CUDNN_STATUS_LICENSE_ERROR";
    case CUDNN_STATUS_RUNTIME_IN_PROGRESS: return "CUDNN_STATUS_RUNTIME_IN_PROGRESS";
    case CUDNN_STATUS_RUNTIME_FP_OVERFLOW: return "CUDNN_STATUS_RUNTIME_FP_OVERFLOW";
    case CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED: return "CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_INVALID_VALUE: return "CUDNN_STATUS_INVALID_VALUE";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER: return "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER";
    case CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED: return "CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED";
    case CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND: return "CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND";
    case CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT: return "CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT";
    case CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH: return "CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH";
    case CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH: return "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH";
    case CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES: return "CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES";
    case CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE: return "CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN: return "CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN";
    case CUDNN_STATUS_NOT_SUPPORTED_SHAPE: return "CUDNN_STATUS_NOT_SUPPORTED_SHAPE";
    case CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE: return "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE";
    case CUDNN_STATUS_NOT_SUPPORTED_LAYOUT: return "CUDNN_STATUS_NOT_SUPPORTED_LAYOUT";
    case CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER:
      return "CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER";
    case CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART: return "CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART";
    case CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH: return "CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH";
    case CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING:
      return "CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING";
    case CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE: return "CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE";
    case CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT:
      return "CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT";
    case CUDNN_STATUS_NOT_SUPPORTED_PADDING: return "CUDNN_STATUS_NOT_SUPPORTED_PADDING";
    case CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM: return "CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED: return "CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED";
    case CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE: return "CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE";
    case CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED:
      return "CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED";
    case CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED:
      return "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED";
    case CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM: return "CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM";
    case CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED:
      return "CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    case CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER: return "CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER";
    case CUDNN_STATUS_EXECUTION_FAILED_CUBLAS: return "CUDNN_STATUS_EXECUTION_FAILED_CUBLAS";
    case CUDNN_STATUS_EXECUTION_FAILED_CUDART: return "CUDNN_STATUS_EXECUTION_FAILED_CUDART";
    case CUDNN_STATUS_EXECUTION_FAILED_CURAND: return "CUDNN_STATUS_EXECUTION_FAILED_CURAND";
  }
  return "CUDNN_STATUS_UNKNOWN";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) { return create(handle); }
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  if (handle == nullptr) return CUDNN_STATUS_BAD_PARAM;
  return destroy(handle);
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
  if (!is_live(handle)) return CUDNN_STATUS_BAD_PARAM;
  handle->stream = streamId;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t* streamId) {
  if (!is_live(handle) || streamId == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *streamId = handle->stream;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* tensorDesc) { return create(tensorDesc); }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc) { return destroy(tensorDesc); }

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc, cudnnTensorFormat_t format,
                                         cudnnDataType_t dataType, int n, int c, int h, int w) {
  if (!registry<cudnnTensorStruct>().contains(tensorDesc)) return CUDNN_STATUS_BAD_PARAM;
  if (const cudnnStatus_t status = check_4d(format, dataType, n, c, h, w); status != CUDNN_STATUS_SUCCESS) {
    return status;
  }
  *tensorDesc = cudnnTensorStruct{true, dataType, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* filterDesc) { return create(filterDesc); }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc) { return destroy(filterDesc); }

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
  if (!registry<cudnnFilterStruct>().contains(filterDesc)) return CUDNN_STATUS_BAD_PARAM;
  if (const cudnnStatus_t status = check_4d(format, dataType, k, c, h, w); status != CUDNN_STATUS_SUCCESS) {
    return status;
  }
  *filterDesc = cudnnFilterStruct{true, dataType, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* convDesc) { return create(convDesc); }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc) { return destroy(convDesc); }

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h, int pad_w, int u,
                                              int v, int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType) {
  if (!registry<cudnnConvolutionStruct>().contains(convDesc)) return CUDNN_STATUS_BAD_PARAM;
  if (pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dilation_h < 1 || dilation_w < 1) return CUDNN_STATUS_BAD_PARAM;
  if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) return CUDNN_STATUS_BAD_PARAM;
  if (!is_defined(computeType)) return CUDNN_STATUS_BAD_PARAM;
  if (!is_computed(computeType)) return CUDNN_STATUS_NOT_SUPPORTED;
  convDesc->is_set = true;
  convDesc->pad_h = pad_h;
  convDesc->pad_w = pad_w;
  convDesc->stride_h = u;
  convDesc->stride_w = v;
  convDesc->dilation_h = dilation_h;
  convDesc->dilation_w = dilation_w;
  convDesc->mode = mode;
  convDesc->compute_type = computeType;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t mathType) {
  if (!registry<cudnnConvolutionStruct>().contains(convDesc)) return CUDNN_STATUS_BAD_PARAM;
  if (mathType < CUDNN_DEFAULT_MATH || mathType > CUDNN_FMA_MATH) return CUDNN_STATUS_BAD_PARAM;
  convDesc->math_type = mathType;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t* mathType) {
  if (!registry<cudnnConvolutionStruct>().contains(convDesc) || mathType == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *mathType = convDesc->math_type;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t convDesc,
                                                    const cudnnTensorDescriptor_t inputTensorDesc,
                                                    const cudnnFilterDescriptor_t filterDesc, int* n, int* c, int* h,
                                                    int* w) {
  const cudnnConvolutionStruct* conv = set_descriptor(convDesc);
  const cudnnTensorStruct* x = set_descriptor(inputTensorDesc);
  const cudnnFilterStruct* filter = set_descriptor(filterDesc);
  if (conv == nullptr || x == nullptr || filter == nullptr) return CUDNN_STATUS_BAD_PARAM;
  if (n == nullptr || c == nullptr || h == nullptr || w == nullptr) return CUDNN_STATUS_BAD_PARAM;
  if (x->c != filter->c || x->type != filter->type) return CUDNN_STATUS_BAD_PARAM;
  const int p = output_size(x->h, conv->pad_h, filter->r, conv->stride_h, conv->dilation_h);
  const int q = output_size(x->w, conv->pad_w, filter->s, conv->stride_w, conv->dilation_w);
  if (p == 0 || q == 0) return CUDNN_STATUS_BAD_PARAM;  // the filter does not fit the padded input
  *n = x->n;
  *c = filter->k;
  *h = p;
  *w = q;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  if (!is_live(handle) || count == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *count = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  if (!is_live(handle) || count == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *count = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  if (!is_live(handle) || count == nullptr) return CUDNN_STATUS_BAD_PARAM;
  *count = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                      const cudnnFilterDescriptor_t wDesc,
                                                      const cudnnConvolutionDescriptor_t convDesc,
                                                      const cudnnTensorDescriptor_t yDesc,
                                                      cudnnConvolutionFwdAlgo_t algo, std::size_t* sizeInBytes) {
  return workspace_size(Direction::Forward, handle, xDesc, wDesc, yDesc, convDesc, algo, sizeInBytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
                                                           const cudnnTensorDescriptor_t dyDesc,
                                                           const cudnnConvolutionDescriptor_t convDesc,
                                                           const cudnnTensorDescriptor_t dxDesc,
                                                           cudnnConvolutionBwdDataAlgo_t algo,
                                                           std::size_t* sizeInBytes) {
  return workspace_size(Direction::BackwardData, handle, dxDesc, wDesc, dyDesc, convDesc, algo, sizeInBytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t handle,
                                                             const cudnnTensorDescriptor_t xDesc,
                                                             const cudnnTensorDescriptor_t dyDesc,
                                                             const cudnnConvolutionDescriptor_t convDesc,
                                                             const cudnnFilterDescriptor_t gradDesc,
                                                             cudnnConvolutionBwdFilterAlgo_t algo,
                                                             std::size_t* sizeInBytes) {
  return workspace_size(Direction::BackwardFilter, handle, xDesc, gradDesc, dyDesc, convDesc, algo, sizeInBytes);
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                     const void* x, const cudnnFilterDescriptor_t wDesc,
                                                     const void* w, const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t yDesc, void* y,
                                                     const int requestedAlgoCount, int* returnedAlgoCount,
                                                     cudnnConvolutionFwdAlgoPerf_t* perfResults, void* workSpace,
                                                     std::size_t workSpaceSizeInBytes) {
  return find(Direction::Forward, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, handle, xDesc, wDesc, yDesc, convDesc,
              Buffers{x, w, y, y}, requestedAlgoCount, returnedAlgoCount, perfResults, workSpace,
              workSpaceSizeInBytes);
}

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
                                                          const void* w, const cudnnTensorDescriptor_t dyDesc,
                                                          const void* dy,
                                                          const cudnnConvolutionDescriptor_t convDesc,
                                                          const cudnnTensorDescriptor_t dxDesc, void* dx,
                                                          const int requestedAlgoCount, int* returnedAlgoCount,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* perfResults,
                                                          void* workSpace, std::size_t workSpaceSizeInBytes) {
  return find(Direction::BackwardData, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, handle, dxDesc, wDesc, dyDesc, convDesc,
              Buffers{dx, w, dy, dx}, requestedAlgoCount, returnedAlgoCount, perfResults, workSpace,
              workSpaceSizeInBytes);
}

cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(cudnnHandle_t handle,
                                                            const cudnnTensorDescriptor_t xDesc, const void* x,
                                                            const cudnnTensorDescriptor_t dyDesc, const void* y,
                                                            const cudnnConvolutionDescriptor_t convDesc,
                                                            const cudnnFilterDescriptor_t dwDesc, void* dw,
                                                            const int requestedAlgoCount, int* returnedAlgoCount,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* perfResults,
                                                            void* workSpace, std::size_t workSpaceSizeInBytes) {
  return find(Direction::BackwardFilter, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, handle, xDesc, dwDesc, dyDesc,
              convDesc, Buffers{x, dw, y, dw}, requestedAlgoCount, returnedAlgoCount, perfResults, workSpace,
              workSpaceSizeInBytes);
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void* alpha, const cudnnTensorDescriptor_t xDesc,
                                      const void* x, const cudnnFilterDescriptor_t wDesc, const void* w,
                                      const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo,
                                      void* workSpace, std::size_t workSpaceSizeInBytes, const void* beta,
                                      const cudnnTensorDescriptor_t yDesc, void* y) {
  return convolve(Direction::Forward, handle, alpha, xDesc, wDesc, yDesc, convDesc, algo, Buffers{x, w, y, y},
                  workSpace, workSpaceSizeInBytes, beta);
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void* alpha,
                                           const cudnnFilterDescriptor_t wDesc, const void* w,
                                           const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void* workSpace,
                                           std::size_t workSpaceSizeInBytes, const void* beta,
                                           const cudnnTensorDescriptor_t dxDesc, void* dx) {
  return convolve(Direction::BackwardData, handle, alpha, dxDesc, wDesc, dyDesc, convDesc, algo,
                  Buffers{dx, w, dy, dx}, workSpace, workSpaceSizeInBytes, beta);
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void* alpha,
                                             const cudnnTensorDescriptor_t xDesc, const void* x,
                                             const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                             const cudnnConvolutionDescriptor_t convDesc,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void* workSpace,
                                             std::size_t workSpaceSizeInBytes, const void* beta,
                                             const cudnnFilterDescriptor_t dwDesc, void* dw) {
  return convolve(Direction::BackwardFilter, handle, alpha, xDesc, dwDesc, dyDesc, convDesc, algo,
                  Buffers{x, dw, dy, dw}, workSpace, workSpaceSizeInBytes, beta);
}

}  // extern "C"
