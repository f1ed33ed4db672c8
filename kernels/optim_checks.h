// Argument checks shared by the CPU and CUDA optimizer kernels
// (kernels/optim.h): both sides take the same flat arena buffers and reject
// the same mistakes with the same messages. Each entry point's checks are
// written here once; kernels/reference/optim.cpp and kernels/cuda/optim.cu call
// check_<entry point>() before any work.
#pragma once

#include <cstdint>

#include "core/error.h"
#include "kernels/optim.h"

namespace basin::kernels::optim_checks {

namespace detail {

// A flat arena buffer: contiguous, floating, and as long and of the same dtype as `like`.
inline void check_flat(const char* op, const char* name, const TensorArg& a, const TensorArg& like) {
  BASIN_CHECK(a.data != nullptr || a.numel == 0, op, ": ", name, " is missing");
  BASIN_CHECK(a.contiguous, op, ": ", name, " must be contiguous");
  BASIN_CHECK(a.dtype == like.dtype, op, ": ", name, " is ", dtype_name(a.dtype), " but the gradients are ",
              dtype_name(like.dtype));
  BASIN_CHECK(a.numel == like.numel, op, ": ", name, " has ", a.numel, " elements but the gradients have ",
              like.numel);
}

inline void check_float64(const char* op, const char* name, const TensorArg& a, std::int64_t at_least) {
  BASIN_CHECK(a.data != nullptr, op, ": ", name, " is missing");
  BASIN_CHECK(a.dtype == DType::Float64 && a.contiguous && a.numel >= at_least, op, ": ", name,
              " must be a contiguous float64 buffer of at least ", at_least, " elements");
}

inline void check_sam(const char* op, const TensorArg& grads, const SamArgs& args) {
  BASIN_CHECK(grads.data != nullptr || grads.numel == 0, op, ": grads is missing");
  BASIN_CHECK(is_floating(grads.dtype), op, ": expected floating gradients, got ", dtype_name(grads.dtype));
  BASIN_CHECK(grads.contiguous, op, ": grads must be contiguous");
  BASIN_CHECK(!args.adaptive || (args.adaptive_end >= 0 && args.adaptive_end <= grads.numel), op,
              ": adaptive_end ", args.adaptive_end, " is outside the arena of ", grads.numel, " elements");
}

}  // namespace detail

inline void check_sam_norm(const TensorArg& scale, const TensorArg& partials, const TensorArg& params,
                           const TensorArg& grads, const SamArgs& args) {
  detail::check_sam("sam_norm", grads, args);
  if (args.adaptive) detail::check_flat("sam_norm", "params", params, grads);
  detail::check_float64("sam_norm", "scale", scale, kSamScaleSlots);
  detail::check_float64("sam_norm", "partials", partials, kNormPartials);
}

inline void check_sam_perturb(const TensorArg& params, const TensorArg& saved, const TensorArg& grads,
                              const TensorArg& scale, const SamArgs& args) {
  detail::check_sam("sam_perturb", grads, args);
  detail::check_flat("sam_perturb", "params", params, grads);
  detail::check_flat("sam_perturb", "saved", saved, grads);
  detail::check_float64("sam_perturb", "scale", scale, kSamScaleSlots);
}

// saved is checked only when given (data != nullptr), the momentum buffer only
// when args.momentum != 0.
inline void check_sgd_update(const TensorArg& params, const TensorArg& saved, const TensorArg& grads,
                             const TensorArg& momentum, const SgdArgs& args) {
  BASIN_CHECK(is_floating(grads.dtype) && grads.contiguous, "sgd_update: grads must be contiguous and floating");
  detail::check_flat("sgd_update", "params", params, grads);
  if (saved.data != nullptr) detail::check_flat("sgd_update", "saved", saved, grads);
  if (args.momentum != 0.0) detail::check_flat("sgd_update", "the momentum buffer", momentum, grads);
}

}  // namespace basin::kernels::optim_checks
