// basin-sharpness's command line: bad values exit 1 with one line on stderr,
// and a tiny end-to-end run (cnn-small, six synthetic CIFAR-10 test images,
// every metric at its smallest size) writes sharpness.json and the landscape
// CSVs with what they promise.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/hessian.h"
#include "core/random.h"
#include "core/serialization.h"
#include "nn/models/models.h"
#include "support/run_program.h"
#include "support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using basin::testing::ProgramOutcome;
using basin::testing::TempDir;

// The program sits beside basin-train in the build's apps/ folder unless the
// build names it.
std::string sharpness_exe() {
#ifdef BASIN_SHARPNESS_EXE
  return BASIN_SHARPNESS_EXE;
#else
  return (fs::path(BASIN_TRAIN_EXE).parent_path() / "basin-sharpness").string();
#endif
}

ProgramOutcome run(const std::string& arguments) {
  return basin::testing::run_program(sharpness_exe() + " " + arguments);
}

int line_count(const std::string& text) {
  int lines = 0;
  for (char ch : text) lines += ch == '\n';
  return lines;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A CIFAR-10 test_batch.bin of the official size (10,000 records of a label
// byte and 3,072 planar pixels) whose first `filled` records hold varied
// labels and pixels; the rest is a sparse hole of zeros (label 0, black).
void write_cifar10_test_file(const std::string& path, int filled) {
  constexpr std::int64_t kRecord = 1 + 3 * 32 * 32;
  std::vector<unsigned char> head(static_cast<std::size_t>(filled * kRecord));
  std::uint32_t state = 12345u;
  const auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return state >> 24;
  };
  for (int r = 0; r < filled; ++r) {
    const std::size_t at = static_cast<std::size_t>(r * kRecord);
    head[at] = static_cast<unsigned char>(r % 10);
    for (std::int64_t p = 1; p < kRecord; ++p) head[at + p] = static_cast<unsigned char>(40 + 20 * (r % 5) + next() % 100);
  }
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(head.data()), static_cast<std::streamsize>(head.size()));
  }
  fs::resize_file(path, static_cast<std::uintmax_t>(10000 * kRecord));
}

// A checkpoint of a freshly initialized model as basin-train lays it out:
// the model's tensors, plus an optimizer tensor the program must skip.
void write_checkpoint(const std::string& path, const std::string& model_name, std::uint64_t seed = 7) {
  basin::manual_seed(seed);
  const basin::nn::ModulePtr model = basin::nn::create_model(model_name, 10);
  basin::TensorMap tensors = model->state_dict();
  tensors["optimizer.momentum.0"] = basin::zeros({3});
  basin::save_safetensors(path, tensors, {{"format", "basin-checkpoint-1"}});
}

}  // namespace

TEST_CASE("basin-sharpness rejects bad values with one line and exit status 1", "[cli][errors][sharpness]") {
  const TempDir dir("sharpness_cli_errors");
  const std::string checkpoint = dir.file("cnn.safetensors");
  write_checkpoint(checkpoint, "cnn-small");
  const std::string explicit_model = "--checkpoint " + checkpoint + " --model cnn-small --device cpu ";
  struct Case {
    std::string arguments;
    std::string message;
  };
  const std::vector<Case> cases = {
      {explicit_model + "--rho 0", "--rho must be positive, got 0"},
      {explicit_model + "--asam-rho -1", "--asam-rho must be positive, got -1"},
      {explicit_model + "--metrics lambda_max,curvature", "unknown metric 'curvature'"},
      {explicit_model + "--subset 0", "--subset must be positive, got 0"},
      {explicit_model + "--grid 1", "--grid must be at least 2, got 1"},
      {explicit_model + "--dtype float16", "--dtype must be float64 or float32, got 'float16'"},
      {explicit_model + "--bn frozen", "--bn must be eval or train, got 'frozen'"},
      {explicit_model + "--m 0", "--m must be positive, got 0"},
      {explicit_model + "--subset 8 --m 9", "--m must be at most --subset (8), got 9"},
      {"--checkpoint " + checkpoint + " --model resnet20 --device cpu",
       checkpoint + " does not hold a resnet20 checkpoint: "},
      {"--checkpoint " + dir.file("missing.safetensors") + " --model cnn-small --device cpu",
       "checkpoint " + dir.file("missing.safetensors") + " not found"},
      {"--run " + dir.file("no-such-run"), "--run folder " + dir.file("no-such-run") + " not found"},
      {"--run " + dir.str(), "holds no config.json"},
      {"--model cnn-small", "--checkpoint"},
  };
  for (const Case& c : cases) {
    const ProgramOutcome outcome = run(c.arguments);
    INFO(c.arguments << " -> " << outcome.output);
    CHECK(outcome.status == 1);
    CHECK(outcome.output.find("basin-sharpness: error: ") == 0);
    CHECK(outcome.output.find(c.message) != std::string::npos);
    CHECK(line_count(outcome.output) == 1);
  }
}

