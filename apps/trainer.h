// The CIFAR trainer behind basin-train: configuration, the training loop
// with SGD, SAM or ASAM, evaluation, metrics, checkpoints and resume.
// Kept apart from the command line so tests can train on synthetic data.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

#include "core/serialization.h"
#include "data/dataset.h"

namespace basin::apps {

struct TrainConfig {
  static constexpr std::int64_t kMaxEpochs = 1'000'000;  // keeps epochs x steps per epoch inside an int64

  std::string dataset = "cifar10";  // cifar10 | cifar100
  std::string data_dir = "datasets";  // where scripts/download-cifar.sh puts the archives
  std::string model = "resnet18";
  std::string optimizer = "sam";    // sgd | sam | asam
  double rho = -1.0;                // < 0: the optimizer's default (SAM 0.05, ASAM 0.5)
  double eta = 0.01;                // ASAM
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool nesterov = false;
  std::int64_t epochs = 200;
  std::int64_t batch_size = 128;
  std::string schedule = "cosine";  // constant | step | cosine
  double warmup_epochs = 0.0;
  double label_smoothing = 0.1;
  bool cutout = true;
  bool augment = true;
  std::string device = "auto";
  std::uint64_t seed = 0;
  std::string out = "runs/default";
  bool resume = false;
  bool overwrite = false;           // a fresh run may replace a run already in out
  std::string init;                 // safetensors weights to start from
  bool shuffle = true;
  std::int64_t train_subset = 0;    // 0: all
  std::int64_t test_subset = 0;
  // The label-noise experiment: this fraction of the training labels, chosen
  // by the seed, replaced by another class (data::with_label_noise); the test
  // labels are left alone.
  double label_noise = 0.0;
  // SAM/ASAM under data parallelism (docs/distributed.md): "global" averages
  // the first pass's gradient over the ranks, so every rank perturbs by the
  // same e(w), exactly single-device SAM on the global batch; "replica"
  // perturbs each rank by its own shard's gradient and skips that all-reduce
  // (the SAM paper's recipe: m-sharpness with m = the rank's share of the batch).
  std::string sam_mode = "global";
  // m-sharpness on each process: the (local) batch is cut into chunks of this
  // many images, each perturbed by its own gradient; 0: off. On one device
  // with m = B / N it computes what "replica" mode computes on N ranks.
  std::int64_t m_sharpness = 0;
  // The number of processes (ranks) training together; set by train() from
  // the job (dist::world_size), recorded in config.json.
  std::int64_t ranks = 1;

  // The rho actually used (the optimizer's default when rho < 0).
  double effective_rho() const;
  // Throws basin::Error naming the first bad value ("--lr must be positive, got -1").
  void validate() const;
  std::string to_json() const;
  // Errors name `source` (a file, or "the checkpoint's configuration"), the key
  // and the value: "runs/a/config.json: 'epochs' must be an integer, got \"ten\"".
  // Keys that are absent keep their defaults.
  static TrainConfig from_json(const std::string& json, const std::string& source = "the configuration");
  // A run folder's config.json; a missing or unreadable file is an error saying which and why.
  static TrainConfig read_file(const std::string& path);
};

struct EpochMetrics {
  std::int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_accuracy = 0;
  double test_loss = 0, test_accuracy = 0;
  double lr = 0;
  double seconds = 0, images_per_second = 0;
  std::int64_t peak_memory_bytes = 0;
  std::string to_json() const;
};

struct TrainResult {
  std::int64_t epochs_done = 0;
  bool interrupted = false;
  EpochMetrics last;
};

// Set (e.g. by a SIGINT handler) to stop after the current step: the trainer
// then saves a checkpoint and returns with interrupted = true.
std::atomic<bool>& stop_requested();

// Loads the datasets named by the config (with subsets applied).
// Data-parallel jobs (mpirun, core/distributed.h): every rank calls train()
// and evaluate_checkpoint() alike; each trains on its shard of every batch,
// rank 0 alone logs and writes files, and the epoch metrics cover the whole
// batch and the whole test set.
std::pair<data::Dataset, data::Dataset> load_datasets(const TrainConfig& config);

// Trains on the given data, writing config.json, metrics.jsonl and
// checkpoint.safetensors into config.out. Progress goes to `log`. With
// config.label_noise > 0 it trains on data::with_label_noise(train_set,
// label_noise, seed) and records the number of labels replaced in config.json
// ("label_noise_flipped").
TrainResult train(const TrainConfig& config, const data::Dataset& train_set, const data::Dataset& test_set,
                  std::ostream& log);

// The model's tensors of a checkpoint (or of a plain weights file): all but
// the optimizer state, which checkpoints keep under "optimizer.".
TensorMap model_tensors(const TensorMap& file);

// "1:02:03" (hours, minutes, seconds) for progress lines.
std::string format_duration(double seconds);

// Evaluates the weights in a checkpoint (or plain safetensors weights) on the test set.
EpochMetrics evaluate_checkpoint(const TrainConfig& config, const std::string& checkpoint,
                                 const data::Dataset& test_set, std::ostream& log);

}  // namespace basin::apps
