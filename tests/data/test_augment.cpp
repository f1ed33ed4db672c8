// Augmentation: each transform checked as a property of the output (the
// crop is a shift by at most the padding with zeros shifted in, the flip is a
// mirror, the cutout is exactly a clipped square), the normalization against
// its formula, determinism by seed, the gather, bad input, and CUDA == CPU
// bit for bit.
//
// Input pixels are drawn from 1..255, never 0, so a zero in the raw output
// can only be padding; and with mean 0.5 (127.5 in pixel units, not an
// integer) a normalized 0 can only be cutout.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "core/random.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "support/compare.h"
#include "support/cuda.h"

using namespace basin;
using namespace basin::data;
using Catch::Contains;

namespace {

struct Images {
  std::int64_t n, c, h, w;
  std::vector<std::uint8_t> pixels;
  Tensor tensor;
  std::uint8_t at(std::int64_t i, std::int64_t ch, std::int64_t y, std::int64_t x) const {
    return pixels[((i * c + ch) * h + y) * w + x];
  }
};

Images random_images(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int> byte(1, 255);
  Images im{n, c, h, w, std::vector<std::uint8_t>(static_cast<std::size_t>(n * c * h * w)), Tensor()};
  for (auto& p : im.pixels) p = static_cast<std::uint8_t>(byte(gen));
  im.tensor = from_vector(im.pixels, {n, c, h, w});
  return im;
}

// Output = the raw pixel value: mean 0, std 1/255 make shift 0 and scale exactly 1.
AugmentOptions raw(std::int64_t channels) {
  return AugmentOptions::none()
      .mean(std::vector<double>(static_cast<std::size_t>(channels), 0.0))
      .stddev(std::vector<double>(static_cast<std::size_t>(channels), 1.0 / 255.0));
}

AugmentOptions half(std::int64_t channels) {
  return AugmentOptions::none()
      .mean(std::vector<double>(static_cast<std::size_t>(channels), 0.5))
      .stddev(std::vector<double>(static_cast<std::size_t>(channels), 0.25));
}

kernels::PhiloxDraw draw(std::uint64_t seed, std::uint64_t offset = 0) { return {seed, offset}; }

// The value at (b, c, y, x) of a float32 [B, C, H, W] result read to the host.
struct Out {
  std::int64_t c, h, w;
  std::vector<float> v;
  float at(std::int64_t b, std::int64_t ch, std::int64_t y, std::int64_t x) const {
    return v[static_cast<std::size_t>(((b * c + ch) * h + y) * w + x)];
  }
};

Out read(const Tensor& t) { return {t.size(1), t.size(2), t.size(3), t.to_vector<float>()}; }

// Does sample b of `out` equal image i shifted by (dy, dx), zeros shifted in?
bool is_shift(const Out& out, std::int64_t b, const Images& im, std::int64_t i, std::int64_t dy, std::int64_t dx,
              bool mirrored) {
  for (std::int64_t c = 0; c < im.c; ++c) {
    for (std::int64_t y = 0; y < im.h; ++y) {
      for (std::int64_t x = 0; x < im.w; ++x) {
        const std::int64_t sy = y + dy, sx = (mirrored ? im.w - 1 - x : x) + dx;
        const bool inside = sy >= 0 && sy < im.h && sx >= 0 && sx < im.w;
        const float expected = inside ? im.at(i, c, sy, sx) : 0.0f;
        if (out.at(b, c, y, x) != expected) return false;
      }
    }
  }
  return true;
}

}  // namespace

TEST_CASE("augment none: the raw pixels come through exactly", "[data][augment]") {
  const Images im = random_images(5, 3, 7, 9, 1);
  const Out out = read(augment_batch(im.tensor, Tensor(), Tensor(), raw(3), draw(1)).images);
  for (std::int64_t b = 0; b < 5; ++b) CHECK(is_shift(out, b, im, b, 0, 0, false));
}

TEST_CASE("augment crop: a shift by at most the padding, zeros at the borders", "[data][augment]") {
  const std::int64_t n = 301, pad = 4;
  const Images im = random_images(n, 3, 9, 11, 2);
  const Out out = read(augment_batch(im.tensor, Tensor(), Tensor(), raw(3).crop_padding(pad), draw(7)).images);
  std::set<std::int64_t> dys, dxs;
  for (std::int64_t b = 0; b < n; ++b) {
    // Search wider than the padding: exactly one shift must match, and within it.
    int matches = 0;
    for (std::int64_t dy = -pad - 2; dy <= pad + 2; ++dy) {
      for (std::int64_t dx = -pad - 2; dx <= pad + 2; ++dx) {
        if (!is_shift(out, b, im, b, dy, dx, false)) continue;
        ++matches;
        CHECK(std::abs(dy) <= pad);
        CHECK(std::abs(dx) <= pad);
        dys.insert(dy);
        dxs.insert(dx);
      }
    }
    INFO("sample " << b);
    CHECK(matches == 1);
  }
  // Every offset in [-4, 4] occurs in both directions (301 draws of 9 values each).
  CHECK(dys.size() == 9);
  CHECK(dxs.size() == 9);
}

