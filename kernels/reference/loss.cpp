// CPU cross-entropy: the reference for kernels/cuda/loss.cu, one row at a time.
// The loss is formed from logits shifted by the row maximum, so a confident
// row (a label logit far above the rest) does not lose its small loss to
// cancellation against a large logsumexp.
#include <cmath>

#include "kernels/dtype_dispatch.h"
#include "kernels/loss.h"

namespace basin::kernels::reference {

namespace {

template <class L>
std::int64_t checked_label(const L* labels, std::int64_t row, std::int64_t classes) {
  const std::int64_t label = static_cast<std::int64_t>(labels[row]);
  BASIN_CHECK(label >= 0 && label < classes, "cross_entropy: label ", label, " in row ", row, " is out of range for ",
              classes, " classes (expected 0 to ", classes - 1, ")");
  return label;
}

}  // namespace

void cross_entropy_forward(const TensorArg& loss, const TensorArg& lse, const TensorArg& logits,
                           const TensorArg& labels, double smoothing) {
  const std::int64_t rows = logits.sizes[0];
  const std::int64_t classes = logits.sizes[1];
  BASIN_DISPATCH_FLOATING(logits.dtype, "cross_entropy", T, [&] {
    BASIN_DISPATCH_INDEX(labels.dtype, "cross_entropy", L, [&] {
      for (std::int64_t n = 0; n < rows; ++n) {
        const std::int64_t label = checked_label(labels.ptr<L>(), n, classes);
        const T* x = logits.ptr<T>() + n * classes;
        T m = -INFINITY;
        for (std::int64_t c = 0; c < classes; ++c) m = x[c] > m ? x[c] : m;
        double s = 0.0;
        double shifted_sum = 0.0;  // sum_c (x[c] - m), needed only with smoothing
        for (std::int64_t c = 0; c < classes; ++c) {
          s += static_cast<double>(std::exp(static_cast<T>(x[c] - m)));
          shifted_sum += static_cast<double>(x[c]) - static_cast<double>(m);
        }
        const double log_s = std::log(s);
        const double shifted_label = static_cast<double>(x[label]) - static_cast<double>(m);
        // Skipping the smoothing term at s = 0 keeps an infinite logit from
        // turning the loss into 0 * inf = NaN, as in PyTorch.
        const double smooth_term = smoothing > 0.0 ? smoothing / static_cast<double>(classes) * shifted_sum : 0.0;
        loss.ptr<T>()[n] = static_cast<T>(log_s - (1.0 - smoothing) * shifted_label - smooth_term);
        lse.ptr<double>()[n] = static_cast<double>(m) + log_s;
      }
    });
  });
}

void cross_entropy_backward(const TensorArg& grad_logits, const TensorArg& grad_loss, double scale,
                            const TensorArg& logits, const TensorArg& lse, const TensorArg& labels, double smoothing) {
  const std::int64_t rows = logits.sizes[0];
  const std::int64_t classes = logits.sizes[1];
  const std::int64_t g_stride = grad_loss.strides[0];
  BASIN_DISPATCH_FLOATING(logits.dtype, "cross_entropy_backward", T, [&] {
    BASIN_DISPATCH_INDEX(labels.dtype, "cross_entropy_backward", L, [&] {
      for (std::int64_t n = 0; n < rows; ++n) {
        const std::int64_t label = checked_label(labels.ptr<L>(), n, classes);
        const T* x = logits.ptr<T>() + n * classes;
        T* gx = grad_logits.ptr<T>() + n * classes;
        const double row_lse = lse.ptr<double>()[n];
        const double g = static_cast<double>(grad_loss.ptr<T>()[n * g_stride]) * scale;
        for (std::int64_t c = 0; c < classes; ++c) {
          const double p = static_cast<double>(std::exp(static_cast<T>(static_cast<double>(x[c]) - row_lse)));
          const double q = (c == label ? 1.0 - smoothing : 0.0) + smoothing / static_cast<double>(classes);
          gx[c] = static_cast<T>(g * (p - q));
        }
      }
    });
  });
}

}  // namespace basin::kernels::reference
