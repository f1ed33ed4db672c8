#include "data/dataset.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>

#include "core/random.h"

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

namespace {

// The Philox key of the label-noise draws: the seed mixed with a constant of
// its own (SplitMix64's finalizer), so that it differs from the seed, which
// keys the default generator and the data loader.
std::uint64_t label_noise_key(std::uint64_t seed) {
  std::uint64_t z = seed ^ 0x6c6162656c6e6f69ull;  // "labelnoi"
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Exactly uniform in [0, n), n >= 1: 64-bit draws, redrawing the few below
// 2^64 mod n that would make the low values more likely.
std::uint64_t uniform_below(Generator& generator, std::uint64_t n) {
  const std::uint64_t threshold = (0 - n) % n;
  std::uint64_t x = generator.next_u64();
  while (x < threshold) x = generator.next_u64();
  return x % n;
}

constexpr std::uint64_t kLabelNoiseClassCounters = std::uint64_t{1} << 62;

}  // namespace

LabelNoise with_label_noise(const Dataset& dataset, double fraction, std::uint64_t seed) {
  BASIN_CHECK(fraction >= 0.0 && fraction < 1.0, dataset.name, ": the label-noise fraction must be in [0, 1), got ",
              fraction);
  LabelNoise out;
  out.dataset = dataset;
  if (fraction == 0.0) return out;
  BASIN_CHECK(dataset.num_classes >= 2, dataset.name, ": label noise needs at least 2 classes, got ",
              dataset.num_classes);
  const std::int64_t n = dataset.size();
  BASIN_CHECK(dataset.labels.defined() && dataset.labels.dim() == 1 && dataset.labels.size(0) == n, dataset.name,
              ": label noise needs one label per image");
  std::vector<std::int64_t> labels = dataset.labels.to_vector<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i) {
    BASIN_CHECK(labels[i] >= 0 && labels[i] < dataset.num_classes, dataset.name, ": record ", i, " has label ",
                labels[i], ", expected 0..", dataset.num_classes - 1);
  }
  const auto count = static_cast<std::int64_t>(std::llround(fraction * static_cast<double>(n)));

  const std::uint64_t key = label_noise_key(seed);
  Generator choose(key), relabel(key);
  relabel.set_state(key, kLabelNoiseClassCounters);
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) order[i] = i;
  const auto other_classes = static_cast<std::uint64_t>(dataset.num_classes - 1);
  for (std::int64_t j = 0; j < count; ++j) {
    std::swap(order[j], order[j + static_cast<std::int64_t>(uniform_below(choose, static_cast<std::uint64_t>(n - j)))]);
    std::int64_t& label = labels[order[j]];
    const auto draw = static_cast<std::int64_t>(uniform_below(relabel, other_classes));
    label = draw < label ? draw : draw + 1;  // skips the record's own class
  }
  out.flipped.assign(order.begin(), order.begin() + count);
  std::sort(out.flipped.begin(), out.flipped.end());

  out.dataset.labels = from_vector(labels, {n});
  char percent[32];
  std::snprintf(percent, sizeof percent, "%g%% noisy labels", 100.0 * fraction);
  const std::string& name = dataset.name;
  out.dataset.name = !name.empty() && name.back() == ')' ? name.substr(0, name.size() - 1) + ", " + percent + ")"
                                                         : name + " (" + percent + ")";
  return out;
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

namespace {

// Refuses what is not a regular file, naming it.
void check_regular(const std::string& dataset, const std::string& path, mode_t mode) {
  BASIN_CHECK(!S_ISDIR(mode), dataset, ": ", path, " is a directory, not a file");
  BASIN_CHECK(S_ISREG(mode), dataset, ": ", path, " is not a regular file");
}

// An open, read-only descriptor of a regular file, closed on destruction.
// O_NONBLOCK keeps open() from waiting for a writer when the path is a FIFO
// (which fstat then refuses); it changes nothing for a regular file.
class DataFile {
 public:
  DataFile(const std::string& dataset, const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    BASIN_CHECK(fd_ >= 0, dataset, ": cannot open ", path, ": ", std::strerror(errno));
    struct stat info {};
    const bool known = ::fstat(fd_, &info) == 0;
    const int error = errno;
    if (!known || !S_ISREG(info.st_mode)) {  // the destructor will not run: close here
      ::close(fd_);
      BASIN_CHECK(known, dataset, ": cannot read the size of ", path, ": ", std::strerror(error));
      check_regular(dataset, path, info.st_mode);
    }
    size_ = static_cast<std::uint64_t>(info.st_size);
  }
  DataFile(const DataFile&) = delete;
  DataFile& operator=(const DataFile&) = delete;
  ~DataFile() { ::close(fd_); }

  int fd() const { return fd_; }
  std::uint64_t size() const { return size_; }

 private:
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

}  // namespace

bool data_file_present(const std::string& dataset, const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    // Nothing there (or a dangling link, or a file where a folder should be).
    if (errno == ENOENT || errno == ENOTDIR) return false;
    BASIN_FAIL(dataset, ": cannot open ", path, ": ", std::strerror(errno));
  }
  check_regular(dataset, path, info.st_mode);
  const DataFile file(dataset, path);  // can it be opened (permissions)?
  return true;
}

std::vector<std::uint8_t> read_file(const std::string& dataset, const std::string& path) {
  const DataFile file(dataset, path);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(file.size()));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ::ssize_t n = ::read(file.fd(), bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    BASIN_CHECK(n >= 0, dataset, ": reading ", path, " failed after ", got, " of ", bytes.size(), " bytes: ",
                std::strerror(errno));
    BASIN_CHECK(n > 0, dataset, ": ", path, " ended after ", got, " of ", bytes.size(), " bytes");
    got += static_cast<std::size_t>(n);
  }
  return bytes;
}

}  // namespace detail

}  // namespace basin::data
