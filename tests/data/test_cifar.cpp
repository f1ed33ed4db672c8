// Dataset readers: CIFAR-10/100 binary and MNIST idx, on files the tests
// write in the exact official formats, every malformed case, and (when a copy
// is at hand) the real CIFAR-10.
//
// The CIFAR files are written at their official sizes as sparse files: the
// size is set without writing the bytes, then a few records are filled in
// with distinctive content. That tests the public loaders on the real layout
// while costing no disk and little time.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/random.h"
#include "data/cifar.h"
#include "data/dataset.h"
#include "data/mnist.h"
#include "support/temp_dir.h"

using namespace basin;
using namespace basin::data;
using Catch::Contains;
using basin::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// A file of `size` bytes that reads as zeros, without writing them.
void sparse_file(const std::string& path, std::uintmax_t size) {
  std::ofstream(path, std::ios::binary).flush();
  fs::resize_file(path, size);
}

void write_at(const std::string& path, std::int64_t offset, const std::vector<std::uint8_t>& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f);
  f.seekp(offset);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f);
}

void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f);
}

// Pixels in 1..255: never zero, so they cannot be mistaken for the sparse filler.
std::vector<std::uint8_t> random_pixels(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int> byte(1, 255);
  std::vector<std::uint8_t> out(n);
  for (auto& b : out) b = static_cast<std::uint8_t>(byte(gen));
  return out;
}

std::vector<std::uint8_t> image_bytes(const Dataset& d, std::int64_t i) {
  const Tensor x = d.images.contiguous();
  const std::int64_t size = d.channels() * d.height() * d.width();
  const std::uint8_t* p = x.data<std::uint8_t>() + i * size;
  return {p, p + size};
}

std::int64_t label_at(const Dataset& d, std::int64_t i) { return d.labels.to_vector<std::int64_t>()[i]; }

std::vector<std::uint8_t> read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The same images (shape and bytes), labels and classes.
void check_same_records(const Dataset& a, const Dataset& b) {
  CHECK(a.images.shape() == b.images.shape());
  CHECK(a.images.dtype() == b.images.dtype());
  CHECK(a.num_classes == b.num_classes);
  CHECK(a.labels.to_vector<std::int64_t>() == b.labels.to_vector<std::int64_t>());
  const Tensor x = a.images.contiguous(), y = b.images.contiguous();
  REQUIRE(x.numel() == y.numel());
  CHECK(std::equal(x.data<std::uint8_t>(), x.data<std::uint8_t>() + x.numel(), y.data<std::uint8_t>()));
}

constexpr std::int64_t kPixels = 3072;
constexpr std::int64_t kCifar10Record = 1 + kPixels;
constexpr std::int64_t kCifar100Record = 2 + kPixels;

// One CIFAR-10 record: the label byte, then the pixels.
void put_cifar10_record(const std::string& path, std::int64_t r, std::uint8_t label,
                        const std::vector<std::uint8_t>& pixels) {
  std::vector<std::uint8_t> record{label};
  record.insert(record.end(), pixels.begin(), pixels.end());
  write_at(path, r * kCifar10Record, record);
}

// An official-size, all-zero CIFAR-10 directory.
void sparse_cifar10(const TempDir& dir, bool train) {
  if (train) {
    for (int i = 1; i <= 5; ++i) sparse_file(dir.file("data_batch_" + std::to_string(i) + ".bin"), 10000 * kCifar10Record);
  } else {
    sparse_file(dir.file("test_batch.bin"), 10000 * kCifar10Record);
  }
}

}  // namespace

// ---------------------------------------------------------------- CIFAR-10

TEST_CASE("cifar10 test split: labels and planar RGB pixels in record order", "[data][cifar]") {
  TempDir dir("cifar10_test");
  sparse_cifar10(dir, false);
  const std::string path = dir.file("test_batch.bin");
  const auto first = random_pixels(kPixels, 1), second = random_pixels(kPixels, 2), last = random_pixels(kPixels, 3);
  put_cifar10_record(path, 0, 3, first);
  put_cifar10_record(path, 1, 9, second);
  put_cifar10_record(path, 9999, 7, last);

  const Dataset d = load_cifar10(dir.str(), /*train=*/false);
  CHECK(d.name == "CIFAR-10 test");
  CHECK(d.images.shape() == Shape{10000, 3, 32, 32});
  CHECK(d.images.dtype() == kUInt8);
  CHECK(d.labels.shape() == Shape{10000});
  CHECK(d.labels.dtype() == kInt64);
  CHECK(d.num_classes == 10);
  CHECK(d.classes.size() == 10);
  CHECK(d.classes[0] == "airplane");
  CHECK(d.mean.size() == 3);
  CHECK(d.stddev.size() == 3);
  CHECK_NOTHROW(d.validate());

  CHECK(label_at(d, 0) == 3);
  CHECK(label_at(d, 1) == 9);
  CHECK(label_at(d, 9999) == 7);
  CHECK(label_at(d, 5000) == 0);
  CHECK(image_bytes(d, 0) == first);
  CHECK(image_bytes(d, 1) == second);
  CHECK(image_bytes(d, 9999) == last);
  CHECK(image_bytes(d, 2) == std::vector<std::uint8_t>(kPixels, 0));

  // The record's bytes are [C][H][W]: byte 1 + c * 1024 + y * 32 + x is pixel (c, y, x).
  const Tensor x = d.images.contiguous();
  const std::uint8_t* p = x.data<std::uint8_t>();
  const std::int64_t c = 2, y = 17, col = 5;
  CHECK(p[((9999 * 3 + c) * 32 + y) * 32 + col] == last[c * 1024 + y * 32 + col]);
}

