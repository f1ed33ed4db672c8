// Tensor metadata, views, copies, conversion, printing and the factories.
#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <numeric>
#include <optional>
#include <sstream>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/random.h"
#include "core/reduce.h"
#include "kernels/copy.h"
#include "kernels/random.h"
#if BASIN_WITH_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace basin {

namespace {

const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  BASIN_CHECK(impl != nullptr, "operation on an undefined tensor");
  return *impl;
}

// Strides of `shape` viewing the same elements as (old_shape, old_strides), or
// nothing when no view exists and the data must be copied. Old dims are walked
// from the last in "chunks" whose elements are evenly spaced in memory; each
// chunk must be covered exactly by a run of new dims, which then get strides
// counted from the chunk's innermost stride.
std::optional<Strides> view_strides(const Shape& old_shape, const Strides& old_strides, const Shape& shape) {
  if (old_shape.empty() || shape_numel(old_shape) == 0) return contiguous_strides(shape);
  Strides strides(shape.size());
  std::int64_t view_dim = static_cast<std::int64_t>(shape.size()) - 1;
  std::int64_t chunk_stride = old_strides.back();
  std::int64_t chunk_numel = 1, view_numel = 1;
  for (std::int64_t d = static_cast<std::int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    chunk_numel *= old_shape[d];
    const bool chunk_ends =
        d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != chunk_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (view_dim >= 0 && (view_numel < chunk_numel || shape[view_dim] == 1)) {
      strides[view_dim] = view_numel * chunk_stride;
      view_numel *= shape[view_dim];
      --view_dim;
    }
    if (view_numel != chunk_numel) return std::nullopt;
    if (d > 0) {
      chunk_stride = old_strides[d - 1];
      chunk_numel = 1;
      view_numel = 1;
    }
  }
  if (view_dim != -1) return std::nullopt;
  return strides;
}

Shape infer_shape(Shape shape, std::int64_t numel, const char* op, const Shape& from) {
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == -1) {
      BASIN_CHECK(infer < 0, op, ": only one dimension can be -1 in ", shape_str(shape));
      infer = static_cast<int>(d);
    } else {
      BASIN_CHECK(shape[d] >= 0, op, ": invalid size ", shape[d], " in ", shape_str(shape));
      known *= shape[d];
    }
  }
  if (infer >= 0) {
    BASIN_CHECK(known != 0 && numel % known == 0, op, ": cannot reshape ", shape_str(from), " into ",
                shape_str(shape));
    shape[infer] = numel / known;
  }
  BASIN_CHECK(shape_numel(shape) == numel, op, ": cannot reshape ", shape_str(from), " (", numel,
              " elements) into ", shape_str(shape));
  return shape;
}

}  // namespace

// ---------------------------------------------------------------- metadata

