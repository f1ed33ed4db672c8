// Random fills from Philox (kernels/philox.h). out is contiguous and floating.
// The CPU and CUDA kernels compute the same formula per element, so a seed
// gives the same tensor on both devices (up to the last bit of log/cos).
#pragma once

#include <cstdint>

#include "kernels/tensor_arg.h"

namespace basin::kernels {

struct PhiloxDraw {
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;  // first counter of this draw
};

namespace reference {
void uniform(const TensorArg& out, PhiloxDraw draw, double low, double high);
void normal(const TensorArg& out, PhiloxDraw draw, double mean, double stddev);
}  // namespace reference

namespace cuda {
void uniform(const TensorArg& out, PhiloxDraw draw, double low, double high);
void normal(const TensorArg& out, PhiloxDraw draw, double mean, double stddev);
}  // namespace cuda

}  // namespace basin::kernels
