// What the trainer's tests share: a small synthetic image set (8x8 pixels,
// four classes told apart by colour and a stripe) and ways to compare the
// run folders two trainings leave.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/serialization.h"
#include "data/dataset.h"
#include "support/compare.h"

namespace basin::testing {

namespace fs = std::filesystem;

inline data::Dataset synthetic(std::int64_t n, std::uint64_t seed, const std::string& name) {
  manual_seed(seed);
  const std::int64_t classes = 4;
  const std::vector<float> noise = rand({n, 3, 8, 8}, kFloat32, 0.0, 60.0).to_vector<float>();
  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(n * 3 * 64));
  std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t label = i % classes;
    labels[i] = label;
    for (std::int64_t c = 0; c < 3; ++c) {
      for (std::int64_t p = 0; p < 64; ++p) {
        const std::size_t k = static_cast<std::size_t>((i * 3 + c) * 64 + p);
        const bool lit = label == c || (label == 3 && (p / 8) % 2 == 0);
        pixels[k] = static_cast<std::uint8_t>((lit ? 150.0f : 40.0f) + noise[k]);
      }
    }
  }
  data::Dataset d;
  d.name = name;
  d.images = from_vector(pixels, {n, 3, 8, 8});
  d.labels = from_vector(labels, {n});
  d.num_classes = classes;
  const data::ChannelStats stats = data::channel_stats(d.images);
  d.mean = stats.mean;
  d.stddev = stats.stddev;
  return d;
}

// Every tensor of the two checkpoints, bit for bit.
inline void check_same_checkpoint(const std::string& path_a, const std::string& path_b) {
  const TensorMap a = load_safetensors(path_a);
  const TensorMap b = load_safetensors(path_b);
  REQUIRE(a.size() == b.size());
  for (const auto& [name, tensor] : a) {
    INFO(name);
    CHECK(testing::equal(tensor, b.at(name)));
  }
}

inline std::vector<std::string> lines_of(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A metrics row without the fields that measure time and memory, which differ
// from one run to the next.
inline std::string row_without_timing(const std::string& line) {
  nlohmann::json row = nlohmann::json::parse(line);
  for (const char* key : {"epoch_seconds", "images_per_second", "peak_memory_bytes"}) row.erase(key);
  return row.dump();
}

inline std::vector<std::string> rows_without_timing(const fs::path& metrics) {
  std::vector<std::string> rows;
  for (const std::string& line : lines_of(metrics)) rows.push_back(row_without_timing(line));
  return rows;
}

}  // namespace basin::testing
