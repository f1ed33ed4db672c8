#include "data/loader.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "kernels/philox.h"

namespace basin::data {

namespace {

constexpr std::uint64_t kEpochCounters = std::uint64_t{1} << 32;      // counters each epoch owns
constexpr std::uint64_t kAugmentCounterBase = std::uint64_t{1} << 31;  // within an epoch: after the shuffle's
constexpr std::int64_t kMaxRecords = std::int64_t{1} << 30;            // keeps both halves apart

// Successive 32-bit Philox outputs from one key and a starting counter, for host code.
class PhiloxStream {
 public:
  PhiloxStream(std::uint64_t key, std::uint64_t counter) : key_(key), counter_(counter) {}
  std::uint32_t next() {
    if (lane_ == 4) {
      block_ = kernels::philox4x32_10(counter_++, key_);
      lane_ = 0;
    }
    return block_.v[lane_++];
  }

 private:
  std::uint64_t key_, counter_;
  kernels::PhiloxBlock block_{};
  int lane_ = 4;
};

// Exactly uniform in [0, n) for 1 <= n <= 2^32 (Lemire, "Fast random integer
// generation in an interval", 2019): multiply-shift, redrawing the few values
// whose low half shows they would land in an over-represented bucket.
std::uint64_t uniform_below(PhiloxStream& stream, std::uint64_t n) {
  std::uint64_t m = static_cast<std::uint64_t>(stream.next()) * n;
  if (static_cast<std::uint32_t>(m) < n) {
    const std::uint64_t threshold = ((std::uint64_t{1} << 32) - n) % n;
    while (static_cast<std::uint32_t>(m) < threshold) m = static_cast<std::uint64_t>(stream.next()) * n;
  }
  return m >> 32;
}

}  // namespace

struct LoaderState {
  Dataset dataset;       // host copy
  Tensor images;         // uint8 [N, C, H, W] on the loader's device
  Tensor labels;         // int64 [N] on the loader's device
  LoaderOptions options;
  std::int64_t batches = 0;

  std::uint64_t epoch_base(std::int64_t epoch) const {
    BASIN_CHECK(epoch >= 0 && static_cast<std::uint64_t>(epoch) < kEpochCounters,
                "BatchLoader: epoch must be in [0, 2^32), got ", epoch);
    return static_cast<std::uint64_t>(epoch) * kEpochCounters;
  }

  std::vector<std::int64_t> order(std::int64_t epoch) const {
    const std::uint64_t base = epoch_base(epoch);
    std::vector<std::int64_t> order(static_cast<std::size_t>(dataset.size()));
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
    if (!options.shuffle()) return order;
    PhiloxStream stream(options.seed(), base);
    for (std::size_t i = order.size() - 1; i > 0; --i) {
      std::swap(order[i], order[uniform_below(stream, i + 1)]);
    }
    return order;
  }

  // Batch k of an epoch whose order is `order` (host) and `order_on_device`.
  Batch make_batch(std::int64_t epoch, const std::vector<std::int64_t>& order, const Tensor& order_on_device,
                   std::int64_t k) const {
    const std::int64_t batch_size = options.batch_size();
    const std::int64_t global_start = k * batch_size;
    const std::int64_t global_stop = std::min(global_start + batch_size, dataset.size());
    // This rank's piece of the batch (the whole batch with one shard).
    const std::int64_t piece = piece_size(batch_size, options.shards());
    const Piece mine = piece_of(global_stop - global_start, piece, options.shard());
    const std::int64_t start = global_start + mine.begin;
    const std::int64_t stop = global_start + mine.end;
    Batch batch;
    batch.epoch = epoch;
    batch.index = k;
    batch.global_size = global_stop - global_start;
    if (start == stop) return batch;
    // Counters by position in the epoch: a shard draws what the whole batch would.
    const kernels::PhiloxDraw draw{options.seed(), epoch_base(epoch) + kAugmentCounterBase + augment_counters(start)};
    AugmentedBatch out = augment_batch(images, labels, order_on_device.slice(0, start, stop), options.augment(), draw);
    batch.images = std::move(out.images);
    batch.labels = std::move(out.labels);
    batch.indices.assign(order.begin() + start, order.begin() + stop);
    return batch;
  }
};

Piece piece_of(std::int64_t count, std::int64_t piece, std::int64_t index) {
  BASIN_CHECK(count >= 0 && piece >= 1 && index >= 0, "piece_of: count ", count, ", piece ", piece, ", index ", index,
              " (expected count >= 0, piece >= 1, index >= 0)");
  // index * piece may exceed count (an empty piece) but never overflows: both are batch-sized.
  const std::int64_t begin = std::min(count, index * piece);
  return {begin, std::min(count, begin + piece)};
}

std::int64_t piece_size(std::int64_t batch_size, std::int64_t shards) {
  BASIN_CHECK(batch_size >= 1 && shards >= 1, "piece_size: batch_size ", batch_size, " and shards ", shards,
              " must be positive");
  // Written so that no sum can overflow: batch_size may be any positive int64.
  return batch_size / shards + (batch_size % shards != 0 ? 1 : 0);
}

// ---------------------------------------------------------------- Epoch

struct Epoch::Impl {
  std::shared_ptr<const LoaderState> state;
  std::int64_t epoch = 0;
  std::vector<std::int64_t> order;
  Tensor order_on_device;
  std::int64_t first = 0, next = 0, end = 0;  // batches: the first, the next to hand out, one past the last

