#include "apps/trainer.h"

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <sstream>
#include <type_traits>
#include <utility>

#include "core/autograd.h"
#include "core/cpu_engine.h"
#include "core/distributed.h"
#include "core/elementwise.h"
#include "core/file_io.h"
#include "core/loss.h"
#include "core/random.h"
#include "core/reduce.h"
#include "core/serialization.h"
#include "data/cifar.h"
#include "data/loader.h"
#include "nn/loss.h"
#include "nn/models/models.h"
#include "optim/data_parallel.h"
#include "optim/sam.h"
#include "optim/schedule.h"
#include "optim/sgd.h"

namespace basin::apps {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

// ---------------------------------------------------------------- configuration

double TrainConfig::effective_rho() const {
  if (rho >= 0.0) return rho;
  return optimizer == "asam" ? 0.5 : 0.05;
}

void TrainConfig::validate() const {
  BASIN_CHECK(dataset == "cifar10" || dataset == "cifar100", "--dataset must be cifar10 or cifar100, got '", dataset,
              "'");
  BASIN_CHECK(optimizer == "sgd" || optimizer == "sam" || optimizer == "asam",
              "--optimizer must be sgd, sam or asam, got '", optimizer, "'");
  BASIN_CHECK(schedule == "constant" || schedule == "step" || schedule == "cosine",
              "--schedule must be constant, step or cosine, got '", schedule, "'");
  BASIN_CHECK(std::isfinite(lr) && lr > 0.0, "--lr must be positive, got ", lr);
  BASIN_CHECK(momentum >= 0.0 && momentum < 1.0, "--momentum must be in [0, 1), got ", momentum);
  BASIN_CHECK(weight_decay >= 0.0, "--weight-decay must be non-negative, got ", weight_decay);
  BASIN_CHECK(!nesterov || momentum > 0.0, "--nesterov needs --momentum > 0");
  BASIN_CHECK(rho != 0.0, "--rho must be positive, got ", rho);  // negative: the optimizer's default
  BASIN_CHECK(eta >= 0.0, "--eta must be non-negative, got ", eta);
  // Bounded so that epochs x steps per epoch always fits an int64.
  BASIN_CHECK(epochs > 0 && epochs <= kMaxEpochs, "--epochs must be in [1, ", kMaxEpochs, "], got ", epochs);
  BASIN_CHECK(batch_size > 0, "--batch-size must be positive, got ", batch_size);
  BASIN_CHECK(warmup_epochs >= 0.0 && warmup_epochs <= static_cast<double>(epochs),
              "--warmup-epochs must be in [0, epochs], got ", warmup_epochs);
  BASIN_CHECK(label_smoothing >= 0.0 && label_smoothing < 1.0, "--label-smoothing must be in [0, 1), got ",
              label_smoothing);
  BASIN_CHECK(!out.empty(), "--out must name the run folder, got an empty path");
  BASIN_CHECK(train_subset >= 0 && test_subset >= 0, "--train-subset and --test-subset must be non-negative");
  BASIN_CHECK(label_noise >= 0.0 && label_noise < 1.0, "--label-noise must be in [0, 1), got ", label_noise);
  BASIN_CHECK(sam_mode == "global" || sam_mode == "replica", "--sam-mode must be global or replica, got '", sam_mode,
              "'");
  BASIN_CHECK(m_sharpness >= 0, "--m-sharpness must be non-negative (0: off), got ", m_sharpness);
  BASIN_CHECK(m_sharpness == 0 || optimizer != "sgd", "--m-sharpness needs --optimizer sam or asam, got sgd");
  BASIN_CHECK(m_sharpness <= batch_size, "--m-sharpness ", m_sharpness, " is larger than --batch-size ", batch_size);
  BASIN_CHECK(ranks >= 1 && ranks <= batch_size, "--batch-size ", batch_size, " cannot be shared by ", ranks,
              " ranks: each needs at least one image of every full batch");
  BASIN_CHECK(m_sharpness == 0 || ranks == 1 || sam_mode == "replica", "--m-sharpness perturbs each chunk by its own ",
              "gradient, which needs --sam-mode replica when training on ", ranks, " ranks");
  Device::parse(device);  // throws on an unknown device, or cuda without a GPU
  nn::check_model_name(model);
}

std::string TrainConfig::to_json() const {
  json j = {{"dataset", dataset},     {"data_dir", data_dir},
            {"model", model},         {"optimizer", optimizer},
            {"rho", effective_rho()}, {"eta", eta},
            {"lr", lr},               {"momentum", momentum},
            {"weight_decay", weight_decay}, {"nesterov", nesterov},
            {"epochs", epochs},       {"batch_size", batch_size},
            {"schedule", schedule},   {"warmup_epochs", warmup_epochs},
            {"label_smoothing", label_smoothing}, {"cutout", cutout},
            {"augment", augment},     {"device", device},
            {"seed", seed},           {"out", out},
            {"init", init},           {"shuffle", shuffle},
            {"train_subset", train_subset}, {"test_subset", test_subset},
            {"label_noise", label_noise},
            {"sam_mode", sam_mode},   {"m_sharpness", m_sharpness},
            {"ranks", ranks}};
  return j.dump(2);
}

namespace {

// What a configuration value of this C++ type must be, for messages.
template <class T>
const char* json_kind() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  else if constexpr (std::is_same_v<T, std::string>) return "a string";
  else if constexpr (std::is_same_v<T, std::uint64_t>) return "a non-negative integer";
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else return "a number";
}

// Whether a JSON value converts to T without losing anything: nlohmann's
// get<> would turn 2.5 into 2, -1 into 2^64 - 1 and true into 1.
template <class T>
bool json_holds(const json& value) {
  if constexpr (std::is_same_v<T, bool>) return value.is_boolean();
  else if constexpr (std::is_same_v<T, std::string>) return value.is_string();
  else if constexpr (std::is_same_v<T, std::uint64_t>) return value.is_number_unsigned();
  else if constexpr (std::is_integral_v<T>) {
    return value.is_number_unsigned() ? value.get<std::uint64_t>() <= static_cast<std::uint64_t>(
                                                                          std::numeric_limits<T>::max())
                                      : value.is_number_integer();
  } else {
    return value.is_number();
  }
}

}  // namespace

