// BatchLoader: the epochs of a Dataset as augmented, normalized batches.
//
//   data::BatchLoader train(dataset, data::LoaderOptions().batch_size(128).seed(seed)
//                                        .device(device).augment(data::AugmentOptions()));
//   for (std::int64_t e = start_epoch; e < epochs; ++e) {
//     for (const data::Batch& batch : train.epoch(e)) { ... batch.images, batch.labels ... }
//   }
//
// Reproducible from (seed, epoch) alone: epoch e's order and every random
// augmentation choice are Philox draws keyed by the seed at counters that
// depend only on e and the position in the epoch. No state carries from one
// epoch to the next, so a resumed run calls epoch(e) and gets the same
// batches, and batch k can also be rebuilt on its own with batch(e, k).
//
// Counter layout (key = seed): epoch e owns counters [e * 2^32, (e + 1) * 2^32);
// its shuffle reads from the first half, and the sample at position p of the
// epoch's order draws its augmentation from counters 2^31 + 2p and 2^31 + 2p + 1.
//
// Devices:
// - CUDA: the dataset is copied to the GPU once, as uint8, when the loader is
//   built; each epoch uploads its order (8 bytes per record); each batch is
//   then one kernel launch that gathers, augments and normalizes (data/augment.h),
//   queued without waiting for the host.
// - CPU: a background thread prepares up to `prefetch` batches ahead while
//   the current one trains (prefetch(0): each batch is built when asked for).
//   The thread draws from the loader's own Philox key, never from the
//   default generator, so batches are the same with or without it.
//
// Subsets: Dataset::head(n) keeps the first n records (data/dataset.h).
//
// Data parallelism: with shards(N) and shard(r), each batch of batch_size
// positions is cut into N consecutive pieces of ceil(batch_size / N) positions
// and the loader yields piece r (the pieces of an epoch's short last batch
// may be shorter, or empty). Every rank walks the same order with the same
// augmentation draws, which are keyed by position, so the global batch, its
// order and its augmentation do not depend on N.
#pragma once

#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <vector>

#include "core/device.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "core/options.h"

namespace basin::data {

struct LoaderOptions {
  BASIN_OPTION(std::int64_t, batch_size) = 128;
  BASIN_OPTION(bool, shuffle) = true;
  BASIN_OPTION(std::uint64_t, seed) = 0;
  BASIN_OPTION(bool, drop_last) = false;  // drop a last batch smaller than batch_size
  BASIN_OPTION(Device, device) = Device::cpu();
  // Normalization only by default; AugmentOptions() is the CIFAR training recipe.
  // Empty mean/std are taken from the dataset.
  BASIN_OPTION(AugmentOptions, augment) = AugmentOptions::none();
  BASIN_OPTION(std::int64_t, prefetch) = 2;  // CPU only: batches prepared ahead; 0 = no thread
  BASIN_OPTION(std::int64_t, shards) = 1;    // data parallelism: ranks sharing each batch
  BASIN_OPTION(std::int64_t, shard) = 0;     // this rank's piece, in [0, shards)
};

// Positions [begin, end) of piece `index` when `count` items are cut into
// consecutive pieces of `piece` items: the last pieces may be shorter, or
// empty (begin == end). The loader's shards and SAM's m-sharpness chunks.
struct Piece {
  std::int64_t begin = 0, end = 0;
  std::int64_t size() const { return end - begin; }
};
Piece piece_of(std::int64_t count, std::int64_t piece, std::int64_t index);
// ceil(batch_size / shards): the positions each shard of a full batch gets
// (batch_size >= 1, shards >= 1; no overflow for any int64).
std::int64_t piece_size(std::int64_t batch_size, std::int64_t shards);

struct Batch {
  Tensor images;  // float32 [B, C, H, W] on the loader's device; undefined when this shard is empty
  Tensor labels;  // int64 [B] on the loader's device; undefined when this shard is empty
  std::int64_t epoch = 0;
  std::int64_t index = 0;               // batch number within the epoch
  std::vector<std::int64_t> indices;    // the dataset records it holds, in order
  std::int64_t global_size = 0;         // images in the whole batch, over every shard
  std::int64_t size() const { return static_cast<std::int64_t>(indices.size()); }
};

struct LoaderState;

// One pass over the data. On the CPU it owns the prefetching thread, which it
// stops and joins when it is destroyed, even part-way through the epoch.
class Epoch {
 public:
  Epoch(Epoch&&) noexcept;
  Epoch& operator=(Epoch&&) noexcept;
  Epoch(const Epoch&) = delete;
  Epoch& operator=(const Epoch&) = delete;
  ~Epoch();

  // The next batch, or nothing at the end of the epoch. An error met while
  // preparing a batch on the thread is rethrown here.
  std::optional<Batch> next();
  // Batches this epoch yields from its first batch to its end.
  std::int64_t batches() const;

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using pointer = const Batch*;
    using reference = const Batch&;

    iterator() = default;
    explicit iterator(Epoch* epoch) : epoch_(epoch) { advance(); }
    reference operator*() const { return *current_; }
    pointer operator->() const { return &*current_; }
    iterator& operator++() {
      advance();
      return *this;
    }
    bool operator==(const iterator& other) const { return epoch_ == other.epoch_; }

   private:
    void advance() {
      current_ = epoch_->next();
      if (!current_) epoch_ = nullptr;
    }
    Epoch* epoch_ = nullptr;  // null once exhausted: equal to end()
    std::optional<Batch> current_;
  };
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

 private:
  friend class BatchLoader;
  struct Impl;
  explicit Epoch(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class BatchLoader {
 public:
  // Validates the dataset and the options (naming what is wrong), and on CUDA
  // copies the dataset to the GPU.
  BatchLoader(const Dataset& dataset, const LoaderOptions& options);

  std::int64_t size() const;               // records per epoch
  std::int64_t batches_per_epoch() const;  // with drop_last applied
  const LoaderOptions& options() const;    // mean/std filled in from the dataset
  const Dataset& dataset() const;          // the host copy

  // The dataset records in the order epoch e visits them: a Fisher-Yates
  // shuffle driven by Philox (seed, e), or 0..N-1 without shuffle.
  std::vector<std::int64_t> order(std::int64_t epoch) const;

  // Epoch e from batch first_batch on (a resume inside an epoch starts there).
  // The epoch keeps the loader's data alive; it may outlive the loader.
  Epoch epoch(std::int64_t epoch, std::int64_t first_batch = 0) const;

  // Batch k of epoch e, built now on the calling thread (no prefetch); the
  // same batch the epoch yields.
  Batch batch(std::int64_t epoch, std::int64_t k) const;

 private:
  std::shared_ptr<const LoaderState> state_;
};

}  // namespace basin::data