const Shape& Tensor::shape() const { return checked(impl_).shape; }
const Strides& Tensor::strides() const { return checked(impl_).strides; }
std::int64_t Tensor::dim() const { return static_cast<std::int64_t>(shape().size()); }
std::int64_t Tensor::size(std::int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
std::int64_t Tensor::numel() const { return shape_numel(shape()); }
std::int64_t Tensor::storage_offset() const { return checked(impl_).offset; }
DType Tensor::dtype() const { return checked(impl_).dtype; }
Device Tensor::device() const { return checked(impl_).storage->device(); }
const std::shared_ptr<Storage>& Tensor::storage() const { return checked(impl_).storage; }

bool Tensor::is_contiguous() const {
  const auto& impl = checked(impl_);
  // No element, no layout (as in PyTorch). The loop below would otherwise
  // expect a stride of 0 before a zero size and refuse the strides that
  // contiguous_strides gives [2, 0, 3].
  if (shape_numel(impl.shape) == 0) return true;
  std::int64_t expected = 1;
  for (std::size_t d = impl.shape.size(); d-- > 0;) {
    if (impl.shape[d] == 1) continue;  // the stride of a size-1 dim never matters
    if (impl.strides[d] != expected) return false;
    expected *= impl.shape[d];
  }
  return true;
}

void* Tensor::data_ptr() const {
  const auto& impl = checked(impl_);
  return static_cast<char*>(impl.storage->data()) + impl.offset * static_cast<std::int64_t>(dtype_size(impl.dtype));
}

// ---------------------------------------------------------------- autograd fields

bool Tensor::requires_grad() const { return checked(impl_).requires_grad; }

Tensor& Tensor::requires_grad_(bool on) {
  BASIN_CHECK(is_leaf(), "requires_grad_: only leaf tensors can be marked; this one was made by ",
              grad_fn()->name);
  BASIN_CHECK(!on || is_floating(dtype()), "requires_grad_: only floating tensors have gradients, not ",
              dtype_name(dtype()));
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return checked(impl_).grad; }

void Tensor::set_data(const Tensor& other) const {
  BASIN_CHECK(is_leaf(), "set_data: only leaf tensors can be re-pointed");
  const auto& source = checked(other.impl_ptr());
  impl_->storage = source.storage;
  impl_->shape = source.shape;
  impl_->strides = source.strides;
  impl_->offset = source.offset;
  impl_->dtype = source.dtype;
}

void Tensor::set_grad(const Tensor& grad) const {
  BASIN_CHECK(!grad.defined() || grad.shape() == shape(), "set_grad: gradient of shape ", shape_str(grad.shape()),
              " for a tensor of shape ", shape_str(shape()));
  impl_->grad = grad;
}

const std::shared_ptr<Node>& Tensor::grad_fn() const { return checked(impl_).grad_fn; }
bool Tensor::is_leaf() const { return grad_fn() == nullptr; }

void Tensor::backward(const Tensor& grad_output) const {
  if (grad_output.defined()) {
    run_backward(*this, grad_output);
    return;
  }
  BASIN_CHECK(numel() == 1, "backward: without a gradient argument the tensor must hold one element (a loss), "
                            "but it has shape ", shape_str(shape()));
  run_backward(*this, ones_like(*this));
}

Tensor Tensor::detach() const {
  const auto& impl = checked(impl_);
  auto out = std::make_shared<TensorImpl>();
  out->storage = impl.storage;
  out->shape = impl.shape;
  out->strides = impl.strides;
  out->offset = impl.offset;
  out->dtype = impl.dtype;
  return Tensor(std::move(out));
}

Tensor make_view(const Tensor& base, const Shape& shape, const Strides& strides, std::int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

// ---------------------------------------------------------------- views

Tensor Tensor::view(const Shape& requested) const {
  const Shape shape = infer_shape(requested, numel(), "view", this->shape());
  const auto strides = view_strides(this->shape(), this->strides(), shape);
  BASIN_CHECK(strides.has_value(), "view: a tensor of shape ", shape_str(this->shape()),
              " with these strides cannot be viewed as ", shape_str(shape), "; use reshape() to copy");
  const Shape input_shape = this->shape();
  return record("view", make_view(*this, shape, *strides, storage_offset()), {*this},
                [input_shape](const Tensor& g, const GradNeeds&) { return TensorList{g.reshape(input_shape)}; });
}

Tensor Tensor::reshape(const Shape& requested) const {
  const Shape shape = infer_shape(requested, numel(), "reshape", this->shape());
  if (view_strides(this->shape(), this->strides(), shape)) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::flatten(std::int64_t start_dim, std::int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  const std::int64_t start = wrap_dim(start_dim, dim(), "flatten");
  const std::int64_t end = wrap_dim(end_dim, dim(), "flatten");
  BASIN_CHECK(start <= end, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim);
  Shape shape(this->shape().begin(), this->shape().begin() + start);
  std::int64_t merged = 1;
  for (std::int64_t d = start; d <= end; ++d) merged *= this->shape()[d];
  shape.push_back(merged);
  shape.insert(shape.end(), this->shape().begin() + end + 1, this->shape().end());
  return reshape(shape);
}

Tensor Tensor::slice(std::int64_t dim_, std::int64_t start, std::int64_t end, std::int64_t step) const {
  const std::int64_t d = wrap_dim(dim_, dim(), "slice");
  const std::int64_t size = shape()[d];
  BASIN_CHECK(step > 0, "slice: step must be positive, got ", step);
  // Python semantics: negative bounds count from the end, out-of-range bounds clamp.
  if (start < 0) start += size;
  if (end < 0) end += size;
  start = std::clamp<std::int64_t>(start, 0, size);
  end = std::clamp<std::int64_t>(end, start, size);
  Shape shape = this->shape();
  Strides strides = this->strides();
  shape[d] = (end - start + step - 1) / step;
  strides[d] *= step;
  const Shape input_shape = this->shape();
  return record("slice", make_view(*this, shape, strides, storage_offset() + start * this->strides()[d]), {*this},
                [input_shape, d, start, end, step](const Tensor& g, const GradNeeds&) {
                  Tensor grad_input = zeros(input_shape, TensorOptions(g.dtype()).device(g.device()));
                  grad_input.slice(d, start, end, step).copy_(g);
                  return TensorList{grad_input};
                });
}

Tensor Tensor::select(std::int64_t dim_, std::int64_t index) const {
  const std::int64_t d = wrap_dim(dim_, dim(), "select");
  const std::int64_t size = shape()[d];
  BASIN_CHECK(index >= -size && index < size, "select: index ", index, " is out of range for dimension ", d,
              " of size ", size);
  if (index < 0) index += size;
  return slice(d, index, index + 1).squeeze(d);
}

Tensor Tensor::transpose(std::int64_t dim0, std::int64_t dim1) const {
  std::vector<std::int64_t> order(static_cast<std::size_t>(dim()));
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[wrap_dim(dim0, dim(), "transpose")], order[wrap_dim(dim1, dim(), "transpose")]);
  return permute(order);
}

Tensor Tensor::t() const {
  BASIN_CHECK(dim() == 2, "t: expects a 2-D tensor, got shape ", shape_str(shape()));
  return transpose(0, 1);
}

Tensor Tensor::permute(const std::vector<std::int64_t>& dims) const {
  BASIN_CHECK(static_cast<std::int64_t>(dims.size()) == dim(), "permute: got ", dims.size(),
              " dimensions for a tensor of shape ", shape_str(shape()));
  Shape shape(dims.size());
  Strides strides(dims.size());
  std::vector<std::int64_t> inverse(dims.size(), -1);
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const std::int64_t d = wrap_dim(dims[i], dim(), "permute");
    BASIN_CHECK(inverse[d] < 0, "permute: dimension ", d, " appears twice");
    inverse[d] = static_cast<std::int64_t>(i);
    shape[i] = this->shape()[d];
    strides[i] = this->strides()[d];
  }
  return record("permute", make_view(*this, shape, strides, storage_offset()), {*this},
                [inverse](const Tensor& g, const GradNeeds&) { return TensorList{g.permute(inverse)}; });
}

Tensor Tensor::expand(const Shape& target) const {
  BASIN_CHECK(target.size() >= shape().size(), "expand: cannot expand ", shape_str(shape()), " to ",
              shape_str(target), " (fewer dimensions)");
  const std::size_t lead = target.size() - shape().size();
  Strides strides(target.size(), 0);
  for (std::size_t d = 0; d < target.size(); ++d) {
    if (d < lead) continue;  // new leading dims repeat the whole tensor: stride 0
    const std::int64_t size = shape()[d - lead];
    BASIN_CHECK(size == target[d] || size == 1, "expand: cannot expand ", shape_str(shape()), " to ",
                shape_str(target));
    strides[d] = size == target[d] ? this->strides()[d - lead] : 0;
  }
  if (target == shape()) return *this;
  const Shape input_shape = shape();
  return record("expand", make_view(*this, target, strides, storage_offset()), {*this},
                [input_shape](const Tensor& g, const GradNeeds&) { return TensorList{sum_to(g, input_shape)}; });
}

Tensor Tensor::unsqueeze(std::int64_t dim_) const {
  const std::int64_t d = wrap_dim(dim_, dim() + 1, "unsqueeze");
  Shape shape = this->shape();
  Strides strides = this->strides();
  const std::int64_t stride = d < dim() ? shape[d] * strides[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  return record("unsqueeze", make_view(*this, shape, strides, storage_offset()), {*this},
                [d](const Tensor& g, const GradNeeds&) { return TensorList{g.squeeze(d)}; });
}

Tensor Tensor::squeeze(std::int64_t dim_) const {
  const std::int64_t d = wrap_dim(dim_, dim(), "squeeze");
  if (shape()[d] != 1) return *this;  // PyTorch semantics: squeezing a non-1 dim is a no-op
  Shape shape = this->shape();
  Strides strides = this->strides();
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return record("squeeze", make_view(*this, shape, strides, storage_offset()), {*this},
                [d](const Tensor& g, const GradNeeds&) { return TensorList{g.unsqueeze(d)}; });
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

// ---------------------------------------------------------------- copies and conversion

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), TensorOptions(dtype()).device(device()));
  {
    NoGradGuard no_grad;
    out.copy_(*this);
  }
  return record("clone", out, {*this}, [](const Tensor& g, const GradNeeds&) { return TensorList{g}; });
}