TEST_CASE("cifar10 train split: data_batch_1..5 in order, found in the archive's folder too", "[data][cifar]") {
  TempDir root("cifar10_train");
  fs::create_directories(root.path() / "cifar-10-batches-bin");
  const fs::path folder = root.path() / "cifar-10-batches-bin";
  std::vector<std::vector<std::uint8_t>> marks;
  for (int i = 1; i <= 5; ++i) {
    const std::string path = (folder / ("data_batch_" + std::to_string(i) + ".bin")).string();
    sparse_file(path, 10000 * kCifar10Record);
    marks.push_back(random_pixels(kPixels, 10 + i));
    put_cifar10_record(path, 0, static_cast<std::uint8_t>(i), marks.back());
  }
  const auto tail = random_pixels(kPixels, 99);
  put_cifar10_record((folder / "data_batch_3.bin").string(), 9999, 8, tail);

  const Dataset d = load_cifar10(root.str(), /*train=*/true);  // the parent folder
  CHECK(d.name == "CIFAR-10 train");
  REQUIRE(d.size() == 50000);
  for (int i = 1; i <= 5; ++i) {
    INFO("data_batch_" << i);
    CHECK(label_at(d, (i - 1) * 10000) == i);
    CHECK(image_bytes(d, (i - 1) * 10000) == marks[i - 1]);
  }
  CHECK(label_at(d, 29999) == 8);
  CHECK(image_bytes(d, 29999) == tail);
}

TEST_CASE("cifar10 errors: a missing file names it and the download command", "[data][cifar]") {
  TempDir dir("cifar10_missing");
  for (int i : {1, 2, 4, 5}) sparse_file(dir.file("data_batch_" + std::to_string(i) + ".bin"), 100);
  CHECK_THROWS_WITH(load_cifar10(dir.str(), true),
                    Contains("CIFAR-10: " + dir.file("data_batch_3.bin") +
                             " not found; download it with: bash scripts/download-cifar.sh " + dir.str()));
  CHECK_THROWS_WITH(load_cifar10(dir.str(), false), Contains(dir.file("test_batch.bin") + " not found"));
}

TEST_CASE("cifar10 errors: a file of the wrong size says what was expected", "[data][cifar]") {
  TempDir dir("cifar10_size");
  sparse_file(dir.file("test_batch.bin"), 30000000);
  CHECK_THROWS_WITH(load_cifar10(dir.str(), false),
                    Contains("CIFAR-10: " + dir.file("test_batch.bin") +
                             " is 30,000,000 bytes, expected 30,730,000 (10,000 records of 3,073 bytes)"));
  // One byte short is as wrong as a megabyte.
  fs::resize_file(dir.path() / "test_batch.bin", 10000 * kCifar10Record - 1);
  CHECK_THROWS_WITH(load_cifar10(dir.str(), false), Contains("is 30,729,999 bytes, expected 30,730,000"));
}

TEST_CASE("cifar10 errors: a label out of range names the file and the record", "[data][cifar]") {
  TempDir dir("cifar10_label");
  sparse_cifar10(dir, false);
  put_cifar10_record(dir.file("test_batch.bin"), 4321, 10, random_pixels(kPixels, 5));
  CHECK_THROWS_WITH(load_cifar10(dir.str(), false),
                    Contains(dir.file("test_batch.bin") + " record 4,321") && Contains("has label 10, expected 0..9"));
}

TEST_CASE("cifar errors: a directory, a FIFO or an unreadable file is named for what it is", "[data][cifar][errors]") {
  TempDir dir("cifar_not_files");
  // Where a file belongs, a directory: not "not found", which would send the
  // user to download what is (in some form) there.
  fs::create_directory(dir.path() / "data_batch_1.bin");
  CHECK_THROWS_WITH(load_cifar10(dir.str(), true),
                    Contains("CIFAR-10: " + dir.file("data_batch_1.bin") + " is a directory, not a file"));

  // A FIFO: refused at once, never opened to wait for a writer.
  REQUIRE(::mkfifo(dir.file("test_batch.bin").c_str(), 0600) == 0);
  CHECK_THROWS_WITH(load_cifar10(dir.str(), false),
                    Contains("CIFAR-10: " + dir.file("test_batch.bin") + " is not a regular file"));
  REQUIRE(::mkfifo(dir.file("test.bin").c_str(), 0600) == 0);
  CHECK_THROWS_WITH(load_cifar100(dir.str(), false), Contains("CIFAR-100: " + dir.file("test.bin") + " is not a regular file"));

  // A file of the right size that cannot be opened: the reason is the system's.
  sparse_file(dir.file("train.bin"), 50000 * kCifar100Record);
  fs::permissions(dir.path() / "train.bin", fs::perms::none);
  if (::geteuid() == 0) {
    WARN("running as root, which can open any file: the permission-denied case is not exercised");
  } else {
    CHECK_THROWS_WITH(load_cifar100(dir.str(), true),
                      Contains("CIFAR-100: cannot open " + dir.file("train.bin") + ": Permission denied"));
  }

  // Still "not found" when nothing is there, and for a dangling link.
  fs::create_symlink(dir.file("nowhere.bin"), dir.file("data_batch_2.bin"));
  fs::remove(dir.path() / "data_batch_1.bin");
  sparse_file(dir.file("data_batch_1.bin"), 10000 * kCifar10Record);
  CHECK_THROWS_WITH(load_cifar10(dir.str(), true),
                    Contains("CIFAR-10: " + dir.file("data_batch_2.bin") + " not found; download it with"));
}

