// How the CUDA emulator runs a kernel launch.
//
// The grid's blocks run one after another, in order (x fastest, then y, z).
// Inside a block every CUDA thread is a fiber (fiber.h) and the scheduler
// runs them in rounds: each round resumes, in the order the schedule gives
// (forward, reverse or a seeded shuffle), every thread that can run, and each
// runs until it finishes or waits: at a barrier until the whole block is
// there, at a warp operation until every lane of its mask is there. The last
// arrival releases the waiters, who run in the next round. When a round finds
// nothing to run and some threads have not finished, the block is stuck (a
// barrier some threads never reach, a warp operation whose lanes went
// elsewhere), which a GPU would turn into a hang or into garbage: the
// emulator stops the launch and reports it.
//
// What runs in a block is deterministic for a given schedule, so a kernel
// that is correct gives identical bits under every schedule, and a race shows
// as a difference between two of them (or, under ThreadSanitizer, as a report:
// the happens-before edges added here are exactly a GPU's guarantees).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/emulator/emulator.h"
#include "kernels/cuda/emulator/fiber.h"
#include "kernels/cuda/emulator/runtime_state.h"

__thread uint3 threadIdx{0, 0, 0};
__thread uint3 blockIdx{0, 0, 0};
__thread dim3 blockDim{1, 1, 1};
__thread dim3 gridDim{1, 1, 1};

namespace basin::emulator {

namespace {

constexpr int kWarpSize = 32;
// Kernels keep little on the stack; the guard page below catches one that
// keeps more (a sanitizer build's red zones included).
constexpr std::size_t kFiberStackBytes = 64 * 1024;

struct Site {
  const char* file = nullptr;
  int line = 0;
};

std::string where(Site site) {
  if (site.file == nullptr) return "an unknown place";
  std::string file = site.file;
  const std::size_t slash = file.rfind('/');
  if (slash != std::string::npos) file.erase(0, slash + 1);
  return file + ":" + std::to_string(site.line);
}

std::string dims(uint3 v) {
  // Appended piece by piece: "(" + std::to_string(...) trips GCC 12's -Wrestrict
  // false positive at -O3.
  std::string text = "(";
  text += std::to_string(v.x);
  text += ", ";
  text += std::to_string(v.y);
  text += ", ";
  text += std::to_string(v.z);
  text += ")";
  return text;
}

std::string hex_mask(unsigned mask) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", mask);
  return text;
}

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::Sync: return "__syncwarp";
    case WarpOp::Index: return "__shfl_sync";
    case WarpOp::Up: return "__shfl_up_sync";
    case WarpOp::Down: return "__shfl_down_sync";
    case WarpOp::Xor: return "__shfl_xor_sync";
    case WarpOp::Ballot: return "__ballot_sync";
    case WarpOp::All: return "__all_sync";
    case WarpOp::Any: return "__any_sync";
  }
  return "a warp operation";
}

enum class State : std::uint8_t { Unstarted, Ready, AtBarrier, AtWarp, Done };

// One CUDA thread of the running block.
struct CudaThread {
  State state = State::Unstarted;
  uint3 index{};
  Site site;  // where it waits
  // The barrier vote or warp operation it waits in.
  Vote vote = Vote::Count;
  WarpOp op = WarpOp::Sync;
  unsigned mask = 0;
  int operand = 0;
  int width = kWarpSize;
  std::uint64_t value = 0;
  std::uint64_t result = 0;
  unsigned generation = 0;  // of the barrier or warp operation it arrived at
};

// A stop of the whole launch, decided inside a thread or by the scheduler.
struct Failure {
  cudaError_t code = cudaSuccess;
  std::string detail;
};

// The value a shuffle returns from a lane outside the mask, which CUDA leaves
// undefined: all ones, a NaN in every floating type.
constexpr std::uint64_t kUndefinedLane = ~std::uint64_t{0};

class Engine {
 public:
  // Host side: runs every block of a checked launch.
  Failure run(const KernelLaunch& launch);

  // Thread side (called from kernel code through device.h).
  int barrier(Site site, Vote vote, int predicate);
  std::uint64_t warp(WarpOp op, unsigned mask, std::uint64_t value, int operand, int width, Site site);
  [[noreturn]] void trap(Site site);
  bool in_kernel() const { return current_ != nullptr; }

