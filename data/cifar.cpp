#include "data/cifar.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <vector>

namespace basin::data {

namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kPixels = 3 * 32 * 32;

struct CifarFormat {
  const char* dataset;   // "CIFAR-10", for messages
  const char* subdir;    // the folder the official archive unpacks to
  std::vector<std::string> files;
  std::int64_t records_per_file;
  std::int64_t label_bytes;  // before the pixels
  std::int64_t label_at;     // which of them is the class
  std::int64_t num_classes;
};

// The folder the files are in: dir itself, or the archive's folder inside it.
fs::path resolve(const std::string& dir, const CifarFormat& format) {
  const fs::path nested = fs::path(dir) / format.subdir;
  std::error_code ec;
  return fs::is_directory(nested, ec) ? nested : fs::path(dir);
}

// Names from a text file of one name per line, when it is there and has them all.
std::vector<std::string> read_names(const fs::path& path, std::int64_t count) {
  std::ifstream in(path);
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  if (static_cast<std::int64_t>(names.size()) != count) names.clear();
  return names;
}

Dataset read_cifar(const std::string& dir, const CifarFormat& format) {
  const fs::path folder = resolve(dir, format);
  const std::int64_t record = format.label_bytes + kPixels;
  const std::int64_t expected = format.records_per_file * record;
  // Check every file before reading any, so a bad last batch is reported
  // before 150 MB of the others are read; a missing file is reported before a
  // wrong size, being the likelier mistake (a download not yet run).
  for (const std::string& file : format.files) {
    std::error_code ec;
    BASIN_CHECK(fs::is_regular_file(folder / file, ec), format.dataset, ": ", (folder / file).string(),
                " not found; download it with: bash scripts/download-cifar.sh ", dir);
  }
  for (const std::string& file : format.files) {
    const fs::path path = folder / file;
    std::error_code ec;
    const auto size = static_cast<std::int64_t>(fs::file_size(path, ec));
    BASIN_CHECK(!ec, format.dataset, ": cannot read the size of ", path.string(), ": ", ec.message());
    BASIN_CHECK(size == expected, format.dataset, ": ", path.string(), " is ", detail::with_commas(size),
                " bytes, expected ", detail::with_commas(expected), " (", detail::with_commas(format.records_per_file),
                " records of ", detail::with_commas(record), " bytes)");
  }

  const std::int64_t total = format.records_per_file * static_cast<std::int64_t>(format.files.size());
  Dataset out;
  out.images = empty({total, 3, 32, 32}, kUInt8);
  out.labels = empty({total}, kInt64);
  out.num_classes = format.num_classes;
  std::uint8_t* pixels = out.images.data<std::uint8_t>();
  std::int64_t* labels = out.labels.data<std::int64_t>();
  std::int64_t n = 0;
  for (const std::string& file : format.files) {
    const std::string path = (folder / file).string();
    const std::vector<std::uint8_t> bytes = detail::read_file(format.dataset, path);
    BASIN_CHECK(static_cast<std::int64_t>(bytes.size()) == expected, format.dataset, ": ", path, " changed size while it was read");
    for (std::int64_t r = 0; r < format.records_per_file; ++r, ++n) {
      const std::uint8_t* at = bytes.data() + r * record;
      const std::int64_t label = at[format.label_at];
      BASIN_CHECK(label < format.num_classes, format.dataset, ": ", path, " record ", detail::with_commas(r),
                  " (byte offset ", detail::with_commas(r * record), ") has label ", label, ", expected 0..",
                  format.num_classes - 1);
      labels[n] = label;
      std::memcpy(pixels + n * kPixels, at + format.label_bytes, kPixels);
    }
  }
  return out;
}

}  // namespace

Dataset load_cifar10(const std::string& dir, bool train) {
  CifarFormat format{"CIFAR-10", "cifar-10-batches-bin", {}, 10000, 1, 0, 10};
  if (train) {
    for (int i = 1; i <= 5; ++i) format.files.push_back("data_batch_" + std::to_string(i) + ".bin");
  } else {
    format.files = {"test_batch.bin"};
  }
  Dataset out = read_cifar(dir, format);
  out.name = train ? "CIFAR-10 train" : "CIFAR-10 test";
  // Statistics of the 50,000 official training images (channel_stats).
  out.mean = {0.49140, 0.48216, 0.44653};
  out.stddev = {0.24703, 0.24349, 0.26159};
  out.classes = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  return out;
}

Dataset load_cifar100(const std::string& dir, bool train, bool fine) {
  CifarFormat format{"CIFAR-100", "cifar-100-binary", {train ? "train.bin" : "test.bin"},
                     train ? 50000 : 10000, 2, fine ? 1 : 0, fine ? 100 : 20};
  Dataset out = read_cifar(dir, format);
  out.name = std::string(train ? "CIFAR-100 train" : "CIFAR-100 test") + (fine ? "" : " (coarse labels)");
  // Statistics of the 50,000 official training images (channel_stats).
  out.mean = {0.50707, 0.48655, 0.44092};
  out.stddev = {0.26733, 0.25644, 0.27615};
  out.classes = read_names(resolve(dir, format) / (fine ? "fine_label_names.txt" : "coarse_label_names.txt"),
                           format.num_classes);
  return out;
}

}  // namespace basin::data