TEST_CASE("basin-sharpness measures a small checkpoint and writes sharpness.json and the landscapes",
          "[cli][sharpness]") {
  const TempDir dir("sharpness_cli_run");
  const std::string data = dir.file("data");
  fs::create_directories(data);
  write_cifar10_test_file((fs::path(data) / "test_batch.bin").string(), 8);
  const std::string run_dir = dir.file("run");
  fs::create_directories(run_dir);
  write_checkpoint((fs::path(run_dir) / "checkpoint.safetensors").string(), "cnn-small");
  std::ofstream(fs::path(run_dir) / "config.json")
      << R"({"model": "cnn-small", "dataset": "cifar10", "data_dir": ")" << data
      << R"(", "label_noise": 0.25, "label_noise_flipped": 12})";

  const std::string out = dir.file("out");
  const ProgramOutcome outcome = run(
      "--run " + run_dir + " --out " + out +
      " --device cpu --split test --subset 6 --batch-size 4 --metrics lambda_max,trace,sharpness,landscape1d,landscape2d"
      " --max-iterations 3 --trace-samples 2 --m 3 --line-points 3 --grid 3 --seed 4");
  INFO(outcome.output);
  REQUIRE(outcome.status == 0);
  CHECK(outcome.output.find("cnn-small") != std::string::npos);
  CHECK(outcome.output.find("6 images of") != std::string::npos);

  std::ifstream in(fs::path(out) / "sharpness.json");
  REQUIRE(in.is_open());
  const nlohmann::json report = nlohmann::json::parse(in);
  const nlohmann::json& setup = report.at("setup");
  CHECK(setup.at("model") == "cnn-small");
  CHECK(setup.at("split") == "test");
  CHECK(setup.at("subset") == 6);
  CHECK(setup.at("batch_size") == 4);
  CHECK(setup.at("dtype") == "float64");
  CHECK(setup.at("batchnorm") == "eval");
  CHECK(setup.at("seed") == 4);
  CHECK(setup.at("hvp").at("step") == basin::analysis::HessianOptions().step());
  CHECK(setup.at("hvp").at("h").get<double>() > 0.0);
  CHECK(setup.at("label_noise").at("fraction") == 0.25);
  CHECK(setup.at("label_noise").at("flipped_in_run") == 12);
  CHECK(setup.at("label_noise").at("labels_measured") == "clean");

  const nlohmann::json& metrics = report.at("metrics");
  const nlohmann::json& lambda = metrics.at("lambda_max");
  REQUIRE(lambda.at("eigenvalues").size() == 1);
  CHECK(std::isfinite(lambda.at("eigenvalues")[0].get<double>()));
  CHECK(lambda.at("iterations")[0].get<std::int64_t>() <= 3);
  CHECK(lambda.at("hvp_products").get<std::int64_t>() >= 1);
  CHECK(lambda.contains("converged"));
  CHECK(lambda.contains("relative_change"));
  CHECK(lambda.contains("seconds"));
  const nlohmann::json& trace = metrics.at("trace");
  CHECK(trace.at("samples") == 2);
  CHECK(trace.at("values").size() == 2);
  CHECK(trace.contains("standard_error"));
  CHECK(trace.at("hvp_products") == 2);
  const nlohmann::json& sharpness = metrics.at("sharpness");
  CHECK(sharpness.at("sam").at("rho") == 0.05);
  CHECK(sharpness.at("sam").at("ascent_steps") == 1);
  for (const char* key : {"sharpness", "loss", "perturbed_loss"}) {
    CHECK(std::isfinite(sharpness.at("sam").at(key).get<double>()));
    CHECK(std::isfinite(sharpness.at("asam").at(key).get<double>()));
  }
  CHECK(sharpness.at("asam").at("rho") == 0.5);
  CHECK(sharpness.at("asam").at("eta") == 0.01);
  CHECK(sharpness.at("m_sharpness").at("m") == 3);
  CHECK(sharpness.at("m_sharpness").at("groups").size() == 2);
  CHECK(metrics.at("landscape1d").at("points") == 3);
  CHECK(metrics.at("landscape2d").at("grid") == 3);

  const std::vector<std::string> line = lines_of((fs::path(out) / "landscape1d.csv").string());
  REQUIRE(line.size() == 4);
  CHECK(line[0] == "t,loss,accuracy");
  const std::vector<std::string> surface = lines_of((fs::path(out) / "landscape2d.csv").string());
  REQUIRE(surface.size() == 10);
  CHECK(surface[0] == "x,y,loss,accuracy");
  CHECK(surface[1].rfind("-1,-1,", 0) == 0);  // rows of constant y, x varying fastest
  CHECK(surface[9].rfind("1,1,", 0) == 0);
}