  long long switches() const { return switches_; }

 private:
  static void thread_main(void* engine);
  void run_block(std::uint64_t linear_block);
  void run_thread(int t);
  void suspend();
  void fail(cudaError_t code, std::string detail);
  void complete_barrier();
  void complete_warp(int warp, unsigned mask);
  std::string check_warp_call(WarpOp op, unsigned mask, int width, Site site) const;
  std::string describe_stall() const;
  std::string thread_name(int t) const;
  int current_index() const { return static_cast<int>(current_ - threads_.data()); }

  Switchboard switchboard_;
  std::deque<Fiber> fibers_;  // one per thread slot, kept across launches; a deque never moves them
  std::vector<CudaThread> threads_;
  std::vector<int> order_;
  std::vector<unsigned> warp_generation_;
  std::vector<char> warp_sync_;  // two ThreadSanitizer sync objects per warp
  const KernelLaunch* launch_ = nullptr;
  CudaThread* current_ = nullptr;
  int block_threads_ = 0;
  int arrived_ = 0;  // threads at the barrier
  unsigned barrier_generation_ = 0;
  std::uint64_t block_number_ = 0;
  std::mt19937_64 shuffle_;
  Schedule schedule_;
  Failure failure_;
  long long switches_ = 0;
  // ThreadSanitizer sync objects (only their addresses matter).
  char launch_begin_ = 0;
  char block_end_[2] = {0, 0};
  char barrier_sync_[2] = {0, 0};
  char failure_sync_ = 0;
};

// ---------------------------------------------------------------- host side

Failure Engine::run(const KernelLaunch& launch) {
  launch_ = &launch;
  failure_ = {};
  schedule_ = schedule();
  // Seeded per launch, so the shuffles do not depend on what ran before in
  // the process beyond the launch count.
  shuffle_.seed(schedule_.seed ^ (0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(counters().launches + 1)));
  block_threads_ = static_cast<int>(launch.block.x * launch.block.y * launch.block.z);
  while (static_cast<int>(fibers_.size()) < block_threads_) fibers_.emplace_back(kFiberStackBytes);
  threads_.assign(static_cast<std::size_t>(block_threads_), CudaThread{});
  const int warps = (block_threads_ + kWarpSize - 1) / kWarpSize;
  warp_generation_.assign(static_cast<std::size_t>(warps), 0);
  warp_sync_.assign(static_cast<std::size_t>(2 * warps), 0);
  blockDim = launch.block;
  gridDim = launch.grid;

  sanitizer::release(&launch_begin_);  // the host's work so far happens before every CUDA thread
  const std::uint64_t blocks = std::uint64_t{launch.grid.x} * launch.grid.y * launch.grid.z;
  std::uint64_t done = 0;
  for (; done < blocks && failure_.code == cudaSuccess; ++done) run_block(done);
  if (failure_.code != cudaSuccess) {
    // Every thread that ran stopped at a release: the failure, a barrier, a
    // warp operation, or its end. What they did happens before what follows.
    sanitizer::acquire(&failure_sync_);
    for (const char& sync : barrier_sync_) sanitizer::acquire(&sync);
    for (const char& sync : warp_sync_) sanitizer::acquire(&sync);
    for (const char& sync : block_end_) sanitizer::acquire(&sync);
    // The launch stops here: the fibers still waiting will not be resumed.
    for (int t = 0; t < block_threads_; ++t) {
      const State s = threads_[static_cast<std::size_t>(t)].state;
      if (s != State::Done && s != State::Unstarted) Switchboard::abandon(fibers_[static_cast<std::size_t>(t)]);
    }
  }
  if (done > 0) sanitizer::acquire(&block_end_[(done - 1) & 1]);  // and every CUDA thread before what follows
  record_blocks(static_cast<long long>(done), static_cast<long long>(done) * block_threads_);
  launch_ = nullptr;
  return failure_;
}

