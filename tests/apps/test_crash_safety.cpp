// Crash safety of the trainer: runs killed with SIGKILL at random moments,
// some of them inside a checkpoint save, and resumed each time, end with the
// same weights, bit for bit, and the same metrics rows as a run never
// interrupted. Each run is a forked child of the test, so the kill is real: no
// destructor, no flush, no handler runs.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "apps/trainer.h"
#include "apps/trainer_support.h"
#include "core/random.h"
#include "core/serialization.h"
#include "data/dataset.h"
#include "support/compare.h"
#include "support/temp_dir.h"

using namespace basin;
using basin::testing::check_same_checkpoint;
using basin::testing::rows_without_timing;
using basin::testing::synthetic;
using basin::testing::TempDir;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

apps::TrainConfig crash_config(const std::string& out) {
  apps::TrainConfig c;
  c.model = "cnn-small";
  c.optimizer = "sam";
  c.epochs = 4;
  c.batch_size = 16;
  c.lr = 0.05;
  c.device = "cpu";
  c.out = out;
  c.seed = 11;
  return c;
}

// Trains in a forked child: a resume when the folder holds a checkpoint, a
// fresh start over whatever else is there when not. Returns the child's pid.
pid_t start_child(const apps::TrainConfig& base, const data::Dataset& train_set, const data::Dataset& test_set) {
  std::cout.flush();
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int status = 0;
    try {
      apps::TrainConfig config = base;
      config.resume = fs::exists(fs::path(config.out) / "checkpoint.safetensors");
      config.overwrite = !config.resume;
      std::ostringstream log;
      apps::train(config, train_set, test_set, log);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "crash-safety child: %s\n", e.what());
      status = 1;
    }
    ::_exit(status);  // no atexit handlers or Catch2 teardown in the child
  }
  return pid;
}

// Waits for the child; true when it finished the whole run (exit 0).
bool reap(pid_t pid) {
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status)) {
    REQUIRE(WTERMSIG(status) == SIGKILL);
    return false;
  }
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);  // the child printed its error on stderr
  return true;
}

// Kills the child as soon as it opens `file` in `dir` (the temporary file of a
// checkpoint save). The caller reaps it and tells from the file whether the
// kill came inside the save: a save that reached its rename leaves no
// temporary file behind.
void kill_at_open(pid_t pid, const fs::path& dir, const std::string& file) {
  const int watch = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  REQUIRE(watch >= 0);
  // IN_OPEN as well as IN_CREATE: a temporary file left by an earlier kill is
  // opened again, not created.
  REQUIRE(::inotify_add_watch(watch, dir.c_str(), IN_CREATE | IN_OPEN) >= 0);
  alignas(inotify_event) char buffer[4096];
  for (bool waiting = true; waiting;) {
    pollfd poll_fd{watch, POLLIN, 0};
    if (::poll(&poll_fd, 1, 50) > 0) {
      const ::ssize_t got = ::read(watch, buffer, sizeof buffer);
      for (::ssize_t at = 0; at < got;) {
        const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
        if (event->len > 0 && file == event->name) {
          ::kill(pid, SIGKILL);
          waiting = false;
        }
        at += static_cast<::ssize_t>(sizeof(inotify_event) + event->len);
      }
    }
    if (waiting && ::kill(pid, 0) != 0) break;  // gone without a save
  }
  ::close(watch);
}

}  // namespace

TEST_CASE("runs killed at random moments and inside saves resume to the uninterrupted result", "[trainer][crash]") {
  const data::Dataset train_set = synthetic(64, 1, "synthetic train");
  const data::Dataset test_set = synthetic(16, 2, "synthetic test");

  const TempDir straight("crash_straight");
  const auto start = Clock::now();
  REQUIRE(reap(start_child(crash_config(straight.str()), train_set, test_set)));
  const double run_seconds = std::chrono::duration<double>(Clock::now() - start).count();

  const TempDir pieces("crash_pieces");
  const apps::TrainConfig config = crash_config(pieces.str());
  std::mt19937 random(20261127);
  int kills = 0, kills_inside_save = 0;
  // Three kills inside a save (each on the first save the child reaches),
  // then kills at random moments over the length of a whole run.
  for (int round = 0; round < 3; ++round) {
    const pid_t pid = start_child(config, train_set, test_set);
    kill_at_open(pid, pieces.path(), "checkpoint.safetensors.tmp");
    CHECK_FALSE(reap(pid));
    ++kills;
    kills_inside_save += fs::exists(pieces.path() / "checkpoint.safetensors.tmp");
  }
  bool finished = false;
  for (int round = 0; round < 5 && !finished; ++round) {
    const pid_t pid = start_child(config, train_set, test_set);
    std::uniform_real_distribution<double> moment(0.0, 0.7 * run_seconds);
    std::this_thread::sleep_for(std::chrono::duration<double>(moment(random)));
    ::kill(pid, SIGKILL);
    finished = reap(pid);
    kills += !finished;
  }
  if (!finished) REQUIRE(reap(start_child(config, train_set, test_set)));

  INFO(kills << " kills, " << kills_inside_save << " of them inside a save");
  CHECK(kills_inside_save >= 1);  // the kill came before the save's rename at least once
  check_same_checkpoint(straight.file("checkpoint.safetensors"), pieces.file("checkpoint.safetensors"));
  const std::vector<std::string> rows = rows_without_timing(pieces.path() / "metrics.jsonl");
  CHECK(rows.size() == 4);
  CHECK(rows == rows_without_timing(straight.path() / "metrics.jsonl"));
}

TEST_CASE("a run on a full disk fails at its first write, naming the file", "[trainer][errors]") {
  // RLIMIT_FSIZE stands in for a full disk: a write past the limit fails with
  // EFBIG (SIGXFSZ ignored), as it would with ENOSPC. In a child, so the limit
  // never touches the test's own output.
  const data::Dataset train_set = synthetic(32, 1, "synthetic train");
  const data::Dataset test_set = synthetic(16, 2, "synthetic test");
  const TempDir dir("crash_disk_full");
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  std::cout.flush();
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(pipe_fds[0]);
    std::string message = "no error";
    try {
      ::signal(SIGXFSZ, SIG_IGN);
      rlimit limit{};
      ::getrlimit(RLIMIT_FSIZE, &limit);
      limit.rlim_cur = 64;  // config.json is larger
      ::setrlimit(RLIMIT_FSIZE, &limit);
      std::ostringstream log;
      apps::train(crash_config(dir.str()), train_set, test_set, log);
    } catch (const std::exception& e) {
      message = e.what();
    }
    const ::ssize_t written = ::write(pipe_fds[1], message.data(), message.size());
    ::_exit(written == static_cast<::ssize_t>(message.size()) ? 0 : 1);
  }
  ::close(pipe_fds[1]);
  std::string message;
  char buffer[512];
  for (::ssize_t got; (got = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) message.append(buffer, static_cast<std::size_t>(got));
  ::close(pipe_fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  INFO(message);
  CHECK(WIFEXITED(status));
  CHECK_THAT(message, Catch::Matchers::Contains("cannot write " + dir.file("config.json")) &&
                          Catch::Matchers::Contains("File too large"));
  CHECK_FALSE(fs::exists(dir.path() / "config.json"));
  CHECK_FALSE(fs::exists(dir.path() / "config.json.tmp"));
  CHECK_FALSE(fs::exists(dir.path() / "checkpoint.safetensors"));
}
