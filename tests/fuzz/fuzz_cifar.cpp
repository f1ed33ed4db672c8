// Fuzz target: CIFAR binary records decoded from bytes in memory
// (data::detail::decode_cifar, what load_cifar10/100 run on each file).
//
// The first byte picks the layout (CIFAR-10, CIFAR-100 fine or coarse labels,
// by its value modulo 3); the rest is one file's bytes, decoded as
// max(1, size / record) records, so a size that is not a whole number of
// records reaches the size check and a whole one reaches the label checks and
// the copy. Nothing is written to disk.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "core/error.h"
#include "data/cifar.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  using basin::data::detail::CifarLayout;
  constexpr CifarLayout kLayouts[] = {CifarLayout::cifar10, CifarLayout::cifar100_fine, CifarLayout::cifar100_coarse};
  const CifarLayout layout = kLayouts[data[0] % 3];
  const std::span<const std::uint8_t> bytes(data + 1, size - 1);
  const std::int64_t record = basin::data::detail::cifar_record_bytes(layout);
  const std::int64_t records = std::max<std::int64_t>(1, static_cast<std::int64_t>(bytes.size()) / record);
  basin::data::Dataset d;
  try {
    d = basin::data::detail::decode_cifar(bytes, layout, records, "fuzz input");
  } catch (const basin::Error&) {
    return 0;
  }
  // What decodes must be a valid dataset: outside the try, so a failure here
  // ends the run as a bug. decode_cifar leaves the statistics to the loaders.
  if (d.size() != records) std::abort();
  d.mean.assign(3, 0.5);
  d.stddev.assign(3, 0.25);
  d.validate();
  return 0;
}