void Engine::run_block(std::uint64_t linear_block) {
  const dim3 grid = launch_->grid;
  const dim3 block = launch_->block;
  block_number_ = linear_block;
  blockIdx = uint3{static_cast<unsigned>(linear_block % grid.x), static_cast<unsigned>(linear_block / grid.x % grid.y),
                   static_cast<unsigned>(linear_block / grid.x / grid.y)};
  for (int t = 0; t < block_threads_; ++t) {
    const unsigned u = static_cast<unsigned>(t);
    CudaThread& thread = threads_[static_cast<std::size_t>(t)];
    thread = CudaThread{};
    thread.index = uint3{u % block.x, u / block.x % block.y, u / block.x / block.y};
  }
  arrived_ = 0;

  for (;;) {
    order_.clear();
    for (int t = 0; t < block_threads_; ++t) {
      const State s = threads_[static_cast<std::size_t>(t)].state;
      if (s == State::Unstarted || s == State::Ready) order_.push_back(t);
    }
    if (order_.empty()) break;
    if (schedule_.order == Order::Reverse) std::reverse(order_.begin(), order_.end());
    if (schedule_.order == Order::Random) std::shuffle(order_.begin(), order_.end(), shuffle_);
    for (const int t : order_) {
      const State s = threads_[static_cast<std::size_t>(t)].state;
      if (s != State::Unstarted && s != State::Ready) continue;
      run_thread(t);
      if (failure_.code != cudaSuccess) return;
    }
  }
  for (const CudaThread& t : threads_) {
    if (t.state != State::Done) {
      failure_ = {cudaErrorLaunchFailure, describe_stall()};
      return;
    }
  }
}

void Engine::run_thread(int t) {
  CudaThread& thread = threads_[static_cast<std::size_t>(t)];
  Fiber& fiber = fibers_[static_cast<std::size_t>(t)];
  current_ = &thread;
  threadIdx = thread.index;
  const bool fresh = thread.state == State::Unstarted;
  thread.state = State::Ready;
  const Switchboard::Outcome outcome = fresh ? switchboard_.start(fiber, &Engine::thread_main, this)
                                             : switchboard_.resume(fiber);
  switches_ += 2;
  current_ = nullptr;
  if (outcome == Switchboard::Outcome::Finished) thread.state = State::Done;
}

// The bottom of every CUDA thread's fiber.
void Engine::thread_main(void* argument) {
  Engine& engine = *static_cast<Engine*>(argument);
  const std::uint64_t block = engine.block_number_;
  const KernelLaunch* launch = engine.launch_;
  // What the host did before the launch, and every thread of the previous
  // block, happen before this thread: blocks share the static __shared__
  // arrays and the fiber stacks, which on a GPU are fresh per block.
  sanitizer::acquire(&engine.launch_begin_);
  sanitizer::acquire(&engine.block_end_[(block + 1) & 1]);
  try {
    launch->run_thread(launch->context);
  } catch (const std::exception& error) {
    engine.fail(cudaErrorLaunchFailure, std::string("the kernel threw an exception: ") + error.what());
  } catch (...) {
    engine.fail(cudaErrorLaunchFailure, "the kernel threw an exception");
  }
  sanitizer::release(&engine.block_end_[block & 1]);
}

// ---------------------------------------------------------------- thread side

void Engine::suspend() { switchboard_.suspend(fibers_[static_cast<std::size_t>(current_index())]); }

void Engine::fail(cudaError_t code, std::string detail) {
  if (failure_.code == cudaSuccess) failure_ = {code, std::move(detail)};
  sanitizer::release(&failure_sync_);  // the host side reads the failure next
  // Back to the host side, never to return: the launch is over.
  suspend();
}

std::string Engine::thread_name(int t) const {
  return "thread " + dims(threads_[static_cast<std::size_t>(t)].index) + " of block " + dims(blockIdx);
}

int Engine::barrier(Site site, Vote vote, int predicate) {
  CudaThread& self = *current_;
  self.state = State::AtBarrier;
  self.site = site;
  self.value = static_cast<std::uint64_t>(predicate != 0);
  self.vote = vote;
  const unsigned generation = barrier_generation_;
  self.generation = generation;
  sanitizer::release(&barrier_sync_[generation & 1]);
  if (++arrived_ == block_threads_) complete_barrier();
  suspend();  // also when this thread completed the barrier: the others go first in the next round
  sanitizer::acquire(&barrier_sync_[generation & 1]);
  return static_cast<int>(self.result);
}

