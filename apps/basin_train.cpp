// basin-train: trains a CIFAR model with SGD, SAM or ASAM. See README.md
// ("Training on CIFAR") and `basin-train --help`.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "apps/trainer.h"
#include "core/cpu_engine.h"
#include "core/distributed.h"
#include "core/error.h"
#include "nn/models/models.h"

namespace {

void on_interrupt(int) {
  // The first Ctrl-C finishes the current step and saves; a second one ends the process at once.
  basin::apps::stop_requested().store(true);
  std::signal(SIGINT, SIG_DFL);
}

// "basin-train: error: ..." and exit 1; on N ranks the message names the
// rank and every rank of the job ends (mpirun reports the abort).
[[noreturn]] void fail(const std::string& message) {
  int ranks = 1;
  try {
    ranks = basin::dist::world_size();
  } catch (const std::exception&) {
    // dist::init() itself failed: this process is on its own.
  }
  // One write of the whole line: mpirun forwards each write of a rank as it
  // comes, between the lines of its own abort report.
  const std::string line = ranks > 1 ? "basin-train: rank " + std::to_string(basin::dist::rank()) + " of " +
                                           std::to_string(ranks) + ": error: " + message + "\n"
                                     : "basin-train: error: " + message + "\n";
  std::cerr << line << std::flush;
  if (ranks > 1) basin::dist::abort_job(1);
  std::exit(1);
}

// The run's config.json, read by rank 0 and sent to the others.
basin::apps::TrainConfig read_run_config(const std::string& path) {
  std::string text;
  if (basin::dist::rank() == 0) text = basin::apps::TrainConfig::read_file(path).to_json();
  basin::dist::broadcast(text, 0);
  return basin::apps::TrainConfig::from_json(text, path);
}

}  // namespace