  // Prefetching (CPU with prefetch > 0): the worker fills `ready` in batch
  // order, at most `depth` ahead of the consumer.
  std::thread worker;
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Batch> ready;
  std::exception_ptr error;
  bool stop = false;

  void produce(std::int64_t from, std::int64_t depth) {
    for (std::int64_t k = from; k < end; ++k) {
      {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [&] { return stop || static_cast<std::int64_t>(ready.size()) < depth; });
        if (stop) return;
      }
      try {
        Batch batch = state->make_batch(epoch, order, order_on_device, k);
        std::lock_guard<std::mutex> lock(mutex);
        ready.push_back(std::move(batch));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        error = std::current_exception();
        changed.notify_all();
        return;
      }
      changed.notify_all();
    }
  }

  std::optional<Batch> take() {
    if (next >= end) return std::nullopt;
    if (!worker.joinable()) return state->make_batch(epoch, order, order_on_device, next++);
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return !ready.empty() || error; });
    if (ready.empty()) std::rethrow_exception(error);
    Batch batch = std::move(ready.front());
    ready.pop_front();
    ++next;
    lock.unlock();
    changed.notify_all();
    return batch;
  }

  ~Impl() {
    if (!worker.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    changed.notify_all();
    worker.join();
  }
};

Epoch::Epoch(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Epoch::Epoch(Epoch&&) noexcept = default;
Epoch& Epoch::operator=(Epoch&&) noexcept = default;
Epoch::~Epoch() = default;

std::optional<Batch> Epoch::next() { return impl_->take(); }
std::int64_t Epoch::batches() const { return impl_->end - impl_->first; }

// ---------------------------------------------------------------- BatchLoader

BatchLoader::BatchLoader(const Dataset& dataset, const LoaderOptions& options) {
  dataset.validate();
  const std::int64_t n = dataset.size();
  BASIN_CHECK(n >= 1 && n < kMaxRecords, "BatchLoader: ", dataset.name, " holds ", detail::with_commas(n),
              " records; expected 1 to 2^30 - 1");
  BASIN_CHECK(options.batch_size() >= 1, "BatchLoader: batch_size must be >= 1, got ", options.batch_size());
  BASIN_CHECK(options.prefetch() >= 0, "BatchLoader: prefetch must be >= 0, got ", options.prefetch());
  BASIN_CHECK(options.shards() >= 1 && options.shards() <= options.batch_size(), "BatchLoader: shards must be in [1, ",
              "batch_size ", options.batch_size(), "], got ", options.shards());
  BASIN_CHECK(options.shard() >= 0 && options.shard() < options.shards(), "BatchLoader: shard must be in [0, ",
              options.shards(), "), got ", options.shard());

  auto state = std::make_shared<LoaderState>();
  state->dataset = dataset;
  state->options = options;
  AugmentOptions augment = options.augment();
  if (augment.mean().empty()) augment.mean(dataset.mean);
  if (augment.stddev().empty()) augment.stddev(dataset.stddev);
  validate(augment, dataset.channels());
  state->options.augment(augment);
  state->images = dataset.images.contiguous().to(options.device());
  state->labels = dataset.labels.contiguous().to(options.device());
  // n / b rounded up, written so that no sum can overflow (b may be any positive int64).
  const std::int64_t whole = n / options.batch_size();
  state->batches = options.drop_last() || n % options.batch_size() == 0 ? whole : whole + 1;
  state_ = std::move(state);
}

std::int64_t BatchLoader::size() const { return state_->dataset.size(); }
std::int64_t BatchLoader::batches_per_epoch() const { return state_->batches; }
const LoaderOptions& BatchLoader::options() const { return state_->options; }
const Dataset& BatchLoader::dataset() const { return state_->dataset; }

std::vector<std::int64_t> BatchLoader::order(std::int64_t epoch) const { return state_->order(epoch); }

Epoch BatchLoader::epoch(std::int64_t epoch, std::int64_t first_batch) const {
  BASIN_CHECK(first_batch >= 0 && first_batch <= state_->batches, "BatchLoader: first_batch ", first_batch,
              " is outside the epoch's ", state_->batches, " batches");
  auto impl = std::make_unique<Epoch::Impl>();
  impl->state = state_;
  impl->epoch = epoch;
  impl->order = state_->order(epoch);
  // One upload per epoch; each batch reads its slice of it.
  impl->order_on_device = from_vector(impl->order, {size()}).to(state_->options.device());
  impl->first = impl->next = first_batch;
  impl->end = state_->batches;
  const std::int64_t depth = state_->options.prefetch();
  if (state_->options.device().is_cpu() && depth > 0 && impl->next < impl->end) {
    Epoch::Impl* raw = impl.get();
    impl->worker = std::thread([raw, first_batch, depth] { raw->produce(first_batch, depth); });
  }
  return Epoch(std::move(impl));
}

Batch BatchLoader::batch(std::int64_t epoch, std::int64_t k) const {
  BASIN_CHECK(k >= 0 && k < state_->batches, "BatchLoader: batch ", k, " is outside the epoch's ", state_->batches,
              " batches");
  const std::vector<std::int64_t> order = state_->order(epoch);
  const Tensor order_on_device = from_vector(order, {size()}).to(state_->options.device());
  return state_->make_batch(epoch, order, order_on_device, k);
}

}  // namespace basin::data