void Engine::complete_barrier() {
  const CudaThread& first = threads_.front();
  for (int t = 1; t < block_threads_; ++t) {
    const CudaThread& other = threads_[static_cast<std::size_t>(t)];
    // The same call site is usually the same string literal; strcmp only when not.
    const bool same_file = other.site.file == first.site.file || std::strcmp(other.site.file, first.site.file) == 0;
    if (!same_file || other.site.line != first.site.line || other.vote != first.vote) {
      failure_ = {cudaErrorLaunchFailure,
                  "the threads of block " + dims(blockIdx) + " wait at different barriers: " + thread_name(0) +
                      " at " + where(first.site) + ", " + thread_name(t) + " at " + where(other.site) +
                      " (a __syncthreads() in code that not every thread runs)"};
      sanitizer::release(&failure_sync_);  // the host side reads the failure next
      return;
    }
  }
  std::uint64_t votes = 0;
  for (const CudaThread& t : threads_) votes += t.value;
  const Vote vote = first.vote;
  const std::uint64_t result = vote == Vote::Count ? votes
                               : vote == Vote::All ? std::uint64_t{votes == static_cast<std::uint64_t>(block_threads_)}
                                                   : std::uint64_t{votes > 0};
  for (CudaThread& t : threads_) {
    t.state = State::Ready;
    t.result = result;
  }
  arrived_ = 0;
  ++barrier_generation_;
}

std::uint64_t Engine::warp(WarpOp op, unsigned mask, std::uint64_t value, int operand, int width, Site site) {
  std::string error = check_warp_call(op, mask, width, site);
  if (!error.empty()) fail(cudaErrorLaunchFailure, std::move(error));  // moved out: the abandoned frame owns nothing
  CudaThread& self = *current_;
  const int warp = current_index() / kWarpSize;
  self.state = State::AtWarp;
  self.site = site;
  self.op = op;
  self.mask = mask;
  self.value = value;
  self.operand = operand;
  self.width = width;
  const unsigned generation = warp_generation_[static_cast<std::size_t>(warp)];
  self.generation = generation;
  const void* sync = &warp_sync_[static_cast<std::size_t>(2 * warp) + (generation & 1)];
  sanitizer::release(sync);
  int waiting = 0;
  for (int u = 0; u < kWarpSize; ++u) {
    if (((mask >> u) & 1u) == 0) continue;
    waiting += threads_[static_cast<std::size_t>(warp * kWarpSize + u)].state == State::AtWarp ? 1 : 0;
  }
  if (waiting == __builtin_popcount(mask)) complete_warp(warp, mask);
  suspend();
  sanitizer::acquire(sync);
  return self.result;
}

// What is wrong with the calling lane's warp operation, or "" when it may wait.
std::string Engine::check_warp_call(WarpOp op, unsigned mask, int width, Site site) const {
  const int t = current_index();
  const int warp = t / kWarpSize;
  const int lane = t % kWarpSize;
  const int lanes = std::min(kWarpSize, block_threads_ - warp * kWarpSize);
  const unsigned present = lanes == kWarpSize ? 0xffffffffu : (1u << lanes) - 1;
  const std::string call = std::string(op_name(op)) + "(" + hex_mask(mask) + ") at " + where(site);
  if (((mask >> lane) & 1u) == 0) {
    return thread_name(t) + " (lane " + std::to_string(lane) + ") calls " + call +
           ", whose mask leaves out the calling lane";
  }
  if ((mask & ~present) != 0) {
    return thread_name(t) + " calls " + call + ", whose mask names lanes that do not exist (warp " +
           std::to_string(warp) + " has " + std::to_string(lanes) + " lanes)";
  }
  if (width < 1 || width > kWarpSize || (width & (width - 1)) != 0) {
    return thread_name(t) + " calls " + call + " with width " + std::to_string(width) +
           "; the width is a power of two from 1 to 32";
  }
  for (int u = 0; u < lanes; ++u) {
    const CudaThread& other = threads_[static_cast<std::size_t>(warp * kWarpSize + u)];
    const bool named = ((mask >> u) & 1u) != 0;
    if (named && other.state == State::Done) {
      return thread_name(t) + " calls " + call + ", but lane " + std::to_string(u) +
             " of its mask has exited without reaching it";
    }
    const bool overlaps = other.state == State::AtWarp && (named || ((other.mask >> lane) & 1u) != 0);
    if (overlaps && (other.mask != mask || other.op != op || other.width != width)) {
      return "the lanes of warp " + std::to_string(warp) + " of block " + dims(blockIdx) + " disagree: lane " +
             std::to_string(lane) + " calls " + call + ", lane " + std::to_string(u) + " waits in " +
             op_name(other.op) + "(" + hex_mask(other.mask) + ") at " + where(other.site);
    }
  }
  return "";
}

