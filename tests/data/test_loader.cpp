// BatchLoader: coverage of every record per epoch, shuffles reproducible
// from (seed, epoch) alone, drop_last, subsets, the prefetching thread (same
// batches with or without it, clean shutdown part-way through), the
// documented Philox counter layout, bad options, and CUDA == CPU.
#include <catch2/catch.hpp>

#include <algorithm>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "data/loader.h"
#include "support/compare.h"
#include "support/cuda.h"

using namespace basin;
using namespace basin::data;
using Catch::Contains;

namespace {

// N random images [N, 3, 5, 7] (pixels 1..255) with labels i % 10.
Dataset toy(std::int64_t n, std::uint64_t seed = 1) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int> byte(1, 255);
  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(n * 105));
  for (auto& p : pixels) p = static_cast<std::uint8_t>(byte(gen));
  std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) labels[i] = i % 10;
  Dataset d;
  d.name = "toy";
  d.images = from_vector(pixels, {n, 3, 5, 7});
  d.labels = from_vector(labels, {n});
  d.num_classes = 10;
  d.mean = {0.5, 0.45, 0.4};
  d.stddev = {0.25, 0.2, 0.3};
  return d;
}

std::vector<Batch> all_batches(const BatchLoader& loader, std::int64_t epoch, std::int64_t first = 0) {
  std::vector<Batch> out;
  for (const Batch& b : loader.epoch(epoch, first)) out.push_back(b);
  return out;
}

bool same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t k = 0; k < a.size(); ++k) {
    if (a[k].indices != b[k].indices || a[k].index != b[k].index || a[k].epoch != b[k].epoch) return false;
    if (!testing::equal(a[k].images, b[k].images) || !testing::equal(a[k].labels, b[k].labels)) return false;
  }
  return true;
}

std::vector<std::int64_t> joined(const std::vector<Batch>& batches) {
  std::vector<std::int64_t> out;
  for (const Batch& b : batches) out.insert(out.end(), b.indices.begin(), b.indices.end());
  return out;
}

}  // namespace

TEST_CASE("loader: every record exactly once per epoch, images and labels that match", "[data][loader]") {
  const Dataset d = toy(103);
  const BatchLoader loader(d, LoaderOptions().batch_size(16).seed(7));
  CHECK(loader.size() == 103);
  CHECK(loader.batches_per_epoch() == 7);
  const std::vector<Batch> batches = all_batches(loader, 0);
  REQUIRE(batches.size() == 7);
  for (std::size_t k = 0; k < 6; ++k) CHECK(batches[k].size() == 16);
  CHECK(batches[6].size() == 7);

  const std::vector<std::int64_t> order = joined(batches);
  CHECK(order == loader.order(0));
  std::vector<std::int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::int64_t> all(103);
  std::iota(all.begin(), all.end(), 0);
  CHECK(sorted == all);
  CHECK(order != all);  // shuffled

  // Without augmentation a batch is the normalized records it names.
  const std::vector<std::uint8_t> pixels = d.images.to_vector<std::uint8_t>();
  for (const Batch& b : batches) {
    CHECK(b.images.shape() == Shape{b.size(), 3, 5, 7});
    CHECK(b.images.dtype() == kFloat32);
    CHECK(b.labels.dtype() == kInt64);
    const std::vector<float> x = b.images.to_vector<float>();
    const std::vector<std::int64_t> y = b.labels.to_vector<std::int64_t>();
    for (std::int64_t s = 0; s < b.size(); ++s) {
      const std::int64_t i = b.indices[s];
      CHECK(y[s] == i % 10);
      for (std::int64_t e = 0; e < 105; ++e) {
        const std::int64_t c = e / 35;
        const double expected = (pixels[i * 105 + e] / 255.0 - d.mean[c]) / d.stddev[c];
        if (x[s * 105 + e] != Approx(expected).margin(1e-5)) FAIL_CHECK("record " << i << " value " << e);
      }
    }
  }
}

