// Learning-rate schedules as closed forms of the step. PyTorch's schedulers
// update the lr recursively (lr *= gamma at each milestone...), which agrees
// with these to rounding; the OneCycle phases are PyTorch's, end points included.
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace basin::optim {

namespace {

void check_lr(const char* schedule, const char* what, double lr) {
  BASIN_CHECK(std::isfinite(lr) && lr >= 0.0, schedule, ": ", what, " must be finite and >= 0, got ", lr);
}

void check_step(const char* schedule, std::int64_t step) {
  BASIN_CHECK(step >= 0, schedule, ": lr_at: step must be >= 0, got ", step);
}

// From `start` (pct 0) to `end` (pct 1) along half a cosine, written as
// PyTorch's OneCycleLR writes it (the order of operations fixes the rounding).
double cosine_anneal(double start, double end, double pct) {
  return end + (start - end) / 2.0 * (std::cos(std::numbers::pi * pct) + 1.0);
}

}  // namespace

// ---------------------------------------------------------------- MultiStepLr

MultiStepLr::MultiStepLr(double base_lr, std::vector<std::int64_t> milestones, double gamma)
    : base_lr_(base_lr), milestones_(std::move(milestones)), gamma_(gamma) {
  check_lr("MultiStepLr", "base_lr", base_lr);
  BASIN_CHECK(std::isfinite(gamma) && gamma > 0.0, "MultiStepLr: gamma must be finite and > 0, got ", gamma);
  for (std::int64_t m : milestones_) BASIN_CHECK(m >= 0, "MultiStepLr: milestones must be >= 0, got ", m);
  std::sort(milestones_.begin(), milestones_.end());
}

MultiStepLr MultiStepLr::every(double base_lr, std::int64_t step_size, std::int64_t total_steps, double gamma) {
  BASIN_CHECK(step_size > 0, "MultiStepLr::every: step_size must be > 0, got ", step_size);
  BASIN_CHECK(total_steps > 0, "MultiStepLr::every: total_steps must be > 0, got ", total_steps);
  std::vector<std::int64_t> milestones;
  for (std::int64_t m = step_size; m < total_steps; m += step_size) milestones.push_back(m);
  return MultiStepLr(base_lr, std::move(milestones), gamma);
}

double MultiStepLr::lr_at(std::int64_t step) const {
  check_step("MultiStepLr", step);
  const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), step) - milestones_.begin();
  return base_lr_ * std::pow(gamma_, static_cast<double>(passed));
}

// ---------------------------------------------------------------- CosineLr

CosineLr::CosineLr(double base_lr, std::int64_t total_steps, std::int64_t warmup_steps, double min_lr)
    : base_lr_(base_lr), min_lr_(min_lr), total_steps_(total_steps), warmup_steps_(warmup_steps) {
  check_lr("CosineLr", "base_lr", base_lr);
  check_lr("CosineLr", "min_lr", min_lr);
  BASIN_CHECK(min_lr <= base_lr, "CosineLr: min_lr (", min_lr, ") must not exceed base_lr (", base_lr, ")");
  BASIN_CHECK(total_steps > 0, "CosineLr: total_steps must be > 0, got ", total_steps);
  BASIN_CHECK(warmup_steps >= 0 && warmup_steps < total_steps, "CosineLr: warmup_steps must be in [0, total_steps = ",
              total_steps, "), got ", warmup_steps);
}

double CosineLr::lr_at(std::int64_t step) const {
  check_step("CosineLr", step);
  if (step < warmup_steps_) {
    return base_lr_ * static_cast<double>(step + 1) / static_cast<double>(warmup_steps_);
  }
  if (step >= total_steps_) return min_lr_;
  const double pct =
      static_cast<double>(step - warmup_steps_) / static_cast<double>(total_steps_ - warmup_steps_);
  // CosineAnnealingLR's closed form, operation for operation.
  return min_lr_ + (base_lr_ - min_lr_) * (1.0 + std::cos(std::numbers::pi * pct)) / 2.0;
}

// ---------------------------------------------------------------- OneCycleLr

OneCycleLr::OneCycleLr(double max_lr, std::int64_t total_steps, double pct_start, double div_factor,
                       double final_div_factor)
    : max_lr_(max_lr), total_steps_(total_steps) {
  BASIN_CHECK(std::isfinite(max_lr) && max_lr > 0.0, "OneCycleLr: max_lr must be finite and > 0, got ", max_lr);
  BASIN_CHECK(total_steps > 0, "OneCycleLr: total_steps must be > 0, got ", total_steps);
  BASIN_CHECK(pct_start >= 0.0 && pct_start <= 1.0, "OneCycleLr: pct_start must be in [0, 1], got ", pct_start);
  BASIN_CHECK(std::isfinite(div_factor) && div_factor > 0.0, "OneCycleLr: div_factor must be finite and > 0, got ",
              div_factor);
  BASIN_CHECK(std::isfinite(final_div_factor) && final_div_factor > 0.0,
              "OneCycleLr: final_div_factor must be finite and > 0, got ", final_div_factor);
  // The same operations in the same order as PyTorch, so the values agree to the bit.
  initial_lr_ = max_lr / div_factor;
  final_lr_ = initial_lr_ / final_div_factor;
  peak_step_ = pct_start * static_cast<double>(total_steps) - 1.0;
}

double OneCycleLr::lr_at(std::int64_t step) const {
  check_step("OneCycleLr", step);
  // PyTorch computes one value past the end (step == total_steps) by running
  // the cosine beyond pi; here the value of the last step holds instead.
  const double end_step = static_cast<double>(total_steps_ - 1);
  const double s = static_cast<double>(std::min(step, total_steps_ - 1));
  if (s <= peak_step_) {
    // A warmup of zero length (peak_step_ == 0) is over at once.
    if (peak_step_ <= 0.0) return max_lr_;
    return cosine_anneal(initial_lr_, max_lr_, s / peak_step_);
  }
  return cosine_anneal(max_lr_, final_lr_, (s - peak_step_) / (end_step - peak_step_));
}

}  // namespace basin::optim