void Engine::complete_warp(int warp, unsigned mask) {
  CudaThread* lanes = &threads_[static_cast<std::size_t>(warp * kWarpSize)];
  std::uint64_t ballot = 0;
  for (int u = 0; u < kWarpSize; ++u) {
    if (((mask >> u) & 1u) != 0 && lanes[u].value != 0) ballot |= std::uint64_t{1} << u;
  }
  for (int u = 0; u < kWarpSize; ++u) {
    if (((mask >> u) & 1u) == 0) continue;
    CudaThread& self = lanes[u];
    const int w = self.width;
    const int segment = u & ~(w - 1);  // the first lane of this lane's width-sized group
    int source = u;
    switch (self.op) {
      case WarpOp::Index: source = segment + (self.operand & (w - 1)); break;
      case WarpOp::Up: source = (u - segment) >= self.operand ? u - self.operand : u; break;
      case WarpOp::Down: source = (u - segment) + self.operand < w ? u + self.operand : u; break;
      case WarpOp::Xor: source = u ^ self.operand; if (source >= segment + w || source >= kWarpSize) source = u; break;
      default: break;
    }
    switch (self.op) {
      case WarpOp::Sync: self.result = 0; break;
      case WarpOp::Ballot: self.result = ballot; break;
      case WarpOp::All: self.result = ballot == mask ? 1 : 0; break;
      case WarpOp::Any: self.result = ballot != 0 ? 1 : 0; break;
      default:
        self.result = source >= 0 && ((mask >> source) & 1u) != 0 ? lanes[source].value : kUndefinedLane;
        break;
    }
    self.state = State::Ready;
  }
  ++warp_generation_[static_cast<std::size_t>(warp)];
}

void Engine::trap(Site site) {
  std::string detail = thread_name(current_index()) + " executed __trap() at " + where(site);
  // Moved out, so nothing this abandoned frame holds owns memory.
  fail(cudaErrorLaunchFailure, std::move(detail));
  // fail() never returns to a running kernel; this keeps [[noreturn]] honest.
  std::terminate();
}

// What every unfinished thread waits for, grouped by place.
std::string Engine::describe_stall() const {
  int exited = 0;
  int first_exited = -1;
  std::vector<std::pair<std::string, int>> places;  // "what at where", threads
  for (int t = 0; t < block_threads_; ++t) {
    const CudaThread& thread = threads_[static_cast<std::size_t>(t)];
    if (thread.state == State::Done) {
      if (first_exited < 0) first_exited = t;
      ++exited;
      continue;
    }
    const std::string place = thread.state == State::AtBarrier
                                  ? "__syncthreads() at " + where(thread.site)
                                  : std::string(op_name(thread.op)) + "(" + hex_mask(thread.mask) + ") at " +
                                        where(thread.site);
    auto found = std::find_if(places.begin(), places.end(), [&](const auto& p) { return p.first == place; });
    if (found == places.end()) {
      places.emplace_back(place, 1);
    } else {
      ++found->second;
    }
  }
  std::ostringstream out;
  out << "block " << dims(blockIdx) << " of " << block_threads_ << " threads cannot go on:";
  for (std::size_t i = 0; i < places.size(); ++i) {
    out << (i == 0 ? " " : "; ") << places[i].second << (places[i].second == 1 ? " thread waits" : " threads wait")
        << " in " << places[i].first;
  }
  if (exited > 0) {
    out << "; " << exited << (exited == 1 ? " thread has" : " threads have") << " exited without reaching it (the first: "
        << thread_name(first_exited) << "). Every thread of a block must reach each __syncthreads(), and every lane "
        << "of a mask each warp operation";
  } else {
    out << " (threads waiting in different places wait for each other)";
  }
  return out.str();
}

