// Checked writes: a full disk, a missing folder or a refused file is an error
// naming the file and the reason, and an atomic write never leaves a partial
// file under the final name.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/file_io.h"
#include "support/temp_dir.h"

using namespace basin;
using Catch::Matchers::Contains;

namespace {

std::string contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("write_file_atomically replaces a file and leaves no temporary behind", "[file_io]") {
  const testing::TempDir dir("file_io_atomic");
  const std::string path = dir.file("config.json");
  write_file_atomically(path, "first\n", "test");
  write_file_atomically(path, "second\n", "test");
  CHECK(contents(path) == "second\n");
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST_CASE("append_to_file appends whole texts", "[file_io]") {
  const testing::TempDir dir("file_io_append");
  const std::string path = dir.file("metrics.jsonl");
  append_to_file(path, "{\"epoch\":1}\n", "test");
  append_to_file(path, "{\"epoch\":2}\n", "test");
  CHECK(contents(path) == "{\"epoch\":1}\n{\"epoch\":2}\n");
}

TEST_CASE("writes to a full disk or a missing folder fail naming the file and the reason", "[file_io][errors]") {
  // /dev/full accepts an open and refuses every write with ENOSPC.
  REQUIRE(std::filesystem::exists("/dev/full"));
  CHECK_THROWS_WITH(append_to_file("/dev/full", "{\"epoch\":1}\n", "basin-train"),
                    Contains("basin-train: cannot write /dev/full: No space left on device"));

  const testing::TempDir dir("file_io_missing");
  const std::string nowhere = dir.file("missing/config.json");
  CHECK_THROWS_WITH(write_file_atomically(nowhere, "{}", "basin-train"),
                    Contains("basin-train: cannot write " + nowhere) && Contains("No such file or directory"));
  CHECK_THROWS_WITH(append_to_file(nowhere, "{}", "basin-train"),
                    Contains("cannot open " + nowhere + " for appending: No such file or directory"));
}