TrainConfig TrainConfig::from_json(const std::string& text, const std::string& source) {
  TrainConfig c;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    BASIN_FAIL(source, " is not valid JSON: ", e.what());
  }
  BASIN_CHECK(j.is_object(), source, " must hold a JSON object, got ", j.type_name());
  auto read = [&j, &source](const char* key, auto& field) {
    using T = std::decay_t<decltype(field)>;
    const auto found = j.find(key);
    if (found == j.end()) return;
    BASIN_CHECK(json_holds<T>(*found), source, ": '", key, "' must be ", json_kind<T>(), ", got ", found->dump());
    field = found->get<T>();
  };
  read("dataset", c.dataset);
  read("data_dir", c.data_dir);
  read("model", c.model);
  read("optimizer", c.optimizer);
  read("rho", c.rho);
  read("eta", c.eta);
  read("lr", c.lr);
  read("momentum", c.momentum);
  read("weight_decay", c.weight_decay);
  read("nesterov", c.nesterov);
  read("epochs", c.epochs);
  read("batch_size", c.batch_size);
  read("schedule", c.schedule);
  read("warmup_epochs", c.warmup_epochs);
  read("label_smoothing", c.label_smoothing);
  read("cutout", c.cutout);
  read("augment", c.augment);
  read("device", c.device);
  read("seed", c.seed);
  read("out", c.out);
  read("init", c.init);
  read("shuffle", c.shuffle);
  read("train_subset", c.train_subset);
  read("test_subset", c.test_subset);
  read("label_noise", c.label_noise);
  read("sam_mode", c.sam_mode);
  read("m_sharpness", c.m_sharpness);
  read("ranks", c.ranks);
  return c;
}

TrainConfig TrainConfig::read_file(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  BASIN_CHECK(status.type() != fs::file_type::not_found, path, " not found: is this a run folder?");
  BASIN_CHECK(!ec, "cannot read ", path, ": ", ec.message());
  BASIN_CHECK(status.type() == fs::file_type::regular, path, " is not a regular file");
  std::ifstream file(path);
  BASIN_CHECK(file.is_open(), "cannot read ", path, ": ", std::strerror(errno));
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  BASIN_CHECK(!file.bad(), "cannot read ", path, ": ", std::strerror(errno));
  return from_json(text, path);
}

std::string EpochMetrics::to_json() const {
  json j = {{"epoch", epoch},
            {"train_loss", train_loss},
            {"train_accuracy", train_accuracy},
            {"test_loss", test_loss},
            {"test_accuracy", test_accuracy},
            {"lr", lr},
            {"epoch_seconds", seconds},
            {"images_per_second", images_per_second},
            {"peak_memory_bytes", peak_memory_bytes}};
  return j.dump();
}

std::atomic<bool>& stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

// ---------------------------------------------------------------- data

std::pair<data::Dataset, data::Dataset> load_datasets(const TrainConfig& config) {
  data::Dataset train_set, test_set;
  if (config.dataset == "cifar10") {
    train_set = data::load_cifar10(config.data_dir, true);
    test_set = data::load_cifar10(config.data_dir, false);
  } else {
    train_set = data::load_cifar100(config.data_dir, true);
    test_set = data::load_cifar100(config.data_dir, false);
  }
  if (config.train_subset > 0) train_set = train_set.head(std::min(config.train_subset, train_set.size()));
  if (config.test_subset > 0) test_set = test_set.head(std::min(config.test_subset, test_set.size()));
  return {std::move(train_set), std::move(test_set)};
}

namespace {

// ---------------------------------------------------------------- checkpoints
//
// One safetensors file: the model's tensors under their own (PyTorch) names,
// the optimizer's under "optimizer.", and the progress as string metadata.

constexpr const char* kOptimizerPrefix = "optimizer.";

// What the part of an interrupted epoch already run adds to the epoch's
// metrics row, so that the row describes the whole epoch after a resume.
struct EpochSoFar {
  double loss_sum = 0;  // summed per image, as Tally keeps it
  double correct = 0;
  std::int64_t images = 0;
  double seconds = 0;
  std::int64_t peak_memory_bytes = 0;

