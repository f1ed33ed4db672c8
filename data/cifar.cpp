#include "data/cifar.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <system_error>
#include <vector>

namespace basin::data {

namespace {

namespace fs = std::filesystem;
using detail::CifarLayout;

constexpr std::int64_t kPixels = 3 * 32 * 32;

// Where a layout keeps its label, for decoding and for messages.
struct LayoutInfo {
  const char* dataset;       // "CIFAR-10", for messages
  std::int64_t label_bytes;  // before the pixels
  std::int64_t label_at;     // which of them is the class
  std::int64_t num_classes;
};

LayoutInfo layout_info(CifarLayout layout) {
  switch (layout) {
    case CifarLayout::cifar10: return {"CIFAR-10", 1, 0, 10};
    case CifarLayout::cifar100_fine: return {"CIFAR-100", 2, 1, 100};
    case CifarLayout::cifar100_coarse: return {"CIFAR-100", 2, 0, 20};
  }
  BASIN_FAIL("CIFAR: unknown record layout ", static_cast<int>(layout));
}

// The files of one split, all in one layout.
struct CifarFiles {
  CifarLayout layout;
  const char* subdir;  // the folder the official archive unpacks to
  std::vector<std::string> files;
  std::int64_t records_per_file;
};

// The folder the files are in: dir itself, or the archive's folder inside it.
fs::path resolve(const std::string& dir, const char* subdir) {
  const fs::path nested = fs::path(dir) / subdir;
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

// A file of `size` bytes must hold exactly `records` records.
void check_size(const LayoutInfo& info, const std::string& file, std::int64_t size, std::int64_t records) {
  const std::int64_t record = info.label_bytes + kPixels;
  BASIN_CHECK(records >= 0 && records <= std::numeric_limits<std::int64_t>::max() / record, info.dataset, ": ", file,
              ": a count of ", records, " records is out of range");
  const std::int64_t expected = records * record;
  BASIN_CHECK(size == expected, info.dataset, ": ", file, " is ", detail::with_commas(size), " bytes, expected ",
              detail::with_commas(expected), " (", detail::with_commas(records), " records of ",
              detail::with_commas(record), " bytes)");
}

// Decodes `records` records into pixels [records, 3, 32, 32] and labels [records].
void decode_records(std::span<const std::uint8_t> bytes, CifarLayout layout, std::int64_t records,
                    const std::string& file, std::uint8_t* pixels, std::int64_t* labels) {
  const LayoutInfo info = layout_info(layout);
  check_size(info, file, static_cast<std::int64_t>(bytes.size()), records);
  const std::int64_t record = info.label_bytes + kPixels;
  for (std::int64_t r = 0; r < records; ++r) {
    const std::uint8_t* at = bytes.data() + r * record;
    const std::int64_t label = at[info.label_at];
    BASIN_CHECK(label < info.num_classes, info.dataset, ": ", file, " record ", detail::with_commas(r),
                " (byte offset ", detail::with_commas(r * record), ") has label ", label, ", expected 0..",
                info.num_classes - 1);
    labels[r] = label;
    std::memcpy(pixels + r * kPixels, at + info.label_bytes, kPixels);
  }
}

Dataset read_cifar(const std::string& dir, const CifarFiles& split) {
  const LayoutInfo info = layout_info(split.layout);
  const fs::path folder = resolve(dir, split.subdir);
  const std::int64_t record = info.label_bytes + kPixels;
  const std::int64_t expected = split.records_per_file * record;
  // Check every file before reading any, so a bad last batch is reported
  // before 150 MB of the others are read; a missing file is reported before a
  // wrong size, being the likelier mistake (a download not yet run).
  for (const std::string& file : split.files) {
    const std::string path = (folder / file).string();
    BASIN_CHECK(detail::data_file_present(info.dataset, path), info.dataset, ": ", path,
                " not found; download it with: bash scripts/download-cifar.sh ", dir);
  }
  for (const std::string& file : split.files) {
    const fs::path path = folder / file;
    std::error_code ec;
    const auto size = static_cast<std::int64_t>(fs::file_size(path, ec));
    BASIN_CHECK(!ec, info.dataset, ": cannot read the size of ", path.string(), ": ", ec.message());
    check_size(info, path.string(), size, split.records_per_file);
  }

  const std::int64_t total = split.records_per_file * static_cast<std::int64_t>(split.files.size());
  Dataset out;
  out.images = empty({total, 3, 32, 32}, kUInt8);
  out.labels = empty({total}, kInt64);
  out.num_classes = info.num_classes;
  std::uint8_t* pixels = out.images.data<std::uint8_t>();
  std::int64_t* labels = out.labels.data<std::int64_t>();
  std::int64_t n = 0;
  for (const std::string& file : split.files) {
    const std::string path = (folder / file).string();
    const std::vector<std::uint8_t> bytes = detail::read_file(info.dataset, path);
    BASIN_CHECK(static_cast<std::int64_t>(bytes.size()) == expected, info.dataset, ": ", path,
                " changed size while it was read");
    decode_records(bytes, split.layout, split.records_per_file, path, pixels + n * kPixels, labels + n);
    n += split.records_per_file;
  }
  return out;
}

}  // namespace

namespace detail {

std::int64_t cifar_record_bytes(CifarLayout layout) { return layout_info(layout).label_bytes + kPixels; }

Dataset decode_cifar(std::span<const std::uint8_t> bytes, CifarLayout layout, std::int64_t records,
                     const std::string& file) {
  const LayoutInfo info = layout_info(layout);
  check_size(info, file, static_cast<std::int64_t>(bytes.size()), records);  // before allocating
  Dataset out;
  out.images = empty({records, 3, 32, 32}, kUInt8);
  out.labels = empty({records}, kInt64);
  out.num_classes = info.num_classes;
  decode_records(bytes, layout, records, file, out.images.data<std::uint8_t>(), out.labels.data<std::int64_t>());
  return out;
}

}  // namespace detail

Dataset load_cifar10(const std::string& dir, bool train) {
  CifarFiles split{CifarLayout::cifar10, "cifar-10-batches-bin", {}, 10000};
  if (train) {
    for (int i = 1; i <= 5; ++i) split.files.push_back("data_batch_" + std::to_string(i) + ".bin");
  } else {
    split.files = {"test_batch.bin"};
  }
  Dataset out = read_cifar(dir, split);
  out.name = train ? "CIFAR-10 train" : "CIFAR-10 test";
  // Statistics of the 50,000 official training images (channel_stats).
  out.mean = {0.49140, 0.48216, 0.44653};
  out.stddev = {0.24703, 0.24349, 0.26159};
  out.classes = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  return out;
}

Dataset load_cifar100(const std::string& dir, bool train, bool fine) {
  const CifarFiles split{fine ? CifarLayout::cifar100_fine : CifarLayout::cifar100_coarse, "cifar-100-binary",
                        {train ? "train.bin" : "test.bin"}, train ? 50000 : 10000};
  Dataset out = read_cifar(dir, split);
  out.name = std::string(train ? "CIFAR-100 train" : "CIFAR-100 test") + (fine ? "" : " (coarse labels)");
  // Statistics of the 50,000 official training images (channel_stats).
  out.mean = {0.50707, 0.48655, 0.44092};
  out.stddev = {0.26733, 0.25644, 0.27615};
  out.classes = read_names(resolve(dir, split.subdir) / (fine ? "fine_label_names.txt" : "coarse_label_names.txt"),
                           out.num_classes);
  return out;
}

}  // namespace basin::data
