// Fuzz target: MNIST idx images and labels decoded from bytes in memory
// (data::detail::decode_mnist, what load_mnist runs on the two files).
//
// The first two bytes (big-endian) say how many of the remaining bytes are
// the images file (all of them when fewer remain); the rest is the labels
// file. Headers may declare any count and size: the decoder must refuse those
// the bytes do not hold before it allocates anything.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "core/error.h"
#include "data/mnist.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t rest = size - 2;
  const std::size_t split = std::min<std::size_t>((std::size_t{data[0]} << 8) | data[1], rest);
  const std::span<const std::uint8_t> images(data + 2, split);
  const std::span<const std::uint8_t> labels(data + 2 + split, rest - split);
  basin::data::Dataset d;
  try {
    d = basin::data::detail::decode_mnist("MNIST", images, "fuzz images", labels, "fuzz labels");
  } catch (const basin::Error&) {
    return 0;
  }
  // What decodes must be a valid dataset (outside the try: a failure is a
  // bug), and its pixels are the images bytes after the header, no more.
  if (d.images.numel() + 16 != static_cast<std::int64_t>(images.size())) std::abort();
  d.mean = {0.5};
  d.stddev = {0.25};
  d.validate();
  return 0;
}
