// Training-time image augmentation, fused with the batch gather: one pass
// reads uint8 source images and writes the float32 network input.
//
// Inputs: images uint8 [N, C, H, W] and labels int64 [N] (contiguous), and
// indices int64 [B] naming which image fills each output slot (absent: slot b
// takes image b). Outputs: out float32 [B, C, H, W] and out_labels int64 [B].
// Output (b, c, y, x), for source image i = indices[b]:
//
//   1. cutout (DeVries & Taylor 2017): if (y, x) lies in the sample's square,
//      out = 0, the value a mean-coloured pixel has after normalization
//      (their code zeroes the square after Normalize; so does this);
//   2. flip: x' = W - 1 - x when the sample is flipped, else x' = x;
//   3. crop from the zero-padded image: (sy, sx) = (y + dy, x' + dx) with
//      dy, dx in [-pad, pad]; v = images[i, c, sy, sx], or 0 outside the image
//      (torchvision's RandomCrop(padding=pad) then RandomHorizontalFlip);
//   4. normalize: out = (v - shift[c]) * scale[c] with shift = 255 * mean and
//      scale = 1 / (255 * std), so out = (v / 255 - mean) / std.
//
// Step 4 is a subtraction then a multiplication, each correctly rounded on
// both devices and with nothing for the compiler to fuse, so the CPU and CUDA
// kernels agree bit for bit.
//
// Random decisions: sample b reads Philox counters offset + 2b and
// offset + 2b + 1 (kernels/philox.h, key = draw.seed); augment_choice below is
// the one definition both kernels call. An index outside [0, N) makes that
// sample's output NaN and its label -1 rather than reading out of bounds.
#pragma once

#include <cstdint>

#include "kernels/philox.h"
#include "kernels/random.h"
#include "kernels/tensor_arg.h"

namespace basin::kernels {

inline constexpr int kAugmentMaxChannels = 4;
// Philox counters one output sample consumes.
inline constexpr std::uint64_t kAugmentCountersPerSample = 2;

struct AugmentParams {
  std::int64_t batch = 0;  // B, output samples
  std::int64_t count = 0;  // N, source images
  std::int64_t channels = 0, height = 0, width = 0;
  std::int64_t crop_padding = 0;  // 0: no crop
  bool flip = false;              // random horizontal flip with p = 0.5
  std::int64_t cutout = 0;        // side of the square; 0: no cutout
  double cutout_p = 1.0;          // probability that a sample gets its square
  float shift[kAugmentMaxChannels] = {};
  float scale[kAugmentMaxChannels] = {};
  PhiloxDraw draw;
};

// What one sample drew. The cutout square is [cut_y0, cut_y1) x [cut_x0, cut_x1),
// already clipped to the image; empty when the sample has none.
struct AugmentChoice {
  std::int64_t dy = 0, dx = 0;
  bool flip = false;
  std::int64_t cut_y0 = 0, cut_y1 = 0, cut_x0 = 0, cut_x1 = 0;
};

// An integer in [0, n) from 32 random bits by multiply-shift. Its bias,
// at most n / 2^32, is far below anything augmentation could notice.
BASIN_HOST_DEVICE inline std::int64_t augment_below(std::uint32_t bits, std::int64_t n) {
  return static_cast<std::int64_t>((static_cast<std::uint64_t>(bits) * static_cast<std::uint64_t>(n)) >> 32);
}

BASIN_HOST_DEVICE inline AugmentChoice augment_choice(const AugmentParams& p, std::int64_t b) {
  const std::uint64_t counter = p.draw.offset + kAugmentCountersPerSample * static_cast<std::uint64_t>(b);
  const PhiloxBlock r0 = philox4x32_10(counter, p.draw.seed);
  const PhiloxBlock r1 = philox4x32_10(counter + 1, p.draw.seed);
  AugmentChoice c;
  if (p.crop_padding > 0) {
    c.dy = augment_below(r0.v[0], 2 * p.crop_padding + 1) - p.crop_padding;
    c.dx = augment_below(r0.v[1], 2 * p.crop_padding + 1) - p.crop_padding;
  }
  c.flip = p.flip && (r0.v[2] >> 31) != 0;
  if (p.cutout > 0 && philox_unit(r0.v[3]) < p.cutout_p) {
    // The centre is any pixel; the square [centre - side/2, centre - side/2 + side)
    // is clipped at the border, so squares near an edge cover less.
    const std::int64_t cy = augment_below(r1.v[0], p.height);
    const std::int64_t cx = augment_below(r1.v[1], p.width);
    const std::int64_t y0 = cy - p.cutout / 2, x0 = cx - p.cutout / 2;
    c.cut_y0 = y0 < 0 ? 0 : y0;
    c.cut_x0 = x0 < 0 ? 0 : x0;
    c.cut_y1 = y0 + p.cutout > p.height ? p.height : y0 + p.cutout;
    c.cut_x1 = x0 + p.cutout > p.width ? p.width : x0 + p.cutout;
  }
  return c;
}

// Output (c, y, x) of one sample whose source image starts at `image`.
BASIN_HOST_DEVICE inline float augment_value(const AugmentParams& p, const AugmentChoice& c,
                                             const std::uint8_t* image, std::int64_t ch, std::int64_t y,
                                             std::int64_t x) {
  if (y >= c.cut_y0 && y < c.cut_y1 && x >= c.cut_x0 && x < c.cut_x1) return 0.0f;
  const std::int64_t sy = y + c.dy;
  const std::int64_t sx = (c.flip ? p.width - 1 - x : x) + c.dx;
  const bool inside = sy >= 0 && sy < p.height && sx >= 0 && sx < p.width;
  const float v = inside ? static_cast<float>(image[(ch * p.height + sy) * p.width + sx]) : 0.0f;
  return (v - p.shift[ch]) * p.scale[ch];
}

namespace reference {
void augment(const TensorArg& out, const TensorArg& out_labels, const TensorArg& images, const TensorArg& labels,
             const TensorArg& indices, const AugmentParams& params);
}  // namespace reference

namespace cuda {
void augment(const TensorArg& out, const TensorArg& out_labels, const TensorArg& images, const TensorArg& labels,
             const TensorArg& indices, const AugmentParams& params);
}  // namespace cuda

}  // namespace basin::kernels