TEST_CASE("mnist errors: a directory or a FIFO is named for what it is", "[data][mnist][errors]") {
  TempDir dir("mnist_not_files");
  fs::create_directory(dir.path() / "train-images-idx3-ubyte");
  CHECK_THROWS_WITH(load_mnist(dir.str(), true),
                    Contains("MNIST: " + dir.file("train-images-idx3-ubyte") + " is a directory, not a file"));
  REQUIRE(::mkfifo(dir.file("t10k-images-idx3-ubyte").c_str(), 0600) == 0);
  CHECK_THROWS_WITH(load_mnist(dir.str(), false),
                    Contains("MNIST: " + dir.file("t10k-images-idx3-ubyte") + " is not a regular file"));
}

TEST_CASE("cifar bytes decoder: the loaders' records and errors, from memory", "[data][cifar]") {
  TempDir dir("cifar_decode");
  sparse_cifar10(dir, false);
  const std::string path = dir.file("test_batch.bin");
  put_cifar10_record(path, 0, 3, random_pixels(kPixels, 31));
  put_cifar10_record(path, 4567, 9, random_pixels(kPixels, 32));
  const std::vector<std::uint8_t> bytes = read_whole(path);
  const Dataset from_file = load_cifar10(dir.str(), false);
  const Dataset from_bytes = data::detail::decode_cifar(bytes, data::detail::CifarLayout::cifar10, 10000, path);
  check_same_records(from_bytes, from_file);
  CHECK(from_bytes.name.empty());  // names and statistics are the loaders' to add
  CHECK(from_bytes.mean.empty());

  // CIFAR-100, both label sets, from one file's bytes.
  sparse_file(dir.file("test.bin"), 10000 * kCifar100Record);
  std::vector<std::uint8_t> record{17, 71};
  const auto pixels = random_pixels(kPixels, 33);
  record.insert(record.end(), pixels.begin(), pixels.end());
  write_at(dir.file("test.bin"), 9999 * kCifar100Record, record);
  const std::vector<std::uint8_t> bytes100 = read_whole(dir.file("test.bin"));
  check_same_records(data::detail::decode_cifar(bytes100, data::detail::CifarLayout::cifar100_fine, 10000, "x"),
                     load_cifar100(dir.str(), false, true));
  check_same_records(data::detail::decode_cifar(bytes100, data::detail::CifarLayout::cifar100_coarse, 10000, "x"),
                     load_cifar100(dir.str(), false, false));

  // Any record count: three records in memory.
  CHECK(data::detail::cifar_record_bytes(data::detail::CifarLayout::cifar10) == kCifar10Record);
  CHECK(data::detail::cifar_record_bytes(data::detail::CifarLayout::cifar100_coarse) == kCifar100Record);
  std::vector<std::uint8_t> three;
  for (std::uint8_t label : {4, 0, 9}) {
    three.push_back(label);
    const auto p = random_pixels(kPixels, 40 + label);
    three.insert(three.end(), p.begin(), p.end());
  }
  const Dataset small = data::detail::decode_cifar(three, data::detail::CifarLayout::cifar10, 3, "three.bin");
  CHECK(small.images.shape() == Shape{3, 3, 32, 32});
  CHECK(small.labels.to_vector<std::int64_t>() == std::vector<std::int64_t>{4, 0, 9});
  CHECK(image_bytes(small, 2) == random_pixels(kPixels, 49));

  // Bad bytes: the loaders' messages, with the given name.
  CHECK_THROWS_WITH(data::detail::decode_cifar(three, data::detail::CifarLayout::cifar10, 2, "three.bin"),
                    Contains("CIFAR-10: three.bin is 9,219 bytes, expected 6,146 (2 records of 3,073 bytes)"));
  CHECK_THROWS_WITH(data::detail::decode_cifar(three, data::detail::CifarLayout::cifar100_fine, 3, "three.bin"),
                    Contains("CIFAR-100: three.bin is 9,219 bytes, expected 9,222 (3 records of 3,074 bytes)"));
  three[kCifar10Record] = 10;
  CHECK_THROWS_WITH(data::detail::decode_cifar(three, data::detail::CifarLayout::cifar10, 3, "three.bin"),
                    Contains("CIFAR-10: three.bin record 1 (byte offset 3,073) has label 10, expected 0..9"));
  CHECK_THROWS_WITH(data::detail::decode_cifar(three, data::detail::CifarLayout::cifar10, -1, "three.bin"),
                    Contains("a count of -1 records is out of range"));
  CHECK_THROWS_WITH(data::detail::decode_cifar(three, data::detail::CifarLayout::cifar10, std::int64_t{1} << 61, "three.bin"),
                    Contains("records is out of range"));
  CHECK(data::detail::decode_cifar({}, data::detail::CifarLayout::cifar10, 0, "empty").size() == 0);
}

// ---------------------------------------------------------------- CIFAR-100