  std::string to_json() const {
    return json{{"loss_sum", loss_sum}, {"correct", correct}, {"images", images}, {"seconds", seconds},
                {"peak_memory_bytes", peak_memory_bytes}}
        .dump();
  }
  static EpochSoFar from_json(const std::string& text, const std::string& path) {
    try {
      const json j = json::parse(text);
      EpochSoFar so_far;
      so_far.loss_sum = j.at("loss_sum").get<double>();
      so_far.correct = j.at("correct").get<double>();
      so_far.images = j.at("images").get<std::int64_t>();
      so_far.seconds = j.at("seconds").get<double>();
      so_far.peak_memory_bytes = j.at("peak_memory_bytes").get<std::int64_t>();
      return so_far;
    } catch (const json::exception& e) {
      BASIN_FAIL(path, ": checkpoint metadata 'epoch_so_far' is not what basin writes (", e.what(), "): ", text);
    }
  }
};

struct Progress {
  std::int64_t epoch = 0;        // epochs completed
  std::int64_t batch = 0;        // batches done in the next epoch (an interrupted one)
  std::int64_t global_step = 0;  // optimizer steps so far
  std::string epoch_row;         // the metrics.jsonl row of epoch `epoch`; "" before the first
  std::string epoch_so_far;      // EpochSoFar of the interrupted epoch when batch > 0
};

void save_checkpoint(const fs::path& path, const nn::Module& model, const optim::Optimizer& optimizer,
                     const TrainConfig& config, const Progress& progress) {
  TensorMap tensors = model.state_dict();
  for (const auto& [name, tensor] : optimizer.state_dict()) tensors[kOptimizerPrefix + name] = tensor;
  const Generator& rng = default_generator();
  std::map<std::string, std::string> metadata{{"format", "basin-checkpoint-1"},
                                              {"epoch", std::to_string(progress.epoch)},
                                              {"batch", std::to_string(progress.batch)},
                                              {"global_step", std::to_string(progress.global_step)},
                                              {"rng_seed", std::to_string(rng.seed())},
                                              {"rng_offset", std::to_string(rng.offset())},
                                              {"config", config.to_json()}};
  if (!progress.epoch_row.empty()) metadata["epoch_metrics"] = progress.epoch_row;
  if (progress.batch > 0) metadata["epoch_so_far"] = progress.epoch_so_far;
  save_safetensors(path.string(), tensors, metadata);
}

// Makes metrics.jsonl hold exactly one row for each epoch the checkpoint has
// completed, in order: a kill after a checkpoint and before its row was
// appended loses no row (the checkpoint carries it), and rows of epochs the
// checkpoint does not have (from a run that went on after it, or a line cut
// short by a kill) are dropped, since those epochs are about to run again.
void reconcile_metrics(const fs::path& path, std::int64_t epochs_done, const std::string& last_row) {
  std::map<std::int64_t, std::string> rows;
  std::string before;
  std::error_code ec;
  if (fs::exists(path, ec)) {
    std::ifstream in(path);
    BASIN_CHECK(in.is_open(), "cannot read ", path.string(), ": ", std::strerror(errno));
    before.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    std::istringstream lines(before);
    for (std::string line; std::getline(lines, line);) {
      const json row = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!row.is_object() || !row.contains("epoch") || !row.at("epoch").is_number_integer()) continue;
      const auto epoch = row.at("epoch").get<std::int64_t>();
      if (epoch >= 1 && epoch <= epochs_done) rows[epoch] = line;
    }
  }
  if (!last_row.empty()) rows[epochs_done] = last_row;
  std::string after;
  for (const auto& [epoch, line] : rows) after += line + "\n";
  if (after != before) write_file_atomically(path.string(), after, "basin-train");
}

// The run folder, created when missing; an error names the folder and the reason.
void create_run_folder(const fs::path& out) {
  std::error_code ec;
  const fs::file_status status = fs::status(out, ec);
  if (status.type() == fs::file_type::not_found) {
    fs::create_directories(out, ec);
    BASIN_CHECK(!ec, "cannot create the run folder ", out.string(), ": ", ec.message());
    return;
  }
  BASIN_CHECK(!ec, "cannot use the run folder ", out.string(), ": ", ec.message());
  BASIN_CHECK(fs::is_directory(status), "--out ", out.string(), " exists and is not a folder");
}

// A non-negative integer of the checkpoint's metadata, as Int.
template <class Int>
Int metadata_number(const std::map<std::string, std::string>& metadata, const std::string& key,
                    const std::string& path) {
  auto found = metadata.find(key);
  BASIN_CHECK(found != metadata.end(), path, " is not a basin checkpoint (no '", key, "' in its metadata)");
  const std::string& text = found->second;
  Int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  const bool whole = error == std::errc() && end == text.data() + text.size();
  BASIN_CHECK(whole && std::cmp_greater_equal(value, 0), path, ": checkpoint metadata '", key,
              "' must be a non-negative integer, got \"", text, "\"");
  return value;
}

// The first setting that makes `checkpoint` a different run from `config`
// (model, data, optimizer or data order), described, or "" when they belong
// together. Learning rate, schedule, length and device may change on a resume.
std::string run_mismatch(const TrainConfig& config, const TrainConfig& checkpoint) {
  const json a = json::parse(config.to_json());
  const json b = json::parse(checkpoint.to_json());
  std::vector<const char*> keys{"dataset", "model", "optimizer", "batch_size", "seed", "train_subset", "shuffle",
                                 "label_noise", "sam_mode", "m_sharpness"};
  // The global batch, its order and augmentation do not depend on the number
  // of ranks, so a run may continue on another number, except where the
  // ranks' shards are what SAM perturbs by.
  if (config.optimizer != "sgd" && config.sam_mode == "replica") keys.push_back("ranks");
  for (const char* key : keys) {
    if (a.at(key) != b.at(key)) {
      return std::string("'") + key + "' is " + a.at(key).dump() + " in config.json but " + b.at(key).dump() +
             " in the checkpoint";
    }
  }
  return "";
}

// ---------------------------------------------------------------- progress display

class ProgressLine {
 public:
  ProgressLine(std::ostream& log, bool interactive, std::int64_t epoch, std::int64_t epochs, std::int64_t batches)
      : log_(log), interactive_(interactive), epoch_(epoch), epochs_(epochs), batches_(batches),
        start_(Clock::now()), last_(start_) {}

