// Argument checks shared by the CPU and CUDA optimizer kernels
// (kernels/optim.h): both sides take the same flat arena buffers and reject
// the same mistakes with the same messages.
#pragma once

#include <cstdint>

#include "core/error.h"
#include "kernels/optim.h"

namespace basin::kernels::optim_checks {

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

}  // namespace basin::kernels::optim_checks
