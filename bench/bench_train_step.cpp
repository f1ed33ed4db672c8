// bench_train_step: images per second of whole training steps, the figure a
// user of the CIFAR trainer feels. For each model and batch size, two steps
// are timed on fresh models:
//   SGD  zero_grad, forward, cross-entropy, backward, optim::SGD::step
//        (momentum 0.9, weight decay 5e-4: basin-train's defaults);
//   SAM  zero_grad, then optim::SAM::step(closure) over that SGD: forward and
//        backward, the fused perturbation, a second forward and backward with
//        the BatchNorm running statistics frozen, the fused restore + update.
// The SAM/SGD time ratio says what sharpness-awareness costs; the optimizer
// side is a few percent of it (bench_sam_kernels measures that part alone).
//
// Data is already on the device (random images, random labels, one batch
// reused), the model is in train mode, and nothing is read back during the
// steps. Timing on the GPU: warm-up steps (cuDNN picks its algorithms on the
// first ones), a device synchronization, the timed steps, a synchronization;
// the host clock between the two synchronizations. TF32 is off unless --tf32
// (set_conv_allow_tf32: float32 convolutions then may use TF32 tensor cores);
// the output says which.
//
// On the CPU (--device cpu) the steps run on basin's CPU engine (oneDNN
// convolutions and GEMM, OpenMP loops: core/cpu_engine.h) at each of the
// --threads counts. A step there takes tenths of a second to seconds, so
// few are timed, and one slow step (a page fault storm, a neighbour on the
// machine) would move a mean: each step is timed alone on a steady clock and
// the figure is the median step, with the 10th-90th percentile spread beside
// it. bench/pytorch/train_step.py --device cpu measures PyTorch the same way.
//
// Usage: bench_train_step [--models resnet18,wrn16-8,wrn28-10] [--batch-sizes 128,256]
//        [--steps 50] [--warmup 10] [--optimizers sgd,sam] [--tf32] [--device cuda|cpu]
//        [--threads 1,2] [--json FILE]
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/common.h"
#include "core/conv.h"
#include "core/cpu_engine.h"
#include "core/random.h"
#include "core/storage.h"
#include "nn/loss.h"
#include "nn/models/models.h"
#include "optim/sam.h"
#include "optim/sgd.h"

