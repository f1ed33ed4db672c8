// basin-train on two ranks (mpirun -np 2), end to end, on synthetic CIFAR-10
// files, on the CPU and on the CUDA device (on the emulator: its NCCL, built
// on MPI):
//   - global SAM (and ASAM) on 2 ranks x B/2 images = single-process SAM on B;
//   - replica SAM on 2 ranks = single-process --m-sharpness B/2;
//   - the ranks end with bitwise identical weights and buffers (the trainer
//     checks it at every epoch's end and says so), with BatchNorm too;
//   - one checkpoint and one metrics file, which --eval and --resume accept,
//     and a resumed run equals an uninterrupted one bit for bit;
//   - a rank that throws, or that is killed, ends the whole job within
//     seconds with a message naming the rank, and the last checkpoint stays.
//
// The model of the equivalence tests is "mlp": without BatchNorm the
// gradient of a batch is exactly the mean of its examples' gradients, so the
// ranks' shares add up to the whole batch's up to float32 rounding (different
// summation orders in the GEMMs and the all-reduce): 1e-5 relative over three
// steps.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/serialization.h"
#include "support/cifar_files.h"
#include "support/compare.h"
#include "support/cuda.h"
#include "support/run_program.h"
#include "support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using basin::testing::TempDir;
using Clock = std::chrono::steady_clock;

#ifdef BASIN_TEST_MPIRUN
constexpr bool kHaveMpi = true;
const char* const kMpirun = BASIN_TEST_MPIRUN;
#else
constexpr bool kHaveMpi = false;
const char* const kMpirun = "";
#endif

// Data-parallel runs need basin built with MPI: elsewhere they are skipped,
// visibly (the ctest skip marker of tests/support/cuda.h).
#define BASIN_REQUIRE_MPI()                                                         \
  do {                                                                              \
    if (!kHaveMpi) {                                                                \
      WARN("BASIN_TEST_SKIPPED: basin was built without MPI (libopenmpi-dev)");     \
      return;                                                                       \
    }                                                                               \
  } while (0)

// The synthetic CIFAR-10 files, written once for every test here.
const std::string& data_dir() {
  static const TempDir dir("data_parallel_data");
  static const std::string path = [] {
    basin::testing::write_cifar10_files(dir.str());
    return dir.str();
  }();
  return path;
}

std::string trainer() { return std::string(BASIN_TRAIN_EXE); }

std::string mpirun(int ranks) { return std::string(kMpirun) + " -np " + std::to_string(ranks) + " "; }

// A short run: 3 steps of 8 images, a test set of 40.
std::string run_args(const std::string& device, const std::string& more) {
  return " --data-dir " + data_dir() + " --model mlp --epochs 1 --batch-size 8 --train-subset 24 --test-subset 40" +
         " --lr 0.05 --seed 3 --threads 1 --device " + device + " " + more;
}

basin::testing::ProgramOutcome run(const std::string& command_line) {
  INFO(command_line);
  return basin::testing::run_program(command_line);
}

void require_success(const basin::testing::ProgramOutcome& outcome) {
  INFO(outcome.output);
  REQUIRE(outcome.status == 0);
}

// Every model tensor of two checkpoints within `tolerance` relative; the
// optimizer state too.
void check_close_checkpoints(const std::string& a, const std::string& b, double tolerance) {
  const basin::TensorMap ta = basin::load_safetensors(a), tb = basin::load_safetensors(b);
  REQUIRE(ta.size() == tb.size());
  for (const auto& [name, tensor] : ta) {
    INFO(name);
    REQUIRE(tb.count(name) == 1);
    if (!basin::is_floating(tensor.dtype())) {
      CHECK(basin::testing::equal(tensor, tb.at(name)));
      continue;
    }
    CHECK(basin::testing::relative_error(tensor, tb.at(name)) <= tolerance);
  }
}

