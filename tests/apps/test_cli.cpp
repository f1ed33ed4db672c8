// basin-train's command line: bad values exit non-zero with one line on stderr.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include "support/run_program.h"
#include "support/temp_dir.h"

namespace {

basin::testing::ProgramOutcome run(const std::string& arguments) {
  return basin::testing::run_program(std::string(BASIN_TRAIN_EXE) + " " + arguments);
}

int line_count(const std::string& text) {
  int lines = 0;
  for (char ch : text) lines += ch == '\n';
  return lines;
}

}  // namespace

TEST_CASE("basin-train rejects bad values with one line and a non-zero exit", "[cli][errors]") {
  struct Case {
    const char* arguments;
    const char* message;
  };
  const Case cases[] = {
      {"--model resnet7 --device cpu", "unknown model 'resnet7'"},
      {"--lr -0.1 --device cpu", "--lr must be positive"},
      {"--optimizer sam --rho 0 --device cpu", "--rho must be positive"},
      {"--optimizer asam --rho -1 --device cpu", "--rho must be positive"},
      {"--data-dir /nonexistent/basin-data --device cpu", "/nonexistent/basin-data"},
      {"--dataset imagenet --device cpu", "--dataset must be cifar10 or cifar100"},
      {"--epochs abc", "--epochs"},
      {"--epochs 9223372036854775807 --device cpu", "--epochs must be in [1, 1000000]"},
      {"--seed -1 --device cpu", "--seed"},
      {"--threads 0 --device cpu", "--threads"},
      {"--label-noise 1.5 --device cpu", "--label-noise must be in [0, 1), got 1.5"},
      {"--label-noise -0.1 --device cpu", "--label-noise must be in [0, 1), got -0.1"},
      {"--sam-mode local --device cpu", "--sam-mode must be global or replica, got 'local'"},
      {"--m-sharpness 4 --optimizer sgd --device cpu", "--m-sharpness needs --optimizer sam or asam, got sgd"},
      {"--m-sharpness 300 --batch-size 128 --device cpu", "--m-sharpness 300 is larger than --batch-size 128"},
      {"--m-sharpness -2 --device cpu", "--m-sharpness must be non-negative (0: off), got -2"},
      {"--out '' --device cpu", "--out must name the run folder, got an empty path"},
      {"--resume --out /nonexistent/basin-run", "/nonexistent/basin-run/config.json not found"},
  };
  for (const Case& c : cases) {
    const basin::testing::ProgramOutcome outcome = run(c.arguments);
    INFO(c.arguments << " -> " << outcome.output);
    CHECK(outcome.status != 0);
    CHECK(outcome.output.find(c.message) != std::string::npos);
    CHECK(line_count(outcome.output) <= 2);
  }
}

TEST_CASE("basin-train names a bad BASIN_CPU_KERNELS before doing anything", "[cli][errors][engine]") {
  const basin::testing::ProgramOutcome outcome =
      basin::testing::run_program("BASIN_CPU_KERNELS=quick " + std::string(BASIN_TRAIN_EXE) + " --summary");
  INFO(outcome.output);
  CHECK(outcome.status == 1);
  CHECK(outcome.output.find("BASIN_CPU_KERNELS must be \"fast\" or \"reference\", got \"quick\"") !=
        std::string::npos);
  CHECK(line_count(outcome.output) == 1);
}

TEST_CASE("basin-train --help and --summary", "[cli]") {
  const basin::testing::ProgramOutcome help = run("--help");
  CHECK(help.status == 0);
  CHECK(help.output.find("--optimizer") != std::string::npos);
  const basin::testing::ProgramOutcome summary = run("--model resnet20 --summary");
  INFO(summary.output);
  CHECK(summary.status == 0);
  CHECK(summary.output.find("total parameters: 269722") != std::string::npos);
}

TEST_CASE("basin-train --resume names the file, key and value of a bad config.json", "[cli][errors]") {
  const basin::testing::TempDir dir("cli_bad_config");
  std::ofstream(dir.file("config.json")) << R"({"model": "cnn-small", "epochs": "ten"})";
  const basin::testing::ProgramOutcome outcome = run("--resume --out " + dir.str());
  INFO(outcome.output);
  CHECK(outcome.status == 1);
  CHECK(outcome.output.find(dir.file("config.json") + ": 'epochs' must be an integer, got \"ten\"") !=
        std::string::npos);
  CHECK(line_count(outcome.output) == 1);
}