  bool due(std::int64_t done) const {
    const double since = std::chrono::duration<double>(Clock::now() - last_).count();
    if (done == batches_) return true;
    return interactive_ ? since >= 0.5 : since >= 30.0;
  }

  void show(std::int64_t done, std::int64_t images, double loss, double accuracy) {
    last_ = Clock::now();
    const double elapsed = std::chrono::duration<double>(last_ - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(images) / elapsed : 0.0;
    const double eta = done > 0 ? elapsed * static_cast<double>(batches_ - done) / static_cast<double>(done) : 0.0;
    std::ostringstream line;
    line << "epoch " << epoch_ << "/" << epochs_ << " ";
    if (interactive_) {
      constexpr int kWidth = 24;
      const int filled = static_cast<int>(kWidth * done / std::max<std::int64_t>(batches_, 1));
      line << "[" << std::string(filled, '#') << std::string(kWidth - filled, '.') << "] ";
    }
    line << done << "/" << batches_ << std::fixed << std::setprecision(4) << "  loss " << loss
         << std::setprecision(2) << "  acc " << 100.0 * accuracy << "%  " << std::setprecision(0) << rate
         << " img/s  ETA " << format_duration(eta);
    if (interactive_) {
      log_ << "\r" << line.str() << "\033[K" << std::flush;
    } else {
      log_ << line.str() << "\n" << std::flush;
    }
  }

  void finish() {
    if (interactive_) log_ << "\r\033[K" << std::flush;
  }

 private:
  std::ostream& log_;
  bool interactive_;
  std::int64_t epoch_, epochs_, batches_;
  Clock::time_point start_, last_;
};

// ---------------------------------------------------------------- the loop pieces

std::unique_ptr<optim::LrSchedule> make_schedule(const TrainConfig& config, std::int64_t steps_per_epoch) {
  const std::int64_t total = config.epochs * steps_per_epoch;
  const auto warmup = static_cast<std::int64_t>(std::llround(config.warmup_epochs * static_cast<double>(steps_per_epoch)));
  if (config.schedule == "cosine") return std::make_unique<optim::CosineLr>(config.lr, total, warmup);
  if (config.schedule == "step") {
    // x0.1 at 50% and 75% of training (He et al.'s CIFAR schedule, scaled to the run).
    return std::make_unique<optim::MultiStepLr>(config.lr, std::vector<std::int64_t>{total / 2, total * 3 / 4}, 0.1);
  }
  return std::make_unique<optim::MultiStepLr>(config.lr, std::vector<std::int64_t>{}, 1.0);
}

// 1 where x is finite, else 0, computed where x lives: x - x is 0 for a
// finite x and NaN for NaN or an infinity.
Tensor finite_indicator(const Tensor& x) {
  const Tensor difference = sub(x, x);
  return eq(difference, difference);
}

// Sums kept on the device so a step never waits for the host. A non-finite
// loss makes loss_sum non-finite for good, so finite_batches, which counts
// the batches while loss_sum was still finite, says which batch did it.
struct Tally {
  Tensor loss_sum, correct, finite_batches;
  std::int64_t seen = 0;

  explicit Tally(Device device)
      : loss_sum(zeros({}, TensorOptions(kFloat64).device(device))),
        correct(zeros({}, TensorOptions(kFloat64).device(device))),
        finite_batches(zeros({}, TensorOptions(kFloat64).device(device))) {}

  // Continues an epoch interrupted after `so_far`.
  void restore(const EpochSoFar& so_far) {
    loss_sum.fill_(so_far.loss_sum);
    correct.fill_(so_far.correct);
    seen = so_far.images;
  }