// The single-process run and the 2-rank run of the same options end at the
// same weights.
void check_two_ranks_match_one(const std::string& device, const std::string& two_rank_options,
                               const std::string& one_rank_options) {
  const TempDir dir("data_parallel_match");
  require_success(run(mpirun(2) + trainer() + run_args(device, two_rank_options + " --out " + dir.file("two"))));
  require_success(run(trainer() + run_args(device, one_rank_options + " --out " + dir.file("one"))));
  check_close_checkpoints(dir.file("two/checkpoint.safetensors"), dir.file("one/checkpoint.safetensors"), 1e-5);
}

void global_sam_matches_one_process(const std::string& device, const std::vector<std::string>& optimizers) {
  for (const std::string& optimizer : optimizers) {
    INFO(optimizer);
    const std::string options = "--optimizer " + optimizer;
    check_two_ranks_match_one(device, options + " --sam-mode global", options);
  }
}

void replica_sam_matches_m_sharpness(const std::string& device, const std::vector<std::string>& optimizers) {
  for (const std::string& optimizer : optimizers) {
    INFO(optimizer);
    const std::string options = "--optimizer " + optimizer;
    check_two_ranks_match_one(device, options + " --sam-mode replica", options + " --m-sharpness 4");
  }
}

// Two ranks with BatchNorm (cnn-small): each rank's running statistics follow
// its own shards, so only the broadcast before an evaluation or checkpoint
// makes the replicas agree; the trainer checks that they do, bit for bit, and
// says so. The checkpoint and metrics file are then what --eval and --resume
// take, and a resume equals the run never stopped. On the emulated CUDA
// device the model is the mlp: the emulator's convolutions take minutes for
// cnn-small's few steps, and the broadcast of BatchNorm buffers over NCCL is
// tested by tests/dist.
void replicas_agree_and_resume(const std::string& device, const std::string& model) {
  const TempDir dir("data_parallel_resume");
  const std::string common = " --data-dir " + data_dir() + " --model " + model +
                             " --optimizer sam --batch-size 8 --train-subset 24 --test-subset 40"
                             " --lr 0.05 --schedule constant --seed 4 --threads 1 --device " + device;
  // A constant learning rate: the first run's schedule must not depend on its length.
  const auto whole = run(mpirun(2) + trainer() + common + " --epochs 2 --out " + dir.file("whole"));
  require_success(whole);
  CHECK_THAT(whole.output, Catch::Contains("2 ranks on 1 host"));
  CHECK_THAT(whole.output, Catch::Contains("weights and buffers identical on the 2 ranks"));
  const auto first = run(mpirun(2) + trainer() + common + " --epochs 1 --out " + dir.file("resumed"));
  require_success(first);
  const auto second = run(mpirun(2) + trainer() + " --resume --epochs 2 --out " + dir.file("resumed"));
  require_success(second);
  CHECK_THAT(second.output, Catch::Contains("resuming after epoch 1"));
  // The same two epochs: the same bits, and one metrics row per epoch.
  const basin::TensorMap a = basin::load_safetensors(dir.file("whole/checkpoint.safetensors"));
  const basin::TensorMap b = basin::load_safetensors(dir.file("resumed/checkpoint.safetensors"));
  REQUIRE(a.size() == b.size());
  for (const auto& [name, tensor] : a) {
    INFO(name);
    CHECK(basin::testing::equal(tensor, b.at(name)));
  }
  std::ifstream metrics(dir.file("resumed/metrics.jsonl"));
  int rows = 0;
  std::string last_row;
  for (std::string line; std::getline(metrics, line);) {
    ++rows;
    last_row = line;
  }
  CHECK(rows == 2);
  CHECK_FALSE(fs::exists(dir.file("resumed/metrics.jsonl.tmp")));
  // One process evaluates what two trained, and finds the test accuracy the
  // two ranks reported for the whole test set (each evaluated its shard).
  const auto eval = run(trainer() + common + " --epochs 2 --out " + dir.file("resumed") + " --eval " +
                        dir.file("resumed/checkpoint.safetensors"));
  require_success(eval);
  const std::size_t at = eval.output.find("accuracy ");
  REQUIRE(at != std::string::npos);
  const double evaluated = std::strtod(eval.output.c_str() + at + 9, nullptr) / 100.0;
  const nlohmann::json row = nlohmann::json::parse(last_row);
  CHECK(std::abs(row.at("test_accuracy").get<double>() - evaluated) < 1e-4);  // printed with 2 decimals of a percent
}

