// A main() for the fuzz harnesses that replays inputs instead of searching
// for new ones, so the harnesses build and run with any compiler:
//
//   basin_fuzz_mnist_replay tests/fuzz/corpus/mnist crash-1234abcd
//
// Each argument is a file (one input) or a folder (every regular file in it,
// in name order, not descending further). Every input goes through
// LLVMFuzzerTestOneInput in a buffer of exactly its size, so a sanitizer sees
// a read one byte past the end. Exits 0 after replaying every input, 1 when
// an argument cannot be read or no input was found; a bug in the code under
// test ends the process the way it would end the fuzzer (an uncaught
// exception, a sanitizer report).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

bool replay(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot open %s\n", path.c_str());
    return false;
  }
  const std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) {
    std::fprintf(stderr, "replay: cannot read %s\n", path.c_str());
    return false;
  }
  // A fresh allocation of the exact size: no spare capacity to hide an over-read.
  const std::unique_ptr<std::uint8_t[]> input(new std::uint8_t[std::max<std::size_t>(bytes.size(), 1)]);
  std::copy(bytes.begin(), bytes.end(), input.get());
  std::printf("replay: %s (%zu bytes)\n", path.c_str(), bytes.size());
  std::fflush(stdout);  // the name is out before a crash in the input can stop the process
  LLVMFuzzerTestOneInput(input.get(), bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE_OR_FOLDER...\n", argv[0]);
    return 1;
  }
  std::size_t count = 0;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg = argv[i];
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      std::vector<fs::path> files;
      for (const fs::directory_entry& entry : fs::directory_iterator(arg, ec)) {
        if (entry.is_regular_file(ec)) files.push_back(entry.path());
      }
      if (ec) {
        std::fprintf(stderr, "replay: cannot list %s: %s\n", arg.c_str(), ec.message().c_str());
        return 1;
      }
      std::sort(files.begin(), files.end());
      for (const fs::path& file : files) {
        if (!replay(file)) return 1;
        ++count;
      }
    } else if (fs::is_regular_file(arg, ec)) {
      if (!replay(arg)) return 1;
      ++count;
    } else {
      std::fprintf(stderr, "replay: %s is neither a file nor a folder\n", arg.c_str());
      return 1;
    }
  }
  if (count == 0) {
    std::fprintf(stderr, "replay: no input found in the arguments\n");
    return 1;
  }
  std::printf("replay: %zu inputs, no failure\n", count);
  return 0;
}
