#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <fstream>

namespace basin::data {

Dataset Dataset::head(std::int64_t n) const {
  BASIN_CHECK(n >= 1 && n <= size(), name, ": a subset of ", n, " records was asked for, but the dataset holds ",
              detail::with_commas(size()));
  Dataset out = *this;
  out.images = images.slice(0, 0, n);
  out.labels = labels.slice(0, 0, n);
  if (n < size()) out.name = name + " (first " + detail::with_commas(n) + ")";
  return out;
}

void Dataset::validate() const {
  BASIN_CHECK(images.defined() && labels.defined(), name, ": images or labels are missing");
  BASIN_CHECK(images.dtype() == kUInt8 && images.dim() == 4, name, ": images must be uint8 [N, C, H, W], got ",
              dtype_name(images.dtype()), " ", shape_str(images.shape()));
  BASIN_CHECK(labels.dtype() == kInt64 && labels.dim() == 1 && labels.size(0) == images.size(0), name,
              ": labels must be int64 [", images.size(0), "] to match images ", shape_str(images.shape()), ", got ",
              dtype_name(labels.dtype()), " ", shape_str(labels.shape()));
  BASIN_CHECK(images.device().is_cpu() && labels.device().is_cpu(), name, ": a dataset lives on the CPU, got images on ",
              images.device().str());
  BASIN_CHECK(num_classes >= 1, name, ": num_classes must be at least 1, got ", num_classes);
  const std::int64_t c = images.size(1);
  BASIN_CHECK(static_cast<std::int64_t>(mean.size()) == c && static_cast<std::int64_t>(stddev.size()) == c, name,
              ": images have ", c, " channels but mean has ", mean.size(), " values and std ", stddev.size());
  for (std::int64_t k = 0; k < c; ++k) {
    BASIN_CHECK(std::isfinite(mean[k]) && std::isfinite(stddev[k]) && stddev[k] > 0.0, name, ": channel ", k,
                " has mean ", mean[k], " and std ", stddev[k], " (std must be finite and > 0)");
  }
  const Tensor dense = labels.contiguous();
  const std::int64_t* y = dense.data<std::int64_t>();
  for (std::int64_t i = 0; i < dense.numel(); ++i) {
    BASIN_CHECK(y[i] >= 0 && y[i] < num_classes, name, ": record ", i, " has label ", y[i], ", expected 0..",
                num_classes - 1);
  }
}

ChannelStats channel_stats(const Tensor& images) {
  BASIN_CHECK(images.dtype() == kUInt8 && images.dim() == 4 && images.size(0) > 0,
              "channel_stats: expected non-empty uint8 images [N, C, H, W], got ", dtype_name(images.dtype()), " ",
              shape_str(images.shape()));
  const Tensor x = images.cpu().contiguous();
  const std::int64_t n = x.size(0), c = x.size(1), plane = x.size(2) * x.size(3);
  std::vector<std::uint64_t> sum(c, 0), squares(c, 0);
  const std::uint8_t* p = x.data<std::uint8_t>();
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t k = 0; k < c; ++k) {
      std::uint64_t s = 0, q = 0;
      for (std::int64_t e = 0; e < plane; ++e, ++p) {
        s += *p;
        q += static_cast<std::uint64_t>(*p) * *p;
      }
      sum[k] += s;
      squares[k] += q;
    }
  }
  ChannelStats stats;
  const double count = static_cast<double>(n * plane);
  for (std::int64_t k = 0; k < c; ++k) {
    const double m = static_cast<double>(sum[k]) / count;
    const double var = std::max(0.0, static_cast<double>(squares[k]) / count - m * m);
    stats.mean.push_back(m / 255.0);
    stats.stddev.push_back(std::sqrt(var) / 255.0);
  }
  return stats;
}

std::vector<std::int64_t> class_counts(const Dataset& dataset) {
  std::vector<std::int64_t> counts(static_cast<std::size_t>(std::max<std::int64_t>(dataset.num_classes, 0)), 0);
  const std::vector<std::int64_t> y = dataset.labels.to_vector<std::int64_t>();
  for (std::int64_t label : y) {
    BASIN_CHECK(label >= 0 && label < dataset.num_classes, dataset.name, ": label ", label, " is outside 0..",
                dataset.num_classes - 1);
    ++counts[static_cast<std::size_t>(label)];
  }
  return counts;
}

namespace detail {

std::string with_commas(std::int64_t value) {
  const std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

std::vector<std::uint8_t> read_file(const std::string& dataset, const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  BASIN_CHECK(in, dataset, ": cannot open ", path);
  const std::streamsize size = in.tellg();
  BASIN_CHECK(size >= 0, dataset, ": cannot read the size of ", path);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), size);
  BASIN_CHECK(in.gcount() == size, dataset, ": ", path, " ended after ", in.gcount(), " of ", size, " bytes");
  return bytes;
}

}  // namespace detail

}  // namespace basin::data
