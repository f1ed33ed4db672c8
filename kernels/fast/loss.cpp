// CPU engine cross-entropy (kernels/loss.h states what it computes): rows are
// independent, so they are split across threads.
//
// The forward computes in float32, as PyTorch's CPU kernels do: each row's
// max and sums run in lanes (lane_max, lane_sum in kernels/fast/lanes.h), an
// order fixed by the number of classes, so results repeat bit for bit on any
// thread count. lse is still written as float64 (the backward's contract).
// The backward is elementwise; it forms x - lse in float64 before the
// float32 exp, because with large logits a float32 subtraction would lose the
// small differences that decide a confident row's probabilities.
//
// Labels are checked on the calling thread before any work: an exception
// cannot leave an OpenMP loop, and a bad label then throws the reference's
// error (the first bad row) with no output written. Anything but contiguous
// float32 logits runs the reference.
#include <algorithm>
#include <cmath>

#include "kernels/dtype_dispatch.h"
#include "kernels/fast/lanes.h"
#include "kernels/fast/parallel.h"
#include "kernels/loss.h"
#include "kernels/reduce.h"

namespace basin::kernels::fast {

namespace {

// float32 logits, and every tensor but the upstream gradient contiguous.
bool engine_takes(const TensorArg& logits, std::initializer_list<const TensorArg*> others) {
  if (logits.dtype != DType::Float32 || !logits.contiguous) return false;
  for (const TensorArg* arg : others) {
    if (!arg->contiguous) return false;
  }
  return true;
}

// Throws the reference's error for the first label outside [0, classes).
template <class L>
void check_labels(const L* labels, std::int64_t rows, std::int64_t classes) {
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t label = static_cast<std::int64_t>(labels[row]);
    BASIN_CHECK(label >= 0 && label < classes, "cross_entropy: label ", label, " in row ", row,
                " is out of range for ", classes, " classes (expected 0 to ", classes - 1, ")");
  }
}

// Rows per thread: a row costs an exp per class, several times a memory pass.
std::int64_t grain_for(std::int64_t classes) {
  return std::max<std::int64_t>(1, kMinPerThread / 4 / std::max<std::int64_t>(classes, 1));
}

}  // namespace

void cross_entropy_forward(const TensorArg& loss, const TensorArg& lse, const TensorArg& logits,
                           const TensorArg& labels, double smoothing) {
  if (!engine_takes(logits, {&loss, &lse, &labels})) {
    reference::cross_entropy_forward(loss, lse, logits, labels, smoothing);
    return;
  }
  const std::int64_t rows = logits.sizes[0];
  const std::int64_t classes = logits.sizes[1];
  const float keep = static_cast<float>(1.0 - smoothing);
  const float spread = static_cast<float>(smoothing / static_cast<double>(classes));
  BASIN_DISPATCH_INDEX(labels.dtype, "cross_entropy", L, [&] {
    const L* y = labels.ptr<L>();
    check_labels(y, rows, classes);
    parallel_for(
        rows,
        [&](std::int64_t begin, std::int64_t end) {
          for (std::int64_t n = begin; n < end; ++n) {
            const float* x = logits.ptr<float>() + n * classes;
            // Shifted by the row maximum, so that no exp overflows and a
            // confident row's small loss is not lost against a large logsumexp.
            const float m = lane_max(classes, [x](std::int64_t c) { return x[c]; });
            const float log_s = std::log(lane_sum(classes, [x, m](std::int64_t c) { return std::exp(x[c] - m); }));
            // The smoothing term is skipped at s = 0, so an infinite logit
            // cannot make it 0 * inf = NaN, as in PyTorch.
            const float smooth_term =
                smoothing > 0.0 ? spread * lane_sum(classes, [x, m](std::int64_t c) { return x[c] - m; }) : 0.0f;
            loss.ptr<float>()[n] = log_s - keep * (x[static_cast<std::int64_t>(y[n])] - m) - smooth_term;
            lse.ptr<double>()[n] = static_cast<double>(m) + static_cast<double>(log_s);
          }
        },
        grain_for(classes));
  });
}

void cross_entropy_backward(const TensorArg& grad_logits, const TensorArg& grad_loss, double scale,
                            const TensorArg& logits, const TensorArg& lse, const TensorArg& labels, double smoothing) {
  // grad_loss is read through its stride (a mean's gradient arrives expanded, stride 0).
  if (!engine_takes(logits, {&grad_logits, &lse, &labels})) {
    reference::cross_entropy_backward(grad_logits, grad_loss, scale, logits, lse, labels, smoothing);
    return;
  }
  const std::int64_t rows = logits.sizes[0];
  const std::int64_t classes = logits.sizes[1];
  const std::int64_t g_stride = grad_loss.strides[0];
  // The target q: spread on every class, plus 1 - smoothing on the label.
  const float q_other = static_cast<float>(smoothing / static_cast<double>(classes));
  const float q_label = static_cast<float>(1.0 - smoothing + smoothing / static_cast<double>(classes));
  BASIN_DISPATCH_INDEX(labels.dtype, "cross_entropy_backward", L, [&] {
    const L* y = labels.ptr<L>();
    check_labels(y, rows, classes);
    parallel_for(
        rows,
        [&](std::int64_t begin, std::int64_t end) {
          for (std::int64_t n = begin; n < end; ++n) {
            const float* x = logits.ptr<float>() + n * classes;
            float* gx = grad_logits.ptr<float>() + n * classes;
            const double row_lse = lse.ptr<double>()[n];
            const float g = static_cast<float>(static_cast<double>(grad_loss.ptr<float>()[n * g_stride]) * scale);
            const auto p = [&](std::int64_t c) {
              return std::exp(static_cast<float>(static_cast<double>(x[c]) - row_lse));
            };
            for (std::int64_t c = 0; c < classes; ++c) gx[c] = g * (p(c) - q_other);
            const std::int64_t label = static_cast<std::int64_t>(y[n]);
            gx[label] = g * (p(label) - q_label);
          }
        },
        grain_for(classes));
  });
}

}  // namespace basin::kernels::fast