TEST_CASE("cifar100: fine and coarse labels, class names from the archive", "[data][cifar]") {
  TempDir dir("cifar100");
  const std::string path = dir.file("test.bin");
  sparse_file(path, 10000 * kCifar100Record);
  const auto pixels = random_pixels(kPixels, 7);
  std::vector<std::uint8_t> record{13, 42};  // coarse, fine
  record.insert(record.end(), pixels.begin(), pixels.end());
  write_at(path, 5 * kCifar100Record, record);
  std::ofstream names(dir.file("fine_label_names.txt"));
  for (int k = 0; k < 100; ++k) names << "class" << k << "\n";
  names.close();

  const Dataset fine = load_cifar100(dir.str(), false, /*fine=*/true);
  CHECK(fine.name == "CIFAR-100 test");
  CHECK(fine.num_classes == 100);
  CHECK(fine.size() == 10000);
  CHECK(label_at(fine, 5) == 42);
  CHECK(image_bytes(fine, 5) == pixels);
  REQUIRE(fine.classes.size() == 100);
  CHECK(fine.classes[42] == "class42");

  const Dataset coarse = load_cifar100(dir.str(), false, /*fine=*/false);
  CHECK(coarse.num_classes == 20);
  CHECK(label_at(coarse, 5) == 13);
  CHECK(image_bytes(coarse, 5) == pixels);
  CHECK(coarse.classes.empty());  // no coarse_label_names.txt here
}

TEST_CASE("cifar100 errors: missing, wrong size, fine and coarse labels out of range", "[data][cifar]") {
  TempDir dir("cifar100_errors");
  CHECK_THROWS_WITH(load_cifar100(dir.str(), true),
                    Contains("CIFAR-100: " + dir.file("train.bin") + " not found; download it with"));
  sparse_file(dir.file("test.bin"), 10000 * kCifar10Record);  // a CIFAR-10 sized file
  CHECK_THROWS_WITH(load_cifar100(dir.str(), false),
                    Contains("is 30,730,000 bytes, expected 30,740,000 (10,000 records of 3,074 bytes)"));

  fs::resize_file(dir.path() / "test.bin", 10000 * kCifar100Record);
  write_at(dir.file("test.bin"), 777 * kCifar100Record, {19, 100});
  CHECK_THROWS_WITH(load_cifar100(dir.str(), false, true),
                    Contains("record 777") && Contains("has label 100, expected 0..99"));
  CHECK_NOTHROW(load_cifar100(dir.str(), false, false));  // coarse 19 is fine
  write_at(dir.file("test.bin"), 778 * kCifar100Record, {20, 5});
  CHECK_THROWS_WITH(load_cifar100(dir.str(), false, false),
                    Contains("record 778") && Contains("has label 20, expected 0..19"));
}

// ---------------------------------------------------------------- MNIST

namespace {

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift : {24, 16, 8, 0}) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

std::vector<std::uint8_t> idx_images(std::uint32_t count, std::uint32_t rows, std::uint32_t cols,
                                     const std::vector<std::uint8_t>& pixels) {
  std::vector<std::uint8_t> out;
  put_u32(out, 0x00000803);
  put_u32(out, count);
  put_u32(out, rows);
  put_u32(out, cols);
  out.insert(out.end(), pixels.begin(), pixels.end());
  return out;
}

std::vector<std::uint8_t> idx_labels(const std::vector<std::uint8_t>& labels) {
  std::vector<std::uint8_t> out;
  put_u32(out, 0x00000801);
  put_u32(out, static_cast<std::uint32_t>(labels.size()));
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

}  // namespace

TEST_CASE("mnist: idx files give [N, 1, rows, cols] images and labels", "[data][mnist]") {
  TempDir dir("mnist");
  const std::uint32_t n = 7, rows = 5, cols = 4;
  const auto pixels = random_pixels(n * rows * cols, 11);
  const std::vector<std::uint8_t> labels{3, 1, 4, 1, 5, 9, 2};
  write_file(dir.file("t10k-images-idx3-ubyte"), idx_images(n, rows, cols, pixels));
  write_file(dir.file("t10k-labels-idx1-ubyte"), idx_labels(labels));

  const Dataset d = load_mnist(dir.str(), /*train=*/false);
  CHECK(d.name == "MNIST test");
  CHECK(d.images.shape() == Shape{7, 1, 5, 4});
  CHECK(d.num_classes == 10);
  CHECK(d.mean.size() == 1);
  CHECK(d.labels.to_vector<std::int64_t>() == std::vector<std::int64_t>{3, 1, 4, 1, 5, 9, 2});
  const Tensor x = d.images.contiguous();
  CHECK(std::vector<std::uint8_t>(x.data<std::uint8_t>(), x.data<std::uint8_t>() + pixels.size()) == pixels);
  CHECK_NOTHROW(d.validate());

  // The train split reads the train-* files; Fashion-MNIST the same format.
  write_file(dir.file("train-images-idx3-ubyte"), idx_images(n, rows, cols, pixels));
  write_file(dir.file("train-labels-idx1-ubyte"), idx_labels(labels));
  CHECK(load_mnist(dir.str(), true).name == "MNIST train");
  const Dataset fashion = load_fashion_mnist(dir.str(), true);
  CHECK(fashion.name == "Fashion-MNIST train");
  CHECK(fashion.classes[9] == "Ankle boot");
}

