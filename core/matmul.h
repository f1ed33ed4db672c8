// Matrix products (cuBLAS on CUDA), differentiable.
#pragma once

#include "core/tensor.h"

namespace basin {

// a [m, k] @ b [k, n] -> [m, n].
// Batched: a [..., m, k] @ b [..., k, n] -> [..., m, n], where the batch dims
// are equal or broadcast (a [B, m, k] @ b [k, n] applies b to every batch).
// Both inputs need at least 2 dims (unsqueeze a vector into a matrix), the same
// floating dtype and the same device. Transposed and sliced views are read in
// place where their strides allow (no copy). float32 runs in exact FP32 on
// CUDA (no TF32). Zero sizes work: k == 0 gives zeros.
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace basin
