// Synthetic CIFAR-10 in the official binary layout, for end-to-end runs of
// the programs (basin-train reads nothing else).
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace basin::testing {

// A CIFAR-10 file of 10,000 records (label byte + 3 x 32 x 32 planar pixels):
// each class has its own colour, with noise from a fixed generator.
inline void write_cifar10_file(const std::string& path, std::uint32_t seed) {
  constexpr int kRecords = 10000;
  constexpr int kPixels = 32 * 32;
  std::vector<unsigned char> bytes(static_cast<std::size_t>(kRecords) * (1 + 3 * kPixels));
  std::uint32_t state = seed;
  const auto next = [&] {
    state = state * 1664525u + 1013904223u;  // Numerical Recipes' LCG: fixed, portable
    return state >> 24;
  };
  std::size_t at = 0;
  for (int i = 0; i < kRecords; ++i) {
    const int label = static_cast<int>(next() % 10);
    bytes[at++] = static_cast<unsigned char>(label);
    for (int c = 0; c < 3; ++c) {
      const int base = 60 + 40 * ((label + c) % 4);
      for (int p = 0; p < kPixels; ++p) bytes[at++] = static_cast<unsigned char>(base + static_cast<int>(next() % 64));
    }
  }
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
}

// data_batch_1..5.bin and test_batch.bin in `folder`, each from its own seed.
inline void write_cifar10_files(const std::string& folder) {
  for (int i = 1; i <= 5; ++i) {
    write_cifar10_file(folder + "/data_batch_" + std::to_string(i) + ".bin", 10u + static_cast<std::uint32_t>(i));
  }
  write_cifar10_file(folder + "/test_batch.bin", 99u);
}

}  // namespace basin::testing