// Rank 1 is given a data folder that does not exist: it throws while rank 0
// goes on to wait in a collective. The job must end at once, non-zero, with
// rank 1's message.
void a_throwing_rank_ends_the_job(const std::string& device) {
  const TempDir dir("data_parallel_throw");
  const std::string options = " --model mlp --epochs 1 --batch-size 8 --train-subset 24 --device " + device +
                              " --out " + dir.file("run");
  const auto start = Clock::now();
  const auto outcome = run(std::string(kMpirun) + " -np 1 " + trainer() + " --data-dir " + data_dir() + options +
                           " : -np 1 " + trainer() + " --data-dir " + dir.file("missing") + options);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  INFO(outcome.output);
  CHECK(outcome.status != 0);
  CHECK_THAT(outcome.output, Catch::Contains("basin-train: rank 1 of 2: error:"));
  CHECK_THAT(outcome.output, Catch::Contains(dir.file("missing")));
  CHECK(seconds < 60.0);
}

// The pids of the basin-train processes whose command line names `out`, by
// their rank (from the environment mpirun gave them).
std::map<int, pid_t> ranks_of_run(const std::string& out) {
  std::map<int, pid_t> found;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmdline_file(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(cmdline_file)), std::istreambuf_iterator<char>());
    if (cmdline.find("basin-train") == std::string::npos || cmdline.find(out) == std::string::npos) continue;
    std::ifstream environ_file(entry.path() / "environ");
    std::string environ((std::istreambuf_iterator<char>(environ_file)), std::istreambuf_iterator<char>());
    const std::string key = std::string("OMPI_COMM_WORLD_RANK=");
    const std::size_t at = environ.find(key);
    if (at == std::string::npos) continue;
    found[std::atoi(environ.c_str() + at + key.size())] = static_cast<pid_t>(std::stol(name));
  }
  return found;
}

// Rank 1 is killed (SIGKILL: no handler, no message of its own) after the
// first epoch's checkpoint, during a later epoch. mpirun must end rank 0 too
// and report rank 1's death, and the checkpoint must be a whole epoch's.
void a_killed_rank_ends_the_job(const std::string& device) {
  const TempDir dir("data_parallel_kill");
  const std::string out = dir.file("run");
  const std::string log = dir.file("log.txt"), status = dir.file("status.txt");
  // Four epochs of 150 steps on the CPU, 8 on the (emulated) CUDA device,
  // which is slower per step wherever these tests run: the kill lands in
  // epoch 2, 3 or 4, more than a second after the first checkpoint appeared.
  const std::string images = device == "cpu" ? "1200" : "64";
  const std::string command = mpirun(2) + trainer() + " --data-dir " + data_dir() +
                              " --model mlp --optimizer sam --epochs 4 --batch-size 8 --train-subset " + images +
                              " --test-subset 40 --threads 1 --device " + device + " --out " + out;
  REQUIRE(std::system(("(" + command + " > " + log + " 2>&1; echo $? > " + status + ") &").c_str()) == 0);
  const auto wait_for = [](const std::function<bool()>& done, double seconds) {
    const auto start = Clock::now();
    while (!done()) {
      if (std::chrono::duration<double>(Clock::now() - start).count() > seconds) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return true;
  };
  const std::string checkpoint = out + "/checkpoint.safetensors";
  REQUIRE(wait_for([&] { return fs::exists(checkpoint) || fs::exists(status); }, 600.0));
  REQUIRE_FALSE(fs::exists(status));  // still running, after its first epoch
  const std::map<int, pid_t> pids = ranks_of_run(out);
  REQUIRE(pids.count(1) == 1);
  const auto killed_at = Clock::now();
  REQUIRE(::kill(pids.at(1), SIGKILL) == 0);
  REQUIRE(wait_for([&] { return fs::exists(status) && fs::file_size(status) > 0; }, 60.0));
  const double seconds = std::chrono::duration<double>(Clock::now() - killed_at).count();
  std::ifstream status_file(status), log_file(log);
  int exit_status = 0;
  status_file >> exit_status;
  const std::string output((std::istreambuf_iterator<char>(log_file)), std::istreambuf_iterator<char>());
  INFO(output);
  CHECK(exit_status != 0);
  CHECK_THAT(output, Catch::Contains("rank 1"));
  CHECK(seconds < 30.0);
  CHECK(ranks_of_run(out).empty());  // rank 0 is gone too
  // The checkpoint of an epoch before the kill, whole: it loads, and says so.
  std::map<std::string, std::string> metadata;
  basin::load_safetensors(checkpoint, &metadata);
  CHECK((metadata.at("epoch") == "1" || metadata.at("epoch") == "2" || metadata.at("epoch") == "3"));
  CHECK(metadata.at("batch") == "0");
}

}  // namespace

