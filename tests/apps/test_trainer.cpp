// The trainer end to end on a small synthetic image set (trainer_support.h),
// on the CPU.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "apps/trainer.h"
#include "apps/trainer_support.h"
#include "core/random.h"
#include "core/serialization.h"
#include "data/dataset.h"
#include "support/compare.h"
#include "support/temp_dir.h"

using namespace basin;
using basin::testing::check_same_checkpoint;
using basin::testing::lines_of;
using basin::testing::rows_without_timing;
using basin::testing::synthetic;
using basin::testing::TempDir;
namespace fs = std::filesystem;

namespace {

apps::TrainConfig small_config(const std::string& out) {
  apps::TrainConfig c;
  c.model = "cnn-small";
  c.optimizer = "sam";
  c.epochs = 2;
  c.batch_size = 16;
  c.lr = 0.05;
  c.device = "cpu";
  c.schedule = "cosine";
  c.out = out;
  c.seed = 3;
  return c;
}

}  // namespace

TEST_CASE("the trainer learns a synthetic task and writes its run folder", "[trainer]") {
  const TempDir dir("trainer_learn");
  const data::Dataset train_set = synthetic(96, 1, "synthetic train");
  const data::Dataset test_set = synthetic(48, 2, "synthetic test");
  apps::TrainConfig config = small_config(dir.str());
  config.epochs = 3;
  config.lr = 0.03;
  config.augment = false;  // a 4-pixel crop would hide most of an 8x8 image
  std::ostringstream log;
  const apps::TrainResult result = apps::train(config, train_set, test_set, log);
  INFO(log.str());
  CHECK(result.epochs_done == 3);
  CHECK_FALSE(result.interrupted);
  CHECK(result.last.test_accuracy > 0.5);  // chance is 0.25
  CHECK(result.last.train_loss < 1.2);     // from ln 4 = 1.386
  CHECK(result.last.images_per_second > 0.0);

  const auto metrics = lines_of(dir.path() / "metrics.jsonl");
  REQUIRE(metrics.size() == 3);
  CHECK(metrics[0].find("\"epoch\":1") != std::string::npos);
  CHECK(metrics[2].find("\"test_accuracy\"") != std::string::npos);
  CHECK(fs::exists(dir.path() / "config.json"));
  CHECK_FALSE(fs::exists(dir.path() / "checkpoint.safetensors.tmp"));
  std::map<std::string, std::string> meta;
  const TensorMap checkpoint = load_safetensors(dir.file("checkpoint.safetensors"), &meta);
  CHECK(meta.at("epoch") == "3");
  CHECK(checkpoint.count("net.0.weight") == 1);  // the model's own names
  CHECK(checkpoint.count("optimizer.momentum_buffer") == 1);
}

TEST_CASE("two epochs straight equal one epoch, an interruption and a resume, bit for bit", "[trainer]") {
  const data::Dataset train_set = synthetic(64, 1, "synthetic train");
  const data::Dataset test_set = synthetic(16, 2, "synthetic test");
  std::ostringstream log;

  const TempDir straight("trainer_straight");
  apps::train(small_config(straight.str()), train_set, test_set, log);

  // Interrupted right after the first step of the first epoch, then resumed twice over.
  const TempDir pieces("trainer_pieces");
  apps::TrainConfig config = small_config(pieces.str());
  apps::stop_requested() = true;
  const apps::TrainResult stopped = apps::train(config, train_set, test_set, log);
  apps::stop_requested() = false;
  CHECK(stopped.interrupted);
  config.resume = true;
  const apps::TrainResult resumed = apps::train(config, train_set, test_set, log);
  INFO(log.str());
  CHECK(resumed.epochs_done == 2);

  check_same_checkpoint(straight.file("checkpoint.safetensors"), pieces.file("checkpoint.safetensors"));
  CHECK(lines_of(pieces.path() / "metrics.jsonl").size() == 2);
}