TEST_CASE("augment flip: each sample is itself or its mirror, half and half", "[data][augment]") {
  const std::int64_t n = 401;
  const Images im = random_images(n, 2, 6, 13, 3);
  const AugmentOptions options = raw(2).horizontal_flip(true);
  const Out out = read(augment_batch(im.tensor, Tensor(), Tensor(), options, draw(8)).images);

  // The mirrored input augmented with the same draw: samples flipped above
  // come out as the original here, and the others as the mirror.
  std::vector<std::uint8_t> mirrored(im.pixels.size());
  for (std::int64_t i = 0; i < n * im.c * im.h; ++i) {
    for (std::int64_t x = 0; x < im.w; ++x) mirrored[i * im.w + x] = im.pixels[i * im.w + (im.w - 1 - x)];
  }
  const Out back = read(augment_batch(from_vector(mirrored, {n, 2, 6, 13}), Tensor(), Tensor(), options, draw(8)).images);

  std::int64_t flipped = 0;
  for (std::int64_t b = 0; b < n; ++b) {
    const bool same = is_shift(out, b, im, b, 0, 0, false);
    const bool mirror = is_shift(out, b, im, b, 0, 0, true);
    INFO("sample " << b);
    REQUIRE(same != mirror);
    flipped += mirror;
    CHECK(is_shift(back, b, im, b, 0, 0, same));  // flip(flip(x)) == x
  }
  CHECK(flipped > n * 0.4);
  CHECK(flipped < n * 0.6);
}

TEST_CASE("augment cutout: zero exactly on a square centred on a pixel, clipped at the border", "[data][augment]") {
  for (const std::int64_t side : {8, 7}) {
    SECTION("side " + std::to_string(side)) {
      const std::int64_t n = 257, h = 19, w = 23;
      const Images im = random_images(n, 3, h, w, 4 + side);
      const AugmentOptions options = half(3).cutout(side);
      const Out out = read(augment_batch(im.tensor, Tensor(), Tensor(), options, draw(9)).images);
      std::int64_t clipped = 0, whole = 0;
      for (std::int64_t b = 0; b < n; ++b) {
        INFO("sample " << b);
        // The zeros of channel 0, and their bounding box.
        std::int64_t y0 = h, y1 = 0, x0 = w, x1 = 0, zeros = 0;
        for (std::int64_t y = 0; y < h; ++y) {
          for (std::int64_t x = 0; x < w; ++x) {
            if (out.at(b, 0, y, x) != 0.0f) continue;
            ++zeros;
            y0 = std::min(y0, y), y1 = std::max(y1, y + 1), x0 = std::min(x0, x), x1 = std::max(x1, x + 1);
          }
        }
        REQUIRE(zeros > 0);
        CHECK(zeros == (y1 - y0) * (x1 - x0));  // a filled rectangle
        // Some centre pixel gives exactly that rectangle.
        int centres = 0;
        for (std::int64_t cy = 0; cy < h; ++cy) {
          for (std::int64_t cx = 0; cx < w; ++cx) {
            const std::int64_t top = cy - side / 2, left = cx - side / 2;
            centres += std::max<std::int64_t>(top, 0) == y0 && std::min(top + side, h) == y1 &&
                       std::max<std::int64_t>(left, 0) == x0 && std::min(left + side, w) == x1;
          }
        }
        CHECK(centres == 1);
        (zeros < side * side ? clipped : whole) += 1;
        // Every channel: zero inside, the normalized pixel outside.
        for (std::int64_t c = 0; c < 3; ++c) {
          for (std::int64_t y = 0; y < h; ++y) {
            for (std::int64_t x = 0; x < w; ++x) {
              const bool inside = y >= y0 && y < y1 && x >= x0 && x < x1;
              const double expected = inside ? 0.0 : (im.at(b, c, y, x) / 255.0 - 0.5) / 0.25;
              if (out.at(b, c, y, x) != Approx(expected).margin(1e-5)) {
                FAIL_CHECK("channel " << c << " (" << y << ", " << x << "): " << out.at(b, c, y, x) << " vs "
                                      << expected);
              }
            }
          }
        }
      }
      // Both kinds occur: squares clipped by a border and whole ones.
      CHECK(clipped > 20);
      CHECK(whole > 20);
    }
  }
}