TEST_CASE("loader: shuffles differ across epochs and reproduce from (seed, epoch) alone", "[data][loader]") {
  const Dataset d = toy(57);
  const LoaderOptions options = LoaderOptions().batch_size(10).seed(3).augment(AugmentOptions().crop_padding(2).cutout(3));
  const BatchLoader loader(d, options);
  CHECK(loader.order(0) != loader.order(1));
  CHECK(loader.order(1) != loader.order(2));

  // A new loader (a resumed run) starts at epoch 2 and sees what the first saw.
  const std::vector<Batch> first_run = all_batches(loader, 2);
  const BatchLoader resumed(d, options);
  CHECK(same_batches(all_batches(resumed, 2), first_run));
  // ... and inside an epoch, from batch 3 on; batch(e, k) rebuilds one alone.
  const std::vector<Batch> tail = all_batches(resumed, 2, 3);
  CHECK(same_batches(tail, std::vector<Batch>(first_run.begin() + 3, first_run.end())));
  CHECK(same_batches({resumed.batch(2, 4)}, {first_run[4]}));
  // Augmentation differs between epochs too, not only the order.
  CHECK_FALSE(testing::equal(resumed.batch(2, 0).images, resumed.batch(3, 0).images));

  // Another seed, another order.
  CHECK(BatchLoader(d, LoaderOptions().batch_size(10).seed(4)).order(2) != loader.order(2));
  // No shuffle: the file order, every epoch; the augmentation still changes.
  const BatchLoader in_order(d, LoaderOptions(options).shuffle(false));
  std::vector<std::int64_t> all(57);
  std::iota(all.begin(), all.end(), 0);
  CHECK(in_order.order(5) == all);
  CHECK(joined(all_batches(in_order, 5)) == all);
  CHECK_FALSE(testing::equal(in_order.batch(0, 0).images, in_order.batch(1, 0).images));
}

TEST_CASE("loader: the shuffle is a uniform Fisher-Yates", "[data][loader]") {
  // 2,400 epochs of 5 records: all 120 orders occur (about 20 times each) and
  // each record sits at each position about 480 times. A shuffle that draws
  // j in [0, i) instead of [0, i] (Sattolo's cycles) never leaves a record in place.
  const BatchLoader loader(toy(5), LoaderOptions().batch_size(5).seed(11));
  std::map<std::vector<std::int64_t>, int> seen;
  std::vector<std::vector<int>> at(5, std::vector<int>(5, 0));
  for (std::int64_t e = 0; e < 2400; ++e) {
    const std::vector<std::int64_t> order = loader.order(e);
    ++seen[order];
    for (int p = 0; p < 5; ++p) ++at[p][order[p]];
  }
  CHECK(seen.size() == 120);
  for (int p = 0; p < 5; ++p) {
    for (int i = 0; i < 5; ++i) {
      INFO("record " << i << " at position " << p);
      CHECK(at[p][i] > 380);
      CHECK(at[p][i] < 580);
    }
  }
}

TEST_CASE("loader: drop_last drops only a short last batch", "[data][loader]") {
  const Dataset d = toy(103);
  const BatchLoader dropping(d, LoaderOptions().batch_size(16).drop_last(true));
  CHECK(dropping.batches_per_epoch() == 6);
  const std::vector<Batch> batches = all_batches(dropping, 1);
  REQUIRE(batches.size() == 6);
  for (const Batch& b : batches) CHECK(b.size() == 16);
  // The 96 kept records are the first 96 of the epoch's order.
  const std::vector<std::int64_t> order = dropping.order(1);
  CHECK(joined(batches) == std::vector<std::int64_t>(order.begin(), order.begin() + 96));

  CHECK(BatchLoader(d, LoaderOptions().batch_size(103).drop_last(true)).batches_per_epoch() == 1);
  CHECK(BatchLoader(d, LoaderOptions().batch_size(104).drop_last(false)).batches_per_epoch() == 1);
  const BatchLoader none(d, LoaderOptions().batch_size(200).drop_last(true));
  CHECK(none.batches_per_epoch() == 0);
  CHECK(all_batches(none, 0).empty());
}

TEST_CASE("loader: a subset is the first N records", "[data][loader]") {
  const Dataset d = toy(103);
  const BatchLoader loader(d.head(40), LoaderOptions().batch_size(8).seed(2));
  CHECK(loader.size() == 40);
  CHECK(loader.dataset().name == "toy (first 40)");
  std::vector<std::int64_t> order = joined(all_batches(loader, 0));
  std::sort(order.begin(), order.end());
  std::vector<std::int64_t> first(40);
  std::iota(first.begin(), first.end(), 0);
  CHECK(order == first);
  // The same records as the full dataset's first 40, pixel for pixel.
  const Batch b = BatchLoader(d.head(40), LoaderOptions().batch_size(40).shuffle(false)).batch(0, 0);
  const Batch full = BatchLoader(d, LoaderOptions().batch_size(40).shuffle(false)).batch(0, 0);
  CHECK(testing::equal(b.images, full.images));
}