TEST_CASE("mnist errors: missing, gzipped, bad magic, wrong size, count mismatch, bad label", "[data][mnist]") {
  TempDir dir("mnist_errors");
  const std::string images = dir.file("train-images-idx3-ubyte"), labels = dir.file("train-labels-idx1-ubyte");
  const auto pixels = random_pixels(3 * 2 * 2, 12);

  CHECK_THROWS_WITH(load_mnist(dir.str(), true), Contains("MNIST: " + images + " not found"));
  write_file(images + ".gz", {0x1f, 0x8b});
  CHECK_THROWS_WITH(load_mnist(dir.str(), true), Contains("run: gunzip -k " + images + ".gz"));

  write_file(images, idx_images(3, 2, 2, pixels));
  write_file(labels, idx_images(3, 2, 2, pixels));  // an images file where the labels belong
  CHECK_THROWS_WITH(load_mnist(dir.str(), true),
                    Contains(labels + " does not start with the idx1 magic number 0x00000801 (found 0x00000803)"));
  write_file(images, idx_labels({1, 2, 3, 4, 5, 6, 7, 8, 9, 0}));  // long enough for an idx3 header
  write_file(labels, idx_labels({1, 2, 3}));
  CHECK_THROWS_WITH(load_mnist(dir.str(), true),
                    Contains(images + " does not start with the idx3 magic number 0x00000803 (found 0x00000801)"));
  write_file(images, {0, 0, 8, 3, 0, 0});
  CHECK_THROWS_WITH(load_mnist(dir.str(), true), Contains(images + " is 6 bytes, shorter than the 16-byte idx3 header"));

  auto short_images = idx_images(3, 2, 2, pixels);
  short_images.pop_back();
  write_file(images, short_images);
  CHECK_THROWS_WITH(load_mnist(dir.str(), true),
                    Contains(images + " is 27 bytes, expected 28 (16-byte header + 3 images of 2x2)"));

  write_file(images, idx_images(3, 2, 2, pixels));
  write_file(labels, idx_labels({1, 2}));
  CHECK_THROWS_WITH(load_mnist(dir.str(), true), Contains(images + " holds 3 images but " + labels + " holds 2 labels"));

  auto bad_count = idx_labels({1, 2, 3});
  bad_count.push_back(4);  // header says 3, the file holds 4
  write_file(labels, bad_count);
  CHECK_THROWS_WITH(load_mnist(dir.str(), true), Contains(labels + " is 12 bytes, expected 11 (8-byte header + 3 labels)"));

  write_file(labels, idx_labels({1, 10, 3}));
  CHECK_THROWS_WITH(load_mnist(dir.str(), true), Contains(labels + " record 1 has label 10, expected 0..9"));
}

TEST_CASE("mnist bytes decoder: the loader's dataset and errors, from memory", "[data][mnist]") {
  TempDir dir("mnist_decode");
  const std::uint32_t n = 4, rows = 3, cols = 5;
  const auto pixels = random_pixels(n * rows * cols, 13);
  const auto images = idx_images(n, rows, cols, pixels);
  const auto labels = idx_labels({7, 0, 2, 9});
  write_file(dir.file("t10k-images-idx3-ubyte"), images);
  write_file(dir.file("t10k-labels-idx1-ubyte"), labels);
  const Dataset from_file = load_mnist(dir.str(), false);
  const Dataset from_bytes = data::detail::decode_mnist("MNIST", images, "images", labels, "labels");
  check_same_records(from_bytes, from_file);
  CHECK(from_bytes.images.shape() == Shape{4, 1, 3, 5});
  CHECK(from_bytes.name == "MNIST");

  // Bad bytes: the loader's messages, with the given names.
  CHECK_THROWS_WITH(data::detail::decode_mnist("MNIST", idx_labels({1, 2, 3, 4, 5, 6, 7, 8}), "images", labels, "labels"),
                    Contains("MNIST: images does not start with the idx3 magic number 0x00000803 (found 0x00000801)"));
  CHECK_THROWS_WITH(data::detail::decode_mnist("Fashion-MNIST", images, "images", images, "labels"),
                    Contains("Fashion-MNIST: labels does not start with the idx1 magic number"));
  // A header that declares 2^32 - 1 images of 4096 x 4096 pixels is refused
  // on its size, before anything of that size is allocated.
  const auto huge = idx_images(0xFFFFFFFF, 4096, 4096, pixels);
  CHECK_THROWS_WITH(data::detail::decode_mnist("MNIST", huge, "huge", labels, "labels"),
                    Contains("MNIST: huge is 76 bytes, expected 72,057,594,021,150,736 (16-byte header + "
                             "4,294,967,295 images of 4096x4096)"));
  CHECK_THROWS_WITH(data::detail::decode_mnist("MNIST", idx_images(4, 3, 0, {}), "flat", labels, "labels"),
                    Contains("MNIST: flat declares images of 3x0 pixels (expected 1 to 4096 per side)"));
  CHECK_THROWS_WITH(data::detail::decode_mnist("MNIST", images, "images", idx_labels({7, 0, 12, 9}), "labels"),
                    Contains("MNIST: labels record 2 has label 12, expected 0..9"));
  CHECK_THROWS_WITH(data::detail::decode_mnist("MNIST", idx_images(0, 3, 5, {}), "none", idx_labels({}), "labels"),
                    Contains("MNIST: none holds no images"));
  CHECK_THROWS_WITH(data::detail::decode_mnist("MNIST", {}, "empty", labels, "labels"),
                    Contains("MNIST: empty is 0 bytes, shorter than the 16-byte idx3 header"));
}

