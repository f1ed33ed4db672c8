// safetensors: round trips of every dtype, the exact byte layout, every kind of
// corrupt file, atomic replacement; and the fixture loader built on it.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/serialization.h"
#include "support/cuda.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"

using namespace basin;
using Catch::Contains;
using basin::testing::TempDir;
namespace fs = std::filesystem;

namespace {

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// A safetensors file from its parts: a length prefix that may lie, the header text, the data.
std::vector<unsigned char> file_bytes(std::uint64_t declared_header_size, const std::string& header,
                                      const std::vector<unsigned char>& data) {
  std::vector<unsigned char> out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>(declared_header_size >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}
std::vector<unsigned char> file_bytes(const std::string& header, const std::vector<unsigned char>& data) {
  return file_bytes(header.size(), header, data);
}

// The message of the basin::Error that fn throws ("" when it throws none).
template <class Fn>
std::string error_message(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Same dtype, shape and bytes (so NaN payloads, -0.0 and int64 beyond 2^53 count).
bool identical(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const Tensor x = a.cpu().contiguous(), y = b.cpu().contiguous();
  const std::size_t nbytes = static_cast<std::size_t>(x.numel()) * dtype_size(x.dtype());
  return nbytes == 0 || std::memcmp(x.data_ptr(), y.data_ptr(), nbytes) == 0;
}

TensorMap every_dtype() {
  manual_seed(11);
  const float inf = std::numeric_limits<float>::infinity();
  TensorMap m;
  m["f32"] = randn({3, 5});
  m["f32.special"] = from_vector<float>({-0.0f, inf, -inf, std::nanf(""), 1e-45f}, {5});
  m["f64"] = randn({2, 3, 7}, kFloat64);
  m["i32"] = from_vector<std::int32_t>({-7, 0, 2147483647, -2147483647 - 1, 42, 5}, {2, 3});
  m["i64"] = from_vector<std::int64_t>({(std::int64_t{1} << 62) + 1, -3, -(std::int64_t{1} << 53) - 1}, {3});
  m["u8"] = from_vector<std::uint8_t>({0, 1, 127, 128, 254, 255, 9}, {7});
  m["scalar"] = full({}, -2.5, kFloat64);
  m["empty"] = zeros({0, 3});
  m["empty.inner"] = zeros({2, 0, 3});  // a zero size after the first: still contiguous when loaded
  m["layer1.0.conv1.weight"] = randn({4, 3, 3, 3});
  return m;
}

}  // namespace

TEST_CASE("safetensors round trip keeps every dtype, scalars, empty tensors and metadata", "[serialization]") {
  TempDir dir("roundtrip");
  const std::string path = dir.file("all.safetensors");
  const TensorMap saved = every_dtype();
  const std::map<std::string, std::string> meta = {
      {"format", "pt"}, {"epoch", "12"}, {"empty", ""}, {"quoted \"text\"", "back\\slash\nnew line, caf\xc3\xa9"}};
  save_safetensors(path, saved, meta);

  std::map<std::string, std::string> read_meta = {{"stale", "entry"}};
  const TensorMap loaded = load_safetensors(path, &read_meta);
  CHECK(read_meta == meta);
  REQUIRE(loaded.size() == saved.size());
  for (const auto& [name, tensor] : saved) {
    INFO(name);
    REQUIRE(loaded.count(name) == 1);
    const Tensor& back = loaded.at(name);
    CHECK(back.device() == Device::cpu());
    CHECK(back.is_contiguous());
    CHECK_FALSE(back.requires_grad());
    CHECK(identical(back, tensor));
  }
  CHECK(loaded.at("scalar").shape().empty());
  CHECK(loaded.at("scalar").item() == -2.5);
  CHECK(loaded.at("empty").shape() == Shape{0, 3});

  // The loaded tensors own their memory: changing one leaves the next load alone.
  Tensor(loaded.at("f32")).fill_(3.0);
  CHECK(identical(load_safetensors(path).at("f32"), saved.at("f32")));

  // No metadata in the file clears the out-parameter instead of leaving stale entries.
  save_safetensors(path, {{"x", ones({2})}});
  load_safetensors(path, &read_meta);
  CHECK(read_meta.empty());
}

TEST_CASE("safetensors writes non-contiguous views as their row-major values", "[serialization]") {
  TempDir dir("views");
  const std::string path = dir.file("views.safetensors");
  const Tensor base = arange(0.0, 30.0, 1.0, kFloat64).reshape({5, 6});
  const Tensor transposed = base.t();                 // [6, 5], strides [1, 6]
  const Tensor strided = base.slice(1, 1, 6, 2);      // [5, 3], offset 1, step 2
  const Tensor column = base.select(1, 4);            // [5], stride 6, offset 4
  REQUIRE_FALSE(transposed.is_contiguous());
  REQUIRE_FALSE(strided.is_contiguous());
  Tensor grad_leaf = randn({2, 3}).requires_grad_(true);  // saving must not need NoGradGuard
  save_safetensors(path, {{"t", transposed}, {"s", strided}, {"c", column}, {"leaf", grad_leaf}});

  const TensorMap loaded = load_safetensors(path);
  CHECK(loaded.at("t").shape() == Shape{6, 5});
  CHECK(loaded.at("t").to_vector<double>() == transposed.to_vector<double>());
  CHECK(loaded.at("t").to_vector<double>()[1] == 6.0);  // t[0, 1] = base[1, 0]
  CHECK(loaded.at("s").to_vector<double>() == strided.to_vector<double>());
  CHECK(loaded.at("s").to_vector<double>()[0] == 1.0);
  CHECK(loaded.at("c").to_vector<double>() == std::vector<double>{4, 10, 16, 22, 28});
  CHECK(identical(loaded.at("leaf"), grad_leaf));
}

TEST_CASE("safetensors files have exactly the documented byte layout", "[serialization]") {
  TempDir dir("layout");
  const std::string path = dir.file("tiny.safetensors");
  // Inserted out of order: the file must still list and store "a" before "b".
  TensorMap tensors;
  tensors["b"] = from_vector<std::uint8_t>({1, 2, 250}, {3});
  tensors["a"] = from_vector<float>({1.0f, -2.0f}, {2, 1});
  save_safetensors(path, tensors, {{"k", "v"}});

  const std::string json =
      R"({"__metadata__":{"k":"v"},)"
      R"("a":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}})";
  std::string header = json;
  header.append((8 - json.size() % 8) % 8, ' ');
  REQUIRE(header.size() % 8 == 0);
  REQUIRE(header.size() > json.size());  // this case exercises the padding

  std::vector<unsigned char> expected;
  for (int i = 0; i < 8; ++i) expected.push_back(static_cast<unsigned char>(header.size() >> (8 * i)));
  expected.insert(expected.end(), header.begin(), header.end());
  // IEEE-754 little-endian: 1.0f = 0x3f800000, -2.0f = 0xc0000000.
  for (unsigned char byte : {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x01, 0x02, 0xfa}) {
    expected.push_back(byte);
  }

  const std::vector<unsigned char> actual = read_bytes(path);
  CHECK(actual.size() == 8 + header.size() + 11);
  CHECK(std::string(actual.begin() + 8, actual.end() - 11) == header);
  CHECK(actual == expected);
}

TEST_CASE("safetensors reads files written by other writers", "[serialization]") {
  // Whitespace, key order and unknown fields vary between writers; none of it matters.
  TempDir dir("foreign");
  const std::string path = dir.file("foreign.safetensors");
  const std::string header =
      "{ \"w\" : { \"shape\" : [ 2 ], \"data_offsets\" : [ 4, 12 ], \"dtype\" : \"I32\" },\n"
      "  \"v\": {\"dtype\": \"U8\", \"shape\": [1, 4], \"data_offsets\": [0, 4]},\n"
      "  \"__metadata__\": {\"framework\": \"pt\"} }   ";
  write_bytes(path, file_bytes(header, {9, 8, 7, 6, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00}));
  std::map<std::string, std::string> meta;
  const TensorMap loaded = load_safetensors(path, &meta);
  CHECK(meta == std::map<std::string, std::string>{{"framework", "pt"}});
  CHECK(loaded.at("w").dtype() == kInt32);
  CHECK(loaded.at("w").to_vector<std::int32_t>() == std::vector<std::int32_t>{-1, 2});
  CHECK(loaded.at("v").shape() == Shape{1, 4});
  CHECK(loaded.at("v").to_vector<std::uint8_t>() == std::vector<std::uint8_t>{9, 8, 7, 6});
}

TEST_CASE("safetensors rejects corrupt files with errors naming the file and the problem", "[serialization][errors]") {
  TempDir dir("corrupt");
  const std::vector<unsigned char> data24(24, 0x3f);  // 6 floats
  const std::string x_entry = R"("x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]})";
  const std::string good = "{" + x_entry + "}";

  // The template is valid, so each failure below comes from its one change.
  const std::string control = dir.file("control.safetensors");
  write_bytes(control, file_bytes(good, data24));
  REQUIRE(load_safetensors(control).at("x").shape() == Shape{2, 3});

  struct Case {
    const char* name;
    std::vector<unsigned char> bytes;
    const char* problem;
  };
  const std::vector<Case> cases = {
      {"short", {1, 0, 0, 0, 0}, "shorter than the 8-byte header length"},
      {"empty_file", {}, "shorter than the 8-byte header length"},
      {"header_too_big", file_bytes(1000, good, data24), "declares a 1000-byte header"},
      {"header_size_huge", file_bytes(~std::uint64_t{0}, good, data24), "-byte header but the file has only"},
      {"bad_json", file_bytes(R"({"x":{"dtype":"F32",)", data24), "not valid JSON"},
      {"empty_header", file_bytes("", data24), "not valid JSON"},
      {"header_not_object", file_bytes("[1, 2]", data24), "header is a JSON array, not an object"},
      {"entry_not_object", file_bytes(R"({"x":[0,24]})", data24), "tensor \"x\" is not an object"},
      {"unknown_dtype", file_bytes(R"({"x":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]}})", data24),
       "unsupported dtype \"BF16\""},
      {"missing_dtype", file_bytes(R"({"x":{"shape":[2,3],"data_offsets":[0,24]}})", data24), "no \"dtype\""},
      {"negative_shape", file_bytes(R"({"x":{"dtype":"F32","shape":[-2,3],"data_offsets":[0,24]}})", data24),
       "negative size -2"},
      {"fractional_shape", file_bytes(R"({"x":{"dtype":"F32","shape":[2.0,3],"data_offsets":[0,24]}})", data24),
       "shape entry that is not an integer"},
      {"missing_shape", file_bytes(R"({"x":{"dtype":"F32","data_offsets":[0,24]}})", data24), "no \"shape\""},
      {"overflowing_shape",
       file_bytes(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})", data24),
       "element count overflows"},
      {"overflow_hidden_by_zero",
       file_bytes(R"({"x":{"dtype":"F32","shape":[4611686018427387904,4,0],"data_offsets":[0,0]}})", data24),
       "element count overflows"},
      {"oversized_shape", file_bytes(R"({"x":{"dtype":"F64","shape":[2,3],"data_offsets":[0,48]}})", data24),
       "(6 F64 elements) that cannot fit in the file's 24-byte data section"},
      {"offsets_mismatch", file_bytes(R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", data24),
       "spanning 20 bytes, but shape [2, 3] of F32 needs 24 bytes"},
      {"offsets_outside", file_bytes(R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[8,32]}})", data24),
       "outside the data section, which is 24 bytes"},
      {"offsets_reversed", file_bytes(R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[24,0]}})", data24),
       "begin <= end"},
      {"offsets_negative", file_bytes(R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[-24,0]}})", data24),
       "not two non-negative integers"},
      {"offsets_not_pair", file_bytes(R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0]}})", data24),
       "no \"data_offsets\" pair"},
      {"metadata_not_object", file_bytes(R"({"__metadata__":[],)" + x_entry + "}", data24),
       "\"__metadata__\" is not an object"},
      {"metadata_not_string", file_bytes(R"({"__metadata__":{"epoch":3},)" + x_entry + "}", data24),
       "metadata \"epoch\" is not a string"},
      {"repeated_tensor",
       file_bytes("{" + x_entry + R"(,"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", data24),
       "repeats the key \"x\""},
      {"repeated_field", file_bytes(R"({"x":{"dtype":"F32","shape":[2,3],"shape":[6],"data_offsets":[0,24]}})", data24),
       "repeats the key \"shape\""},
      // Found running the fuzz harness (tests/fuzz/fuzz_safetensors.cpp) on a
      // 200 KB header: printing this shape in the error message overflowed the stack.
      {"deep_nesting",
       file_bytes(R"({"x":{"dtype":"U8","shape":)" + std::string(100000, '[') + "1" + std::string(100000, ']') +
                      R"(,"data_offsets":[0,1]}})",
                  data24),
       "the header nests deeper than 64 levels"},
      // A truncated download: the header promises more data than the file holds.
      {"truncated_data", file_bytes(good, std::vector<unsigned char>(data24.begin(), data24.begin() + 20)),
       "cannot fit in the file's 20-byte data section; the file may be truncated"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    const std::string path = dir.file(std::string(c.name) + ".safetensors");
    write_bytes(path, c.bytes);
    CHECK_THROWS_AS(load_safetensors(path), Error);
    CHECK_THROWS_WITH(load_safetensors(path), Contains(path) && Contains(c.problem));

    // The same bytes in memory fail the same check, with the same message
    // but for the name where the path was.
    const std::string from_file = error_message([&] { load_safetensors(path); });
    const std::string from_bytes = error_message([&] { load_safetensors_from_bytes(c.bytes, "in-memory checkpoint"); });
    std::string expected = from_file;
    for (std::size_t at; (at = expected.find(path)) != std::string::npos;) {
      expected.replace(at, path.size(), "in-memory checkpoint");
    }
    CHECK(from_bytes == expected);
  }

  const std::string missing = dir.file("missing.safetensors");
  CHECK_THROWS_WITH(load_safetensors(missing), Contains(missing) && Contains("cannot open") &&
                                                   Contains("No such file"));
  CHECK_THROWS_WITH(load_safetensors(dir.str()), Contains(dir.str()) && Contains("not a regular file"));
  // A FIFO is refused at once rather than opened to wait for a writer.
  const std::string fifo = dir.file("fifo.safetensors");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(load_safetensors(fifo), Contains(fifo) && Contains("not a regular file"));
}