namespace basin::bench {

namespace {

struct Options {
  std::vector<std::string> models;
  std::vector<std::int64_t> batch_sizes;
  std::vector<std::string> optimizers;
  int steps = 50;
  int warmup = 10;
  bool tf32 = false;
  std::string device = "cuda";
  std::vector<int> threads;  // CPU only: set_cpu_threads before each figure
  std::string json;
};

struct Timing {
  double seconds = 0.0;      // all timed steps together
  double ms_per_step = 0.0;  // GPU: the mean over the timed steps; CPU: the median step
  double images_per_second = 0.0;
  std::int64_t peak_bytes = 0;
  Stats steps;  // CPU: the per-step times (median, p10, p90)
};

Timing time_steps(const std::string& model_name, std::int64_t batch, bool sam, const Options& options, Device device) {
  manual_seed(0);
  nn::ModulePtr model = nn::create_model(model_name);
  model->to(device);
  model->train();
  auto sgd =
      std::make_shared<optim::SGD>(model->named_parameters(), optim::SGDOptions(0.1).momentum(0.9).weight_decay(5e-4));
  std::unique_ptr<optim::SAM> sam_optimizer;
  if (sam) sam_optimizer = std::make_unique<optim::SAM>(sgd, optim::SAMOptions(), model.get());

  const Tensor images = randn({batch, 3, 32, 32}, TensorOptions(kFloat32).device(device));
  std::vector<std::int64_t> host_labels(static_cast<std::size_t>(batch));
  for (std::int64_t& label : host_labels) label = static_cast<std::int64_t>(default_generator().next_u64() % 10);
  const Tensor labels = from_vector(host_labels, {batch}).to(device);
  const nn::CrossEntropyLoss criterion;

  const auto step = [&] {
    sgd->zero_grad();
    if (sam_optimizer) {
      sam_optimizer->step([&] {
        Tensor loss = criterion((*model)(images), labels);
        loss.backward();
        return loss;
      });
    } else {
      Tensor loss = criterion((*model)(images), labels);
      loss.backward();
      sgd->step();
    }
  };

  for (int i = 0; i < options.warmup; ++i) step();
  synchronize(device);
  reset_peak_memory(device);
  Timing t;
  if (device.is_cpu()) {
    // Each step alone: a median of few steps is steadier than their mean.
    std::vector<double> samples_ms;
    samples_ms.reserve(static_cast<std::size_t>(options.steps));
    for (int i = 0; i < options.steps; ++i) {
      const auto begin = std::chrono::steady_clock::now();
      step();
      synchronize(device);
      samples_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count());
      t.seconds += samples_ms.back() / 1e3;
    }
    t.steps = summarize(samples_ms);
    t.ms_per_step = t.steps.median_ms;
    t.images_per_second = 1e3 * static_cast<double>(batch) / t.ms_per_step;
    t.peak_bytes = memory_stats(device).peak_bytes;
    return t;
  }
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < options.steps; ++i) step();
  synchronize(device);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  t.seconds = seconds;
  t.ms_per_step = 1e3 * seconds / options.steps;
  t.images_per_second = static_cast<double>(batch) * options.steps / seconds;
  t.peak_bytes = memory_stats(device).peak_bytes;
  return t;
}