// ---------------------------------------------------------------- Dataset helpers

TEST_CASE("cifar dataset helpers: head, validate, channel_stats, class_counts", "[data][cifar]") {
  Dataset d;
  d.name = "toy";
  std::vector<std::uint8_t> pixels = random_pixels(6 * 2 * 3 * 3, 21);
  d.images = from_vector(pixels, {6, 2, 3, 3});
  d.labels = from_vector(std::vector<std::int64_t>{0, 2, 2, 1, 2, 0}, {6});
  d.num_classes = 3;
  d.mean = {0.5, 0.4};
  d.stddev = {0.2, 0.3};
  CHECK_NOTHROW(d.validate());
  CHECK(class_counts(d) == std::vector<std::int64_t>{2, 1, 3});

  const Dataset h = d.head(4);
  CHECK(h.name == "toy (first 4)");
  CHECK(h.size() == 4);
  CHECK(h.labels.to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 2, 2, 1});
  CHECK(image_bytes(h, 3) == image_bytes(d, 3));
  CHECK(d.head(6).name == "toy");
  CHECK_THROWS_WITH(d.head(7), Contains("toy: a subset of 7 records was asked for, but the dataset holds 6"));
  CHECK_THROWS_WITH(d.head(0), Contains("a subset of 0 records"));

  // channel_stats against a direct float64 computation.
  const ChannelStats stats = channel_stats(d.images);
  for (int c = 0; c < 2; ++c) {
    double sum = 0, squares = 0;
    int count = 0;
    for (int i = 0; i < 6; ++i) {
      for (int e = 0; e < 9; ++e) {
        const double v = pixels[(i * 2 + c) * 9 + e] / 255.0;
        sum += v;
        squares += v * v;
        ++count;
      }
    }
    const double mean = sum / count;
    CHECK(stats.mean[c] == Approx(mean).epsilon(1e-12));
    CHECK(stats.stddev[c] == Approx(std::sqrt(squares / count - mean * mean)).epsilon(1e-9));
  }

  Dataset bad = d;
  bad.labels = from_vector(std::vector<std::int64_t>{0, 2, 3, 1, 2, 0}, {6});
  CHECK_THROWS_WITH(bad.validate(), Contains("toy: record 2 has label 3, expected 0..2"));
  bad = d;
  bad.mean = {0.5};
  CHECK_THROWS_WITH(bad.validate(), Contains("toy: images have 2 channels but mean has 1 values"));
  bad = d;
  bad.stddev = {0.2, 0.0};
  CHECK_THROWS_WITH(bad.validate(), Contains("channel 1 has mean 0.4 and std 0"));
  bad = d;
  bad.labels = from_vector(std::vector<std::int64_t>{0, 1, 2}, {3});
  CHECK_THROWS_WITH(bad.validate(), Contains("toy: labels must be int64 [6]"));
  bad = d;
  bad.images = d.images.to(kFloat32);
  CHECK_THROWS_WITH(bad.validate(), Contains("toy: images must be uint8 [N, C, H, W], got float32"));

  CHECK(data::detail::with_commas(0) == "0");
  CHECK(data::detail::with_commas(999) == "999");
  CHECK(data::detail::with_commas(1000) == "1,000");
  CHECK(data::detail::with_commas(30730000) == "30,730,000");
}

// ---------------------------------------------------------------- label noise

namespace {

// n one-pixel images whose labels are i % classes.
Dataset labelled(std::int64_t n, std::int64_t classes, const std::string& name = "toy") {
  Dataset d;
  d.name = name;
  d.images = from_vector(random_pixels(static_cast<std::size_t>(n), 5), {n, 1, 1, 1});
  std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) labels[i] = i % classes;
  d.labels = from_vector(labels, {n});
  d.num_classes = classes;
  d.mean = {0.5};
  d.stddev = {0.25};
  return d;
}

}  // namespace

