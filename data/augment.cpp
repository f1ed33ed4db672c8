#include "data/augment.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/random.h"
#include "kernels/augment.h"

namespace basin::data {

namespace {

kernels::AugmentParams make_params(const Tensor& images, const AugmentOptions& options) {
  BASIN_CHECK(images.defined() && images.dtype() == kUInt8 && images.dim() == 4,
              "augment: images must be uint8 [N, C, H, W], got ",
              images.defined() ? std::string(dtype_name(images.dtype())) + " " + shape_str(images.shape())
                               : std::string("an undefined tensor"));
  const std::int64_t c = images.size(1);
  BASIN_CHECK(c >= 1 && c <= kernels::kAugmentMaxChannels && images.size(2) >= 1 && images.size(3) >= 1,
              "augment: images ", shape_str(images.shape()), " must have 1 to ", kernels::kAugmentMaxChannels,
              " channels and a non-empty plane");
  validate(options, c);

  kernels::AugmentParams p;
  p.count = images.size(0);
  p.channels = c;
  p.height = images.size(2);
  p.width = images.size(3);
  p.crop_padding = options.crop_padding();
  p.flip = options.horizontal_flip();
  p.cutout = options.cutout();
  p.cutout_p = options.cutout_p();
  for (std::int64_t k = 0; k < c; ++k) {
    const double mean = options.mean()[k], stddev = options.stddev()[k];
    p.shift[k] = static_cast<float>(255.0 * mean);
    p.scale[k] = static_cast<float>(1.0 / (255.0 * stddev));
  }
  return p;
}

}  // namespace

void validate(const AugmentOptions& options, std::int64_t c) {
  BASIN_CHECK(static_cast<std::int64_t>(options.mean().size()) == c &&
                  static_cast<std::int64_t>(options.stddev().size()) == c,
              "augment: images have ", c, " channels but mean has ", options.mean().size(), " values and std ",
              options.stddev().size());
  BASIN_CHECK(options.crop_padding() >= 0, "augment: crop_padding must be >= 0, got ", options.crop_padding());
  BASIN_CHECK(options.cutout() >= 0, "augment: cutout must be >= 0, got ", options.cutout());
  BASIN_CHECK(options.cutout_p() >= 0.0 && options.cutout_p() <= 1.0, "augment: cutout_p must be in [0, 1], got ",
              options.cutout_p());
  for (std::int64_t k = 0; k < c; ++k) {
    const double mean = options.mean()[k], stddev = options.stddev()[k];
    BASIN_CHECK(std::isfinite(mean) && std::isfinite(stddev) && stddev > 0.0, "augment: channel ", k, " has mean ",
                mean, " and std ", stddev, " (std must be finite and > 0)");
  }
}

std::uint64_t augment_counters(std::int64_t batch) {
  return kernels::kAugmentCountersPerSample * static_cast<std::uint64_t>(batch);
}

AugmentedBatch augment_batch(const Tensor& images, const Tensor& labels, const Tensor& indices,
                             const AugmentOptions& options, kernels::PhiloxDraw draw) {
  kernels::AugmentParams p = make_params(images, options);
  p.draw = draw;
  const Device device = images.device();
  if (labels.defined()) {
    BASIN_CHECK(labels.dtype() == kInt64 && labels.dim() == 1 && labels.size(0) == p.count,
                "augment: labels must be int64 [", p.count, "] to match images ", shape_str(images.shape()), ", got ",
                dtype_name(labels.dtype()), " ", shape_str(labels.shape()));
    check_same_device("augment", {&images, &labels});
  }
  p.batch = p.count;
  if (indices.defined()) {
    BASIN_CHECK(indices.dtype() == kInt64 && indices.dim() == 1, "augment: indices must be int64 [B], got ",
                dtype_name(indices.dtype()), " ", shape_str(indices.shape()));
    check_same_device("augment", {&images, &indices});
    p.batch = indices.size(0);
  }
  const Tensor source = images.contiguous();
  const Tensor source_labels = labels.defined() ? labels.contiguous() : Tensor();
  const Tensor index = indices.defined() ? indices.contiguous() : Tensor();
  if (index.defined() && device.is_cpu()) {
    const std::int64_t* at = index.data<std::int64_t>();
    for (std::int64_t b = 0; b < p.batch; ++b) {
      BASIN_CHECK(at[b] >= 0 && at[b] < p.count, "augment: indices[", b, "] = ", at[b], " is outside the ", p.count,
                  " images");
    }
  }

  AugmentedBatch out;
  out.images = empty({p.batch, p.channels, p.height, p.width}, TensorOptions(kFloat32).device(device));
  if (labels.defined()) out.labels = empty({p.batch}, TensorOptions(kInt64).device(device));
  // An absent tensor reaches the kernel as a null pointer.
  BASIN_RUN_KERNEL(device, augment, arg(out.images), optional_arg(out.labels), arg(source),
                   optional_arg(source_labels), optional_arg(index), p);
  return out;
}

Tensor augment(const Tensor& images, const AugmentOptions& options) {
  BASIN_CHECK(images.defined() && images.dim() == 4, "augment: images must be uint8 [N, C, H, W], got ",
              images.defined() ? shape_str(images.shape()) : std::string("an undefined tensor"));
  Generator& generator = default_generator();
  // reserve() counts values, four per counter.
  const kernels::PhiloxDraw draw{generator.seed(), generator.reserve(static_cast<std::int64_t>(4 * augment_counters(images.size(0))))};
  return augment_batch(images, Tensor(), Tensor(), options, draw).images;
}

}  // namespace basin::data
