// Learning-rate schedules: PyTorch's sequences (OneCycleLR exactly; the
// recursive MultiStepLR / StepLR / CosineAnnealingLR to rounding), the
// documented warmup, the ends of a schedule, and argument checks.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "core/random.h"
#include "optim/schedule.h"
#include "optim/sgd.h"
#include "support/fixtures.h"

using namespace basin;
using basin::optim::CosineLr;
using basin::optim::LrSchedule;
using basin::optim::MultiStepLr;
using basin::optim::OneCycleLr;
using basin::testing::fixture_tensor;
using basin::testing::load_fixture;

namespace {

std::vector<double> values(const TensorMap& fixture, const std::string& key) {
  return fixture_tensor(fixture, key).to_vector<double>();
}

// Largest |lr_at(s) - expected[s]| / max(expected) over the sequence.
double worst_error(const LrSchedule& schedule, const std::vector<double>& expected) {
  double peak = 0.0, worst = 0.0;
  for (double v : expected) peak = std::max(peak, std::abs(v));
  for (std::size_t s = 0; s < expected.size(); ++s) {
    worst = std::max(worst, std::abs(schedule.lr_at(static_cast<std::int64_t>(s)) - expected[s]) / peak);
  }
  return worst;
}

}  // namespace

TEST_CASE("schedule OneCycleLr gives torch's OneCycleLR values exactly", "[optim][schedule]") {
  const TensorMap fixture = load_fixture("optim_schedules.safetensors");
  for (const std::string name : {"onecycle_default", "onecycle_short", "onecycle_nowarmup"}) {
    SECTION(name) {
      const std::vector<double> a = values(fixture, name + ".args");  // max_lr, total, pct, div, final_div
      const std::vector<double> expected = values(fixture, name + ".lr");
      const OneCycleLr schedule(a[0], static_cast<std::int64_t>(a[1]), a[2], a[3], a[4]);
      REQUIRE(expected.size() == static_cast<std::size_t>(a[1]));
      for (std::size_t s = 0; s < expected.size(); ++s) {
        INFO(name << " step " << s);
        CHECK(schedule.lr_at(static_cast<std::int64_t>(s)) == expected[s]);
      }
      // Past the end the last value holds.
      CHECK(schedule.lr_at(static_cast<std::int64_t>(a[1])) == expected.back());
      CHECK(schedule.lr_at(1000000) == expected.back());
    }
  }
}

TEST_CASE("schedule OneCycleLr rises to max_lr, then falls to max_lr / (div * final_div)", "[optim][schedule]") {
  const OneCycleLr schedule(0.5, 100, 0.3, 20.0, 50.0);
  CHECK(schedule.lr_at(0) == Approx(0.5 / 20.0).epsilon(1e-15));
  CHECK(schedule.lr_at(29) == Approx(0.5).epsilon(1e-15));  // the peak: step pct * total - 1
  CHECK(schedule.lr_at(99) == Approx(0.5 / 1000.0).epsilon(1e-15));
  for (std::int64_t s = 1; s <= 29; ++s) CHECK(schedule.lr_at(s) > schedule.lr_at(s - 1));
  for (std::int64_t s = 30; s <= 99; ++s) CHECK(schedule.lr_at(s) < schedule.lr_at(s - 1));
  // A warmup of zero length (PyTorch would divide by zero): step 0 is at the peak.
  const OneCycleLr instant(0.4, 10, 0.1);
  CHECK(instant.lr_at(0) == 0.4);
  CHECK(instant.lr_at(1) < 0.4);
  // One step in all: the final lr (the decay phase is already over).
  CHECK(OneCycleLr(0.4, 1, 0.3).lr_at(0) == Approx(0.4 / 25.0 / 1e4).epsilon(1e-15));
}

TEST_CASE("schedule CosineLr without warmup is torch's CosineAnnealingLR", "[optim][schedule]") {
  const TensorMap fixture = load_fixture("optim_schedules.safetensors");
  const std::vector<double> a = values(fixture, "cosine.args");  // base, total, warmup, min
  const std::vector<double> expected = values(fixture, "cosine.lr");
  const CosineLr schedule(a[0], static_cast<std::int64_t>(a[1]), static_cast<std::int64_t>(a[2]), a[3]);
  CHECK(worst_error(schedule, expected) < 1e-14);
  CHECK(schedule.lr_at(0) == a[0]);
  CHECK(schedule.lr_at(static_cast<std::int64_t>(a[1])) == a[3]);  // min_lr at total_steps and after
  CHECK(schedule.lr_at(static_cast<std::int64_t>(a[1]) + 50) == a[3]);
}

TEST_CASE("schedule CosineLr warms up as base * (s + 1) / warmup, then follows the cosine", "[optim][schedule]") {
  const TensorMap fixture = load_fixture("optim_schedules.safetensors");
  const std::vector<double> a = values(fixture, "cosine_warmup.args");  // base, total, warmup, min
  const std::vector<double> expected = values(fixture, "cosine_warmup.lr");  // LinearLR then CosineAnnealingLR
  const std::int64_t total = static_cast<std::int64_t>(a[1]), warmup = static_cast<std::int64_t>(a[2]);
  const CosineLr schedule(a[0], total, warmup, a[3]);
  CHECK(worst_error(schedule, expected) < 1e-14);
  CHECK(schedule.lr_at(0) == a[0] / static_cast<double>(warmup));  // the first step already trains
  CHECK(schedule.lr_at(warmup - 1) == a[0]);
  CHECK(schedule.lr_at(warmup) == a[0]);
  CHECK(schedule.lr_at(total - 1) > a[3]);
  CHECK(schedule.lr_at(total) == a[3]);
}