TEST_CASE("label noise: round(fraction * N) records, each relabelled with another class", "[data][label-noise]") {
  const Dataset d = labelled(1000, 10);
  const std::vector<std::int64_t> before = d.labels.to_vector<std::int64_t>();
  const Generator global = default_generator();
  const LabelNoise noisy = with_label_noise(d, 0.2, 7);
  // Nothing global is drawn from: weights and data order stay those of a run without noise.
  CHECK(default_generator().seed() == global.seed());
  CHECK(default_generator().offset() == global.offset());

  REQUIRE(noisy.flipped.size() == 200);
  CHECK(std::is_sorted(noisy.flipped.begin(), noisy.flipped.end()));
  CHECK(std::adjacent_find(noisy.flipped.begin(), noisy.flipped.end()) == noisy.flipped.end());
  const std::vector<std::int64_t> after = noisy.dataset.labels.to_vector<std::int64_t>();
  REQUIRE(after.size() == before.size());
  std::size_t next = 0;
  for (std::size_t i = 0; i < after.size(); ++i) {
    INFO("record " << i);
    const bool chosen = next < noisy.flipped.size() && noisy.flipped[next] == static_cast<std::int64_t>(i);
    if (chosen) {
      ++next;
      CHECK(after[i] != before[i]);
      CHECK(after[i] >= 0);
      CHECK(after[i] < 10);
    } else {
      CHECK(after[i] == before[i]);
    }
  }
  CHECK(d.labels.to_vector<std::int64_t>() == before);                 // the input is left alone
  CHECK(noisy.dataset.images.data_ptr() == d.images.data_ptr());        // images shared, not copied
  CHECK(noisy.dataset.labels.data_ptr() != d.labels.data_ptr());
  CHECK(noisy.dataset.name == "toy (20% noisy labels)");
  CHECK(with_label_noise(d.head(500), 0.2, 7).dataset.name == "toy (first 500, 20% noisy labels)");
  CHECK_NOTHROW(noisy.dataset.validate());

  // round(fraction * N), halves away from zero.
  CHECK(with_label_noise(labelled(7, 3), 0.5, 1).flipped.size() == 4);
  CHECK(with_label_noise(labelled(7, 3), 0.25, 1).flipped.size() == 2);
  CHECK(with_label_noise(labelled(7, 3), 0.05, 1).flipped.empty());
  // Two classes: every chosen label is the other one.
  const LabelNoise two = with_label_noise(labelled(100, 2), 0.3, 3);
  REQUIRE(two.flipped.size() == 30);
  for (std::int64_t i : two.flipped) CHECK(two.dataset.labels.to_vector<std::int64_t>()[i] == 1 - i % 2);
}

TEST_CASE("label noise: fixed by (labels, fraction, seed), nested across fractions", "[data][label-noise]") {
  const Dataset d = labelled(1000, 10);
  const LabelNoise a = with_label_noise(d, 0.2, 7);
  const LabelNoise again = with_label_noise(d, 0.2, 7);
  CHECK(again.flipped == a.flipped);
  CHECK(again.dataset.labels.to_vector<std::int64_t>() == a.dataset.labels.to_vector<std::int64_t>());
  const LabelNoise other = with_label_noise(d, 0.2, 8);
  CHECK(other.flipped != a.flipped);
  // The seed is mixed before use: seed 0 draws something of its own, not the default generator's numbers.
  CHECK(with_label_noise(d, 0.2, 0).flipped != a.flipped);

  // At one seed a smaller fraction flips a subset of a larger one's records, to the same labels.
  const LabelNoise half = with_label_noise(d, 0.1, 7);
  REQUIRE(half.flipped.size() == 100);
  CHECK(std::includes(a.flipped.begin(), a.flipped.end(), half.flipped.begin(), half.flipped.end()));
  const std::vector<std::int64_t> ya = a.dataset.labels.to_vector<std::int64_t>();
  const std::vector<std::int64_t> yh = half.dataset.labels.to_vector<std::int64_t>();
  for (std::int64_t i : half.flipped) CHECK(yh[i] == ya[i]);

  // Pinned: Philox is integer arithmetic, so these are the records and labels on every machine.
  const LabelNoise pinned = with_label_noise(labelled(20, 4), 0.25, 7);
  const std::vector<std::int64_t> records = pinned.flipped;
  const std::vector<std::int64_t> labels = pinned.dataset.labels.to_vector<std::int64_t>();
  std::vector<std::int64_t> new_labels;
  for (std::int64_t i : records) new_labels.push_back(labels[i]);
  INFO("records " << ::Catch::Detail::stringify(records) << " labels " << ::Catch::Detail::stringify(new_labels));
  CHECK(records == std::vector<std::int64_t>{2, 3, 8, 9, 19});
  CHECK(new_labels == std::vector<std::int64_t>{3, 2, 1, 0, 0});
}

TEST_CASE("label noise: records and new classes are uniform", "[data][label-noise]") {
  // 5 classes, 50,000 records, 60% flipped: each class loses about 6,000
  // labels, spread about 1,500 over each of the 4 others.
  const std::int64_t n = 50000, classes = 5;
  const LabelNoise noisy = with_label_noise(labelled(n, classes), 0.6, 11);
  REQUIRE(noisy.flipped.size() == 30000);
  const std::vector<std::int64_t> y = noisy.dataset.labels.to_vector<std::int64_t>();
  std::vector<std::vector<double>> moved(classes, std::vector<double>(classes, 0.0));
  std::vector<double> chosen(classes, 0.0), first_half(2, 0.0);
  for (std::int64_t i : noisy.flipped) {
    moved[i % classes][y[i]] += 1;
    chosen[i % classes] += 1;
    first_half[i < n / 2 ? 0 : 1] += 1;
  }
  // Chi-square over the 20 (from, to) cells given each row's total: 15 degrees
  // of freedom, whose 0.1% tail starts at 37.7. A bias of a few percent in one
  // cell would give hundreds.
  double chi2 = 0;
  for (std::int64_t from = 0; from < classes; ++from) {
    CHECK(moved[from][from] == 0);
    CHECK(chosen[from] == Approx(6000).margin(300));  // sd ~ 49
    const double expected = chosen[from] / (classes - 1);
    for (std::int64_t to = 0; to < classes; ++to) {
      if (to != from) chi2 += (moved[from][to] - expected) * (moved[from][to] - expected) / expected;
    }
  }
  INFO("chi-square " << chi2);
  CHECK(chi2 < 40.0);
  CHECK(first_half[0] == Approx(15000).margin(400));  // sd ~ 55
}