int run(const Options& options) {
  const Device device = options.device == "cpu" ? Device::cpu() : Device::cuda();
  const bool cpu = device.is_cpu();
  JsonLines json(options.json);
  set_conv_allow_tf32(options.tf32);
  const std::string tf32 = options.tf32 ? "TF32 on (float32 convolutions may use TF32 tensor cores)"
                                        : "TF32 off (float32 convolutions in full FP32)";
  // A GPU figure has no thread count: one pass with 0 ("not a CPU run").
  const std::vector<int> thread_counts = cpu ? options.threads : std::vector<int>{0};
  if (cpu) set_cpu_threads(thread_counts.front());
  std::cout << "bench_train_step: images/s of whole SGD and SAM training steps, float32, "
            << (cpu ? "on the CPU" : tf32) << "\n";
#if BASIN_WITH_CUDA
  if (device.is_cuda()) {
    std::cout << "device: " << cuda_environment() << "\n";
    json.write(cuda_environment_record().set("bench", "environment").set("side", "basin"));
  }
#endif
  if (cpu) {
    const std::string model_name = cpu_model_name();
    std::cout << "device: cpu, " << model_name << ", " << std::thread::hardware_concurrency() << " logical CPUs\n"
              << "engine: " << describe_cpu_engine() << "; threads per figure:";
    for (const int threads : thread_counts) std::cout << " " << threads;
    std::cout << "\n";
    if (cpu_kernels() == CpuKernels::reference && thread_counts.size() > 1) {
      std::cout << "note: the reference kernels run on one thread whatever the thread count\n";
    }
    json.write(Record()
                   .set("bench", "environment")
                   .set("side", "basin")
                   .set("device", "cpu")
                   .set("cpu", model_name)
                   .set("cpu_engine", describe_cpu_engine())
                   .set("cpu_kernels", cpu_kernels_name(cpu_kernels()))
                   .set("logical_cpus", static_cast<int>(std::thread::hardware_concurrency())));
    std::cout << "timing: " << options.warmup << " warm-up steps, then " << options.steps
              << " timed steps, each alone on a steady clock: the median step (p10-p90 beside it)\n";
  } else {
    std::cout << "timing: " << options.warmup << " warm-up steps, then " << options.steps
              << " timed steps between two device synchronizations\n";
  }
  // The parameter count, to check that PyTorch's twin of each model is the same network.
  std::map<std::string, std::int64_t> params;
  std::cout << "parameters:";
  for (const std::string& model : options.models) {
    params[model] = nn::parameter_count(*nn::create_model(model));
    std::cout << (model == options.models.front() ? " " : ", ") << model << " " << grouped(params[model]);
  }
  std::cout << "\n\n";

  std::vector<std::string> headers{"model", "batch", "optimizer", "ms/step", "images/s", "peak MiB", "SAM/SGD time"};
  if (cpu) {
    headers = {"model",      "batch",    "optimizer", "threads",     "ms/step (median)",
               "p10-p90 ms", "images/s", "peak MiB",  "SAM/SGD time"};
  }
  Table table(headers);
  std::string conclusion;
  for (const std::string& model : options.models) {
    for (const std::int64_t batch : options.batch_sizes) {
      conclusion = model + ", batch " + std::to_string(batch) + ":";
      for (const int threads : thread_counts) {
        if (cpu) set_cpu_threads(threads);
        std::map<std::string, Timing> timings;
        for (const std::string& optimizer : options.optimizers) {
          const Timing t = time_steps(model, batch, optimizer == "sam", options, device);
          timings[optimizer] = t;
          const bool both = timings.count("sgd") && timings.count("sam");
          const std::string sam_sgd =
              both ? fixed(timings["sam"].ms_per_step / timings["sgd"].ms_per_step, 2) + "x" : "";
          const std::string peak = fixed(static_cast<double>(t.peak_bytes) / (1 << 20), 0);
          if (cpu) {
            table.add_row({model, std::to_string(batch), optimizer, std::to_string(threads), fixed(t.ms_per_step, 1),
                           fixed(t.steps.p10_ms, 1) + "-" + fixed(t.steps.p90_ms, 1), fixed(t.images_per_second, 1),
                           peak, sam_sgd});
          } else {
            table.add_row({model, std::to_string(batch), optimizer, fixed(t.ms_per_step, 2),
                           fixed(t.images_per_second, 0), peak, sam_sgd});
          }
          Record record;
          record.set("bench", "train_step")
              .set("side", "basin")
              .set("model", model)
              .set("batch", batch)
              .set("optimizer", optimizer)
              .set("device", device.str())
              .set("tf32", options.tf32)
              .set("warmup", options.warmup)
              .set("steps", options.steps)
              .set("seconds", t.seconds)
              .set("ms_per_step", t.ms_per_step)
              .set("images_per_s", t.images_per_second)
              .set("peak_bytes", t.peak_bytes)
              .set("params", params[model]);
          if (cpu) {
            // The same fields as train_step.py --device cpu, which compare.py pairs on.
            record.set("threads", threads)
                .set("timing", "median")
                .set("median_ms", t.steps.median_ms)
                .set("p10_ms", t.steps.p10_ms)
                .set("p90_ms", t.steps.p90_ms)
                .set("cpu_kernels", cpu_kernels_name(cpu_kernels()));
          }
          json.write(record);
        }
        if (cpu) {
          conclusion += std::string(threads == thread_counts.front() ? " " : "; ") + std::to_string(threads) +
                        (threads == 1 ? " thread" : " threads");
        }
        for (const std::string& optimizer : options.optimizers) {
          conclusion += (optimizer == options.optimizers.front() ? " " : ", ") + optimizer + " " +
                        fixed(timings[optimizer].images_per_second, cpu ? 1 : 0) + " images/s";
        }
        if (timings.count("sgd") && timings.count("sam")) {
          conclusion += " (a SAM step takes " + fixed(timings["sam"].ms_per_step / timings["sgd"].ms_per_step, 2) +
                        "x an SGD step)";
        }
      }
      if (!cpu) conclusion += ", " + std::string(options.tf32 ? "TF32 on" : "TF32 off");
    }
  }
  table.print(std::cout, conclusion);
  return 0;
}

