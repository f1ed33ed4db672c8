// Batch normalization: check, compute the per-channel statistics (or take the
// running ones), normalize, record the backward. The math lives in
// kernels/batchnorm.h; this file decides what is saved and which kernels run.
//
// What backward keeps: the input x (a handle to the tensor the caller already
// holds, so no new memory) and two [C] vectors, mean and invstd. The
// normalized input xhat = (x - mean) * invstd is not stored: it would cost a
// second activation-sized buffer per layer, while recomputing it is one
// subtract and one multiply inside kernels that are bound by memory traffic
// anyway. y cannot stand in for it either: recovering xhat from y divides by
// the weight, which may be zero.
#include "core/batchnorm.h"

#include "core/autograd.h"
#include "core/dispatch.h"
#include "kernels/batchnorm.h"

namespace basin {

namespace {

constexpr const char* kOp = "batch_norm";

// A per-channel vector (weight, bias, running statistics) must be [C] and sit
// beside the input with the input's dtype.
void check_channel_vector(const Tensor& input, const Tensor& t, const char* name) {
  if (!t.defined()) return;
  const std::int64_t channels = input.size(1);
  BASIN_CHECK(t.device() == input.device(), kOp, ": ", name, " is on ", t.device().str(), " but input is on ",
              input.device().str(), "; move them with .to(device) first");
  BASIN_CHECK(t.dtype() == input.dtype(), kOp, ": ", name, " is ", dtype_name(t.dtype()), " but input is ",
              dtype_name(input.dtype()));
  BASIN_CHECK(t.dim() == 1, kOp, ": input has ", channels, " channels, ", name, " is ", shape_str(t.shape()),
              " (expected [", channels, "])");
  BASIN_CHECK(t.size(0) == channels, kOp, ": input has ", channels, " channels, ", name, " has ", t.size(0));
}

bool wants_grad(const Tensor& t) { return t.defined() && t.requires_grad(); }

}  // namespace

Tensor batch_norm(const Tensor& input, const Tensor& weight, const Tensor& bias, BatchNormState& state,
                  bool training, bool update_running_stats) {
  BASIN_CHECK(input.defined(), kOp, ": input is undefined");
  check_same_floating_dtype(kOp, {&input});
  BASIN_CHECK(input.dim() == 4, kOp, ": input must be 4-D [N, C, H, W], got ", shape_str(input.shape()));
  check_channel_vector(input, weight, "weight");
  check_channel_vector(input, bias, "bias");
  check_channel_vector(input, state.running_mean, "running_mean");
  check_channel_vector(input, state.running_var, "running_var");
  const bool has_running = state.running_mean.defined();
  BASIN_CHECK(has_running == state.running_var.defined(), kOp,
              ": running_mean and running_var must be given together or not at all");
  BASIN_CHECK(training || has_running, kOp, ": eval mode needs running_mean and running_var");

  const kernels::BatchNormShape shape{input.size(0), input.size(1), input.size(2) * input.size(3)};
  const std::int64_t per_channel = shape.batch * shape.spatial;
  // With one value the biased variance is 0 and the unbiased one undefined.
  BASIN_CHECK(!training || per_channel > 1, kOp, ": expected more than 1 value per channel when training, got input ",
              shape_str(input.shape()));

  const Device device = input.device();
  const TensorOptions options = TensorOptions(input.dtype()).device(device);
  const Tensor x = input.detach().contiguous();
  const Tensor w = weight.defined() ? weight.detach().contiguous() : Tensor();
  const Tensor b = bias.defined() ? bias.detach().contiguous() : Tensor();
  const bool recording = grad_mode_enabled() && (wants_grad(input) || wants_grad(weight) || wants_grad(bias));

  Tensor mean;
  Tensor invstd = empty({shape.channels}, options);
  if (training) {
    mean = empty({shape.channels}, options);
    // The running statistics are written in place by the statistics kernel,
    // on the device, so the host never waits for the batch mean.
    const bool update = update_running_stats && has_running;
    if (update) {
      BASIN_CHECK(state.running_mean.is_contiguous() && state.running_var.is_contiguous(), kOp,
                  ": running_mean and running_var must be contiguous to be updated in place");
    }
    const kernels::TensorArg running_mean = update ? arg(state.running_mean) : kernels::TensorArg{};
    const kernels::TensorArg running_var = update ? arg(state.running_var) : kernels::TensorArg{};
    BASIN_RUN_KERNEL(device, batch_norm_stats, arg(mean), arg(invstd), arg(x), shape, state.eps, running_mean,
                     running_var, state.momentum);
  } else {
    const Tensor running_var = state.running_var.detach().contiguous();
    BASIN_RUN_KERNEL(device, batch_norm_invstd, arg(invstd), arg(running_var), state.eps);
    // A training step may move the running mean in place before this graph's
    // backward runs, so a recorded graph keeps its own copy of the value used.
    mean = recording ? state.running_mean.detach().clone() : state.running_mean.detach().contiguous();
  }

  Tensor out = empty(input.shape(), options);
  BASIN_RUN_KERNEL(device, batch_norm_normalize, arg(out), arg(x), arg(mean), arg(invstd), optional_arg(w),
                   optional_arg(b), shape);
  if (!recording) return out;

  return record(kOp, out, {input, weight, bias},
                [x, w, mean, invstd, shape, training](const Tensor& g, const GradNeeds& needs) {
                  const Tensor dy = g.contiguous();
                  const TensorOptions vector_options = TensorOptions(dy.dtype()).device(dy.device());
                  // Training needs both sums for dx; eval only for the weight and bias gradients.
                  Tensor sum_dy, sum_dy_xhat;
                  if ((training && needs[0]) || needs[1] || needs[2]) {
                    sum_dy = empty({shape.channels}, vector_options);
                    sum_dy_xhat = empty({shape.channels}, vector_options);
                    BASIN_RUN_KERNEL(dy.device(), batch_norm_backward_reduce, arg(sum_dy), arg(sum_dy_xhat), arg(dy),
                                     arg(x), arg(mean), arg(invstd), shape);
                  }
                  Tensor dx;
                  if (needs[0]) {
                    dx = empty_like(dy);
                    // Eval passes no sums: the kernel then computes dy * weight * invstd.
                    const kernels::TensorArg s1 = training ? arg(sum_dy) : kernels::TensorArg{};
                    const kernels::TensorArg s2 = training ? arg(sum_dy_xhat) : kernels::TensorArg{};
                    BASIN_RUN_KERNEL(dy.device(), batch_norm_backward_input, arg(dx), arg(dy), arg(x), arg(mean),
                                     arg(invstd), optional_arg(w), s1, s2, shape);
                  }
                  return TensorList{dx, needs[1] ? sum_dy_xhat : Tensor(), needs[2] ? sum_dy : Tensor()};
                });
}

}  // namespace basin