TEST_CASE("label noise: none leaves the dataset as it is; bad values are named", "[data][label-noise][errors]") {
  const Dataset d = labelled(50, 10);
  const LabelNoise none = with_label_noise(d, 0.0, 7);
  CHECK(none.flipped.empty());
  CHECK(none.dataset.name == "toy");
  CHECK(none.dataset.labels.to_vector<std::int64_t>() == d.labels.to_vector<std::int64_t>());
  CHECK(with_label_noise(labelled(5, 1), 0.0, 7).flipped.empty());  // one class is fine without noise

  CHECK_THROWS_WITH(with_label_noise(d, 1.5, 7), Contains("toy: the label-noise fraction must be in [0, 1), got 1.5"));
  CHECK_THROWS_WITH(with_label_noise(d, -0.1, 7), Contains("must be in [0, 1), got -0.1"));
  CHECK_THROWS_WITH(with_label_noise(d, 1.0, 7), Contains("must be in [0, 1), got 1"));
  CHECK_THROWS_WITH(with_label_noise(d, std::nan(""), 7), Contains("must be in [0, 1), got nan"));
  CHECK_THROWS_WITH(with_label_noise(labelled(5, 1), 0.2, 7), Contains("toy: label noise needs at least 2 classes, got 1"));
  Dataset bad = labelled(5, 3);
  bad.labels = from_vector(std::vector<std::int64_t>{0, 1, 3, 1, 2}, {5});
  CHECK_THROWS_WITH(with_label_noise(bad, 0.2, 7), Contains("toy: record 2 has label 3, expected 0..2"));
}

// ---------------------------------------------------------------- the real CIFAR-10

namespace {

// A directory holding CIFAR-10 binary files: $BASIN_CIFAR10_DIR, or one built
// (once, then reused) from the JPEG copy in ../shared/data beside the checkout.
// Empty when neither is available.
fs::path shared_dir() { return fs::weakly_canonical(fs::path(BASIN_TEST_REFERENCE_DIR) / ".." / ".." / ".." / "shared"); }

std::string real_cifar10_dir(std::string& why_not) {
  if (const char* env = std::getenv("BASIN_CIFAR10_DIR"); env != nullptr && *env != '\0') return env;
  const fs::path shared = shared_dir();
  const fs::path script = shared / "tools" / "cifar10_jpeg_to_bin.py";
  if (!fs::exists(shared / "data" / "cifar10-jpeg" / "cifar10-jpeg-q75.tar.gz") || !fs::exists(script)) {
    why_not = "no BASIN_CIFAR10_DIR and no " + (shared / "data" / "cifar10-jpeg").string();
    return "";
  }
  const fs::path out = fs::temp_directory_path() / "basin_cifar10_from_jpeg";
  if (fs::exists(out / "test_batch.bin")) return out.string();  // built by an earlier run
  if (std::system("/usr/bin/python3 -c 'import numpy, PIL' >/dev/null 2>&1") != 0) {
    why_not = "python3 with numpy and Pillow is needed to build it from the JPEG copy";
    return "";
  }
  // Built beside, then renamed: a run killed half-way leaves no half-built folder behind.
  const fs::path partial = out.string() + "." + std::to_string(::getpid());
  const std::string command = "/usr/bin/python3 '" + script.string() + "' '" + partial.string() + "' >/dev/null";
  if (std::system(command.c_str()) != 0) {
    why_not = "building it failed: " + command;
    return "";
  }
  std::error_code ec;
  fs::rename(partial, out, ec);
  if (ec) fs::remove_all(partial, ec);  // another run won the race; its copy is as good
  return out.string();
}

}  // namespace

TEST_CASE("cifar10 real data: 50,000 train and 10,000 test images, balanced classes", "[data][cifar][real]") {
  std::string why_not;
  const std::string dir = real_cifar10_dir(why_not);
  if (dir.empty()) {
    WARN("BASIN_TEST_SKIPPED: no CIFAR-10 copy (" << why_not << ")");
    return;
  }
  const Dataset train = load_cifar10(dir, true);
  const Dataset test = load_cifar10(dir, false);
  CHECK(train.size() == 50000);
  CHECK(test.size() == 10000);
  CHECK(class_counts(train) == std::vector<std::int64_t>(10, 5000));
  CHECK(class_counts(test) == std::vector<std::int64_t>(10, 1000));
  // The stored statistics are those of the training images (the JPEG copy
  // differs from the official pixels by a little).
  const ChannelStats stats = channel_stats(train.images);
  for (int c = 0; c < 3; ++c) {
    CHECK(stats.mean[c] == Approx(train.mean[c]).margin(0.01));
    CHECK(stats.stddev[c] == Approx(train.stddev[c]).margin(0.01));
  }
  // The labels come in the official record order, which the JPEG copy lists.
  std::ifstream listed(shared_dir() / "data" / "cifar10-jpeg" / "train_labels.txt");
  std::string digits;
  if (listed >> digits) {
    REQUIRE(digits.size() == 50000);
    const std::vector<std::int64_t> labels = train.labels.to_vector<std::int64_t>();
    std::int64_t mismatches = 0;
    for (std::size_t i = 0; i < digits.size(); ++i) mismatches += labels[i] != digits[i] - '0';
    CHECK(mismatches == 0);
  }
  // Images are images: not constant, and the two splits differ.
  CHECK(stats.stddev[0] > 0.1);
  CHECK(image_bytes(train, 0) != image_bytes(test, 0));
}
