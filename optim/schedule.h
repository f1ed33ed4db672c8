// Learning-rate schedules: a function of the step (or epoch) that an
// optimizer's lr is set from. Stateless, so resuming needs only the counter.
// Constructors validate their arguments; lr_at() of a negative step throws,
// and past the end of a finite schedule the last value holds.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace basin::optim {

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  // The learning rate at `step` (0-based).
  virtual double lr_at(std::int64_t step) const = 0;
};

// base_lr * gamma^(number of milestones <= step), as PyTorch's MultiStepLR
// (milestones in any order; a repeated one counts twice). every() is StepLR:
// milestones at step_size, 2 * step_size, ... below total_steps.
class MultiStepLr : public LrSchedule {
 public:
  MultiStepLr(double base_lr, std::vector<std::int64_t> milestones, double gamma = 0.1);
  static MultiStepLr every(double base_lr, std::int64_t step_size, std::int64_t total_steps, double gamma = 0.1);
  double lr_at(std::int64_t step) const override;

 private:
  double base_lr_;
  std::vector<std::int64_t> milestones_;
  double gamma_;
};

// Linear warmup to base_lr over `warmup_steps`, then a cosine from base_lr
// down to min_lr at `total_steps`:
//   s <  warmup:  base_lr * (s + 1) / warmup
//   s >= warmup:  min_lr + (base_lr - min_lr) * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2
// so the first step already trains (base_lr / warmup), the warmup's last step
// uses base_lr and so does the first cosine step. Without warmup this is
// PyTorch's CosineAnnealingLR(T_max = total_steps, eta_min = min_lr); past
// total_steps it stays at min_lr.
class CosineLr : public LrSchedule {
 public:
  CosineLr(double base_lr, std::int64_t total_steps, std::int64_t warmup_steps = 0, double min_lr = 0.0);
  double lr_at(std::int64_t step) const override;

 private:
  double base_lr_, min_lr_;
  std::int64_t total_steps_, warmup_steps_;
};

// One-cycle (Smith & Topin), PyTorch's OneCycleLR(anneal_strategy='cos',
// three_phase=False), value for value: from max_lr / div_factor up to max_lr
// at step pct_start * total_steps - 1 (not necessarily an integer), then down
// to max_lr / (div_factor * final_div_factor) at step total_steps - 1, where
// it stays. Where the warmup has zero length (pct_start * total_steps == 1)
// PyTorch divides by zero; here step 0 is then at max_lr.
class OneCycleLr : public LrSchedule {
 public:
  OneCycleLr(double max_lr, std::int64_t total_steps, double pct_start = 0.3, double div_factor = 25.0,
             double final_div_factor = 1e4);
  double lr_at(std::int64_t step) const override;

 private:
  double max_lr_, initial_lr_, final_lr_;
  std::int64_t total_steps_;
  double peak_step_;  // pct_start * total_steps - 1, as PyTorch computes it
};

}  // namespace basin::optim