TEST_CASE("augment cutout_p: the share of samples with a square", "[data][augment]") {
  const std::int64_t n = 400;
  const Images im = random_images(n, 1, 11, 11, 5);
  const auto samples_cut = [&](double p) {
    const Out out = read(augment_batch(im.tensor, Tensor(), Tensor(), half(1).cutout(4).cutout_p(p), draw(10)).images);
    std::int64_t count = 0;
    for (std::int64_t b = 0; b < n; ++b) {
      bool any = false;
      for (std::int64_t e = 0; e < 121; ++e) any = any || out.v[static_cast<std::size_t>(b * 121 + e)] == 0.0f;
      count += any;
    }
    return count;
  };
  CHECK(samples_cut(1.0) == n);
  CHECK(samples_cut(0.0) == 0);
  const std::int64_t some = samples_cut(0.5);
  CHECK(some > n * 0.4);
  CHECK(some < n * 0.6);
}

TEST_CASE("augment normalization: (pixel / 255 - mean) / std per channel", "[data][augment]") {
  // A constant image per channel.
  const std::vector<std::uint8_t> level{200, 13, 77};
  std::vector<std::uint8_t> pixels;
  for (int i = 0; i < 3; ++i) {
    for (std::uint8_t v : level) pixels.insert(pixels.end(), 5 * 6, v);
  }
  const std::vector<double> mean{0.4914, 0.4822, 0.4465}, stddev{0.2470, 0.2435, 0.2616};
  const Out out = read(augment(from_vector(pixels, {3, 3, 5, 6}), AugmentOptions::none().mean(mean).stddev(stddev)));
  for (std::int64_t b = 0; b < 3; ++b) {
    for (std::int64_t c = 0; c < 3; ++c) {
      const double expected = (level[c] / 255.0 - mean[c]) / stddev[c];
      for (std::int64_t e = 0; e < 30; ++e) REQUIRE(out.at(b, c, e / 6, e % 6) == Approx(expected).epsilon(1e-6));
    }
  }

  // A random batch normalized by its own statistics has mean 0 and std 1 per channel.
  const Images im = random_images(9, 3, 8, 8, 6);
  const ChannelStats stats = channel_stats(im.tensor);
  const Out z = read(augment(im.tensor, AugmentOptions::none().mean(stats.mean).stddev(stats.stddev)));
  for (std::int64_t c = 0; c < 3; ++c) {
    double sum = 0, squares = 0;
    for (std::int64_t b = 0; b < 9; ++b) {
      for (std::int64_t e = 0; e < 64; ++e) {
        const double v = z.at(b, c, e / 8, e % 8);
        sum += v;
        squares += v * v;
      }
    }
    CHECK(sum / 576 == Approx(0.0).margin(1e-5));
    CHECK(squares / 576 == Approx(1.0).epsilon(1e-5));
  }
}

TEST_CASE("augment determinism: the same seed gives the same batch, another seed another", "[data][augment]") {
  const Images im = random_images(33, 3, 12, 10, 7);
  const AugmentOptions options = half(3).crop_padding(3).horizontal_flip(true).cutout(5);
  manual_seed(42);
  const Tensor a = augment(im.tensor, options);
  const Tensor a_next = augment(im.tensor, options);  // the generator moved on
  manual_seed(42);
  const Tensor b = augment(im.tensor, options);
  CHECK(testing::equal(a, b));
  CHECK_FALSE(testing::equal(a, a_next));
  manual_seed(43);
  CHECK_FALSE(testing::equal(a, augment(im.tensor, options)));

  // An explicit draw: the same key and counter give the same batch; each
  // sample owns two counters, so shifting the offset by two shifts the choices
  // by one sample.
  const Tensor d0 = augment_batch(im.tensor, Tensor(), Tensor(), options, draw(5, 100)).images;
  CHECK(testing::equal(d0, augment_batch(im.tensor, Tensor(), Tensor(), options, draw(5, 100)).images));
  CHECK_FALSE(testing::equal(d0, augment_batch(im.tensor, Tensor(), Tensor(), options, draw(6, 100)).images));
  const Tensor same_images = from_vector(std::vector<std::uint8_t>(33 * 360, 9), {33, 3, 12, 10});
  const Tensor s0 = augment_batch(same_images, Tensor(), Tensor(), options, draw(5, 100)).images;
  const Tensor s1 = augment_batch(same_images, Tensor(), Tensor(), options, draw(5, 100 + augment_counters(1))).images;
  CHECK(testing::equal(s0.slice(0, 1, 33), s1.slice(0, 0, 32)));
  CHECK_FALSE(testing::equal(s0.slice(0, 0, 32), s1.slice(0, 0, 32)));
}