std::vector<std::int64_t> parse_sizes(const std::string& csv) {
  std::vector<std::int64_t> out;
  for (const std::string& item : split_list(csv)) {
    std::size_t used = 0;
    long long value = -1;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    BASIN_CHECK(used == item.size() && value >= 1 && value <= 65536, "--batch-sizes: '", item,
                "' is not a batch size between 1 and 65536");
    out.push_back(value);
  }
  BASIN_CHECK(!out.empty(), "--batch-sizes: no batch size given");
  return out;
}

std::vector<int> parse_threads(const std::string& csv) {
  std::vector<int> out;
  for (const std::string& item : split_list(csv)) {
    std::size_t used = 0;
    int value = -1;
    try {
      value = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    BASIN_CHECK(used == item.size() && value >= 1 && value <= 1024, "--threads: '", item,
                "' is not a thread count between 1 and 1024");
    out.push_back(value);
  }
  BASIN_CHECK(!out.empty(), "--threads: no thread count given");
  return out;
}

}  // namespace

}  // namespace basin::bench

int main(int argc, char** argv) {
  namespace bench = basin::bench;
  bench::Options options;
  std::string models = "resnet18,wrn16-8,wrn28-10";
  std::string batch_sizes = "128,256";
  std::string optimizers = "sgd,sam";
  std::string threads;
  CLI::App app{"bench_train_step: images/s of whole SGD and SAM training steps"};
  app.add_option("--models", models, "comma-separated model names (create_model)")->capture_default_str();
  app.add_option("--batch-sizes", batch_sizes, "comma-separated batch sizes")->capture_default_str();
  app.add_option("--optimizers", optimizers, "sgd, sam or both")->capture_default_str();
  app.add_option("--steps", options.steps, "timed steps per figure")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--warmup", options.warmup, "untimed steps first")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_flag("--tf32", options.tf32, "let float32 convolutions use TF32 tensor cores");
  app.add_option("--device", options.device, "cuda, or cpu (basin's CPU engine)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cuda", "cpu"}));
  CLI::Option* threads_option =
      app.add_option("--threads", threads, "CPU only: comma-separated thread counts (default: basin::cpu_threads())");
  app.add_option("--json", options.json, "append one JSON line per result to this file");
  CLI11_PARSE(app, argc, argv);
  try {
    options.models = bench::split_list(models);
    BASIN_CHECK(!options.models.empty(), "--models: no model named");
    for (const std::string& m : options.models) basin::nn::check_model_name(m);
    options.batch_sizes = bench::parse_sizes(batch_sizes);
    if (options.device == "cpu") {
      options.threads =
          threads_option->count() ? bench::parse_threads(threads) : std::vector<int>{basin::cpu_threads()};
    } else {
      // Rejected rather than ignored: a figure labelled with a thread count it did not use misleads.
      BASIN_CHECK(threads_option->count() == 0, "--threads: applies to --device cpu only");
    }
    options.optimizers = bench::split_list(optimizers);
    BASIN_CHECK(!options.optimizers.empty(), "--optimizers: none named");
    for (const std::string& o : options.optimizers) {
      BASIN_CHECK(o == "sgd" || o == "sam", "--optimizers: expected sgd or sam, got '", o, "'");
    }
    if (options.device == "cuda" && !bench::cuda_device_present()) {
      std::cout << bench::kNoDeviceMessage << "\n";
      return 0;
    }
    if (options.device == "cuda" && bench::cuda_device_emulated()) {
      std::cout << "emulated CUDA device (basin's CPU emulator): a training step's speed there means nothing\n";
      return 0;
    }
    return bench::run(options);
  } catch (const std::exception& e) {
    std::cerr << "bench_train_step: " << e.what() << "\n";
    return 1;
  }
}
