// Gradient clipping by the global L2 norm over all gradients, as
// torch.nn.utils.clip_grad_norm_: with n the norm of all gradients taken as
// one vector, every gradient is multiplied by min(1, max_norm / (n + eps)).
// Returns n (before clipping) as a 0-dim float64 tensor on the parameters'
// device; the scaling happens on the device too, so clipping does not
// synchronize the host.
//
// The arena version reads the whole gradient buffer with the deterministic
// norm kernel of the SAM step (kernels/optim.h sam_norm); the list version
// sums per-tensor squares with core ops. A non-finite norm is returned as it
// is and the factor becomes 0: finite gradients are zeroed, NaN and inf ones
// become NaN (PyTorch makes every gradient NaN when the norm is NaN).
#pragma once

#include "core/tensor.h"
#include "optim/arena.h"

namespace basin::optim {

// max_norm must be positive and finite, eps >= 0. When the arena no longer
// views its parameters (see ParameterArena::is_bound) the tensors' current
// gradients are clipped through the list version instead.
Tensor clip_grad_norm_(ParameterArena& arena, double max_norm, double eps = 1e-6);
// Parameters without a gradient are skipped; with none at all the norm is 0.
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double eps = 1e-6);

}  // namespace basin::optim