TEST_CASE("safetensors reads bytes in memory as it reads a file", "[serialization]") {
  TempDir dir("from_bytes");
  const std::string path = dir.file("all.safetensors");
  const TensorMap saved = every_dtype();
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"epoch", "4"}};
  save_safetensors(path, saved, meta);
  const std::vector<unsigned char> bytes = read_bytes(path);

  std::map<std::string, std::string> read_meta = {{"stale", "entry"}};
  const TensorMap loaded = load_safetensors_from_bytes(bytes, "checkpoint", &read_meta);
  CHECK(read_meta == meta);
  REQUIRE(loaded.size() == saved.size());
  for (const auto& [name, tensor] : saved) {
    INFO(name);
    CHECK(loaded.at(name).is_contiguous());
    CHECK(identical(loaded.at(name), tensor));
  }
  // The tensors are copies: the bytes can go once the call returns.
  std::vector<unsigned char> scratch = bytes;
  const TensorMap copied = load_safetensors_from_bytes(scratch, "scratch");
  std::fill(scratch.begin(), scratch.end(), 0);
  CHECK(identical(copied.at("f64"), saved.at("f64")));

  CHECK_THROWS_WITH(load_safetensors_from_bytes({}, "nothing"),
                    Contains("load_safetensors: nothing is 0 bytes, shorter than the 8-byte header length"));
  const std::vector<unsigned char> cut(bytes.begin(), bytes.end() - 1);
  CHECK_THROWS_WITH(load_safetensors_from_bytes(cut, "cut"),
                    Contains("load_safetensors: cut: tensor \"u8\" has data_offsets") &&
                        Contains("outside the data section"));
}