TEST_CASE("schedule MultiStepLr and every() are torch's MultiStepLR and StepLR", "[optim][schedule]") {
  const TensorMap fixture = load_fixture("optim_schedules.safetensors");
  const std::vector<double> m = values(fixture, "multistep.args");  // base, gamma, milestones...
  std::vector<std::int64_t> milestones;
  for (std::size_t i = 2; i < m.size(); ++i) milestones.push_back(static_cast<std::int64_t>(m[i]));
  CHECK(worst_error(MultiStepLr(m[0], milestones, m[1]), values(fixture, "multistep.lr")) < 1e-14);
  // Order does not matter; the repeated milestone counts twice either way.
  const std::vector<std::int64_t> shuffled(milestones.rbegin(), milestones.rend());
  CHECK(worst_error(MultiStepLr(m[0], shuffled, m[1]), values(fixture, "multistep.lr")) < 1e-14);

  const std::vector<double> s = values(fixture, "steplr.args");  // base, step_size, total, gamma
  const MultiStepLr step = MultiStepLr::every(s[0], static_cast<std::int64_t>(s[1]), static_cast<std::int64_t>(s[2]), s[3]);
  CHECK(worst_error(step, values(fixture, "steplr.lr")) < 1e-14);

  const MultiStepLr constant(0.3, {});
  CHECK(constant.lr_at(0) == 0.3);
  CHECK(constant.lr_at(12345) == 0.3);
  const MultiStepLr at_zero(1.0, {0, 2}, 0.5);
  CHECK(at_zero.lr_at(0) == 0.5);  // a milestone at 0 applies from the first step
  CHECK(at_zero.lr_at(1) == 0.5);
  CHECK(at_zero.lr_at(2) == 0.25);
}

TEST_CASE("schedule constructors check their arguments, naming the value", "[optim][schedule]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(MultiStepLr(-0.1, {1}), Catch::Contains("MultiStepLr: base_lr must be finite and >= 0, got -0.1"));
  CHECK_THROWS_WITH(MultiStepLr(0.1, {1}, 0.0), Catch::Contains("MultiStepLr: gamma must be finite and > 0, got 0"));
  CHECK_THROWS_WITH(MultiStepLr(0.1, {3, -2}), Catch::Contains("MultiStepLr: milestones must be >= 0, got -2"));
  CHECK_THROWS_WITH(MultiStepLr::every(0.1, 0, 10), Catch::Contains("MultiStepLr::every: step_size must be > 0, got 0"));
  CHECK_THROWS_WITH(MultiStepLr::every(0.1, 3, -1), Catch::Contains("MultiStepLr::every: total_steps must be > 0, got -1"));

  CHECK_THROWS_WITH(CosineLr(nan, 10), Catch::Contains("CosineLr: base_lr must be finite and >= 0, got nan"));
  CHECK_THROWS_WITH(CosineLr(0.1, 0), Catch::Contains("CosineLr: total_steps must be > 0, got 0"));
  CHECK_THROWS_WITH(CosineLr(0.1, 10, 10), Catch::Contains("CosineLr: warmup_steps must be in [0, total_steps = 10), got 10"));
  CHECK_THROWS_WITH(CosineLr(0.1, 10, -1), Catch::Contains("CosineLr: warmup_steps must be in [0, total_steps = 10), got -1"));
  CHECK_THROWS_WITH(CosineLr(0.1, 10, 0, -1e-3), Catch::Contains("CosineLr: min_lr must be finite and >= 0, got -0.001"));
  CHECK_THROWS_WITH(CosineLr(0.1, 10, 0, 0.2), Catch::Contains("CosineLr: min_lr (0.2) must not exceed base_lr (0.1)"));

  CHECK_THROWS_WITH(OneCycleLr(0.0, 10), Catch::Contains("OneCycleLr: max_lr must be finite and > 0, got 0"));
  CHECK_THROWS_WITH(OneCycleLr(0.1, 0), Catch::Contains("OneCycleLr: total_steps must be > 0, got 0"));
  CHECK_THROWS_WITH(OneCycleLr(0.1, 10, 1.5), Catch::Contains("OneCycleLr: pct_start must be in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(OneCycleLr(0.1, 10, nan), Catch::Contains("OneCycleLr: pct_start must be in [0, 1], got nan"));
  CHECK_THROWS_WITH(OneCycleLr(0.1, 10, 0.3, -2.0), Catch::Contains("OneCycleLr: div_factor must be finite and > 0, got -2"));
  CHECK_THROWS_WITH(OneCycleLr(0.1, 10, 0.3, 25.0, 0.0),
                    Catch::Contains("OneCycleLr: final_div_factor must be finite and > 0, got 0"));

  CHECK_THROWS_WITH(MultiStepLr(0.1, {1}).lr_at(-1), Catch::Contains("MultiStepLr: lr_at: step must be >= 0, got -1"));
  CHECK_THROWS_WITH(CosineLr(0.1, 10).lr_at(-4), Catch::Contains("CosineLr: lr_at: step must be >= 0, got -4"));
  CHECK_THROWS_WITH(OneCycleLr(0.1, 10).lr_at(-2), Catch::Contains("OneCycleLr: lr_at: step must be >= 0, got -2"));
}

TEST_CASE("schedule drives an optimizer's lr through set_lr", "[optim][schedule]") {
  manual_seed(41);
  optim::SGD opt(std::vector<Tensor>{randn({4}).requires_grad_()}, optim::SGDOptions(1.0));
  const CosineLr schedule(0.2, 8, 2, 0.01);
  for (std::int64_t s = 0; s < 8; ++s) {
    opt.set_lr(schedule.lr_at(s));
    CHECK(opt.lr() == schedule.lr_at(s));
    opt.step();
  }
  CHECK(opt.lr() > 0.01);
}