TEST_CASE("basin-sharpness --between draws the line from one checkpoint to another", "[cli][sharpness]") {
  const TempDir dir("sharpness_cli_between");
  write_cifar10_test_file(dir.file("test_batch.bin"), 8);
  const std::string a = dir.file("a.safetensors"), b = dir.file("b.safetensors");
  write_checkpoint(a, "cnn-small", 7);
  write_checkpoint(b, "cnn-small", 8);
  const std::string common = " --model cnn-small --data-dir " + dir.str() +
                             " --device cpu --split test --subset 8 --metrics landscape1d --line-points 5 --out ";
  const ProgramOutcome forward = run("--checkpoint " + a + " --between " + b + common + dir.file("ab"));
  INFO(forward.output);
  REQUIRE(forward.status == 0);
  const ProgramOutcome backward = run("--checkpoint " + b + " --between " + a + common + dir.file("ba"));
  INFO(backward.output);
  REQUIRE(backward.status == 0);

  // t = -0.5, 0, 0.5, 1, 1.5 over [-0.5, 1.5]. Both checkpoints are freshly
  // initialized, so their BatchNorm running statistics (which the line does
  // not move) are the same, and the line from b to a is the line from a to b
  // run backwards: L at t on one is L at 1 - t on the other, and t = 0 is
  // each checkpoint's own loss.
  const auto losses = [](const std::string& folder) {
    std::vector<double> values;
    const std::vector<std::string> rows = lines_of((fs::path(folder) / "landscape1d.csv").string());
    for (std::size_t i = 1; i < rows.size(); ++i) values.push_back(std::stod(rows[i].substr(rows[i].find(',') + 1)));
    return values;
  };
  const std::vector<double> ab = losses(dir.file("ab")), ba = losses(dir.file("ba"));
  REQUIRE(ab.size() == 5);
  REQUIRE(ba.size() == 5);
  CHECK(lines_of(dir.file("ab") + "/landscape1d.csv")[1].rfind("-0.5,", 0) == 0);
  for (std::size_t i = 0; i < 5; ++i) {
    INFO("point " << i);
    CHECK(ab[i] == Approx(ba[4 - i]).epsilon(1e-9));
  }
  std::ifstream in(dir.file("ab") + "/sharpness.json");
  const nlohmann::json report = nlohmann::json::parse(in);
  CHECK(ab[1] == Approx(report.at("setup").at("loss").get<double>()).epsilon(1e-12));
  CHECK(report.at("metrics").at("landscape1d").at("to") == b);
  CHECK(ab[1] != Approx(ab[3]));  // two different checkpoints
}