// ---------------------------------------------------------------- one engine

// One launch at a time: kernels share their static __shared__ arrays, so two
// host threads must not run them at once (a GPU would give each block its own).
std::mutex& launch_mutex() {
  static std::mutex mutex;
  return mutex;
}

Engine& engine() {
  static Engine instance;
  return instance;
}

// Device functions called from host code would not compile with nvcc; here
// they reach the host stack, where throwing is safe.
Engine& kernel_engine(const char* what) {
  Engine& e = engine();
  BASIN_CHECK(e.in_kernel(), "CUDA emulator: ", what, " was called outside a kernel");
  return e;
}

}  // namespace

// ---------------------------------------------------------------- device.h entry points

void syncthreads(const char* file, int line) { kernel_engine("__syncthreads()").barrier({file, line}, Vote::Count, 0); }

int syncthreads_vote(Vote vote, int predicate, const char* file, int line) {
  return kernel_engine("__syncthreads_count/and/or()").barrier({file, line}, vote, predicate);
}

std::uint64_t warp_collective(WarpOp op, unsigned mask, std::uint64_t value, int operand, int width, const char* file,
                              int line) {
  return kernel_engine(op_name(op)).warp(op, mask, value, operand, width, {file, line});
}

void trap(const char* file, int line) { kernel_engine("__trap()").trap({file, line}); }

long long clock_ticks() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------- launch

namespace {

bool within(unsigned value, unsigned low, unsigned high) { return value >= low && value <= high; }

}  // namespace

void launch(const KernelLaunch& request) {
  if (const cudaError_t sticky = sticky_error(); sticky != cudaSuccess) {
    set_last_error(sticky, "");
    return;
  }
  const dim3 g = request.grid;
  const dim3 b = request.block;
  const std::string shape = "grid " + dims(g) + ", block " + dims(b);
  const unsigned long long threads = 1ull * b.x * b.y * b.z;
  if (!within(b.x, 1, 1024) || !within(b.y, 1, 1024) || !within(b.z, 1, 64) || threads > kMaxThreadsPerBlock) {
    set_last_error(cudaErrorInvalidConfiguration,
                   shape + ": a block has 1 to 1024 threads, with x and y at most 1024 and z at most 64 (this one has " +
                       std::to_string(threads) + ")");
    return;
  }
  if (!within(g.x, 1, 0x7fffffffu) || !within(g.y, 1, 65535) || !within(g.z, 1, 65535)) {
    set_last_error(cudaErrorInvalidConfiguration,
                   shape + ": a grid has 1 to 2^31 - 1 blocks along x and 1 to 65535 along y and z");
    return;
  }
  const std::size_t shared = static_shared_bytes(request.kernel);
  if (shared > kMaxStaticSharedBytes) {
    set_last_error(cudaErrorInvalidValue, "the kernel declares " + std::to_string(shared) +
                                              " bytes of static __shared__ memory; a block may have " +
                                              std::to_string(kMaxStaticSharedBytes) + " (nvcc refuses to build it)");
    return;
  }
  for (std::size_t i = 0; i < request.pointer_count; ++i) {
    if (!is_device_range(request.pointers[i], 0)) {
      char text[32];
      std::snprintf(text, sizeof text, "%p", request.pointers[i]);
      device_fault(cudaErrorIllegalAddress, std::string("a kernel argument points to ") + text +
                                                ", which is not device memory (no live cudaMalloc allocation holds "
                                                "it): a host pointer given to a kernel, or a freed buffer");
      set_last_error(cudaErrorIllegalAddress, "");
      return;
    }
  }

  std::lock_guard<std::mutex> lock(launch_mutex());
  Engine& e = engine();
  const long long switches_before = e.switches();
  const Failure failure = e.run(request);
  record_launch(e.switches() - switches_before);
  if (failure.code != cudaSuccess) {
    device_fault(failure.code, failure.detail);
    set_last_error(failure.code, "");
  }
}

}  // namespace basin::emulator
