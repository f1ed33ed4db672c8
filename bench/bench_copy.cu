// bench_copy: the ceiling. Device-to-device copy bandwidth, the figure every
// memory-bound kernel in basin is compared to (a pass that reads and writes
// each byte once cannot beat a plain copy of the same bytes).
//
// Methods (bench/common.cu, measure_copies):
//   - a grid-stride float4 copy kernel (16-byte loads and stores) launched with
//     2, 4 and 8 blocks of 256 threads per SM, each with 1 or with 4 loads in
//     flight per thread before its stores, and with one thread per float4;
//   - cudaMemcpyAsync (the driver's copy engine or copy kernel).
// Every method is checked first (the destination poisoned, copied once,
// compared word by word with the source), then timed with CUDA events:
// median of the repetitions after a warm-up, the L2 cache flushed before
// each. GB/s counts the bytes read plus the bytes written, 1 GB = 1e9 bytes.
//
// Sizes: 64 MiB to 1 GiB by default. Only sizes of at least four times the L2
// cache count for the ceiling: below that, part of the destination can still
// sit in L2 when the last event fires, and the figure would be too good.
//
// Usage: bench_copy [--sizes-mib 64,256,1024] [--repeats 200] [--warmup 20] [--json FILE]
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <CLI/CLI.hpp>

#include "bench/common.h"
#include "kernels/cuda/check.cuh"

namespace basin::bench {

namespace {

int run(const std::vector<std::int64_t>& sizes_mib, const TimingOptions& timing, const std::string& json_path) {
  if (!cuda_device_present()) {
    std::cout << kNoDeviceMessage << "\n";
    return 0;
  }
  if (cuda_device_emulated()) {
    std::cout << "bench_copy: device-to-device copies\n"
              << "device: " << cuda_environment() << "\n"
              << kEmulatedMessage << "\n";
    for (const std::int64_t mib : sizes_mib) {
      for (const CopyMeasurement& m : measure_copies(mib << 20, timing, /*time=*/false)) {
        std::cout << "  " << mib << " MiB, " << m.method << ": matches its source\n";
      }
    }
    std::cout << "every copy method matches its source\n";
    return 0;
  }
  JsonLines json(json_path);
  std::cout << "bench_copy: device-to-device copy bandwidth\n"
            << "device: " << cuda_environment() << "\n"
            << "timing: median of " << timing.repeats << " repeats after " << timing.warmup << " warm-up runs, "
            << (timing.flush_l2 ? "L2 flushed before each" : "L2 not flushed") << "; GB/s = (read + write) / time\n\n";
  json.write(cuda_environment_record().set("bench", "environment").set("side", "basin"));

  int l2_bytes = 0;
  BASIN_CUDA_CHECK(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, 0));
  const std::int64_t counted_from = 4 * static_cast<std::int64_t>(l2_bytes);

  Table table({"size MiB", "method", "median us", "p10-p90 us", "GB/s", "counts"});
  CopyMeasurement best;
  double best_gbps = 0.0;
  for (const std::int64_t mib : sizes_mib) {
    const std::int64_t bytes = mib << 20;
    const bool counts = bytes >= counted_from;
    for (const CopyMeasurement& m : measure_copies(bytes, timing)) {
      table.add_row({std::to_string(mib), m.method, fixed(m.stats.median_us(), 1),
                     fixed(m.stats.p10_ms * 1e3, 1) + "-" + fixed(m.stats.p90_ms * 1e3, 1), fixed(m.gbps(), 0),
                     counts ? "yes" : "no (L2)"});
      json.write(Record()
                     .set("bench", "copy")
                     .set("side", "basin")
                     .set("method", m.method)
                     .set("bytes", m.bytes)
                     .set("median_us", m.stats.median_us())
                     .set("p10_us", m.stats.p10_ms * 1e3)
                     .set("p90_us", m.stats.p90_ms * 1e3)
                     .set("repeats", m.stats.repeats)
                     .set("gbps", m.gbps())
                     .set("counts", counts));
      if (counts && m.gbps() > best_gbps) {
        best = m;
        best_gbps = m.gbps();
      }
    }
  }
  if (best_gbps == 0.0) {
    table.print(std::cout, "no size is at least four times the L2 cache (" + std::to_string(counted_from >> 20) +
                               " MiB): no ceiling measured; pass larger --sizes-mib");
    return 1;
  }
  json.write(Record()
                 .set("bench", "copy_bandwidth")
                 .set("side", "basin")
                 .set("method", best.method)
                 .set("bytes", best.bytes)
                 .set("gbps", best_gbps));
  table.print(std::cout, "copy bandwidth: " + fixed(best_gbps, 0) + " GB/s (" + best.method + ", " +
                             std::to_string(best.bytes >> 20) + " MiB)");
  return 0;
}

}  // namespace

}  // namespace basin::bench

int main(int argc, char** argv) {
  std::string sizes = "64,256,1024";
  basin::bench::TimingOptions timing;
  bool no_flush = false;
  std::string json;
  CLI::App app{"bench_copy: device-to-device copy bandwidth, the ceiling of memory-bound kernels"};
  app.add_option("--sizes-mib", sizes, "comma-separated copy sizes in MiB")->capture_default_str();
  app.add_option("--repeats", timing.repeats, "timed repetitions per figure (>= 100)")
      ->capture_default_str()
      ->check(CLI::Range(100, 1000000));
  app.add_option("--warmup", timing.warmup, "untimed runs before timing")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_flag("--no-flush", no_flush, "do not evict the L2 cache before each repetition");
  app.add_option("--json", json, "append one JSON line per result to this file");
  CLI11_PARSE(app, argc, argv);
  timing.flush_l2 = !no_flush;
  try {
    std::vector<std::int64_t> sizes_mib;
    for (const std::string& item : basin::bench::split_list(sizes)) {
      std::size_t used = 0;
      long long mib = -1;
      try {
        mib = std::stoll(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      BASIN_CHECK(used == item.size() && mib >= 1 && mib <= 65536, "--sizes-mib: '", item,
                  "' is not a size in MiB between 1 and 65536");
      sizes_mib.push_back(mib);
    }
    BASIN_CHECK(!sizes_mib.empty(), "--sizes-mib: no size given");
    return basin::bench::run(sizes_mib, timing, json);
  } catch (const std::exception& e) {
    std::cerr << "bench_copy: " << e.what() << "\n";
    return 1;
  }
}
