// Training augmentation for image classification, as the CIFAR papers use
// it: random crop from the image padded by 4 zero pixels, horizontal flip
// with p = 0.5, cutout of a 16x16 square (DeVries & Taylor 2017), and
// per-channel normalization. Input uint8 [B, C, H, W]; output float32
// [B, C, H, W], normalized, on the input's device.
//
// The gather by index runs in the same kernel (kernels/augment.h), so a
// loader whose dataset sits on the GPU builds a whole batch with one launch.
// Every random choice comes from Philox with an explicit key and counter, so
// the same draw gives the same batch on the CPU and the GPU, and a batch can
// be recomputed from its draw alone.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/random.h"
#include "core/options.h"

namespace basin::data {

class AugmentOptions {
 public:
  // The defaults are the CIFAR training recipe; none() keeps only the
  // normalization (evaluation, test sets).
  static AugmentOptions none();

  BASIN_OPTION(std::int64_t, crop_padding) = 4;  // 0: no crop
  BASIN_OPTION(bool, horizontal_flip) = true;
  BASIN_OPTION(std::int64_t, cutout) = 16;       // side of the square; 0: no cutout
  // Probability that a sample gets a square: 1 in DeVries & Taylor; 0.5 in
  // davda54/sam's training script.
  BASIN_OPTION(double, cutout_p) = 1.0;
  // Per channel, for pixels scaled to [0, 1]: out = (pixel / 255 - mean) / std.
  // A BatchLoader fills empty ones from its dataset.
  BASIN_OPTION(std::vector<double>, mean);
  BASIN_OPTION(std::vector<double>, stddev);
};

inline AugmentOptions AugmentOptions::none() {
  return AugmentOptions().crop_padding(0).horizontal_flip(false).cutout(0);
}

struct AugmentedBatch {
  Tensor images;  // float32 [B, C, H, W]
  Tensor labels;  // int64 [B]; undefined when no labels were given
};

// Gathers and augments in one kernel on images.device():
//   out.images[b] = augment(images[indices[b]]),  out.labels[b] = labels[indices[b]].
// images: uint8 [N, C, H, W], C <= 4; labels: int64 [N] or undefined;
// indices: int64 [B] or undefined (then B = N, in order); all on one device.
// Sample b draws from Philox key draw.seed, counters draw.offset + 2b and
// draw.offset + 2b + 1 (augment_counters(B) counters in all). CPU indices are
// checked; CUDA ones cannot be without a sync, so an index out of range gives
// that sample NaN pixels and label -1 instead of reading out of bounds.
AugmentedBatch augment_batch(const Tensor& images, const Tensor& labels, const Tensor& indices,
                             const AugmentOptions& options, kernels::PhiloxDraw draw);

// Augments every image of a uint8 batch, drawing from the default generator
// (core/random.h), so manual_seed(s) fixes the result on either device.
Tensor augment(const Tensor& images, const AugmentOptions& options);

// Throws basin::Error when the options cannot apply to images of `channels`
// channels (one mean and std per channel, std > 0, sizes >= 0, cutout_p in
// [0, 1]); augment_batch checks the same, this lets a caller fail early.
void validate(const AugmentOptions& options, std::int64_t channels);

// Philox counters augment_batch uses for a batch of `batch` samples.
std::uint64_t augment_counters(std::int64_t batch);

}  // namespace basin::data
