// CPU reference for the fused gather + augmentation (kernels/augment.h):
// per sample, draw its choices once, then evaluate every output pixel with
// the formula the CUDA kernel uses.
#include <limits>

#include "kernels/augment.h"

namespace basin::kernels::reference {

void augment(const TensorArg& out, const TensorArg& out_labels, const TensorArg& images, const TensorArg& labels,
             const TensorArg& indices, const AugmentParams& p) {
  const std::int64_t plane = p.height * p.width;
  const std::int64_t image_size = p.channels * plane;
  const std::uint8_t* source = images.ptr<std::uint8_t>();
  const std::int64_t* index = indices.ptr<std::int64_t>();
  float* y = out.ptr<float>();
  for (std::int64_t b = 0; b < p.batch; ++b) {
    const std::int64_t i = index != nullptr ? index[b] : b;
    float* sample = y + b * image_size;
    if (i < 0 || i >= p.count) {
      for (std::int64_t e = 0; e < image_size; ++e) sample[e] = std::numeric_limits<float>::quiet_NaN();
      if (out_labels.data != nullptr) out_labels.ptr<std::int64_t>()[b] = -1;
      continue;
    }
    const AugmentChoice choice = augment_choice(p, b);
    const std::uint8_t* image = source + i * image_size;
    for (std::int64_t c = 0; c < p.channels; ++c) {
      for (std::int64_t row = 0; row < p.height; ++row) {
        for (std::int64_t col = 0; col < p.width; ++col) {
          sample[c * plane + row * p.width + col] = augment_value(p, choice, image, c, row, col);
        }
      }
    }
    if (out_labels.data != nullptr) out_labels.ptr<std::int64_t>()[b] = labels.ptr<std::int64_t>()[i];
  }
}

}  // namespace basin::kernels::reference