TEST_CASE("augment gather: output b is image indices[b], choices follow the slot", "[data][augment]") {
  const Images im = random_images(40, 3, 7, 5, 8);
  std::vector<std::int64_t> y40(40);
  for (int i = 0; i < 40; ++i) y40[i] = (i * 7) % 10;
  const Tensor labels = from_vector(y40, {40});
  const std::vector<std::int64_t> order{39, 0, 17, 17, 5, 22, 38, 1, 9, 30, 12};  // repeats allowed
  const Tensor indices = from_vector(order, {11});

  const AugmentedBatch plain = augment_batch(im.tensor, labels, indices, raw(3), draw(1));
  const Out out = read(plain.images);
  const std::vector<std::int64_t> y = plain.labels.to_vector<std::int64_t>();
  for (std::size_t b = 0; b < order.size(); ++b) {
    CHECK(is_shift(out, static_cast<std::int64_t>(b), im, order[b], 0, 0, false));
    CHECK(y[b] == (order[b] * 7) % 10);
  }

  // With random transforms: the same as gathering first, then augmenting.
  std::vector<std::uint8_t> gathered;
  for (std::int64_t i : order) {
    gathered.insert(gathered.end(), im.pixels.begin() + i * 105, im.pixels.begin() + (i + 1) * 105);
  }
  const AugmentOptions options = half(3).crop_padding(2).horizontal_flip(true).cutout(3);
  const Tensor fused = augment_batch(im.tensor, labels, indices, options, draw(3, 50)).images;
  const Tensor apart = augment_batch(from_vector(gathered, {11, 3, 7, 5}), Tensor(), Tensor(), options, draw(3, 50)).images;
  CHECK(testing::equal(fused, apart));
}

