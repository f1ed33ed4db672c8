// Cross-entropy: checks, the fused per-row kernel, the reduction, and one node
// whose backward is the fused gradient kernel.
#include "core/loss.h"

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/reduce.h"
#include "kernels/loss.h"

namespace basin {

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, double label_smoothing, Reduction reduction) {
  const char* op = "cross_entropy";
  BASIN_CHECK(logits.dim() == 2, op, ": logits must be 2-D [N, C], got shape ", shape_str(logits.shape()));
  check_same_floating_dtype(op, {&logits});
  BASIN_CHECK(labels.dtype() == kInt32 || labels.dtype() == kInt64, op, ": labels must be int32 or int64, got ",
              dtype_name(labels.dtype()));
  const std::int64_t rows = logits.shape()[0];
  const std::int64_t classes = logits.shape()[1];
  BASIN_CHECK(labels.dim() == 1 && labels.shape()[0] == rows, op, ": labels must be 1-D of length ", rows,
              " to match logits ", shape_str(logits.shape()), ", got shape ", shape_str(labels.shape()));
  BASIN_CHECK(classes > 0, op, ": logits ", shape_str(logits.shape()), " have no classes");
  // Written so that NaN fails too.
  BASIN_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, op, ": label_smoothing must be in [0, 1], got ",
              label_smoothing);
  BASIN_CHECK(reduction != Reduction::Mean || rows > 0, op, ": the mean over an empty batch is undefined");
  check_same_device(op, {&logits, &labels});

  const Tensor x = logits.detach().contiguous();
  const Tensor y = labels.detach().contiguous();
  Tensor losses = empty({rows}, TensorOptions(x.dtype()).device(x.device()));
  Tensor lse = empty({rows}, TensorOptions(kFloat64).device(x.device()));
  BASIN_RUN_KERNEL(x.device(), cross_entropy_forward, arg(losses), arg(lse), arg(x), arg(y), label_smoothing);

  Tensor out = losses;
  if (reduction == Reduction::Sum) out = sum(losses);
  if (reduction == Reduction::Mean) out = mean(losses);

  const double scale = reduction == Reduction::Mean ? 1.0 / static_cast<double>(rows) : 1.0;
  return record(op, out, {logits}, [x, y, lse, label_smoothing, scale, rows](const Tensor& g, const GradNeeds&) {
    // A scalar upstream gradient (mean, sum) is spread over the rows by a
    // stride-0 view: no copy, and no read of its value on the host.
    const Tensor g_rows = g.dim() == 0 ? g.reshape({1}).expand({rows}) : g;
    Tensor gx = empty_like(x);
    BASIN_RUN_KERNEL(x.device(), cross_entropy_backward, arg(gx), arg(g_rows), scale, arg(x), arg(lse), arg(y),
                     label_smoothing);
    return TensorList{gx};
  });
}

}  // namespace basin