TEST_CASE("bad configurations are clear errors", "[trainer][errors]") {
  apps::TrainConfig c = small_config("unused");
  c.lr = -1;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("--lr must be positive, got -1"));
  c = small_config("unused");
  c.model = "resnet7";
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("unknown model 'resnet7'"));
  c = small_config("unused");
  c.rho = 0;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("--rho must be positive"));
  c = small_config("unused");
  c.label_noise = 1.5;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("--label-noise must be in [0, 1), got 1.5"));
  c.label_noise = -0.1;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("--label-noise must be in [0, 1), got -0.1"));
  c = small_config("unused");
  c.optimizer = "adam";
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("--optimizer must be sgd, sam or asam"));
  c = small_config("unused");
  c.resume = true;
  const TempDir nothing("trainer_nothing");  // exists, but holds no checkpoint
  c.out = nothing.str();
  std::ostringstream log;
  const data::Dataset d = synthetic(16, 1, "synthetic");
  CHECK_THROWS_WITH(apps::train(c, d, d, log), Catch::Contains("--resume: no checkpoint at"));
}

TEST_CASE("the configuration round-trips through JSON", "[trainer]") {
  apps::TrainConfig c = small_config("runs/x");
  c.optimizer = "asam";
  c.nesterov = true;
  c.train_subset = 500;
  c.label_noise = 0.25;
  const apps::TrainConfig back = apps::TrainConfig::from_json(c.to_json());
  CHECK(back.label_noise == 0.25);
  CHECK(back.optimizer == "asam");
  CHECK(back.rho == 0.5);  // the resolved default is what gets saved
  CHECK(back.nesterov);
  CHECK(back.train_subset == 500);
  CHECK(back.out == "runs/x");
  CHECK_THROWS_WITH(apps::TrainConfig::from_json("{not json"), Catch::Contains("not valid JSON"));
}