int main(int argc, char** argv) {
  using basin::apps::TrainConfig;
  TrainConfig c;
  std::string eval_checkpoint;
  bool summary = false;
  bool no_augment = false, no_shuffle = false;

  CLI::App app{"basin-train: CIFAR-10/100 training with SGD, SAM or ASAM"};
  app.get_formatter()->column_width(34);
  app.add_option("--dataset", c.dataset, "cifar10 or cifar100")->capture_default_str();
  app.add_option("--data-dir", c.data_dir, "folder with the binary CIFAR files (scripts/download-cifar.sh fetches them)")
      ->capture_default_str();
  app.add_option("--model", c.model, "resnet18, wrn16-8, wrn28-10, resnet20/32/44/56/110, cnn-small, mlp")
      ->capture_default_str();
  app.add_option("--optimizer", c.optimizer, "sgd, sam or asam")->capture_default_str();
  app.add_option("--rho", c.rho, "neighbourhood size (default: 0.05 for SAM, 0.5 for ASAM)");
  app.add_option("--eta", c.eta, "ASAM: T = |w| + eta")->capture_default_str();
  app.add_option("--lr", c.lr, "peak learning rate")->capture_default_str();
  app.add_option("--momentum", c.momentum, "SGD momentum")->capture_default_str();
  app.add_option("--weight-decay", c.weight_decay, "L2 weight decay (in the base optimizer)")->capture_default_str();
  app.add_flag("--nesterov", c.nesterov, "Nesterov momentum");
  app.add_option("--epochs", c.epochs, "training epochs")->capture_default_str();
  app.add_option("--batch-size", c.batch_size, "images per step")->capture_default_str();
  app.add_option("--schedule", c.schedule, "learning-rate schedule: constant, step (x0.1 at 50% and 75%) or cosine")
      ->capture_default_str();
  app.add_option("--warmup-epochs", c.warmup_epochs, "linear warmup before the schedule")->capture_default_str();
  app.add_option("--label-smoothing", c.label_smoothing, "cross-entropy label smoothing")->capture_default_str();
  app.add_flag("--cutout,!--no-cutout", c.cutout, "16x16 cutout in the augmentation (default on)");
  app.add_flag("--no-augment", no_augment, "no crop, flip or cutout: normalization only");
  app.add_option("--device", c.device, "auto, cuda or cpu")->capture_default_str();
  int threads = 0;
  app.add_option("--threads", threads, "CPU threads of the fast kernels (default: OMP_NUM_THREADS, else every core)")
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", c.seed, "seed for weights, data order, augmentation and dropout")
      ->check(CLI::NonNegativeNumber)  // an unsigned parse would turn -1 into 2^64 - 1
      ->capture_default_str();
  app.add_option("--out", c.out, "run folder: config.json, metrics.jsonl, checkpoint.safetensors")
      ->capture_default_str();
  app.add_flag("--resume", c.resume, "continue the run in --out from its checkpoint");
  app.add_flag("--overwrite", c.overwrite, "start afresh in an --out that already holds a run, replacing it");
  app.add_option("--eval", eval_checkpoint, "evaluate a checkpoint (or weights) on the test set and exit");
  app.add_option("--init", c.init, "start from these weights (safetensors with the PyTorch model's names)");
  app.add_flag("--no-shuffle", no_shuffle, "visit the training set in file order");
  app.add_option("--train-subset", c.train_subset, "train on the first N images (0: all)")->capture_default_str();
  app.add_option("--test-subset", c.test_subset, "test on the first N images (0: all)")->capture_default_str();
  app.add_option("--sam-mode", c.sam_mode,
                 "SAM/ASAM on several ranks (mpirun): global (all ranks perturb by the batch's gradient: single-device "
                 "SAM) or replica (each by its own shard's gradient; one all-reduce less per step)")
      ->capture_default_str();
  app.add_option("--m-sharpness", c.m_sharpness,
                 "perturb each chunk of this many images by its own gradient (0: off); on one device, what "
                 "--sam-mode replica computes on batch/m ranks")
      ->capture_default_str();
  app.add_option("--label-noise", c.label_noise,
                 "replace this fraction of the training labels, chosen by --seed, with another class at random "
                 "(the SAM paper's noisy-label experiment; test labels untouched)")
      ->capture_default_str();
  app.add_flag("--summary", summary, "print the model summary and exit");
  try {
    basin::dist::init();  // joins the job when started by mpirun, before any CUDA work
  } catch (const std::exception& e) {
    fail(e.what());
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and parse errors are printed by rank 0 only; every rank exits with the same status.
    if (basin::dist::rank() != 0) return e.get_exit_code();
    return app.exit(e);
  }
  c.augment = !no_augment;
  c.shuffle = !no_shuffle;

  try {
    (void)basin::cpu_kernels();  // a bad BASIN_CPU_KERNELS fails here, before any work
    if (threads > 0) basin::set_cpu_threads(threads);
    if (app.count("--rho")) BASIN_CHECK(c.rho > 0.0, "--rho must be positive, got ", c.rho);
    if (summary) {
      if (basin::dist::rank() != 0) return 0;
      basin::nn::ModulePtr model = basin::nn::create_model(c.model, c.dataset == "cifar100" ? 100 : 10);
      std::cout << model->summary(basin::zeros({1, 3, 32, 32}));
      return 0;
    }
    if (c.resume) {
      // Continue with the run's own configuration; only the length of the run
      // and the device may change.
      BASIN_CHECK(!c.out.empty(), "--resume needs --out, the folder of the run to continue");
      TrainConfig saved = read_run_config(c.out + "/config.json");
      if (app.count("--epochs")) saved.epochs = c.epochs;
      if (app.count("--device")) saved.device = c.device;
      if (app.count("--data-dir")) saved.data_dir = c.data_dir;
      saved.out = c.out;
      saved.resume = true;
      c = saved;
    }
    c.validate();
    auto [train_set, test_set] = basin::apps::load_datasets(c);
    if (!eval_checkpoint.empty()) {
      basin::apps::evaluate_checkpoint(c, eval_checkpoint, test_set, std::cout);
      return 0;
    }
    std::signal(SIGINT, on_interrupt);
    // mpirun ends the job on SIGINT, but passes SIGUSR1 on to every rank: the
    // way to stop a data-parallel run after its current step, with a checkpoint.
    std::signal(SIGUSR1, on_interrupt);
    const auto result = basin::apps::train(c, train_set, test_set, std::cout);
    return result.interrupted ? 130 : 0;
  } catch (const std::exception& e) {
    fail(e.what());
  }
}
