// What every basin benchmark shares: the no-GPU exit, summary statistics of
// repeated timings, the table printer, JSON lines for machine reading, and
// (in CUDA builds) CUDA-event timing and the copy-bandwidth ceiling.
//
// The rules the benchmarks keep (bench/README.md): check the result
// against the CPU reference before timing; warm up; time each repetition
// between two CUDA events on basin's stream; report the median and the
// spread (10th to 90th percentile) of at least 100 repetitions; end the table
// with the one line a reader came for. Memory-bound work is reported in GB/s
// (1 GB = 1e9 bytes) and as a fraction of the device-to-device copy
// bandwidth measured in the same process.
//
// This header has no CUDA types, so the plain C++ benchmarks (the training
// step) and the CPU self-check include it too; the CUDA half lives in common.cu.
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace basin::bench {

// The one line every benchmark prints, then exits 0, where there is nothing to time.
inline constexpr const char* kNoDeviceMessage = "no CUDA device: nothing to measure";
// On basin's CUDA emulator the CUDA benchmarks check their results and time nothing.
inline constexpr const char* kEmulatedMessage =
    "emulated CUDA device (basin's CPU emulator): results are checked, nothing is timed";

// True when basin was built with CUDA and a GPU (or the emulator) is usable.
bool cuda_device_present();
// True when that device is basin's CUDA emulator, which has no clock.
bool cuda_device_emulated();

// The CPU's "model name" from /proc/cpuinfo ("AMD EPYC 9554 64-Core
// Processor"), or "unknown CPU" where there is none: what the CPU figures
// were measured on.
std::string cpu_model_name();

// ---------------------------------------------------------------- statistics

struct Stats {
  double median_ms = 0.0;
  double p10_ms = 0.0;
  double p90_ms = 0.0;
  double min_ms = 0.0;
  double max_ms = 0.0;
  int repeats = 0;
  double median_us() const { return median_ms * 1e3; }
};

// Median, 10th and 90th percentiles (nearest rank), min and max of the samples.
Stats summarize(std::vector<double> samples_ms);

struct TimingOptions {
  int warmup = 20;
  int repeats = 200;
  // Evict the L2 cache before every timed repetition (by reading a buffer a
  // few times its size, outside the timed window). A training step runs the
  // whole forward and backward pass between two optimizer passes, so the
  // optimizer never finds its buffers in L2; without the flush a 45 MB
  // parameter set would partly stay in a 50-60 MB L2 and look faster than
  // it can be in training.
  bool flush_l2 = true;
};

// ---------------------------------------------------------------- output

// "a,b,,c" -> {"a", "b", "c"}: the command lines' lists.
std::vector<std::string> split_list(const std::string& csv);

// "12.3", "0.045": fixed decimals.
std::string fixed(double value, int decimals);
// "11,173,962"
std::string grouped(std::int64_t value);

// A plain-text table with right-aligned columns. print() ends with
// `conclusion`: the figure that matters, on the last line.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void add_row(std::vector<std::string> cells);
  // A full-width row of free text (a failed check, a note).
  void add_note(std::string text);
  void print(std::ostream& out, const std::string& conclusion) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;  // a row of one cell marked by notes_ is a note
  std::vector<bool> notes_;
};

// One flat JSON object, built key by key in insertion order: one line per
// result, read by bench/pytorch/compare.py.
class Record {
 public:
  Record& set(const std::string& key, const std::string& value);
  Record& set(const std::string& key, const char* value) { return set(key, std::string(value)); }
  Record& set(const std::string& key, double value);  // NaN and inf are written as null
  Record& set(const std::string& key, std::int64_t value);
  Record& set(const std::string& key, int value) { return set(key, static_cast<std::int64_t>(value)); }
  Record& set(const std::string& key, bool value);
  std::string str() const;

 private:
  std::vector<std::pair<std::string, std::string>> fields_;  // key, JSON text of the value
};

// Appends records as JSON lines to a file; does nothing when opened with "".
class JsonLines {
 public:
  explicit JsonLines(const std::string& path);
  void write(const Record& record);
  bool enabled() const { return out_ != nullptr; }

 private:
  std::unique_ptr<std::ofstream> out_;
  std::string path_;
};

// ---------------------------------------------------------------- CUDA (common.cu)

#if BASIN_WITH_CUDA

// "NVIDIA H200 (sm_90, 139.8 GiB, 132 SMs), driver 12.8, CUDA runtime 13.0, cuDNN 9.19.0"
std::string cuda_environment();
// The same facts as JSON fields: gpu, sm, driver, cuda_runtime, cudnn.
Record cuda_environment_record();
int multiprocessor_count();

// Times `body`, which queues work on basin's stream, with CUDA events:
// options.warmup untimed runs, then options.repeats runs each between its
// own pair of events (the L2 flushed before each when asked). One host
// synchronization at the end, none between repetitions.
// The host's launches are kept out of the figure: each repetition waits
// behind a gate kernel until the whole body is queued (see common.cu).
Stats time_cuda(const std::function<void()>& body, const TimingOptions& options);
// Host wall time from an idle stream: enqueueing the body plus running it, up
// to a stream synchronization (which adds a few microseconds). Shows what the
// launches cost when the GPU waits for the host.
Stats time_wall(const std::function<void()>& body, const TimingOptions& options);

// The device-to-device copy ceiling.
struct CopyMeasurement {
  std::string method;      // "float4 kernel (grid 1056 x 256, 4 per thread)", "cudaMemcpyAsync"
  std::int64_t bytes = 0;  // bytes copied (the traffic is twice that: read + write)
  Stats stats;
  double gbps() const;  // (read + write) / median time
};
// Every copy method at one size (several float4 kernel launch shapes and
// cudaMemcpyAsync), after checking that each copied the bytes exactly.
// With time = false every method is only checked (stats stay empty): the
// emulated device's mode.
std::vector<CopyMeasurement> measure_copies(std::int64_t bytes, const TimingOptions& options, bool time = true);
// The best of measure_copies() at the given size: what bench_sam_kernels
// compares its passes to.
CopyMeasurement copy_bandwidth(std::int64_t bytes, const TimingOptions& options);

#endif

}  // namespace basin::bench