namespace {

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("a diverging run stops at the step that diverged and writes no checkpoint", "[trainer][errors]") {
  const data::Dataset train_set = synthetic(64, 1, "synthetic train");
  const data::Dataset test_set = synthetic(16, 2, "synthetic test");
  for (const char* optimizer : {"sgd", "sam", "asam"}) {
    INFO(optimizer);
    const TempDir dir("trainer_diverge");
    apps::TrainConfig config = small_config(dir.str());
    config.optimizer = optimizer;
    config.lr = 1e6;
    config.schedule = "constant";
    std::ostringstream log;
    std::string error;
    try {
      apps::train(config, train_set, test_set, log);
    } catch (const std::exception& e) {
      error = e.what();
    }
    INFO(log.str());
    // Depending on the optimizer, the training loss overflows first or the
    // test loss does (huge but finite weights whose logits overflow).
    CHECK_THAT(error, Catch::Matchers::StartsWith("training diverged: the ") && Catch::Matchers::Contains("epoch 1") &&
                          Catch::Matchers::Contains("no checkpoint was written"));
    CHECK_FALSE(fs::exists(dir.path() / "checkpoint.safetensors"));
    CHECK(lines_of(dir.path() / "metrics.jsonl").empty());
  }
}

TEST_CASE("resuming a good run with a learning rate that diverges keeps its checkpoint", "[trainer][errors]") {
  const data::Dataset train_set = synthetic(64, 1, "synthetic train");
  const data::Dataset test_set = synthetic(16, 2, "synthetic test");
  const TempDir dir("trainer_diverge_resume");
  apps::TrainConfig config = small_config(dir.str());
  config.epochs = 1;
  std::ostringstream log;
  apps::train(config, train_set, test_set, log);
  const fs::path checkpoint = dir.path() / "checkpoint.safetensors";
  const std::string good = file_bytes(checkpoint);

  config.epochs = 2;
  config.lr = 1e6;
  config.resume = true;
  CHECK_THROWS_WITH(apps::train(config, train_set, test_set, log),
                    Catch::Matchers::StartsWith("training diverged: the ") && Catch::Matchers::Contains("epoch 2") &&
                        Catch::Matchers::Contains("is left as it was"));
  CHECK(file_bytes(checkpoint) == good);
  CHECK(lines_of(dir.path() / "metrics.jsonl").size() == 1);
}

TEST_CASE("evaluating weights that hold a NaN says so", "[trainer][errors]") {
  const data::Dataset train_set = synthetic(64, 1, "synthetic train");
  const data::Dataset test_set = synthetic(16, 2, "synthetic test");
  const TempDir dir("trainer_eval_nan");
  apps::TrainConfig config = small_config(dir.str());
  config.epochs = 1;
  std::ostringstream log;
  apps::train(config, train_set, test_set, log);
  TensorMap tensors = load_safetensors(dir.file("checkpoint.safetensors"));
  std::string victim;
  for (const auto& [name, tensor] : tensors) {
    if (victim.empty() && is_floating(tensor.dtype()) && name.rfind("optimizer.", 0) != 0) victim = name;
  }
  REQUIRE_FALSE(victim.empty());
  Tensor poisoned = tensors.at(victim).clone();
  poisoned.fill_(std::nan(""));
  tensors[victim] = poisoned;
  const std::string path = dir.file("poisoned.safetensors");
  save_safetensors(path, tensors);
  CHECK_THROWS_WITH(apps::evaluate_checkpoint(config, path, test_set, log),
                    Catch::Matchers::Contains("'" + victim + "' holds a NaN or an infinity"));
}

TEST_CASE("a stop during an epoch's last step ends the epoch, and the resume goes on from the next",
          "[trainer]") {
  // 16 images in batches of 16: every step is the last of its epoch.
  const data::Dataset train_set = synthetic(16, 1, "synthetic train");
  const data::Dataset test_set = synthetic(16, 2, "synthetic test");
  std::ostringstream log;
  const TempDir straight("trainer_last_straight");
  apps::train(small_config(straight.str()), train_set, test_set, log);

  const TempDir pieces("trainer_last_pieces");
  apps::TrainConfig config = small_config(pieces.str());
  apps::stop_requested() = true;
  const apps::TrainResult stopped = apps::train(config, train_set, test_set, log);
  apps::stop_requested() = false;
  CHECK(stopped.interrupted);
  CHECK(stopped.epochs_done == 1);
  CHECK(lines_of(pieces.path() / "metrics.jsonl").size() == 1);
  config.resume = true;
  const apps::TrainResult resumed = apps::train(config, train_set, test_set, log);
  INFO(log.str());
  CHECK(resumed.epochs_done == 2);
  const std::vector<std::string> rows = lines_of(pieces.path() / "metrics.jsonl");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].find("\"epoch\":1") != std::string::npos);
  CHECK(rows[1].find("\"epoch\":2") != std::string::npos);
  check_same_checkpoint(straight.file("checkpoint.safetensors"), pieces.file("checkpoint.safetensors"));
}

TEST_CASE("a checkpoint whose progress is not a number is refused by file, key and value", "[trainer][errors]") {
  const data::Dataset train_set = synthetic(64, 1, "synthetic train");
  const data::Dataset test_set = synthetic(16, 2, "synthetic test");
  const TempDir dir("trainer_bad_meta");
  apps::TrainConfig config = small_config(dir.str());
  config.epochs = 1;
  std::ostringstream log;
  apps::train(config, train_set, test_set, log);
  const std::string path = dir.file("checkpoint.safetensors");
  for (const auto& [key, value] : {std::pair{"epoch", "one"}, std::pair{"global_step", "-3"},
                                   std::pair{"rng_seed", "18446744073709551616"}}) {
    INFO(key << " = " << value);
    std::map<std::string, std::string> meta;
    const TensorMap tensors = load_safetensors(path, &meta);
    const std::string original = meta.at(key);
    meta[key] = value;
    save_safetensors(path, tensors, meta);
    config.resume = true;
    config.epochs = 2;
    CHECK_THROWS_WITH(apps::train(config, train_set, test_set, log),
                      Catch::Matchers::Contains(path + ": checkpoint metadata '" + key +
                                                "' must be a non-negative integer, got \"" + value + "\""));
    meta[key] = original;
    save_safetensors(path, tensors, meta);
  }
}