TEST_CASE("augment errors name the problem", "[data][augment]") {
  const Images im = random_images(37, 3, 4, 4, 9);
  const Tensor labels = from_vector(std::vector<std::int64_t>(37, 1), {37});
  CHECK_THROWS_WITH(augment(im.tensor.to(kFloat32), half(3)), Contains("augment: images must be uint8 [N, C, H, W], got float32"));
  CHECK_THROWS_WITH(augment(im.tensor.reshape({37, 48}), half(3)), Contains("augment: images must be uint8 [N, C, H, W]"));
  CHECK_THROWS_WITH(augment(im.tensor, half(2)), Contains("augment: images have 3 channels but mean has 2 values and std 2"));
  CHECK_THROWS_WITH(augment(im.tensor, half(3).stddev({0.2, 0.0, 0.2})), Contains("augment: channel 1 has mean 0.5 and std 0"));
  CHECK_THROWS_WITH(augment(im.tensor, half(3).crop_padding(-1)), Contains("augment: crop_padding must be >= 0, got -1"));
  CHECK_THROWS_WITH(augment(im.tensor, half(3).cutout(-2)), Contains("augment: cutout must be >= 0, got -2"));
  CHECK_THROWS_WITH(augment(im.tensor, half(3).cutout_p(1.5)), Contains("augment: cutout_p must be in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(augment(from_vector(std::vector<std::uint8_t>(5 * 4, 1), {1, 5, 2, 2}), half(5)),
                    Contains("must have 1 to 4 channels"));
  CHECK_THROWS_WITH(augment_batch(im.tensor, labels, from_vector(std::vector<std::int64_t>{0, 3, 40}, {3}), half(3), draw(1)),
                    Contains("augment: indices[2] = 40 is outside the 37 images"));
  CHECK_THROWS_WITH(augment_batch(im.tensor, labels, from_vector(std::vector<std::int64_t>{-1}, {1}), half(3), draw(1)),
                    Contains("augment: indices[0] = -1"));
  CHECK_THROWS_WITH(augment_batch(im.tensor, labels, from_vector(std::vector<std::int32_t>{0}, {1}), half(3), draw(1)),
                    Contains("augment: indices must be int64 [B], got int32"));
  CHECK_THROWS_WITH(augment_batch(im.tensor, labels.slice(0, 0, 36), Tensor(), half(3), draw(1)),
                    Contains("augment: labels must be int64 [37] to match images [37, 3, 4, 4], got int64 [36]"));
}

// ---------------------------------------------------------------- CUDA

TEST_CASE("augment CUDA kernel matches the CPU kernel bit for bit", "[data][augment][cuda]") {
  BASIN_REQUIRE_CUDA();
  struct Case {
    const char* name;
    std::int64_t n, c, h, w, batch;
    AugmentOptions options;
  };
  const std::vector<double> m3{0.4914, 0.4822, 0.4465}, s3{0.2470, 0.2435, 0.2616};
  const std::vector<Case> cases{
      {"cifar recipe, odd batch", 301, 3, 32, 32, 129, AugmentOptions().mean(m3).stddev(s3)},
      {"odd image, odd batch", 97, 3, 33, 31, 77, AugmentOptions().crop_padding(5).cutout(9).mean(m3).stddev(s3)},
      {"mnist-like, cutout_p 0.5", 50, 1, 28, 28, 61, AugmentOptions().cutout(7).cutout_p(0.5).mean({0.13}).stddev({0.31})},
      {"normalize only", 13, 4, 5, 7, 13, AugmentOptions::none().mean({0.1, 0.2, 0.3, 0.4}).stddev({0.5, 0.6, 0.7, 0.8})},
      {"large plane", 3, 3, 161, 157, 5, AugmentOptions().crop_padding(12).cutout(40).mean(m3).stddev(s3)},
  };
  std::uint64_t seed = 100;
  for (const Case& k : cases) {
    SECTION(k.name) {
      const Images im = random_images(k.n, k.c, k.h, k.w, ++seed);
      std::mt19937_64 gen(seed);
      std::vector<std::int64_t> order(static_cast<std::size_t>(k.batch)), y(static_cast<std::size_t>(k.n));
      for (auto& i : order) i = static_cast<std::int64_t>(gen() % static_cast<std::uint64_t>(k.n));
      for (auto& v : y) v = static_cast<std::int64_t>(gen() % 100);
      const Tensor labels = from_vector(y, {k.n});
      const Tensor indices = from_vector(order, {k.batch});
      const kernels::PhiloxDraw d{seed * 7919, seed * 31};

      const AugmentedBatch cpu = augment_batch(im.tensor, labels, indices, k.options, d);
      const Device gpu = Device::cuda();
      const Tensor g_images = im.tensor.to(gpu), g_labels = labels.to(gpu), g_indices = indices.to(gpu);
      {
        // Freed NaNs stay in the pool, where the kernel's output is likely
        // to be placed: a value the kernel fails to write shows up.
        Tensor poison = full({k.batch * k.c * k.h * k.w}, std::nan(""), TensorOptions(kFloat32).device(gpu));
        synchronize(gpu);
      }
      const long long before = cuda_kernel_launches();
      const AugmentedBatch cuda = augment_batch(g_images, g_labels, g_indices, k.options, d);
      CHECK(cuda_kernel_launches() - before == 1);

      const std::vector<float> a = cpu.images.to_vector<float>(), b = cuda.images.to_vector<float>();
      REQUIRE(a.size() == b.size());
      std::size_t differ = 0;
      for (std::size_t e = 0; e < a.size(); ++e) differ += !(a[e] == b[e]);  // also counts NaN
      CHECK(differ == 0);
      CHECK(cpu.labels.to_vector<std::int64_t>() == cuda.labels.to_vector<std::int64_t>());
    }
  }
}

TEST_CASE("augment CUDA: an index out of range gives NaN and label -1, not a crash", "[data][augment][cuda]") {
  BASIN_REQUIRE_CUDA();
  const Images im = random_images(10, 3, 6, 5, 77);
  const Device gpu = Device::cuda();
  const Tensor labels = from_vector(std::vector<std::int64_t>(10, 4), {10}).to(gpu);
  const Tensor indices = from_vector(std::vector<std::int64_t>{2, 10, -3, 9}, {4}).to(gpu);
  const AugmentedBatch out = augment_batch(im.tensor.to(gpu), labels, indices, half(3), draw(1));
  const Out o = read(out.images);
  for (std::int64_t e = 0; e < 90; ++e) {
    CHECK_FALSE(std::isnan(o.v[static_cast<std::size_t>(e)]));
    CHECK(std::isnan(o.v[static_cast<std::size_t>(90 + e)]));
    CHECK(std::isnan(o.v[static_cast<std::size_t>(180 + e)]));
    CHECK_FALSE(std::isnan(o.v[static_cast<std::size_t>(270 + e)]));
  }
  CHECK(out.labels.to_vector<std::int64_t>() == std::vector<std::int64_t>{4, -1, -1, 4});
}
