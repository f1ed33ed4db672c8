// basin-train end to end on both devices: the same short run (ResNet-20 with
// SAM, two steps on 16 images of a synthetic set in the official CIFAR-10
// binary layout, augmented by crops and flips) on the CPU and on CUDA must
// report the same metrics.
//
// Tolerance: the two devices add float32 sums in different orders (cuDNN's
// convolutions, the block reductions), which moves the first step's loss by
// about 1e-7 relative; two SAM steps (four forward and backward passes) grow
// that to about 1e-5. So the training loss must agree to 1e-3 relative, and
// each accuracy to within one image of 16: a prediction may flip on a near-tie.
// The test loss gets 1e-2: evaluation normalizes with running statistics that
// two steps have barely moved from their initial 0 and 1, so activations grow
// through the 19 convolutions, the logits reach tens and the loss (about 10)
// magnifies the rounding differences; an H200 with cuDNN 9.14 differed from
// the CPU by 2.5e-3 relative.
//
// Without cutout: its constant 16x16 squares give whole regions of a channel
// one activation value, and where that value sits at ReLU's 0 the rounding
// order decides the mask for the whole region at once. On this set that moves
// float32 gradients by about 1% between the devices after one step, while the
// same gradients in float64 agree to 1e-10: ill-conditioned, not wrong.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "support/cifar_files.h"
#include "support/cuda.h"
#include "support/run_program.h"
#include "support/temp_dir.h"

namespace {

using basin::testing::TempDir;

basin::testing::ProgramOutcome run_trainer(const std::string& arguments) {
  return basin::testing::run_program(std::string(BASIN_TRAIN_EXE) + " " + arguments);
}

// The value of "key" in the (one-line) metrics.jsonl of a one-epoch run.
double metric(const std::string& run_dir, const std::string& key) {
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::string line;
  REQUIRE(std::getline(in, line));
  const std::string quoted = "\"" + key + "\":";
  const std::size_t at = line.find(quoted);
  REQUIRE(at != std::string::npos);
  return std::strtod(line.c_str() + at + quoted.size(), nullptr);
}

}  // namespace

TEST_CASE("basin-train on CUDA reports the metrics of the same run on the CPU", "[trainer][cuda]") {
  BASIN_REQUIRE_CUDA();
  const TempDir dir("train_devices");
  basin::testing::write_cifar10_files(dir.str());
  const std::string common = "--data-dir " + dir.str() +
                             " --model resnet20 --optimizer sam --epochs 1 --batch-size 8 --train-subset 16"
                             " --test-subset 16 --lr 0.02 --seed 5 --no-cutout";
  for (const char* device : {"cpu", "cuda"}) {
    const basin::testing::ProgramOutcome outcome =
        run_trainer(common + " --device " + device + " --out " + dir.file(device));
    INFO(device << ":\n" << outcome.output);
    REQUIRE(outcome.status == 0);
  }
  const std::string cpu = dir.file("cpu");
  const std::string cuda = dir.file("cuda");
  for (const auto& [key, tolerance] : {std::pair{"train_loss", 1e-3}, std::pair{"test_loss", 1e-2}}) {
    INFO(key << ": cpu " << metric(cpu, key) << ", cuda " << metric(cuda, key));
    CHECK(std::isfinite(metric(cpu, key)));
    CHECK(std::abs(metric(cuda, key) - metric(cpu, key)) <= tolerance * std::abs(metric(cpu, key)));
  }
  for (const char* key : {"train_accuracy", "test_accuracy"}) {
    INFO(key << ": cpu " << metric(cpu, key) << ", cuda " << metric(cuda, key));
    CHECK(std::abs(metric(cuda, key) - metric(cpu, key)) <= 1.0 / 16 + 1e-12);
  }
}