TEST_CASE("a fresh run refuses a folder that holds a run unless told to overwrite it", "[trainer][errors]") {
  const data::Dataset train_set = synthetic(64, 1, "synthetic train");
  const data::Dataset test_set = synthetic(16, 2, "synthetic test");
  const TempDir dir("trainer_overwrite");
  apps::TrainConfig config = small_config(dir.str());
  config.epochs = 1;
  std::ostringstream log;
  apps::train(config, train_set, test_set, log);
  const std::string checkpoint = file_bytes(dir.path() / "checkpoint.safetensors");
  const std::string metrics = file_bytes(dir.path() / "metrics.jsonl");

  config.lr = 0.01;
  CHECK_THROWS_WITH(apps::train(config, train_set, test_set, log),
                    Catch::Matchers::Contains(dir.str() + " already holds a run") &&
                        Catch::Matchers::Contains("--resume") && Catch::Matchers::Contains("--overwrite"));
  CHECK(file_bytes(dir.path() / "checkpoint.safetensors") == checkpoint);
  CHECK(file_bytes(dir.path() / "metrics.jsonl") == metrics);

  config.overwrite = true;
  apps::train(config, train_set, test_set, log);
  CHECK(file_bytes(dir.path() / "checkpoint.safetensors") != checkpoint);
  CHECK(lines_of(dir.path() / "metrics.jsonl").size() == 1);
}

TEST_CASE("resume refuses a checkpoint written by another run", "[trainer][errors]") {
  const data::Dataset train_set = synthetic(64, 1, "synthetic train");
  const data::Dataset test_set = synthetic(16, 2, "synthetic test");
  const TempDir dir("trainer_other_run");
  apps::TrainConfig config = small_config(dir.str());
  config.epochs = 1;
  std::ostringstream log;
  apps::train(config, train_set, test_set, log);

  config.resume = true;
  config.epochs = 2;
  config.seed = 4;  // config.json of another run beside this checkpoint
  CHECK_THROWS_WITH(apps::train(config, train_set, test_set, log),
                    Catch::Matchers::Contains("belongs to another run: 'seed' is 4 in config.json but 3 in the "
                                              "checkpoint"));
  config.seed = 3;
  config.lr = 0.01;  // a new learning rate for the rest of the run is allowed
  CHECK(apps::train(config, train_set, test_set, log).epochs_done == 2);
}


