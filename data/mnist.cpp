#include "data/mnist.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

namespace basin::data {

namespace {

namespace fs = std::filesystem;

constexpr std::uint32_t kImagesMagic = 0x00000803;  // unsigned bytes, 3 dimensions
constexpr std::uint32_t kLabelsMagic = 0x00000801;  // unsigned bytes, 1 dimension

std::uint32_t big_endian(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

std::string hex(std::uint32_t value) {
  char text[11];
  std::snprintf(text, sizeof(text), "0x%08x", value);
  return text;
}

std::vector<std::uint8_t> read_idx(const char* dataset, const fs::path& path) {
  if (!detail::data_file_present(dataset, path.string())) {
    fs::path gz = path;
    gz += ".gz";
    std::error_code ec;
    BASIN_CHECK(!fs::is_regular_file(gz, ec), dataset, ": ", path.string(), " not found, but ", gz.string(),
                " is: basin reads uncompressed idx files; run: gunzip -k ", gz.string());
    BASIN_FAIL(dataset, ": ", path.string(), " not found (the official idx files, uncompressed)");
  }
  return detail::read_file(dataset, path.string());
}

Dataset read_mnist(const char* dataset, const std::string& dir, bool train) {
  const std::string split = train ? "train" : "t10k";
  const fs::path images_path = fs::path(dir) / (split + "-images-idx3-ubyte");
  const fs::path labels_path = fs::path(dir) / (split + "-labels-idx1-ubyte");
  const std::vector<std::uint8_t> images = read_idx(dataset, images_path);
  const std::vector<std::uint8_t> labels = read_idx(dataset, labels_path);
  Dataset out = detail::decode_mnist(dataset, images, images_path.string(), labels, labels_path.string());
  out.name = std::string(dataset) + (train ? " train" : " test");
  return out;
}

}  // namespace

namespace detail {

Dataset decode_mnist(const std::string& dataset, std::span<const std::uint8_t> images, const std::string& images_name,
                     std::span<const std::uint8_t> labels, const std::string& labels_name) {
  BASIN_CHECK(images.size() >= 16, dataset, ": ", images_name, " is ", images.size(),
              " bytes, shorter than the 16-byte idx3 header");
  BASIN_CHECK(big_endian(images.data()) == kImagesMagic, dataset, ": ", images_name,
              " does not start with the idx3 magic number ", hex(kImagesMagic), " (found ", hex(big_endian(images.data())),
              "); is it an images file, uncompressed?");
  BASIN_CHECK(labels.size() >= 8, dataset, ": ", labels_name, " is ", labels.size(),
              " bytes, shorter than the 8-byte idx1 header");
  BASIN_CHECK(big_endian(labels.data()) == kLabelsMagic, dataset, ": ", labels_name,
              " does not start with the idx1 magic number ", hex(kLabelsMagic), " (found ", hex(big_endian(labels.data())),
              "); is it a labels file, uncompressed?");

  // Each field is below 2^32 and each side at most 4096 = 2^12, so
  // count * rows * cols < 2^56 cannot overflow, and it is compared with the
  // bytes at hand before any allocation: a header cannot ask for more memory
  // than the file itself occupies.
  const std::int64_t count = big_endian(images.data() + 4);
  const std::int64_t rows = big_endian(images.data() + 8);
  const std::int64_t cols = big_endian(images.data() + 12);
  const std::int64_t label_count = big_endian(labels.data() + 4);
  BASIN_CHECK(rows >= 1 && cols >= 1 && rows <= 4096 && cols <= 4096, dataset, ": ", images_name,
              " declares images of ", rows, "x", cols, " pixels (expected 1 to 4096 per side)");
  const std::int64_t image_bytes = 16 + count * rows * cols;
  BASIN_CHECK(static_cast<std::int64_t>(images.size()) == image_bytes, dataset, ": ", images_name, " is ",
              with_commas(static_cast<std::int64_t>(images.size())), " bytes, expected ", with_commas(image_bytes),
              " (16-byte header + ", with_commas(count), " images of ", rows, "x", cols, ")");
  BASIN_CHECK(static_cast<std::int64_t>(labels.size()) == 8 + label_count, dataset, ": ", labels_name, " is ",
              with_commas(static_cast<std::int64_t>(labels.size())), " bytes, expected ", with_commas(8 + label_count),
              " (8-byte header + ", with_commas(label_count), " labels)");
  BASIN_CHECK(count == label_count, dataset, ": ", images_name, " holds ", with_commas(count), " images but ",
              labels_name, " holds ", with_commas(label_count), " labels");
  BASIN_CHECK(count >= 1, dataset, ": ", images_name, " holds no images");

  Dataset out;
  out.name = dataset;
  out.num_classes = 10;
  out.images = empty({count, 1, rows, cols}, kUInt8);
  out.labels = empty({count}, kInt64);
  std::memcpy(out.images.data_ptr(), images.data() + 16, static_cast<std::size_t>(count * rows * cols));
  std::int64_t* y = out.labels.data<std::int64_t>();
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t label = labels[8 + i];
    BASIN_CHECK(label < 10, dataset, ": ", labels_name, " record ", with_commas(i), " has label ", label,
                ", expected 0..9");
    y[i] = label;
  }
  return out;
}

}  // namespace detail

Dataset load_mnist(const std::string& dir, bool train) {
  Dataset out = read_mnist("MNIST", dir, train);
  out.mean = {0.13066};  // of the 60,000 training images (channel_stats)
  out.stddev = {0.30811};
  out.classes = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  return out;
}

Dataset load_fashion_mnist(const std::string& dir, bool train) {
  Dataset out = read_mnist("Fashion-MNIST", dir, train);
  out.mean = {0.28604};  // of the 60,000 training images (channel_stats)
  out.stddev = {0.35302};
  out.classes = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  return out;
}

}  // namespace basin::data
