// Tensor: a cheap, shared handle to an n-dimensional array.
//
// A Tensor is a pointer to a TensorImpl: storage + shape + strides + offset +
// dtype, plus the autograd fields (requires_grad, grad, grad_fn). Copying a
// Tensor copies the handle, not the data. Views (reshape, slice, transpose,
// permute, expand) make a new TensorImpl over the same Storage. Data changes
// device only through an explicit to(Device); nothing copies behind your back.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"
#include "core/storage.h"

namespace basin {

struct Node;
struct TensorImpl;

// What a factory makes: dtype, device and whether the result is a leaf that
// records gradients. Chainable, libtorch style: TensorOptions().dtype(kFloat64).device(dev).
class TensorOptions {
 public:
  TensorOptions() = default;
  TensorOptions(DType dtype) : dtype_(dtype) {}      // NOLINT: zeros({2}, kFloat64) reads well
  TensorOptions(Device device) : device_(device) {}  // NOLINT: zeros({2}, Device::cuda())

  TensorOptions dtype(DType dtype) const { auto o = *this; o.dtype_ = dtype; return o; }
  TensorOptions device(Device device) const { auto o = *this; o.device_ = device; return o; }
  TensorOptions requires_grad(bool on) const { auto o = *this; o.requires_grad_ = on; return o; }

  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool requires_grad() const { return requires_grad_; }

 private:
  DType dtype_ = kFloat32;
  Device device_ = Device::cpu();
  bool requires_grad_ = false;
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: a missing gradient, an absent bias
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // ---- metadata
  const Shape& shape() const;
  const Strides& strides() const;
  std::int64_t dim() const;
  std::int64_t size(std::int64_t dim) const;  // negative dims count from the end
  std::int64_t numel() const;
  std::int64_t storage_offset() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const;

  // Pointer to the first element (storage + offset). data<T>() checks T against the dtype.
  void* data_ptr() const;
  template <class T>
  T* data() const {
    BASIN_CHECK(dtype() == dtype_of<T>(), "data<T>(): tensor is ", dtype_name(dtype()), ", not ",
                dtype_name(dtype_of<T>()));
    return static_cast<T*>(data_ptr());
  }

  // ---- autograd
  bool requires_grad() const;
  // Points this tensor at other's data (storage, shape, strides, dtype) while
  // keeping its identity: every handle to it, and its requires_grad, follow.
  // Modules use it to move parameters between devices and into the optimizer
  // arena without invalidating the handles that layers hold.
  void set_data(const Tensor& other) const;
  // Marks a leaf as a parameter whose gradient backward() accumulates into grad().
  Tensor& requires_grad_(bool on = true);
  Tensor grad() const;           // undefined until a backward pass reaches this leaf
  void set_grad(const Tensor& grad) const;
  const std::shared_ptr<Node>& grad_fn() const;
  bool is_leaf() const;
  // Backpropagates from this tensor. Without an argument it must hold one element
  // (a loss), and the seed gradient is 1.
  void backward(const Tensor& grad_output = Tensor()) const;
  // The same data, cut from the graph: no grad_fn, requires_grad false.
  Tensor detach() const;

  // ---- views (share storage; differentiable)
  Tensor reshape(const Shape& shape) const;  // a view when the strides allow it, else a copy
  Tensor view(const Shape& shape) const;     // always a view; throws if the strides do not allow it
  Tensor flatten(std::int64_t start_dim = 0, std::int64_t end_dim = -1) const;
  Tensor slice(std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step = 1) const;
  Tensor select(std::int64_t dim, std::int64_t index) const;  // removes dim
  Tensor transpose(std::int64_t dim0, std::int64_t dim1) const;
  Tensor t() const;  // transpose of a 2-D tensor
  Tensor permute(const std::vector<std::int64_t>& dims) const;
  Tensor expand(const Shape& shape) const;  // broadcast size-1 dims without copying
  Tensor unsqueeze(std::int64_t dim) const;
  Tensor squeeze(std::int64_t dim) const;
  Tensor contiguous() const;  // this tensor if already contiguous, else a contiguous copy

  // ---- conversion and copies
  Tensor to(Device device) const;  // differentiable; the same tensor if already there
  Tensor to(DType dtype) const;    // differentiable between floating types
  Tensor cpu() const { return to(Device::cpu()); }
  Tensor clone() const;            // a contiguous copy with its own storage (differentiable)

  // Reads the single element (synchronizes with the device).
  double item() const;
  template <class T>
  T item() const { return static_cast<T>(item()); }
  // Copies all elements to the host in row-major order, converted to T.
  template <class T>
  std::vector<T> to_vector() const;

  // ---- in-place (not recorded by autograd; for optimizers, init and gradient bookkeeping)
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& copy_(const Tensor& src);  // src broadcasts to this shape; any dtype or device
  Tensor& add_(const Tensor& other, double alpha = 1.0);  // this += alpha * other
  Tensor& mul_(double factor);

  std::string str() const;  // shape, dtype, device and (a summary of) the values

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  std::int64_t offset = 0;  // in elements
  DType dtype = kFloat32;

  bool requires_grad = false;
  Tensor grad;                    // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;  // the op that produced this tensor; null for leaves
};

std::ostream& operator<<(std::ostream& out, const Tensor& tensor);

// ---- factories
Tensor empty(const Shape& shape, const TensorOptions& options = {});
Tensor zeros(const Shape& shape, const TensorOptions& options = {});
Tensor ones(const Shape& shape, const TensorOptions& options = {});
Tensor full(const Shape& shape, double value, const TensorOptions& options = {});
// [start, end) by step, like Python's range.
Tensor arange(double start, double end, double step = 1.0, const TensorOptions& options = {});
Tensor arange(std::int64_t end, const TensorOptions& options = {});
// Uniform in [low, high) and standard normal, from the default Philox generator
// (see core/random.h): the same seed gives the same numbers on CPU and CUDA.
Tensor rand(const Shape& shape, const TensorOptions& options = {}, double low = 0.0, double high = 1.0);
Tensor randn(const Shape& shape, const TensorOptions& options = {}, double mean = 0.0, double stddev = 1.0);
// A tensor holding a copy of host values of type T (dtype = dtype_of<T>(), unless
// options name another floating dtype to convert to).
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, const TensorOptions& options = dtype_of<T>());
// From raw host memory of the given dtype.
Tensor from_blob(const void* data, const Shape& shape, DType dtype, Device device = Device::cpu());

Tensor empty_like(const Tensor& like);
Tensor zeros_like(const Tensor& like);
Tensor ones_like(const Tensor& like);
Tensor full_like(const Tensor& like, double value);

// A tensor over existing storage (for views and the parameter arena).
Tensor make_view(const Tensor& base, const Shape& shape, const Strides& strides, std::int64_t offset);

}  // namespace basin