TEST_CASE("label noise: recorded in config.json, the same labels after a resume, a resume with another refused",
          "[trainer][label-noise]") {
  const data::Dataset train_set = synthetic(64, 1, "synthetic train");
  const data::Dataset test_set = synthetic(16, 2, "synthetic test");
  std::ostringstream log;

  // No augmentation: a 16-pixel cutout blanks the whole of an 8x8 image, and
  // then BatchNorm zeroes every feature and only the last bias learns.
  apps::TrainConfig config = small_config("");
  config.epochs = 1;
  config.augment = false;

  const TempDir clean("trainer_noise_clean");
  config.out = clean.str();
  apps::train(config, train_set, test_set, log);

  const TempDir straight("trainer_noise_straight");
  config.out = straight.str();
  config.label_noise = 0.25;
  std::ostringstream straight_log;
  const apps::TrainResult done = apps::train(config, train_set, test_set, straight_log);
  INFO(straight_log.str());
  CHECK(straight_log.str().find("on synthetic train (25% noisy labels), 64 images, 25% of the training labels "
                                "replaced (16), sam") != std::string::npos);
  CHECK(done.epochs_done == 1);
  std::ifstream config_file(straight.path() / "config.json");
  const nlohmann::json saved = nlohmann::json::parse(config_file);
  CHECK(saved.at("label_noise").get<double>() == 0.25);
  CHECK(saved.at("label_noise_flipped").get<std::int64_t>() == 16);
  CHECK(apps::TrainConfig::read_file(straight.file("config.json")).label_noise == 0.25);
  // The noise reaches the training: the same seed without it ends elsewhere.
  CHECK_FALSE(testing::equal(load_safetensors(clean.file("checkpoint.safetensors")).at("net.0.weight"),
                             load_safetensors(straight.file("checkpoint.safetensors")).at("net.0.weight")));
  // ...but never the test labels: evaluating the weights gives the run's own test metrics.
  std::ostringstream eval_log;
  const apps::EpochMetrics evaluated =
      apps::evaluate_checkpoint(config, straight.file("checkpoint.safetensors"), test_set, eval_log);
  CHECK(evaluated.test_loss == done.last.test_loss);
  CHECK(evaluated.test_accuracy == done.last.test_accuracy);

  // Interrupted after its first step and resumed: the same labels are flipped, so the same weights.
  const TempDir pieces("trainer_noise_pieces");
  config.out = pieces.str();
  apps::stop_requested() = true;
  CHECK(apps::train(config, train_set, test_set, log).interrupted);
  apps::stop_requested() = false;
  apps::TrainConfig other = config;
  other.resume = true;
  other.label_noise = 0.5;
  CHECK_THROWS_WITH(apps::train(other, train_set, test_set, log),
                    Catch::Matchers::Contains("belongs to another run: 'label_noise' is 0.5 in config.json but 0.25 "
                                              "in the checkpoint"));
  other.label_noise = 0.0;
  CHECK_THROWS_WITH(apps::train(other, train_set, test_set, log), Catch::Matchers::Contains("'label_noise'"));
  config.resume = true;
  CHECK(apps::train(config, train_set, test_set, log).epochs_done == 1);
  check_same_checkpoint(straight.file("checkpoint.safetensors"), pieces.file("checkpoint.safetensors"));
}

TEST_CASE("an epoch interrupted and resumed has one row describing the whole epoch", "[trainer]") {
  const data::Dataset train_set = synthetic(64, 1, "synthetic train");
  const data::Dataset test_set = synthetic(16, 2, "synthetic test");
  std::ostringstream log;
  const TempDir straight("trainer_row_straight");
  apps::train(small_config(straight.str()), train_set, test_set, log);

  // Stopped after the first of four steps of epoch 1, resumed, stopped after
  // the first step of epoch 2, resumed again.
  const TempDir pieces("trainer_row_pieces");
  apps::TrainConfig config = small_config(pieces.str());
  for (int piece = 0; piece < 3; ++piece) {
    apps::stop_requested() = piece < 2;
    config.resume = piece > 0;
    apps::train(config, train_set, test_set, log);
    if (piece == 0) {
      // A step at a time: the interrupted epoch's row only comes with its end.
      CHECK(lines_of(pieces.path() / "metrics.jsonl").empty());
    }
  }
  apps::stop_requested() = false;
  INFO(log.str());
  CHECK(rows_without_timing(pieces.path() / "metrics.jsonl") == rows_without_timing(straight.path() / "metrics.jsonl"));
  check_same_checkpoint(straight.file("checkpoint.safetensors"), pieces.file("checkpoint.safetensors"));
}

