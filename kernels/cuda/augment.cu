// CUDA gather + augmentation (the math is in kernels/augment.h).
//
// The whole dataset sits on the GPU as uint8, so a training batch costs this
// one launch: no host work per image and a quarter of the bytes a float copy
// of the dataset would hold.
//
// Grid: blockIdx.x is the output sample, blockIdx.y a chunk of its C*H*W
// values. Every thread of a sample recomputes the sample's two Philox blocks
// (about a hundred integer instructions) instead of sharing them through
// shared memory: that keeps the kernel free of barriers, and a thread then
// writes a few values, so the redundant draws cost little. Neighbouring
// threads take neighbouring columns, so the uint8 reads of a shifted or
// flipped row still fall in one or two cache lines and the float32 writes are
// fully coalesced. Element decoding is done in 32-bit integers (the launcher
// checks that an image has fewer than 2^31 values): 64-bit division is a long
// instruction sequence on the GPU.
#include <limits>

#include "kernels/augment.h"
#include "kernels/cuda/launch.cuh"

namespace basin::kernels::cuda {

namespace {

constexpr int kBlockSize = 256;
constexpr int kValuesPerThread = 4;  // the y-chunks are sized so each thread writes about this many
constexpr int kMaxChunks = 65535;    // gridDim.y limit

__global__ void augment_kernel(float* __restrict__ out, std::int64_t* __restrict__ out_labels,
                               const std::uint8_t* __restrict__ images, const std::int64_t* __restrict__ labels,
                               const std::int64_t* __restrict__ indices, AugmentParams p) {
  const std::int64_t b = blockIdx.x;
  const int width = static_cast<int>(p.width);
  const int plane = static_cast<int>(p.height * p.width);
  const int image_size = static_cast<int>(p.channels) * plane;
  const std::int64_t i = indices != nullptr ? indices[b] : b;
  const bool valid = i >= 0 && i < p.count;
  float* sample = out + b * image_size;
  const int first = blockIdx.y * blockDim.x + threadIdx.x;
  const int step = gridDim.y * blockDim.x;

  if (out_labels != nullptr && blockIdx.y == 0 && threadIdx.x == 0) out_labels[b] = valid ? labels[i] : -1;
  if (!valid) {
    for (int e = first; e < image_size; e += step) sample[e] = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  const AugmentChoice choice = augment_choice(p, b);
  const std::uint8_t* image = images + i * image_size;
  for (int e = first; e < image_size; e += step) {
    const int c = e / plane;
    const int rest = e - c * plane;
    const int row = rest / width;
    const int col = rest - row * width;
    sample[e] = augment_value(p, choice, image, c, row, col);
  }
}

}  // namespace

void augment(const TensorArg& out, const TensorArg& out_labels, const TensorArg& images, const TensorArg& labels,
             const TensorArg& indices, const AugmentParams& params) {
  if (params.batch == 0) return;
  const long long image_size = params.channels * params.height * params.width;
  BASIN_CHECK(image_size > 0 && image_size < (1LL << 31), "augment: an image of ", image_size,
              " values is outside what the CUDA kernel indexes (1 to 2^31 - 1)");
  BASIN_CHECK(params.batch < (1LL << 31), "augment: batch of ", params.batch, " samples is too large for one launch");
  const long long per_block = static_cast<long long>(kBlockSize) * kValuesPerThread;
  const long long chunks = (image_size + per_block - 1) / per_block;
  const dim3 grid(static_cast<unsigned>(params.batch),
                  static_cast<unsigned>(chunks < kMaxChunks ? chunks : kMaxChunks));
  launch(augment_kernel, grid, kBlockSize, out.ptr<float>(), out_labels.ptr<std::int64_t>(), images.ptr<std::uint8_t>(),
         labels.ptr<std::int64_t>(), indices.ptr<std::int64_t>(), params);
}

}  // namespace basin::kernels::cuda