Tensor Tensor::to(Device target) const {
  if (device() == target) return *this;
  Tensor out = empty(shape(), TensorOptions(dtype()).device(target));
  {
    NoGradGuard no_grad;
    out.copy_(*this);
  }
  const Device source = device();
  return record("to_device", out, {*this},
                [source](const Tensor& g, const GradNeeds&) { return TensorList{g.to(source)}; });
}

Tensor Tensor::to(DType target) const {
  if (dtype() == target) return *this;
  Tensor out = empty(shape(), TensorOptions(target).device(device()));
  {
    NoGradGuard no_grad;
    out.copy_(*this);
  }
  if (!is_floating(target) || !is_floating(dtype())) return out;  // integer results carry no gradient
  const DType source = dtype();
  return record("to_dtype", out, {*this},
                [source](const Tensor& g, const GradNeeds&) { return TensorList{g.to(source)}; });
}

Tensor& Tensor::copy_(const Tensor& src) {
  BASIN_CHECK(src.defined(), "copy_: source is undefined");
  const Tensor source = src.shape() == shape() ? src : src.detach().expand(shape());
  if (source.device() == device()) {
    BASIN_RUN_KERNEL(device(), copy, arg(*this), arg(source));
    return *this;
  }
#if BASIN_WITH_CUDA
  // Across devices: move a contiguous block of the source's dtype with one
  // memcpy, then convert and scatter on the destination device.
  const Tensor packed = source.detach().contiguous();
  const std::size_t nbytes = static_cast<std::size_t>(packed.numel()) * dtype_size(packed.dtype());
  Tensor staged = empty(shape(), TensorOptions(packed.dtype()).device(device()));
  if (device().is_cuda()) {
    kernels::cuda::copy_host_to_device(staged.data_ptr(), packed.data_ptr(), nbytes);
  } else {
    kernels::cuda::copy_device_to_host(staged.data_ptr(), packed.data_ptr(), nbytes);
  }
  return copy_(staged);
#else
  BASIN_FAIL("copy_: cannot copy between ", source.device().str(), " and ", device().str(),
             " without a CUDA backend");
#endif
}