TEST_CASE("loader: the same batches with or without the prefetching thread", "[data][loader]") {
  const Dataset d = toy(211);
  const LoaderOptions options = LoaderOptions().batch_size(13).seed(5).augment(AugmentOptions().crop_padding(2).cutout(4));
  const std::vector<Batch> direct = all_batches(BatchLoader(d, LoaderOptions(options).prefetch(0)), 4);
  REQUIRE(direct.size() == 17);
  for (std::int64_t depth : {1, 2, 5, 40}) {
    INFO("prefetch " << depth);
    CHECK(same_batches(all_batches(BatchLoader(d, LoaderOptions(options).prefetch(depth)), 4), direct));
  }
  // next() past the end keeps saying so.
  Epoch epoch = BatchLoader(d, options).epoch(4);  // outlives its loader
  CHECK(epoch.batches() == 17);
  std::int64_t count = 0;
  while (epoch.next()) ++count;
  CHECK(count == 17);
  CHECK_FALSE(epoch.next());
}

TEST_CASE("loader: an epoch abandoned part-way stops its thread", "[data][loader]") {
  const Dataset d = toy(500);
  const BatchLoader loader(d, LoaderOptions().batch_size(3).prefetch(4));
  for (int round = 0; round < 25; ++round) {
    Epoch epoch = loader.epoch(round);
    for (int k = 0; k < round % 4; ++k) REQUIRE(epoch.next());
    // Destroyed here with the worker blocked on a full queue (or still
    // building): the destructor must wake it, stop it and join it.
  }
  // Moving an epoch hands the thread over; the moved-to epoch still delivers.
  Epoch a = loader.epoch(1);
  Epoch b = std::move(a);
  const std::optional<Batch> first = b.next();
  REQUIRE(first);
  const std::vector<std::int64_t> order = loader.order(1);
  CHECK(first->indices == std::vector<std::int64_t>(order.begin(), order.begin() + 3));
  a = loader.epoch(2);
  CHECK(a.next()->index == 0);
}

TEST_CASE("loader: batches follow the documented Philox counters", "[data][loader]") {
  // Batch k of epoch e = augment_batch(order slice, key = seed, first counter
  // e * 2^32 + 2^31 + 2 * (k * batch_size)).
  const Dataset d = toy(50);
  const AugmentOptions augment =
      AugmentOptions().crop_padding(3).cutout(2).mean({0.5, 0.45, 0.4}).stddev({0.25, 0.2, 0.3});
  const BatchLoader loader(d, LoaderOptions().batch_size(12).seed(99).augment(augment));
  const std::int64_t epoch = 6, k = 2;
  const std::vector<std::int64_t> order = loader.order(epoch);
  const std::vector<std::int64_t> slice(order.begin() + k * 12, order.begin() + (k + 1) * 12);
  const kernels::PhiloxDraw draw{99, std::uint64_t{6} << 32 | std::uint64_t{1} << 31 | (2 * 24)};
  const AugmentedBatch expected = augment_batch(d.images, d.labels, from_vector(slice, {12}), augment, draw);
  const Batch got = loader.batch(epoch, k);
  CHECK(got.indices == slice);
  CHECK(testing::equal(got.images, expected.images));
  CHECK(testing::equal(got.labels, expected.labels));
}

TEST_CASE("loader: N shards of every batch put together are the whole batch, augmentation included",
          "[data][loader][dist]") {
  // 47 records in batches of 10: the last batch has 7, cut into pieces of
  // ceil(10 / N), so with 3 shards it splits 4 + 3 + 0 and with 4, 3 + 3 + 1 + 0.
  const Dataset d = toy(47);
  const LoaderOptions options =
      LoaderOptions().batch_size(10).seed(8).augment(AugmentOptions().crop_padding(2).cutout(3));
  const std::vector<Batch> whole = all_batches(BatchLoader(d, options), 3);
  REQUIRE(whole.size() == 5);
  for (const std::int64_t shards : {1, 2, 3, 4, 10}) {
    INFO(shards << " shards");
    std::vector<std::vector<Batch>> parts;
    for (std::int64_t r = 0; r < shards; ++r) {
      parts.push_back(all_batches(BatchLoader(d, LoaderOptions(options).shards(shards).shard(r)), 3));
      REQUIRE(parts.back().size() == whole.size());  // every shard has every step, empty or not
    }
    for (std::size_t k = 0; k < whole.size(); ++k) {
      INFO("batch " << k);
      std::int64_t at = 0;
      for (std::int64_t r = 0; r < shards; ++r) {
        const Batch& part = parts[static_cast<std::size_t>(r)][k];
        CHECK(part.global_size == whole[k].size());
        CHECK(part.index == whole[k].index);
        const Piece piece = piece_of(whole[k].size(), (10 + shards - 1) / shards, r);
        REQUIRE(part.size() == piece.size());
        CHECK(piece.begin == at);
        at += part.size();
        if (part.size() == 0) {
          CHECK_FALSE(part.images.defined());
          continue;
        }
        CHECK(part.indices == std::vector<std::int64_t>(whole[k].indices.begin() + piece.begin,
                                                         whole[k].indices.begin() + piece.end));
        CHECK(testing::equal(part.images, whole[k].images.slice(0, piece.begin, piece.end)));
        CHECK(testing::equal(part.labels, whole[k].labels.slice(0, piece.begin, piece.end)));
      }
      CHECK(at == whole[k].size());
    }
  }
  CHECK(piece_of(7, 4, 1).begin == 4);
  CHECK(piece_of(7, 4, 1).end == 7);
  CHECK(piece_of(7, 4, 2).size() == 0);
  CHECK(piece_size(10, 4) == 3);
  CHECK(piece_size(std::numeric_limits<std::int64_t>::max(), 2) == std::int64_t{1} << 62);
  CHECK_THROWS_WITH(BatchLoader(d, LoaderOptions().batch_size(4).shards(5)),
                    Contains("BatchLoader: shards must be in [1, batch_size 4], got 5"));
  CHECK_THROWS_WITH(BatchLoader(d, LoaderOptions().shards(2).shard(2)),
                    Contains("BatchLoader: shard must be in [0, 2), got 2"));
}