TEST_CASE("safetensors saves atomically and replaces an existing file", "[serialization]") {
  TempDir dir("atomic");
  const std::string path = dir.file("ckpt.safetensors");
  const std::string tmp = path + ".tmp";
  save_safetensors(path, {{"w", full({3}, 1.0)}}, {{"epoch", "1"}});
  CHECK(fs::exists(path));
  CHECK_FALSE(fs::exists(tmp));

  // A stale temp file from an interrupted save is overwritten, not appended to.
  write_bytes(tmp, std::vector<unsigned char>(100, 0xee));
  save_safetensors(path, {{"w", full({2, 2}, 7.0, kFloat64)}}, {{"epoch", "2"}});
  CHECK_FALSE(fs::exists(tmp));
  std::map<std::string, std::string> meta;
  const TensorMap loaded = load_safetensors(path, &meta);
  CHECK(meta.at("epoch") == "2");
  CHECK(loaded.at("w").dtype() == kFloat64);
  CHECK(loaded.at("w").to_vector<double>() == std::vector<double>(4, 7.0));
  CHECK(fs::file_size(path) == read_bytes(path).size());
}

TEST_CASE("safetensors save failures name the path and leave nothing behind", "[serialization][errors]") {
  TempDir dir("savefail");

  const std::string no_dir = dir.file("no/such/dir/ckpt.safetensors");
  CHECK_THROWS_WITH(save_safetensors(no_dir, {{"w", ones({2})}}), Contains(no_dir) && Contains("cannot open"));

  // The temp file is written, then rename onto a directory fails: the temp file must go.
  const std::string occupied = dir.file("occupied");
  fs::create_directories(fs::path(occupied) / "child");
  CHECK_THROWS_WITH(save_safetensors(occupied, {{"w", ones({2})}}), Contains(occupied) && Contains("cannot rename"));
  CHECK_FALSE(fs::exists(occupied + ".tmp"));
  CHECK(fs::is_directory(occupied));

  // Bad input fails before any file is created, and an existing file survives.
  const std::string path = dir.file("keep.safetensors");
  save_safetensors(path, {{"w", full({2}, 5.0)}});

  // A full disk: the temp name leads to /dev/full, where every write fails with ENOSPC.
  if (fs::exists("/dev/full")) {
    fs::create_symlink("/dev/full", path + ".tmp");
    CHECK_THROWS_WITH(save_safetensors(path, {{"w", ones({1000})}}),
                      Contains(path) && Contains("No space left on device"));
    CHECK_FALSE(fs::exists(fs::symlink_status(path + ".tmp")));
  } else {
    WARN("no /dev/full: the disk-full case is not exercised");
  }
  CHECK_THROWS_WITH(save_safetensors(path, {{"w", Tensor()}}), Contains(path) && Contains("\"w\" is undefined"));
  CHECK_THROWS_WITH(save_safetensors(path, {{"__metadata__", ones({1})}}), Contains(path) && Contains("reserved"));
  CHECK_THROWS_WITH(save_safetensors(path, {{"w", ones({1})}}, {{"bad", "\xff\xfe"}}),
                    Contains(path) && Contains("not valid UTF-8"));
  CHECK_FALSE(fs::exists(path + ".tmp"));
  CHECK(load_safetensors(path).at("w").to_vector<float>() == std::vector<float>{5.0f, 5.0f});
}