Tensor& Tensor::fill_(double value) {
  BASIN_RUN_KERNEL(device(), fill, arg(*this), value);
  return *this;
}

double Tensor::item() const {
  BASIN_CHECK(numel() == 1, "item: the tensor must hold exactly one element, but it has shape ",
              shape_str(shape()));
  return to_vector<double>()[0];
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  const Tensor host = detach().to(Device::cpu()).to(dtype_of<T>()).contiguous();
  const T* data = host.data<T>();
  return std::vector<T>(data, data + host.numel());
}

template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<std::int32_t> Tensor::to_vector<std::int32_t>() const;
template std::vector<std::int64_t> Tensor::to_vector<std::int64_t>() const;
template std::vector<std::uint8_t> Tensor::to_vector<std::uint8_t>() const;

// ---------------------------------------------------------------- printing

namespace {

// Prints like PyTorch: nested brackets, long dims summarized with "...".
void print_values(std::ostream& out, const std::vector<double>& values, const Shape& shape, std::size_t dim,
                  std::int64_t offset, bool floating, int indent) {
  constexpr std::int64_t kEdge = 3;
  const std::int64_t size = shape[dim];
  const std::int64_t block = shape_numel(Shape(shape.begin() + dim + 1, shape.end()));
  const bool summarize = size > 2 * kEdge + 1 && values.size() > 1000;
  out << '[';
  for (std::int64_t i = 0; i < size; ++i) {
    if (summarize && i == kEdge) {
      out << (dim + 1 == shape.size() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = size - kEdge;
    }
    if (dim + 1 == shape.size()) {
      const double v = values[offset + i];
      if (floating) {
        out << std::fixed << std::setprecision(4) << v;
      } else {
        out << static_cast<long long>(v);
      }
    } else {
      print_values(out, values, shape, dim + 1, offset + i * block, floating, indent + 1);
    }
    if (i + 1 < size) out << (dim + 1 == shape.size() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  out << ']';
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream out;
  out << "tensor(";
  const std::vector<double> values = to_vector<double>();
  if (dim() == 0) {
    out << std::fixed << std::setprecision(is_floating(dtype()) ? 4 : 0) << values[0];
  } else {
    print_values(out, values, shape(), 0, 0, is_floating(dtype()), 7);
  }
  out << ", shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype()) << ", device=" << device().str();
  if (requires_grad()) out << ", requires_grad";
  out << ')';
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const Tensor& tensor) { return out << tensor.str(); }

// ---------------------------------------------------------------- factories

Tensor empty(const Shape& shape, const TensorOptions& options) {
  for (std::int64_t size : shape) BASIN_CHECK(size >= 0, "empty: negative size in shape ", shape_str(shape));
  BASIN_CHECK(!options.requires_grad() || is_floating(options.dtype()),
              "only floating tensors can require gradients, not ", dtype_name(options.dtype()));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<std::size_t>(shape_numel(shape)) * dtype_size(options.dtype()),
                                            options.device());
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = options.dtype();
  impl->requires_grad = options.requires_grad();
  return Tensor(std::move(impl));
}

Tensor full(const Shape& shape, double value, const TensorOptions& options) {
  Tensor out = empty(shape, options);
  out.fill_(value);
  return out;
}

Tensor zeros(const Shape& shape, const TensorOptions& options) { return full(shape, 0.0, options); }
Tensor ones(const Shape& shape, const TensorOptions& options) { return full(shape, 1.0, options); }

Tensor arange(double start, double end, double step, const TensorOptions& options) {
  BASIN_CHECK(step != 0.0, "arange: step must not be zero");
  const auto count = static_cast<std::int64_t>(std::max(0.0, std::ceil((end - start) / step)));
  std::vector<double> values(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) values[i] = start + static_cast<double>(i) * step;
  Tensor host = from_vector(values, {count});
  return host.to(options.dtype()).to(options.device());
}

Tensor arange(std::int64_t end, const TensorOptions& options) {
  return arange(0.0, static_cast<double>(end), 1.0, options);
}

Tensor rand(const Shape& shape, const TensorOptions& options, double low, double high) {
  BASIN_CHECK(is_floating(options.dtype()), "rand: dtype must be floating, got ", dtype_name(options.dtype()));
  Tensor out = empty(shape, options);
  Generator& gen = default_generator();
  const kernels::PhiloxDraw draw{gen.seed(), gen.reserve(out.numel())};
  BASIN_RUN_KERNEL(out.device(), uniform, arg(out), draw, low, high);
  return out;
}

Tensor randn(const Shape& shape, const TensorOptions& options, double mean, double stddev) {
  BASIN_CHECK(is_floating(options.dtype()), "randn: dtype must be floating, got ", dtype_name(options.dtype()));
  Tensor out = empty(shape, options);
  Generator& gen = default_generator();
  const kernels::PhiloxDraw draw{gen.seed(), gen.reserve(out.numel())};
  BASIN_RUN_KERNEL(out.device(), normal, arg(out), draw, mean, stddev);
  return out;
}

Tensor from_blob(const void* data, const Shape& shape, DType dtype, Device device) {
  Tensor host = empty(shape, TensorOptions(dtype));
  // An empty std::vector may hand over a null pointer, which memcpy must never see.
  if (host.numel() > 0) std::memcpy(host.data_ptr(), data, static_cast<std::size_t>(host.numel()) * dtype_size(dtype));
  return host.to(device);
}

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, const TensorOptions& options) {
  BASIN_CHECK(static_cast<std::int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
              " values do not fill shape ", shape_str(shape));
  Tensor out = from_blob(values.data(), shape, dtype_of<T>()).to(options.dtype()).to(options.device());
  if (options.requires_grad()) out.requires_grad_(true);
  return out;
}

template Tensor from_vector(const std::vector<float>&, const Shape&, const TensorOptions&);
template Tensor from_vector(const std::vector<double>&, const Shape&, const TensorOptions&);
template Tensor from_vector(const std::vector<std::int32_t>&, const Shape&, const TensorOptions&);
template Tensor from_vector(const std::vector<std::int64_t>&, const Shape&, const TensorOptions&);
template Tensor from_vector(const std::vector<std::uint8_t>&, const Shape&, const TensorOptions&);

Tensor empty_like(const Tensor& like) { return empty(like.shape(), TensorOptions(like.dtype()).device(like.device())); }
Tensor zeros_like(const Tensor& like) { return zeros(like.shape(), TensorOptions(like.dtype()).device(like.device())); }
Tensor ones_like(const Tensor& like) { return ones(like.shape(), TensorOptions(like.dtype()).device(like.device())); }
Tensor full_like(const Tensor& like, double value) {
  return full(like.shape(), value, TensorOptions(like.dtype()).device(like.device()));
}

}  // namespace basin
