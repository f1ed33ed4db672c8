// Matrix products: check the shapes, describe each operand to the GEMM kernel
// without copying where its strides allow, run it, record the backward.
//
//   forward    C  = A @ B
//   backward   dA = dC @ B^T      dB = A^T @ dC
//
// B^T and A^T are transposed views, which the kernel reads as column-major
// operands (a cuBLAS transpose flag), so the backward copies nothing to
// transpose. Where a batch dim was broadcast, the gradient is summed back to
// the input's shape.
#include "core/matmul.h"

#include <algorithm>
#include <optional>
#include <string>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/reduce.h"
#include "kernels/matmul.h"

namespace basin {

namespace {

Shape batch_dims(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

Shape with_matrix(Shape batch, std::int64_t rows, std::int64_t cols) {
  batch.push_back(rows);
  batch.push_back(cols);
  return batch;
}

Tensor transpose_matrix(const Tensor& t) { return t.transpose(-1, -2); }

// [..., rows, cols] as one tall [prod(...) * rows, cols] matrix (a view when the
// strides allow). Sizes are spelled out because -1 cannot be inferred when cols is 0.
Tensor stack_rows(const Tensor& t) { return t.reshape({shape_numel(batch_dims(t)) * t.size(-2), t.size(-1)}); }

// t, [batch..., rows, cols], as a GEMM operand; nothing when its strides fit
// neither BLAS layout or its batch dims do not collapse to a single stride.
std::optional<kernels::GemmOperand> describe(const Tensor& t) {
  const Shape& size = t.shape();
  const Strides& stride = t.strides();
  const std::int64_t nd = t.dim();
  const std::int64_t rows = size[nd - 2];
  const std::int64_t cols = size[nd - 1];
  kernels::GemmOperand op;
  op.data = t.data_ptr();
  if (rows == 0 || cols == 0) return op;  // the kernel reads nothing

  // Batch dims, innermost first: each non-trivial dim must step exactly over
  // the span of the ones inside it. Broadcast dims (stride 0) collapse too,
  // as long as they are all broadcast.
  std::int64_t span = -1;
  for (std::int64_t d = nd - 3; d >= 0; --d) {
    if (size[d] == 1) continue;  // the stride of a size-1 dim never matters
    if (span < 0) {
      op.batch_stride = stride[d];
    } else if (stride[d] != span) {
      return std::nullopt;
    }
    span = stride[d] * size[d];
  }

  // The matrix: unit steps along a row (row-major) or a column (column-major),
  // rows or columns apart by at least their length. A size-1 dim's stride is free.
  const std::int64_t rs = stride[nd - 2];
  const std::int64_t cs = stride[nd - 1];
  if ((cols == 1 || cs == 1) && (rows == 1 || rs >= cols)) {
    op.column_major = false;
    op.ld = rows == 1 ? cols : rs;
    return op;
  }
  if ((rows == 1 || rs == 1) && (cols == 1 || cs >= rows)) {
    op.column_major = true;
    op.ld = cols == 1 ? rows : cs;
    return op;
  }
  return std::nullopt;
}

// The operand the kernel will read: t itself when its strides fit, else a
// contiguous copy, which always fits (t is replaced so the copy stays alive).
kernels::GemmOperand gemm_operand(Tensor& t) {
  if (auto op = describe(t)) return *op;
  t = t.contiguous();
  const auto op = describe(t);
  BASIN_CHECK(op.has_value(), "matmul: no GEMM layout for a contiguous ", shape_str(t.shape()));
  return *op;
}

// a [..., m, k] @ b [..., k, n] on checked, detached inputs; not recorded.
Tensor product(const Tensor& a, const Tensor& b) {
  const std::int64_t m = a.size(-2);
  const std::int64_t k = a.size(-1);
  const std::int64_t n = b.size(-1);

  // A contiguous batch times one matrix (a Linear layer on [batch, tokens,
  // features]) is a single 2-D GEMM over all the rows of a: fewer, larger
  // cuBLAS calls, and no broadcast batch for b.
  if (b.dim() == 2 && a.dim() > 2 && a.is_contiguous()) {
    Shape out_shape = a.shape();
    out_shape.back() = n;
    return product(stack_rows(a), b).view(out_shape);
  }

  const Shape batch = broadcast_shapes(batch_dims(a), batch_dims(b), "matmul");
  Tensor out = empty(with_matrix(batch, m, n), TensorOptions(a.dtype()).device(a.device()));
  if (out.numel() == 0) return out;

  Tensor a_wide = a.expand(with_matrix(batch, m, k));
  Tensor b_wide = b.expand(with_matrix(batch, k, n));
  const kernels::GemmOperand op_a = gemm_operand(a_wide);
  const kernels::GemmOperand op_b = gemm_operand(b_wide);
  const kernels::GemmShape shape{shape_numel(batch), m, n, k};
  BASIN_RUN_KERNEL(a.device(), gemm, a.dtype(), shape, out.data_ptr(), op_a, op_b);
  return out;
}

void check_inputs(const Tensor& a, const Tensor& b) {
  BASIN_CHECK(a.defined() && b.defined(), "matmul: an input is undefined");
  check_same_device("matmul", {&a, &b});
  check_same_floating_dtype("matmul", {&a, &b});
  const std::string sa = shape_str(a.shape());
  const std::string sb = shape_str(b.shape());
  BASIN_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: a is ", sa, " and b is ", sb,
              "; both need at least 2 dims ([..., m, k] @ [..., k, n]); unsqueeze a vector to a matrix first");
  BASIN_CHECK(a.size(-1) == b.size(-2), "matmul: a is ", sa, " but b is ", sb, " (a has ", a.size(-1),
              " columns, b has ", b.size(-2), " rows)");
  const Shape ba = batch_dims(a);
  const Shape bb = batch_dims(b);
  for (std::size_t i = 1; i <= std::min(ba.size(), bb.size()); ++i) {
    const std::int64_t x = ba[ba.size() - i];
    const std::int64_t y = bb[bb.size() - i];
    BASIN_CHECK(x == y || x == 1 || y == 1, "matmul: a is ", sa, " but b is ", sb, ": batch dims ", shape_str(ba),
                " and ", shape_str(bb), " cannot be broadcast");
  }
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_inputs(a, b);
  Tensor out = product(a.detach(), b.detach());
  // dA needs only B and dB needs only A: keep each only if the other side may want a gradient.
  const Tensor a_saved = b.requires_grad() ? a.detach() : Tensor();
  const Tensor b_saved = a.requires_grad() ? b.detach() : Tensor();
  return record("matmul", out, {a, b},
                [a_ = a_saved, b_ = b_saved, a_shape = a.shape(), b_shape = b.shape()](const Tensor& g,
                                                                                        const GradNeeds& needs) {
                  Tensor grad_a, grad_b;
                  if (needs[0]) grad_a = sum_to(product(g, transpose_matrix(b_)), a_shape);
                  if (needs[1]) {
                    if (b_shape.size() == 2 && a_.dim() > 2) {
                      // One B for the whole batch: dB = sum over the batch of A^T dC, which is
                      // one GEMM over the stacked rows, without a [batch, k, n] intermediate.
                      grad_b = product(transpose_matrix(stack_rows(a_)), stack_rows(g));
                    } else {
                      grad_b = sum_to(product(transpose_matrix(a_), g), b_shape);
                    }
                  }
                  return TensorList{grad_a, grad_b};
                });
}

}  // namespace basin