TEST_CASE("safetensors saves CUDA tensors through a host copy", "[serialization][cuda]") {
  BASIN_REQUIRE_CUDA();
  TempDir dir("cuda");
  const std::string path = dir.file("cuda.safetensors");
  manual_seed(5);
  const Tensor host = randn({37, 5});
  const Tensor device = host.to(Device::cuda());
  const Tensor index = arange(7, TensorOptions(kInt64).device(Device::cuda()));
  save_safetensors(path, {{"w", device}, {"wt", device.t()}, {"i", index}});
  const TensorMap loaded = load_safetensors(path);
  CHECK(loaded.at("w").device() == Device::cpu());
  CHECK(identical(loaded.at("w"), host));
  CHECK(identical(loaded.at("wt"), host.t().contiguous()));
  CHECK(loaded.at("i").to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6});
}

TEST_CASE("load_fixture names the generator to run when a fixture is missing", "[serialization][fixture]") {
  const std::string name = "no_such_fixture.safetensors";
  CHECK_THROWS_WITH(basin::testing::load_fixture(name),
                    Contains(std::string(BASIN_TEST_REFERENCE_DIR) + "/" + name) && Contains("does not exist") &&
                        Contains("/usr/bin/python3 tests/reference/gen_"));
}

TEST_CASE("load_fixture reads every committed fixture", "[serialization][fixture]") {
  std::vector<std::string> names;
  for (const auto& item : fs::directory_iterator(BASIN_TEST_REFERENCE_DIR)) {
    if (item.path().extension() == ".safetensors") names.push_back(item.path().filename().string());
  }
  REQUIRE_FALSE(names.empty());
  for (const std::string& name : names) {
    INFO(name);
    const TensorMap fixture = basin::testing::load_fixture(name);
    CHECK_FALSE(fixture.empty());
    for (const auto& [key, tensor] : fixture) CHECK(tensor.device() == Device::cpu());
  }
}

TEST_CASE("fixture_tensor returns the tensor or lists the keys it has", "[serialization][fixture]") {
  const TensorMap fixture = {{"logits", full({2}, 1.5)}, {"loss", full({}, 0.25)}};
  CHECK(basin::testing::fixture_tensor(fixture, "loss").item() == 0.25);
  CHECK_THROWS_WITH(basin::testing::fixture_tensor(fixture, "grad"),
                    Contains("\"grad\"") && Contains("[logits, loss]"));
  CHECK_THROWS_WITH(basin::testing::fixture_tensor({}, "grad"), Contains("no tensors"));
}