TEST_CASE("loader errors name the problem", "[data][loader]") {
  const Dataset d = toy(20);
  CHECK_THROWS_WITH(BatchLoader(d, LoaderOptions().batch_size(0)), Contains("BatchLoader: batch_size must be >= 1, got 0"));
  CHECK_THROWS_WITH(BatchLoader(d, LoaderOptions().prefetch(-1)), Contains("BatchLoader: prefetch must be >= 0, got -1"));
  CHECK_THROWS_WITH(BatchLoader(d, LoaderOptions().augment(AugmentOptions().mean({0.5}))),
                    Contains("augment: images have 3 channels but mean has 1 values and std 3"));
  Dataset bad = d;
  bad.labels = from_vector(std::vector<std::int64_t>(20, 10), {20});
  CHECK_THROWS_WITH(BatchLoader(bad, LoaderOptions()), Contains("toy: record 0 has label 10, expected 0..9"));

  const BatchLoader loader(d, LoaderOptions().batch_size(6));
  CHECK_THROWS_WITH(loader.epoch(0, 5), Contains("BatchLoader: first_batch 5 is outside the epoch's 4 batches"));
  CHECK_THROWS_WITH(loader.batch(0, 4), Contains("BatchLoader: batch 4 is outside the epoch's 4 batches"));
  CHECK_THROWS_WITH(loader.order(-1), Contains("BatchLoader: epoch must be in [0, 2^32), got -1"));
  CHECK(loader.epoch(0, 4).batches() == 0);  // starting at the end is allowed: nothing left
}

TEST_CASE("loader on CUDA: the same batches as on the CPU, one launch each", "[data][loader][cuda]") {
  BASIN_REQUIRE_CUDA();
  const Dataset d = toy(301, 17);
  const LoaderOptions options = LoaderOptions().batch_size(64).seed(8).augment(AugmentOptions().crop_padding(2).cutout(3));
  const BatchLoader cpu(d, options);
  const BatchLoader gpu(d, LoaderOptions(options).device(Device::cuda()));
  const std::vector<Batch> expected = all_batches(cpu, 3);

  Epoch epoch = gpu.epoch(3);
  std::vector<Batch> got;
  while (true) {
    const long long before = cuda_kernel_launches();
    std::optional<Batch> b = epoch.next();
    if (!b) break;
    CHECK(cuda_kernel_launches() - before == 1);
    CHECK(b->images.device().is_cuda());
    CHECK(b->labels.device().is_cuda());
    got.push_back(std::move(*b));
  }
  REQUIRE(got.size() == expected.size());
  for (std::size_t k = 0; k < got.size(); ++k) {
    INFO("batch " << k);
    CHECK(got[k].indices == expected[k].indices);
    CHECK(testing::equal(got[k].images.cpu(), expected[k].images));
    CHECK(testing::equal(got[k].labels.cpu(), expected[k].labels));
  }
}

TEST_CASE("loader: any positive batch size, up to the largest int64, gives whole batches", "[data][loader]") {
  const Dataset d = toy(103);
  const std::int64_t largest = std::numeric_limits<std::int64_t>::max();
  const BatchLoader one(d, LoaderOptions().batch_size(largest));
  CHECK(one.batches_per_epoch() == 1);
  const std::vector<Batch> batches = all_batches(one, 0);
  REQUIRE(batches.size() == 1);
  CHECK(batches[0].size() == 103);
  CHECK(BatchLoader(d, LoaderOptions().batch_size(largest).drop_last(true)).batches_per_epoch() == 0);
}
