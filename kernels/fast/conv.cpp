// CPU engine convolutions: oneDNN (kernels/conv.h states what they compute).
//
// basin's tensors are plain NCHW and KCRS; oneDNN's fast convolutions want
// blocked layouts (channels in groups of 8 or 16). Each primitive is created
// with "any" layouts, so oneDNN picks the layout it is fastest in, and a call
// reorders its operands into that layout and its result back out of it: the
// same exchange PyTorch makes around oneDNN for NCHW tensors. A primitive is
// made once per shape and direction, then kept (Plan), like the cuDNN plans.
#include "kernels/conv.h"

#if BASIN_WITH_ONEDNN
#include <array>
#include <cstring>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#endif

#include "core/error.h"

namespace basin::kernels::fast {

#if BASIN_WITH_ONEDNN
namespace {

using dnnl::memory;

enum class Direction { forward, backward_input, backward_weight };

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

memory::desc plain(const memory::dims& dims, memory::format_tag tag) {
  return memory::desc(dims, memory::data_type::f32, tag);
}

memory::desc any(const memory::dims& dims) { return memory::desc(dims, memory::data_type::f32, memory::format_tag::any); }

// The three tensors of a convolution, whichever direction reads or writes
// them: x the input activation (or its gradient), w the weight (or its
// gradient), y the output activation (or its gradient).
struct Plan {
  dnnl::primitive primitive;
  memory::desc x, w, y;  // the layouts the primitive works in
};

struct Geometry {
  memory::dims x, w, y, strides, padding_l, padding_r;
};

Geometry geometry(const Conv2dShape& g) {
  // padding_r makes the output size come out as p and q: the taps past the
  // last full window are dropped, as in the floor of Conv2dShape's formula.
  return {{g.n, g.c, g.h, g.w},
          {g.k, g.c, g.r, g.s},
          {g.n, g.k, g.p, g.q},
          {g.stride_h, g.stride_w},
          {g.pad_h, g.pad_w},
          {(g.p - 1) * g.stride_h + g.r - g.h - g.pad_h, (g.q - 1) * g.stride_w + g.s - g.w - g.pad_w}};
}

dnnl::convolution_forward::primitive_desc forward_desc(const Geometry& d, bool has_bias) {
  const memory::desc bias = has_bias ? any({d.w[0]}) : memory::desc();
  const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                             any(d.x), any(d.w), bias, any(d.y), d.strides, d.padding_l,
                                             d.padding_r);
  return {desc, cpu_engine()};
}

Plan make_plan(Direction direction, const Conv2dShape& g, bool has_bias) {
  const Geometry d = geometry(g);
  const auto forward = forward_desc(d, has_bias);
  switch (direction) {
    case Direction::forward:
      return {dnnl::convolution_forward(forward), forward.src_desc(), forward.weights_desc(), forward.dst_desc()};
    case Direction::backward_input: {
      const dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, any(d.x), any(d.w),
                                                       any(d.y), d.strides, d.padding_l, d.padding_r);
      const dnnl::convolution_backward_data::primitive_desc pd(desc, cpu_engine(), forward);
      return {dnnl::convolution_backward_data(pd), pd.diff_src_desc(), pd.weights_desc(), pd.diff_dst_desc()};
    }
    case Direction::backward_weight: {
      const dnnl::convolution_backward_weights::desc desc(dnnl::algorithm::convolution_direct, any(d.x), any(d.w),
                                                          any(d.y), d.strides, d.padding_l, d.padding_r);
      const dnnl::convolution_backward_weights::primitive_desc pd(desc, cpu_engine(), forward);
      return {dnnl::convolution_backward_weights(pd), pd.src_desc(), pd.diff_weights_desc(), pd.diff_dst_desc()};
    }
  }
  BASIN_FAIL("conv2d: unknown direction");
}

using PlanKey = std::array<std::int64_t, 14>;

// Plans are made under the lock and executed under it too: oneDNN's
// primitives share a scratchpad per thread, and basin's host threads (the
// data loader) must not interleave two executions of one primitive.
std::mutex plans_mutex;

const Plan& plan_for(Direction direction, const Conv2dShape& g, bool has_bias) {
  static std::map<PlanKey, Plan> plans;
  const PlanKey key{static_cast<std::int64_t>(direction), has_bias, g.n, g.c, g.h, g.w, g.k, g.r, g.s,
                    g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.p};
  auto found = plans.find(key);
  if (found == plans.end()) found = plans.emplace(key, make_plan(direction, g, has_bias)).first;
  return found->second;
}

// A tensor the primitive reads: the caller's memory when its layout is the
// one the primitive wants, else a copy reordered into that layout.
memory input(const memory::desc& wanted, const memory::desc& user_desc, const void* data, dnnl::stream& stream) {
  memory user(user_desc, cpu_engine(), const_cast<void*>(data));
  if (wanted == user_desc) return user;
  memory staged(wanted, cpu_engine());
  dnnl::reorder(user, staged).execute(stream, user, staged);
  return staged;
}

