// Sharpness as SAM and ASAM define it.
//
// SAM (Foret et al. 2020, eq. 1) calls
//
//   S_rho(w) = max over ||e||_2 <= rho of L(w + e) - L(w)
//
// the sharpness of L at w and minimizes L + S. ASAM (Kwon et al. 2021)
// measures the neighbourhood in the weights' own scale, max over
// ||T^-1 e||_2 <= rho with T = diag(|w| + eta) (ASAM's convention: "weight"
// tensors only, T = 1 elsewhere; optim/sam.h), which makes it invariant to
// rescaling a layer.
//
// The maximum is estimated by K steps of projected, normalized gradient
// ascent in u = T^-1 e (T = 1 for SAM), from u = 0:
//
//   u <- project onto ||u|| <= rho of ( u + rho * T g / ||T g|| ),   g = grad L(w + T u),
//
// K times, and the estimate is the largest L(w + T u) - L(w) over the K
// iterates. With K = 1 the single step is e = rho * T^2 g / ||T g||: SAM's
// (ASAM's) own first-order estimate, the perturbation its training step uses.
// Later steps are as long as the first: on the sphere, u + rho * (unit
// gradient) bisects the angle between u and the gradient, so the iterates
// turn towards the point where the gradient is normal to the sphere, which
// is where the maximum over the ball lies. Taking the best iterate makes the
// estimate a lower bound of the maximum that never falls as K grows.
//
// m-sharpness (Foret et al., section 4.1) is the same maximum taken on each
// group of m examples separately and averaged over the groups: it is what a
// SAM step with m examples per device actually minimizes, and the paper finds
// that smaller m correlates better with generalization.
#pragma once

#include <cstdint>
#include <vector>

#include "analysis/objective.h"
#include "optim/sam.h"

namespace basin::analysis {

struct SharpnessOptions {
  BASIN_OPTION(double, rho) = 0.05;
  BASIN_OPTION(std::int64_t, ascent_steps) = 1;  // K
  BASIN_OPTION(bool, adaptive) = false;          // ASAM's neighbourhood
  BASIN_OPTION(double, eta) = 0.01;              // ASAM, scope WeightsOnly
  BASIN_OPTION(optim::AsamScope, scope) = optim::AsamScope::WeightsOnly;
  BASIN_OPTION(double, eps) = 1e-12;             // in alpha / (||T g|| + eps), as in SAM
};

struct SharpnessEstimate {
  double sharpness = 0;       // max over the iterates of L(w + e) - L(w)
  double loss = 0;            // L(w)
  double perturbed_loss = 0;  // L(w + e) at the best iterate
  double perturbation_norm = 0;  // ||e|| at the best iterate
  double scaled_norm = 0;        // ||T^-1 e|| (= perturbation_norm for SAM)
  std::int64_t best_step = 0;    // 1-based
  std::vector<double> step_sharpness;  // L(w + e_k) - L(w) for k = 1..K
};

// The weights are left as they were.
SharpnessEstimate sharpness(const Objective& objective, const SharpnessOptions& options = {},
                            const ProgressFn& progress = nullptr);

struct MSharpnessEstimate {
  std::int64_t m = 0;
  double mean = 0;            // over the groups
  double standard_error = 0;  // over the groups; 0 for one group
  std::vector<double> groups;  // the sharpness of each group of m examples, in order
};

// The objective's examples in consecutive groups of m (a last, smaller group
// is left out, so every term measures m examples); m must be at most the
// number of examples.
MSharpnessEstimate m_sharpness(const Objective& objective, std::int64_t m, const SharpnessOptions& options = {},
                               const ProgressFn& progress = nullptr);

}  // namespace basin::analysis