TEST_CASE("data parallel: global SAM and ASAM on 2 ranks equal one process on the whole batch",
          "[trainer][dist]") {
  BASIN_REQUIRE_MPI();
  global_sam_matches_one_process("cpu", {"sam", "asam"});
}

TEST_CASE("data parallel: replica SAM and ASAM on 2 ranks equal one process with --m-sharpness B/2",
          "[trainer][dist]") {
  BASIN_REQUIRE_MPI();
  replica_sam_matches_m_sharpness("cpu", {"sam", "asam"});
}

TEST_CASE("data parallel: replicas agree bit for bit, and the run resumes and evaluates", "[trainer][dist]") {
  BASIN_REQUIRE_MPI();
  replicas_agree_and_resume("cpu", "cnn-small");
}

TEST_CASE("data parallel: a rank that throws ends the job with its message", "[trainer][dist]") {
  BASIN_REQUIRE_MPI();
  a_throwing_rank_ends_the_job("cpu");
}

TEST_CASE("data parallel: a killed rank ends the job and the checkpoint stays whole", "[trainer][dist]") {
  BASIN_REQUIRE_MPI();
  a_killed_rank_ends_the_job("cpu");
}

// On CUDA, SAM alone: ASAM differs from SAM in the perturbation kernel, which
// the tests of optim/ hold on CUDA; the data-parallel path is the same.
TEST_CASE("data parallel on CUDA: global SAM on 2 ranks equals one process", "[trainer][dist][cuda]") {
  BASIN_REQUIRE_MPI();
  BASIN_REQUIRE_CUDA();
  global_sam_matches_one_process("cuda", {"sam"});
}

TEST_CASE("data parallel on CUDA: replica SAM on 2 ranks equals --m-sharpness B/2", "[trainer][dist][cuda]") {
  BASIN_REQUIRE_MPI();
  BASIN_REQUIRE_CUDA();
  replica_sam_matches_m_sharpness("cuda", {"sam"});
}

TEST_CASE("data parallel on CUDA: replicas agree, and the run resumes and evaluates", "[trainer][dist][cuda]") {
  BASIN_REQUIRE_MPI();
  BASIN_REQUIRE_CUDA();
  replicas_agree_and_resume("cuda", "mlp");
}

TEST_CASE("data parallel on CUDA: a rank that throws or dies ends the job", "[trainer][dist][cuda]") {
  BASIN_REQUIRE_MPI();
  BASIN_REQUIRE_CUDA();
  a_throwing_rank_ends_the_job("cuda");
  a_killed_rank_ends_the_job("cuda");
}