  void add(const Tensor& loss, const Tensor& logits, const Tensor& labels) {
    NoGradGuard no_grad;
    const std::int64_t n = labels.numel();
    loss_sum.add_(loss.detach().to(kFloat64), static_cast<double>(n));
    finite_batches.add_(finite_indicator(loss_sum));
    correct.add_(sum(eq(argmax(logits.detach(), 1), labels)));
    seen += n;
  }
  double mean_loss() const { return seen ? loss_sum.item() / static_cast<double>(seen) : 0.0; }
  double accuracy() const { return seen ? correct.item() / static_cast<double>(seen) : 0.0; }
  // The number of batches added before the first with a non-finite loss, or
  // -1 when every loss so far was finite. Waits for the device.
  std::int64_t batches_before_nonfinite() const {
    if (std::isfinite(loss_sum.item())) return -1;
    return static_cast<std::int64_t>(finite_batches.item());
  }
};

// The name of the first floating-point tensor of the model (parameters and
// buffers) that holds a NaN or an infinity, or "" when none does. One wait
// for the device, plus one per tensor when one is found.
std::string first_nonfinite_tensor(const nn::Module& model) {
  NoGradGuard no_grad;
  const TensorMap tensors = model.state_dict();
  std::vector<std::pair<std::string, Tensor>> flags;
  Tensor all;
  for (const auto& [name, tensor] : tensors) {
    if (!is_floating(tensor.dtype())) continue;
    const Tensor flag = finite_indicator(sum(tensor.to(kFloat64)));
    all = all.defined() ? mul(all, flag) : flag;
    flags.emplace_back(name, flag);
  }
  if (!all.defined() || all.item() == 1.0) return "";
  for (const auto& [name, flag] : flags) {
    if (flag.item() != 1.0) return name;
  }
  return "";
}

// Sums over every rank's shard of every batch: {loss sum, correct, images}.
std::vector<double> global_sums(const Tally& tally) {
  std::vector<double> sums{tally.loss_sum.item(), tally.correct.item(), static_cast<double>(tally.seen)};
  dist::all_reduce_sum(sums);
  return sums;
}

// Test loss and accuracy over the whole test set: each rank evaluates its
// shard of every batch and the sums are added over the ranks.
std::pair<double, double> evaluate(nn::Module& model, const data::BatchLoader& loader, double label_smoothing) {
  model.eval();
  NoGradGuard no_grad;
  Tally tally(loader.options().device());
  for (const data::Batch& batch : loader.epoch(0)) {
    if (batch.size() == 0) continue;
    const Tensor logits = model(batch.images);
    tally.add(cross_entropy(logits, batch.labels, label_smoothing), logits, batch.labels);
  }
  const std::vector<double> sums = global_sums(tally);
  return {sums[2] > 0 ? sums[0] / sums[2] : 0.0, sums[2] > 0 ? sums[1] / sums[2] : 0.0};
}

// Evaluation batches: in order, normalization only (with the statistics of the
// training split, which a test split carries), larger batches since no
// gradients are kept; on N ranks each evaluates its shard of every batch.
data::BatchLoader make_test_loader(const data::Dataset& test_set, std::int64_t batch_size, Device device) {
  return data::BatchLoader(test_set, data::LoaderOptions()
                                         .batch_size(std::max<std::int64_t>(batch_size, 256))
                                         .shuffle(false)
                                         .device(device)
                                         .augment(data::AugmentOptions::none())
                                         .shards(dist::world_size())
                                         .shard(dist::rank()));
}

// A file's bytes, read by rank 0 and sent to every rank: the ranks of a job on
// several machines need not share a filesystem.
std::vector<std::uint8_t> read_on_rank0(const fs::path& path) {
  std::string bytes;
  if (dist::rank() == 0) bytes = read_whole_file(path.string(), "basin-train");
  dist::broadcast(bytes, 0);
  return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

bool stdout_is_terminal(const std::ostream& log) { return &log == &std::cout && isatty(STDOUT_FILENO); }

}  // namespace

TensorMap model_tensors(const TensorMap& file) {
  TensorMap out;
  for (const auto& [name, tensor] : file) {
    if (name.rfind(kOptimizerPrefix, 0) != 0) out[name] = tensor;
  }
  return out;
}

std::string format_duration(double seconds) {
  const auto total = static_cast<long long>(std::max(0.0, seconds));
  char text[32];
  std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", total / 3600, (total / 60) % 60, total % 60);
  return text;
}

// ---------------------------------------------------------------- training

TrainResult train(const TrainConfig& given, const data::Dataset& clean_train_set, const data::Dataset& test_set,
                  std::ostream& lead_log) {
  // Data parallelism: every rank runs this function; rank 0 alone logs and
  // writes the run folder.
  TrainConfig with_ranks = given;
  with_ranks.ranks = dist::world_size();
  const TrainConfig& config = with_ranks;
  config.validate();
  const int rank = dist::rank();
  const int ranks = dist::world_size();
  const bool lead = rank == 0;
  std::ostream silent(nullptr);  // discards everything: the log of ranks other than 0
  std::ostream& log = lead ? lead_log : silent;
  // The label-noise experiment replaces training labels only. Its draws come
  // from their own Philox key (derived from the seed), so the weights and the
  // data order are those of the same run without noise, and a resume (same
  // seed, same subset, same fraction: run_mismatch) flips the same labels.
  const data::LabelNoise noisy = data::with_label_noise(clean_train_set, config.label_noise, config.seed);
  const data::Dataset& train_set = noisy.dataset;
  const auto flipped = static_cast<std::int64_t>(noisy.flipped.size());
  const Device device = Device::parse(config.device);
  const fs::path out(config.out);
  if (lead) create_run_folder(out);
  const fs::path checkpoint_path = out / "checkpoint.safetensors";
  const fs::path metrics_path = out / "metrics.jsonl";

  // ---- model, weights and optimizer
  manual_seed(config.seed);
  nn::ModulePtr model = nn::create_model(config.model, train_set.num_classes);
  TensorMap resumed;
  std::map<std::string, std::string> resumed_meta;
  if (config.resume) {
    BASIN_CHECK(!lead || fs::exists(checkpoint_path), "--resume: no checkpoint at ", checkpoint_path.string());
    const std::vector<std::uint8_t> bytes = read_on_rank0(checkpoint_path);
    resumed = load_safetensors_from_bytes(bytes, checkpoint_path.string(), &resumed_meta);
    const auto saved_config = resumed_meta.find("config");
    BASIN_CHECK(saved_config != resumed_meta.end(), checkpoint_path.string(),
                " is not a basin checkpoint (no 'config' in its metadata)");
    const std::string mismatch = run_mismatch(config, TrainConfig::from_json(saved_config->second, checkpoint_path.string() + "'s configuration"));
    BASIN_CHECK(mismatch.empty(), "--resume: ", checkpoint_path.string(), " belongs to another run: ", mismatch);
    model->load_state_dict(model_tensors(resumed));
  } else if (!config.init.empty()) {
    model->load_state_dict(model_tensors(load_safetensors(config.init)));
  }
  model->to(device);
  // Every rank built the model from the same seed; rank 0's weights and
  // buffers are sent to all the same, so the replicas start equal whatever
  // else drew from their generators.
  std::optional<optim::DataParallel> replicas;
  if (ranks > 1) {
    replicas.emplace(device);
    replicas->broadcast_state(*model);
  }

  auto sgd = std::make_shared<optim::SGD>(model->named_parameters(), optim::SGDOptions(config.lr)
                                                                         .momentum(config.momentum)
                                                                         .weight_decay(config.weight_decay)
                                                                         .nesterov(config.nesterov));
  std::shared_ptr<optim::SAM> sam;  // SAM or ASAM over the SGD
  if (config.optimizer != "sgd") {
    sam = std::make_shared<optim::SAM>(sgd,
                                       optim::SAMOptions()
                                           .rho(config.effective_rho())
                                           .adaptive(config.optimizer == "asam")
                                           .eta(config.eta)
                                           .mode(config.sam_mode == "replica" ? optim::SamMode::Replica
                                                                              : optim::SamMode::Global),
                                       model.get());
  }
  // This rank's share of the current batch (its images / the batch's images):
  // the weight of its gradients in the all-reduce.
  double share = 1.0;
  const auto reduce_gradients = [&] { replicas->reduce_gradients(sgd->arena(), share); };
  if (sam && replicas) sam->set_gradient_sync(reduce_gradients);
  optim::Optimizer& optimizer = sam ? static_cast<optim::Optimizer&>(*sam) : *sgd;

  Progress progress;
  if (config.resume) {
    TensorMap optimizer_state;
    for (const auto& [name, tensor] : resumed) {
      if (name.rfind(kOptimizerPrefix, 0) == 0) optimizer_state[name.substr(std::string(kOptimizerPrefix).size())] = tensor;
    }
    optimizer.load_state_dict(optimizer_state);
    progress.epoch = metadata_number<std::int64_t>(resumed_meta, "epoch", checkpoint_path.string());
    progress.batch = metadata_number<std::int64_t>(resumed_meta, "batch", checkpoint_path.string());
    progress.global_step = metadata_number<std::int64_t>(resumed_meta, "global_step", checkpoint_path.string());
    default_generator().set_state(
        metadata_number<std::uint64_t>(resumed_meta, "rng_seed", checkpoint_path.string()),
        metadata_number<std::uint64_t>(resumed_meta, "rng_offset", checkpoint_path.string()));
    if (const auto row = resumed_meta.find("epoch_metrics"); row != resumed_meta.end()) progress.epoch_row = row->second;
    if (const auto so_far = resumed_meta.find("epoch_so_far"); so_far != resumed_meta.end()) {
      progress.epoch_so_far = so_far->second;
    }
    if (lead) reconcile_metrics(metrics_path, progress.epoch, progress.epoch_row);
  } else if (lead) {
    const fs::path config_path = out / "config.json";
    const bool holds_run = fs::exists(checkpoint_path) || fs::exists(config_path) || fs::exists(metrics_path);
    BASIN_CHECK(!holds_run || config.overwrite, config.out,
                " already holds a run (config.json, metrics.jsonl or checkpoint.safetensors): continue it with",
                " --resume, or replace it with --overwrite");
    // The old checkpoint goes first: a kill between these lines must never
    // leave its weights beside the new configuration.
    std::error_code ec;
    fs::remove(checkpoint_path, ec);
    BASIN_CHECK(!ec, "cannot remove the old checkpoint ", checkpoint_path.string(), ": ", ec.message());
    json written = json::parse(config.to_json());
    written["label_noise_flipped"] = flipped;  // how many training labels the noise replaced
    write_file_atomically(config_path.string(), written.dump(2) + "\n", "basin-train");
    write_file_atomically(metrics_path.string(), "", "basin-train");  // a fresh run starts a fresh log
  }

  // ---- data
  data::AugmentOptions augment = config.augment ? data::AugmentOptions() : data::AugmentOptions::none();
  if (config.augment && !config.cutout) augment.cutout(0);
  const data::BatchLoader train_loader(train_set, data::LoaderOptions()
                                                      .batch_size(config.batch_size)
                                                      .shuffle(config.shuffle)
                                                      .seed(config.seed)
                                                      .device(device)
                                                      .augment(augment)
                                                      .shards(ranks)
                                                      .shard(rank));
  const data::BatchLoader test_loader = make_test_loader(test_set, config.batch_size, device);
  const std::int64_t steps_per_epoch = train_loader.batches_per_epoch();
  const auto schedule = make_schedule(config, steps_per_epoch);

  log << "basin-train: " << config.model << " (" << nn::parameter_count(*model) << " parameters) on "
      << train_set.name << ", " << data::detail::with_commas(train_set.size()) << " images, ";
  if (config.label_noise > 0.0) {
    char percent[32];
    std::snprintf(percent, sizeof percent, "%g%%", 100.0 * config.label_noise);
    log << percent << " of the training labels replaced (" << data::detail::with_commas(flipped) << "), ";
  }
  log << config.optimizer;
  if (sam) log << " rho " << config.effective_rho();
  if (sam && ranks > 1) log << " (" << config.sam_mode << " perturbation)";
  if (config.m_sharpness > 0) log << ", m-sharpness " << config.m_sharpness;
  log << ", " << config.epochs << (config.epochs == 1 ? " epoch" : " epochs") << " of " << steps_per_epoch
      << " steps, batch " << config.batch_size << ", device " << describe(device);
  if (device.is_cpu()) log << ", " << describe_cpu_engine();
  if (ranks > 1) {
    log << ", " << dist::describe_world() << ", " << dist::communicator(device).backend() << " all-reduce, "
        << data::piece_size(config.batch_size, ranks) << " images per rank";
  } else if (!dist::mpi_is_built()) {
    log << ", one process (basin was built without MPI: no data-parallel training)";
  }
  log << "\n";
  if (progress.epoch > 0 || progress.batch > 0) {
    log << "resuming after epoch " << progress.epoch << (progress.batch ? " and batch " + std::to_string(progress.batch) : "")
        << "\n";
  }

  // A diverged run stops at the next look at its loss (a progress line, the
  // end of an epoch) and never writes its weights over the last checkpoint.
  const auto checkpoint_kept = [&] {
    return fs::exists(checkpoint_path) ? "; " + checkpoint_path.string() + " is left as it was"
                                       : std::string("; no checkpoint was written");
  };
  const auto stop_if_diverged = [&](const Tally& tally, std::int64_t epoch, std::int64_t first_batch,
                                    std::int64_t step_before) {
    const std::int64_t finite = tally.batches_before_nonfinite();
    if (finite < 0) return;
    BASIN_FAIL("training diverged: the training loss became ", tally.loss_sum.item(), " at step ",
               step_before + finite + 1, " (epoch ", epoch + 1, ", batch ", first_batch + finite + 1, ")",
               checkpoint_kept());
  };
  // Before an evaluation or a checkpoint, every rank takes rank 0's BatchNorm
  // running statistics (each rank's moved with its own shards), which is what
  // PyTorch's DistributedDataParallel gives by broadcasting them before every
  // forward pass: rank 0's never change by it. Then the replicas must agree
  // bit for bit, weights and buffers, or the run stops.
  const auto align_replicas = [&] {
    if (!replicas) return;
    replicas->broadcast_buffers(*model);
    const std::uint64_t fingerprint = replicas->check_replicas_agree(*model);
    char text[128];
    std::snprintf(text, sizeof text, "weights and buffers identical on the %d ranks (fingerprint %016llx)\n", ranks,
                  static_cast<unsigned long long>(fingerprint));
    log << text;
  };
  const auto save_if_finite = [&](const Progress& at) {
    if (!lead) return;
    const std::string bad = first_nonfinite_tensor(*model);
    BASIN_CHECK(bad.empty(), "training diverged: '", bad, "' holds a NaN or an infinity after step ",
                at.global_step, checkpoint_kept());
    save_checkpoint(checkpoint_path, *model, optimizer, config, at);
  };

  const bool interactive = stdout_is_terminal(log);
  TrainResult result;
  result.epochs_done = progress.epoch;
  const nn::CrossEntropyLoss criterion(nn::CrossEntropyLossOptions().label_smoothing(config.label_smoothing));

  for (std::int64_t e = progress.epoch; e < config.epochs; ++e) {
    reset_peak_memory(device);
    const auto epoch_start = Clock::now();
    model->train();
    Tally tally(device);
    ProgressLine line(log, interactive, e + 1, config.epochs, steps_per_epoch);
    double lr = config.lr;
    const std::int64_t first_batch = e == progress.epoch ? progress.batch : 0;
    // A resumed epoch's row counts the steps run before the interruption too.
    EpochSoFar before;
    if (first_batch > 0 && !progress.epoch_so_far.empty()) {
      before = EpochSoFar::from_json(progress.epoch_so_far, checkpoint_path.string());
      // The saved sums cover every rank: rank 0 carries them, so that adding
      // over the ranks at the end of the epoch counts them once.
      if (lead) tally.restore(before);
    } else if (first_batch > 0) {
      log << "note: " << checkpoint_path.string() << " does not record the first " << first_batch
          << " steps of epoch " << e + 1 << "; its metrics row covers the steps after the resume\n";
    }
    const auto epoch_seconds = [&] {
      return before.seconds + std::chrono::duration<double>(Clock::now() - epoch_start).count();
    };
    const auto epoch_peak_memory = [&] { return std::max(before.peak_memory_bytes, memory_stats(device).peak_bytes); };
    const std::int64_t step_before = progress.global_step;
    std::int64_t done = first_batch;

    for (const data::Batch& batch : train_loader.epoch(e, first_batch)) {
      lr = schedule->lr_at(progress.global_step);
      optimizer.set_lr(lr);
      optimizer.zero_grad();
      const std::int64_t mine = batch.size();  // this rank's images (all of them on one rank)
      share = static_cast<double>(mine) / static_cast<double>(batch.global_size);
      // The loss and gradient of images [begin, end) of this rank's batch.
      // SGD calls the closure once; SAM twice, at w and then at w + e; each
      // chunk of m-sharpness twice. A first pass's loss and logits are what
      // the epoch reports.
      const auto pass = [&](std::int64_t begin, std::int64_t end, bool first_pass) {
        if (begin == end) return zeros({}, TensorOptions(kFloat32).device(device));  // an empty shard
        const Tensor images = batch.images.slice(0, begin, end);
        const Tensor labels = batch.labels.slice(0, begin, end);
        Tensor out = (*model)(images);
        Tensor l = criterion(out, labels);
        l.backward();
        if (first_pass) tally.add(l, out.detach(), labels);
        return l;
      };
      if (config.m_sharpness > 0 && mine > 0) {
        std::vector<double> weights;
        std::vector<data::Piece> chunks;
        for (std::int64_t c = 0; c * config.m_sharpness < mine; ++c) {
          chunks.push_back(data::piece_of(mine, config.m_sharpness, c));
          weights.push_back(static_cast<double>(chunks.back().size()) / static_cast<double>(mine));
        }
        std::vector<int> calls(chunks.size(), 0);
        sam->step_chunks([&](std::size_t c) { return pass(chunks[c].begin, chunks[c].end, calls[c]++ == 0); }, weights);
      } else {
        bool first_pass = true;
        optimizer.step([&] {
          Tensor l = pass(0, mine, first_pass);
          first_pass = false;
          if (replicas && !sam) reduce_gradients();  // SAM reduces by its mode (set_gradient_sync)
          return l;
        });
      }
      ++progress.global_step;
      ++done;
      // The progress line is rank 0's: its shard's loss and accuracy so far,
      // and images per second over all ranks (theirs are as many as its own).
      if (lead && line.due(done)) {
        line.show(done, tally.seen * ranks, tally.mean_loss(), tally.accuracy());
        stop_if_diverged(tally, e, first_batch, step_before);
      }

      // A stop after the epoch's last step lets the epoch end as usual (below):
      // a checkpoint in the middle of an epoch always has a batch left to run.
      // The ranks stop after the same step: a stop any of them saw stops all.
      const bool stop = ranks > 1 ? dist::any_rank(stop_requested().load()) : stop_requested().load();
      if (stop) stop_requested().store(true);
      if (stop && done < steps_per_epoch) {
        line.finish();
        stop_if_diverged(tally, e, first_batch, step_before);
        const std::vector<double> sums = global_sums(tally);
        align_replicas();
        progress.epoch = e;
        progress.batch = done;
        progress.epoch_so_far =
            EpochSoFar{sums[0], sums[1], static_cast<std::int64_t>(sums[2]), epoch_seconds(), epoch_peak_memory()}
                .to_json();
        save_if_finite(progress);
        log << "interrupted: saved " << checkpoint_path.string() << " at epoch " << e + 1 << ", batch " << done
            << "; continue with --resume --out " << config.out << "\n";
        result.interrupted = true;
        return result;
      }
    }
    line.finish();
    stop_if_diverged(tally, e, first_batch, step_before);
    const double seconds = epoch_seconds();

    const std::vector<double> sums = global_sums(tally);  // {loss sum, correct, images} over the ranks
    EpochMetrics m;
    m.epoch = e + 1;
    m.train_loss = sums[2] > 0 ? sums[0] / sums[2] : 0.0;
    m.train_accuracy = sums[2] > 0 ? sums[1] / sums[2] : 0.0;
    m.lr = lr;
    m.seconds = seconds;
    m.images_per_second = seconds > 0 ? sums[2] / seconds : 0.0;
    m.peak_memory_bytes = epoch_peak_memory();
    align_replicas();
    std::tie(m.test_loss, m.test_accuracy) = evaluate(*model, test_loader, config.label_smoothing);
    // Finite weights can still be far gone: logits that overflow to infinity.
    BASIN_CHECK(std::isfinite(m.test_loss), "training diverged: the test loss after epoch ", e + 1, " (step ",
                progress.global_step, ") is ", m.test_loss, checkpoint_kept());
    model->train();

    // The checkpoint first, carrying the row: a kill between the two lines
    // leaves a row to recover (reconcile_metrics), never a row of an epoch
    // the checkpoint does not hold.
    progress.epoch = e + 1;
    progress.batch = 0;
    progress.epoch_row = m.to_json();
    progress.epoch_so_far.clear();
    save_if_finite(progress);
    if (lead) append_to_file(metrics_path.string(), m.to_json() + "\n", "basin-train");
    if (lead && sam && !sam->last_step_finite()) log << "warning: the last SAM step met a non-finite gradient norm\n";

    char text[256];
    std::snprintf(text, sizeof text,
                  "epoch %lld/%lld  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  lr %.4g  %.1fs  %.0f img/s"
                  "  peak %.0f MiB\n",
                  static_cast<long long>(m.epoch), static_cast<long long>(config.epochs), m.train_loss,
                  100.0 * m.train_accuracy, m.test_loss, 100.0 * m.test_accuracy, m.lr, m.seconds,
                  m.images_per_second, static_cast<double>(m.peak_memory_bytes) / (1024.0 * 1024.0));
    log << text << std::flush;
    result.epochs_done = e + 1;
    result.last = m;
    if (dist::any_rank(stop_requested().load()) && e + 1 < config.epochs) {
      log << "interrupted: saved " << checkpoint_path.string() << " at the end of epoch " << e + 1
          << "; continue with --resume --out " << config.out << "\n";
      result.interrupted = true;
      return result;
    }
  }
  return result;
}

EpochMetrics evaluate_checkpoint(const TrainConfig& config, const std::string& checkpoint,
                                 const data::Dataset& test_set, std::ostream& lead_log) {
  // On N ranks each evaluates its shard of every batch (rank 0 reads the file
  // and sends it, and alone reports).
  std::ostream silent(nullptr);
  std::ostream& log = dist::rank() == 0 ? lead_log : silent;
  const Device device = Device::parse(config.device);
  nn::ModulePtr model = nn::create_model(config.model, test_set.num_classes);
  const std::vector<std::uint8_t> bytes = read_on_rank0(checkpoint);
  model->load_state_dict(model_tensors(load_safetensors_from_bytes(bytes, checkpoint)));
  const std::string bad = first_nonfinite_tensor(*model);
  BASIN_CHECK(bad.empty(), checkpoint, ": '", bad, "' holds a NaN or an infinity: these weights come from a run that",
              " diverged");
  model->to(device);
  const data::BatchLoader loader = make_test_loader(test_set, config.batch_size, device);
  EpochMetrics m;
  const auto start = Clock::now();
  std::tie(m.test_loss, m.test_accuracy) = evaluate(*model, loader, config.label_smoothing);
  m.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  log << "evaluated " << checkpoint << " on " << test_set.name << " (" << test_set.size() << " images): loss "
      << std::fixed << std::setprecision(4) << m.test_loss << ", accuracy " << std::setprecision(2)
      << 100.0 * m.test_accuracy << "%\n";
  return m;
}

}  // namespace basin::apps