// Runs one convolution: x, w and y in basin's plain layouts; `output` names
// which of the three the direction writes.
void run(Direction direction, const Conv2dShape& g, const void* bias, void* x, void* w, void* y) {
  const Geometry d = geometry(g);
  const memory::desc user_x = plain(d.x, memory::format_tag::nchw);
  const memory::desc user_w = plain(d.w, memory::format_tag::oihw);
  const memory::desc user_y = plain(d.y, memory::format_tag::nchw);
  std::lock_guard<std::mutex> lock(plans_mutex);
  const Plan& plan = plan_for(direction, g, bias != nullptr);
  dnnl::stream stream(cpu_engine());
  // The output: written in place when its layout is the plain one, else
  // staged and reordered back.
  const memory::desc& out_wanted = direction == Direction::forward          ? plan.y
                                   : direction == Direction::backward_input ? plan.x
                                                                            : plan.w;
  const memory::desc& out_user = direction == Direction::forward          ? user_y
                                 : direction == Direction::backward_input ? user_x
                                                                          : user_w;
  void* out_data = direction == Direction::forward ? y : direction == Direction::backward_input ? x : w;
  memory out_user_memory(out_user, cpu_engine(), out_data);
  memory out = out_wanted == out_user ? out_user_memory : memory(out_wanted, cpu_engine());

  std::unordered_map<int, memory> args;
  switch (direction) {
    case Direction::forward:
      args = {{DNNL_ARG_SRC, input(plan.x, user_x, x, stream)},
              {DNNL_ARG_WEIGHTS, input(plan.w, user_w, w, stream)},
              {DNNL_ARG_DST, out}};
      if (bias != nullptr) args.emplace(DNNL_ARG_BIAS, memory(plain({g.k}, memory::format_tag::x), cpu_engine(),
                                                                 const_cast<void*>(bias)));
      break;
    case Direction::backward_input:
      args = {{DNNL_ARG_DIFF_DST, input(plan.y, user_y, y, stream)},
              {DNNL_ARG_WEIGHTS, input(plan.w, user_w, w, stream)},
              {DNNL_ARG_DIFF_SRC, out}};
      break;
    case Direction::backward_weight:
      args = {{DNNL_ARG_DIFF_DST, input(plan.y, user_y, y, stream)},
              {DNNL_ARG_SRC, input(plan.x, user_x, x, stream)},
              {DNNL_ARG_DIFF_WEIGHTS, out}};
      break;
  }
  plan.primitive.execute(stream, args);
  if (out != out_user_memory) dnnl::reorder(out, out_user_memory).execute(stream, out, out_user_memory);
  stream.wait();
}

// oneDNN reports failure as dnnl::error; basin reports it as basin::Error
// naming the convolution.
template <class Body>
void with_onednn_errors(const char* op, const Conv2dShape& g, Body&& body) {
  try {
    body();
  } catch (const dnnl::error& e) {
    BASIN_FAIL(op, ": oneDNN failed (", e.what(), ", status ", static_cast<int>(e.status), ") for input [", g.n,
               ", ", g.c, ", ", g.h, ", ", g.w, "], weight [", g.k, ", ", g.c, ", ", g.r, ", ", g.s, "], stride (",
               g.stride_h, ", ", g.stride_w, "), padding (", g.pad_h, ", ", g.pad_w, ")");
  }
}

}  // namespace
#endif

void conv2d_forward(DType dtype, const Conv2dShape& shape, void* out, const void* input, const void* weight,
                    const void* bias) {
#if BASIN_WITH_ONEDNN
  if (dtype == DType::Float32) {
    if (shape.n == 0) return;
    with_onednn_errors("conv2d", shape, [&] {
      run(Direction::forward, shape, bias, const_cast<void*>(input), const_cast<void*>(weight), out);
    });
    return;
  }
#endif
  reference::conv2d_forward(dtype, shape, out, input, weight, bias);
}

void conv2d_backward_input(DType dtype, const Conv2dShape& shape, void* grad_input, const void* grad_out,
                           const void* weight) {
#if BASIN_WITH_ONEDNN
  if (dtype == DType::Float32) {
    if (shape.n == 0) return;
    with_onednn_errors("conv2d backward (input)", shape, [&] {
      run(Direction::backward_input, shape, nullptr, grad_input, const_cast<void*>(weight),
          const_cast<void*>(grad_out));
    });
    return;
  }
#endif
  reference::conv2d_backward_input(dtype, shape, grad_input, grad_out, weight);
}

void conv2d_backward_weight(DType dtype, const Conv2dShape& shape, void* grad_weight, const void* grad_out,
                            const void* input) {
#if BASIN_WITH_ONEDNN
  if (dtype == DType::Float32) {
    if (shape.n == 0) {
      std::memset(grad_weight, 0, static_cast<std::size_t>(shape.k * shape.c * shape.r * shape.s) * sizeof(float));
      return;
    }
    with_onednn_errors("conv2d backward (weight)", shape, [&] {
      run(Direction::backward_weight, shape, nullptr, const_cast<void*>(input), grad_weight,
          const_cast<void*>(grad_out));
    });
    return;
  }
#endif
  reference::conv2d_backward_weight(dtype, shape, grad_weight, grad_out, input);
}

}  // namespace basin::kernels::fast