TEST_CASE("metrics.jsonl holds one row per epoch whatever moment a run was killed at", "[trainer]") {
  const data::Dataset train_set = synthetic(64, 1, "synthetic train");
  const data::Dataset test_set = synthetic(16, 2, "synthetic test");
  std::ostringstream log;
  // A constant learning rate: the run of one epoch below then takes the same
  // steps as the first epoch of the run of two.
  apps::TrainConfig straight_config = small_config("");
  straight_config.schedule = "constant";
  const TempDir straight("trainer_rows_straight");
  straight_config.out = straight.str();
  apps::train(straight_config, train_set, test_set, log);
  const std::vector<std::string> expected = rows_without_timing(straight.path() / "metrics.jsonl");
  REQUIRE(expected.size() == 2);

  const TempDir dir("trainer_rows_killed");
  apps::TrainConfig config = straight_config;
  config.out = dir.str();
  config.epochs = 1;
  apps::train(config, train_set, test_set, log);
  const fs::path metrics = dir.path() / "metrics.jsonl";
  config.epochs = 2;
  config.resume = true;
  const std::string first_row = lines_of(metrics).at(0);

  SECTION("killed after the checkpoint, before its row was appended") {
    std::ofstream(metrics, std::ios::trunc);
  }
  SECTION("killed while appending the row") {
    std::ofstream(metrics, std::ios::trunc) << first_row.substr(0, first_row.size() / 2);
  }
  SECTION("killed after a row of an epoch the checkpoint does not hold") {
    std::ofstream(metrics, std::ios::app) << "{\"epoch\":2,\"train_loss\":9.0}\n{\"epoch\":3,";
  }
  apps::train(config, train_set, test_set, log);
  INFO(log.str());
  CHECK(rows_without_timing(metrics) == expected);
}

TEST_CASE("config.json errors name the file, the key and the value", "[trainer][errors]") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(apps::TrainConfig::from_json(R"({"epochs": "ten"})", "runs/a/config.json"),
                    Contains("runs/a/config.json: 'epochs' must be an integer, got \"ten\""));
  CHECK_THROWS_WITH(apps::TrainConfig::from_json(R"({"lr": true})", "c.json"),
                    Contains("c.json: 'lr' must be a number, got true"));
  CHECK_THROWS_WITH(apps::TrainConfig::from_json(R"({"seed": -1})", "c.json"),
                    Contains("c.json: 'seed' must be a non-negative integer, got -1"));
  CHECK_THROWS_WITH(apps::TrainConfig::from_json(R"({"batch_size": 2.5})", "c.json"),
                    Contains("c.json: 'batch_size' must be an integer, got 2.5"));
  CHECK_THROWS_WITH(apps::TrainConfig::from_json(R"({"model": 18})", "c.json"),
                    Contains("c.json: 'model' must be a string, got 18"));
  CHECK_THROWS_WITH(apps::TrainConfig::from_json(R"({"nesterov": 1})", "c.json"),
                    Contains("c.json: 'nesterov' must be true or false, got 1"));
  CHECK_THROWS_WITH(apps::TrainConfig::from_json("[1, 2]", "c.json"), Contains("c.json must hold a JSON object"));
  CHECK_THROWS_WITH(apps::TrainConfig::from_json("{not json", "c.json"), Contains("c.json is not valid JSON"));

  const TempDir dir("trainer_config_file");
  CHECK_THROWS_WITH(apps::TrainConfig::read_file(dir.file("config.json")),
                    Contains(dir.file("config.json") + " not found"));
  fs::create_directory(dir.path() / "folder.json");
  CHECK_THROWS_WITH(apps::TrainConfig::read_file(dir.file("folder.json")),
                    Contains(dir.file("folder.json") + " is not a regular file"));
}

TEST_CASE("a run folder that cannot be made or used is an error naming it", "[trainer][errors]") {
  using Catch::Matchers::Contains;
  const data::Dataset d = synthetic(16, 1, "synthetic");
  std::ostringstream log;
  apps::TrainConfig config = small_config("");
  CHECK_THROWS_WITH(apps::train(config, d, d, log), Contains("--out must name the run folder"));

  const TempDir dir("trainer_out_file");
  std::ofstream(dir.path() / "plain") << "not a folder";
  config.out = dir.file("plain");
  CHECK_THROWS_WITH(apps::train(config, d, d, log), Contains("--out " + dir.file("plain") + " exists and is not a folder"));
  config.out = dir.file("plain") + "/run";
  CHECK_THROWS_WITH(apps::train(config, d, d, log),
                    Contains("cannot create the run folder " + config.out + ": ") && Contains("Not a directory"));
}
