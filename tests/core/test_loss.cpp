// cross_entropy with label smoothing: values, PyTorch fixtures, NaN for bad
// labels on CUDA, errors, and one table of cases (support/op_table.h) driving
// the finite-difference gradients and the CUDA-vs-CPU parity of the op and of
// its kernels.
#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/elementwise.h"
#include "core/loss.h"
#include "core/random.h"
#include "kernels/loss.h"
#include "support/compare.h"
#include "support/cpu_threads.h"
#include "support/cuda.h"
#include "support/fixtures.h"
#include "support/op_table.h"

using namespace basin;
using basin::testing::BadInput;
using basin::testing::OpCase;
using basin::testing::Outputs;
using basin::testing::Runs;
using basin::testing::fixture_tensor;
using basin::testing::indices;
using basin::testing::input;
using basin::testing::input_no_grad;
using basin::testing::normal;
using basin::testing::relative;
using basin::testing::relative_error;

namespace {

const std::vector<std::pair<const char*, Reduction>> kReductions = {
    {"mean", Reduction::Mean}, {"sum", Reduction::Sum}, {"none", Reduction::None}};

// Labels in [0, classes) drawn from the default generator.
Tensor random_labels(std::int64_t rows, std::int64_t classes, DType dtype) {
  const std::vector<double> u = rand({rows}, kFloat64).to_vector<double>();
  std::vector<std::int64_t> labels;
  for (double v : u) labels.push_back(std::min<std::int64_t>(static_cast<std::int64_t>(v * classes), classes - 1));
  return from_vector<std::int64_t>(labels, {rows}).to(dtype);
}

}  // namespace

TEST_CASE("cross_entropy gives the right values", "[cross_entropy]") {
  const Tensor logits = from_vector<double>({1, 2, 3, -1, 0, 4}, {2, 3});
  const Tensor labels = from_vector<std::int64_t>({2, 0}, {2});
  const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  const double lse1 = std::log(std::exp(-1.0) + std::exp(0.0) + std::exp(4.0));
  const std::vector<double> plain = cross_entropy(logits, labels, 0.0, Reduction::None).to_vector<double>();
  CHECK(plain[0] == Approx(lse0 - 3.0).epsilon(1e-14));
  CHECK(plain[1] == Approx(lse1 + 1.0).epsilon(1e-14));
  // Smoothing s = 0.3: the target puts 0.7 + 0.1 on the label and 0.1 on the others.
  const double smoothed0 = lse0 - (0.8 * 3.0 + 0.1 * 1.0 + 0.1 * 2.0);
  const double smoothed1 = lse1 - (0.8 * -1.0 + 0.1 * 0.0 + 0.1 * 4.0);
  CHECK(cross_entropy(logits, labels, 0.3, Reduction::Sum).item() == Approx(smoothed0 + smoothed1).epsilon(1e-14));
  CHECK(cross_entropy(logits, labels, 0.3).item() == Approx((smoothed0 + smoothed1) / 2).epsilon(1e-14));
  CHECK(cross_entropy(logits, labels.to(kInt32), 0.3).item() == Approx((smoothed0 + smoothed1) / 2).epsilon(1e-14));
  CHECK(cross_entropy(logits, labels).dim() == 0);
  CHECK(cross_entropy(logits, labels, 0.0, Reduction::None).shape() == Shape{2});

  // The gradient of the mean is (softmax - target) / N.
  Tensor x = logits.clone().requires_grad_();
  cross_entropy(x, labels, 0.3).backward();
  const std::vector<double> gx = x.grad().to_vector<double>();
  CHECK(gx[2] == Approx((std::exp(3.0 - lse0) - 0.8) / 2).epsilon(1e-14));
  CHECK(gx[4] == Approx((std::exp(0.0 - lse1) - 0.1) / 2).epsilon(1e-14));
}

TEST_CASE("cross_entropy stays finite and exact for large logits", "[cross_entropy]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO(dtype_name(dtype));
    const Tensor logits = from_vector<double>({1000, 0, -1000, -1000, 0, 1000}, {2, 3}, dtype);
    const Tensor labels = from_vector<std::int64_t>({0, 0}, {2});
    const std::vector<double> loss = cross_entropy(logits, labels, 0.0, Reduction::None).to_vector<double>();
    CHECK(loss[0] == 0.0);
    CHECK(loss[1] == 2000.0);
    Tensor x = logits.clone().requires_grad_();
    cross_entropy(x, labels, 0.1, Reduction::Sum).backward();
    CHECK(testing::all_finite(x.grad()));
  }
}

TEST_CASE("cross_entropy CPU kernels write every output element", "[cross_entropy]") {
  manual_seed(50);
  const Tensor logits = randn({9, 13}, kFloat64);
  const Tensor labels = random_labels(9, 13, kInt64);
  Tensor loss = full({9}, NAN, kFloat64);
  Tensor lse = full({9}, NAN, kFloat64);
  kernels::reference::cross_entropy_forward(arg(loss), arg(lse), arg(logits), arg(labels), 0.1);
  CHECK(testing::all_finite(loss));
  CHECK(testing::all_finite(lse));
  Tensor gx = full({9, 13}, NAN, kFloat64);
  kernels::reference::cross_entropy_backward(arg(gx), arg(randn({9}, kFloat64)), 1.0, arg(logits), arg(lse), arg(labels),
                                       0.1);
  CHECK(testing::all_finite(gx));
}

TEST_CASE("cross_entropy matches PyTorch", "[cross_entropy][fixture]") {
  const TensorMap fixture = testing::load_fixture("core_softmax_ce.safetensors");
  const Tensor logits = fixture_tensor(fixture, "logits");
  const Tensor labels = fixture_tensor(fixture, "labels");
  REQUIRE(labels.dtype() == kInt64);
  for (const char* smoothing_name : {"0.0", "0.1"}) {
    const double smoothing = std::stod(smoothing_name);
    const std::string prefix = std::string("ce_ls") + smoothing_name + "_";
    for (DType dtype : {kFloat64, kFloat32}) {
      const double tolerance = dtype == kFloat64 ? 1e-12 : 1e-5;
      for (DType label_dtype : {kInt64, kInt32}) {
        for (const auto& [name, reduction] : kReductions) {
          INFO("smoothing " << smoothing << " " << dtype_name(dtype) << " labels " << dtype_name(label_dtype) << " "
                            << name);
          const Tensor expected = fixture_tensor(fixture, prefix + name);
          const Tensor got = cross_entropy(logits.to(dtype), labels.to(label_dtype), smoothing, reduction);
          REQUIRE(got.shape() == expected.shape());
          CHECK(relative_error(got, expected) <= tolerance);
        }
        INFO("gradient of the mean");
        Tensor x = logits.to(dtype).detach().requires_grad_();
        cross_entropy(x, labels.to(label_dtype), smoothing).backward();
        CHECK(relative_error(x.grad(), fixture_tensor(fixture, prefix + "grad_mean")) <= tolerance);
      }
    }
  }
}

namespace {

// The cross-entropy kernels on CUDA against the CPU kernels, called directly on
// NaN-poisoned outputs, for one (rows, classes) problem: the forward (loss and
// logsumexp), then both backward forms from the same saved logsumexp (the CPU
// kernel's), with a per-row upstream gradient and with a scalar one expanded
// to stride 0 (mean). In float32 the exponentials are float (CUDA's expf and
// the host's differ by an ulp or two), so even the float64 logsumexp agrees
// only to the element type's accuracy.
OpCase kernel_case(std::int64_t rows, std::int64_t classes, DType label_dtype, double smoothing,
                   std::vector<DType> dtypes = {kFloat32, kFloat64}) {
  std::ostringstream name;
  name << "kernels N " << rows << " C " << classes << " " << dtype_name(label_dtype) << " labels smoothing "
       << smoothing;
  return {.name = name.str(),
          .fn = [smoothing](const auto& x) -> Outputs {
            const Tensor& logits = x[0];
            const Tensor& labels = x[1];
            const Tensor& per_row = x[2];
            const std::int64_t n = logits.size(0);
            const Device device = logits.device();
            const TensorOptions options = TensorOptions(logits.dtype()).device(device);
            Tensor loss = full({n}, NAN, options);
            Tensor lse = full({n}, NAN, TensorOptions(kFloat64).device(device));
            run_kernel(
                device,
                [&] { kernels::reference::cross_entropy_forward(arg(loss), arg(lse), arg(logits), arg(labels), smoothing); },
                [&] {
                  kernels::cuda::cross_entropy_forward(arg(loss), arg(lse), arg(logits), arg(labels), smoothing);
                });

            Tensor saved_loss = full({n}, NAN, logits.dtype());
            Tensor saved = full({n}, NAN, kFloat64);
            const Tensor logits_cpu = logits.cpu(), labels_cpu = labels.cpu();
            kernels::reference::cross_entropy_forward(arg(saved_loss), arg(saved), arg(logits_cpu), arg(labels_cpu),
                                                smoothing);
            const Tensor same = saved.to(device);
            const Tensor scalar = full({1}, 1.7, options).expand({n});
            std::vector<Tensor> out = {loss, lse};
            const std::vector<std::pair<Tensor, double>> upstreams = {{per_row, 1.0},
                                                                      {scalar, 1.0 / static_cast<double>(n)}};
            for (const auto& pair : upstreams) {
              const Tensor& upstream = pair.first;
              const double scale = pair.second;
              Tensor grad = full(logits.shape(), NAN, options);
              run_kernel(
                  device,
                  [&] {
                    kernels::reference::cross_entropy_backward(arg(grad), arg(upstream), scale, arg(logits), arg(same),
                                                         arg(labels), smoothing);
                  },
                  [&] {
                    kernels::cuda::cross_entropy_backward(arg(grad), arg(upstream), scale, arg(logits), arg(same),
                                                          arg(labels), smoothing);
                  });
              out.push_back(grad);
            }
            return out;
          },
          .inputs = {input_no_grad({rows, classes}, normal(0.0, 4.0)), indices({rows}, classes, label_dtype),
                     input_no_grad({rows})},
          .runs = Runs::Parity,
          .differentiable = false,
          .dtypes = std::move(dtypes),
          .tolerances = relative(1e-6, 1e-12)};
}

std::vector<OpCase> cross_entropy_cases() {
  std::vector<OpCase> cases;
  // Gradients of every reduction with and without smoothing, at [5, 7] (no
  // element skipped: the loss is smooth in the logits) and through a
  // non-contiguous view of the logits.
  for (double smoothing : {0.0, 0.1}) {
    for (const auto& [name, reduction] : kReductions) {
      cases.push_back({.name = "smoothing " + std::string(smoothing == 0.0 ? "0" : "0.1") + " " + name,
                       .fn = [smoothing, reduction = reduction](const auto& v) {
                         return cross_entropy(v[0], v[1], smoothing, reduction);
                       },
                       .inputs = {input({5, 7}, normal(0.0, 2.0)), indices({5}, 7)},
                       .runs = Runs::Gradients,
                       .all_compared = true});
    }
  }
  cases.push_back({.name = "transposed logits",
                   .fn = [](const auto& v) { return cross_entropy(v[0].t(), v[1], 0.1, Reduction::Mean); },
                   .inputs = {input({7, 5}, normal(0.0, 2.0)), indices({5}, 7)},
                   .runs = Runs::Gradients});
  // The op through autograd on CUDA, every reduction.
  for (const auto& [name, reduction] : kReductions) {
    cases.push_back({.name = "autograd " + std::string(name),
                     .fn = [reduction = reduction](const auto& v) { return cross_entropy(v[0], v[1], 0.1, reduction); },
                     .inputs = {input({37, 101}, normal(0.0, 3.0)), indices({37}, 101)},
                     .runs = Runs::Parity,
                     .tolerances = relative(1e-6, 1e-12)});
  }
  // C = 10, 100 and 1001 run the forward with blocks of 32, 128 and 256 threads.
  for (std::int64_t classes : {10, 100, 1001}) {
    for (DType label_dtype : {kInt32, kInt64}) {
      for (double smoothing : {0.0, 0.1}) cases.push_back(kernel_case(37, classes, label_dtype, smoothing));
    }
  }
  return cases;
}

}  // namespace

TEST_CASE("cross_entropy matches finite differences", "[cross_entropy][gradcheck]") {
  testing::run_gradient_checks(cross_entropy_cases());
}

TEST_CASE("cross_entropy CUDA kernels match the CPU kernels", "[cross_entropy][cuda]") {
  testing::run_cuda_parity(cross_entropy_cases(), testing::kernels_only);
}

// 70001 rows are more than the row grid holds, so blocks loop over rows. This
// checks the launch shape, which the element types do not change: once is
// enough. [large]: on the emulator it is the slowest cross-entropy case by far.
TEST_CASE("cross_entropy CUDA kernels loop over more rows than the grid holds", "[cross_entropy][cuda][large]") {
  testing::run_cuda_parity({kernel_case(70001, 3, kInt64, 0.1, {kFloat32})});
}

TEST_CASE("cross_entropy on CUDA matches the CPU through autograd", "[cross_entropy][cuda]") {
  testing::run_cuda_parity(cross_entropy_cases(), testing::through_autograd);
}

// The table's kernel cases call the reference kernels by name; the engine's
// kernels are compared directly in "cross_entropy CPU engine kernels match
// the reference" below.
TEST_CASE("cross_entropy on the CPU engine matches the reference through autograd", "[cross_entropy][engine]") {
  testing::run_engine_parity(cross_entropy_cases(), testing::through_autograd);
}

TEST_CASE("cross_entropy on CUDA turns a bad label into NaN for its row", "[cross_entropy][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(54);
  const std::int64_t rows = 37, classes = 10;
  for (DType label_dtype : {kInt32, kInt64}) {
    INFO(dtype_name(label_dtype));
    const Tensor logits = randn({rows, classes}, kFloat32);
    std::vector<std::int64_t> good = random_labels(rows, classes, kInt64).to_vector<std::int64_t>();
    std::vector<std::int64_t> bad = good;
    bad[3] = classes;  // one past the end
    bad[20] = -1;
    const Tensor bad_gpu = from_vector<std::int64_t>(bad, {rows}).to(label_dtype).to(Device::cuda());
    const Tensor good_labels = from_vector<std::int64_t>(good, {rows});

    const std::vector<double> expected = cross_entropy(logits, good_labels, 0.1, Reduction::None).to_vector<double>();
    Tensor x_gpu = logits.to(Device::cuda()).requires_grad_();
    const Tensor losses = cross_entropy(x_gpu, bad_gpu, 0.1, Reduction::None);
    const std::vector<double> got = losses.to_vector<double>();
    for (std::int64_t n = 0; n < rows; ++n) {
      INFO("row " << n);
      if (n == 3 || n == 20) {
        CHECK(std::isnan(got[n]));
      } else {
        CHECK(got[n] == Approx(expected[n]).epsilon(1e-5).margin(1e-6));
      }
    }
    CHECK(std::isnan(cross_entropy(logits.to(Device::cuda()), bad_gpu, 0.0, Reduction::Mean).item()));
    CHECK(std::isnan(cross_entropy(logits.to(Device::cuda()), bad_gpu, 0.0, Reduction::Sum).item()));

    // Gradient: the bad rows are NaN throughout, the others are finite.
    losses.backward(ones({rows}, TensorOptions(kFloat32).device(Device::cuda())));
    const std::vector<double> grad = x_gpu.grad().to_vector<double>();
    for (std::int64_t n = 0; n < rows; ++n) {
      for (std::int64_t c = 0; c < classes; ++c) {
        const double v = grad[n * classes + c];
        if (n == 3 || n == 20) {
          CHECK(std::isnan(v));
        } else {
          CHECK(std::isfinite(v));
        }
      }
    }
  }
}

TEST_CASE("cross_entropy rejects logits and labels on different devices", "[cross_entropy][cuda][errors]") {
  BASIN_REQUIRE_CUDA();
  const Tensor logits = zeros({2, 3}, TensorOptions(kFloat32).device(Device::cuda()));
  CHECK_THROWS_WITH(cross_entropy(logits, zeros({2}, kInt64)),
                    Catch::Contains("cross_entropy: tensors are on different devices"));
}

TEST_CASE("cross_entropy rejects bad input with clear errors", "[cross_entropy][errors]") {
  const Tensor logits = zeros({4, 10});
  const Tensor labels = from_vector<std::int64_t>({1, 2, 3, 4}, {4});
  testing::check_bad_inputs(
      [](const auto& x) { return cross_entropy(x[0], x[1]); },
      {
          {{logits, from_vector<std::int64_t>({1, 2, 3, 10}, {4})},
           "cross_entropy: label 10 in row 3 is out of range for 10 classes"},
          {{logits, from_vector<std::int32_t>({-1, 2, 3, 4}, {4})},
           "cross_entropy: label -1 in row 0 is out of range for 10 classes"},
          {{zeros({10}), labels}, "cross_entropy: logits must be 2-D [N, C], got shape [10]"},
          {{zeros({4, 10, 2}), labels}, "cross_entropy: logits must be 2-D [N, C], got shape [4, 10, 2]"},
          {{logits, labels.reshape({2, 2})},
           "cross_entropy: labels must be 1-D of length 4 to match logits [4, 10], got shape [2, 2]"},
          {{logits, labels.slice(0, 0, 3)},
           "cross_entropy: labels must be 1-D of length 4 to match logits [4, 10], got shape [3]"},
          {{logits, zeros({4})}, "cross_entropy: labels must be int32 or int64, got float32"},
          {{zeros({4, 10}, kInt64), labels}, "cross_entropy: expected a floating tensor, got int64"},
          {{zeros({0, 10}), zeros({0}, kInt64)}, "cross_entropy: the mean over an empty batch is undefined"},
          {{zeros({4, 0}), labels}, "cross_entropy: logits [4, 0] have no classes"},
      });
  CHECK_THROWS_WITH(cross_entropy(logits, labels, -0.1),
                    Catch::Contains("cross_entropy: label_smoothing must be in [0, 1], got -0.1"));
  CHECK_THROWS_WITH(cross_entropy(logits, labels, 1.5),
                    Catch::Contains("cross_entropy: label_smoothing must be in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(cross_entropy(logits, labels, NAN),
                    Catch::Contains("cross_entropy: label_smoothing must be in [0, 1]"));
  // s = 1 is allowed: the target is uniform and the label no longer matters.
  CHECK(cross_entropy(logits, labels, 1.0).item() == Approx(std::log(10.0)).epsilon(1e-6));
}

// ---------------------------------------------------------------- CPU engine

namespace {

// The message of the basin::Error fn throws, without the " (file:line)" it
// ends with (each kernel set throws from its own file); "" when it does not throw.
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string message = e.what();
    return message.substr(0, message.rfind(" ("));
  }
  return "";
}

}  // namespace

// The engine sums each row in float32 lanes, the reference in float64: the
// CUDA kernels' float32 tolerance against the reference (relative(1e-6)),
// for the loss, lse and the gradient (computed from the reference's lse, for
// a per-row upstream gradient and a mean's expanded scalar). Class counts
// below, at and above a lane group, and above a lane block (100003); 4099
// rows run on several threads, and the results must not change with the
// thread count.
TEST_CASE("cross_entropy CPU engine kernels match the reference", "[cross_entropy][engine]") {
  const testing::Tolerance tolerance = relative(1e-6, 1e-12).float32;
  for (const auto& [rows, classes] : std::vector<std::pair<std::int64_t, std::int64_t>>{
           {37, 10}, {37, 1001}, {127, 3}, {5, 8}, {4099, 33}, {3, 100003}}) {
    for (DType label_dtype : {kInt32, kInt64}) {
      for (double smoothing : {0.0, 0.1}) {
        INFO("[" << rows << ", " << classes << "] " << dtype_name(label_dtype) << " labels, smoothing " << smoothing);
        manual_seed(80);
        const Tensor logits = mul(randn({rows, classes}), 4.0);
        const Tensor labels = random_labels(rows, classes, label_dtype);
        const Tensor per_row = randn({rows});
        const Tensor scalar = full({1}, 1.7).expand({rows});
        const Tensor loss_ref = full({rows}, NAN), lse_ref = full({rows}, NAN, kFloat64);
        kernels::reference::cross_entropy_forward(arg(loss_ref), arg(lse_ref), arg(logits), arg(labels), smoothing);
        const std::vector<std::pair<Tensor, double>> upstreams = {{per_row, 1.0}, {scalar, 1.0 / rows}};
        std::vector<Tensor> grads_ref;
        for (const auto& [upstream, scale] : upstreams) {
          grads_ref.push_back(full({rows, classes}, NAN));
          kernels::reference::cross_entropy_backward(arg(grads_ref.back()), arg(upstream), scale, arg(logits),
                                                     arg(lse_ref), arg(labels), smoothing);
        }
        std::vector<Tensor> first;  // the first thread count's results
        testing::for_engine_thread_counts([&] {
          const Tensor loss = full({rows}, NAN), lse = full({rows}, NAN, kFloat64);
          kernels::fast::cross_entropy_forward(arg(loss), arg(lse), arg(logits), arg(labels), smoothing);
          testing::check_close(loss, loss_ref, tolerance);
          testing::check_close(lse, lse_ref, tolerance);
          std::vector<Tensor> results = {loss, lse};
          for (std::size_t k = 0; k < upstreams.size(); ++k) {
            const Tensor grad = full({rows, classes}, NAN);
            kernels::fast::cross_entropy_backward(arg(grad), arg(upstreams[k].first), upstreams[k].second,
                                                  arg(logits), arg(lse_ref), arg(labels), smoothing);
            testing::check_close(grad, grads_ref[k], tolerance);
            results.push_back(grad);
          }
          if (first.empty()) {
            first = results;
          } else {
            for (std::size_t k = 0; k < results.size(); ++k) CHECK(testing::equal(results[k], first[k]));
          }
        });
      }
    }
  }
}

// Labels are checked before any work, with the reference's message.
TEST_CASE("cross_entropy CPU engine kernels reject bad labels as the reference does",
          "[cross_entropy][engine][errors]") {
  const Tensor logits = zeros({4, 10});
  const Tensor loss = empty({4}), lse = empty({4}, kFloat64), grad = empty({4, 10}), g = ones({4});
  const std::vector<Tensor> bad = {from_vector<std::int64_t>({1, 2, 3, 10}, {4}),
                                   from_vector<std::int32_t>({-1, 2, 3, 4}, {4})};
  for (const Tensor& labels : bad) {
    const std::string forward = error_of(
        [&] { kernels::reference::cross_entropy_forward(arg(loss), arg(lse), arg(logits), arg(labels), 0.1); });
    REQUIRE_FALSE(forward.empty());
    CHECK(error_of([&] {
            kernels::fast::cross_entropy_forward(arg(loss), arg(lse), arg(logits), arg(labels), 0.1);
          }) == forward);
    const std::string backward = error_of([&] {
      kernels::reference::cross_entropy_backward(arg(grad), arg(g), 1.0, arg(logits), arg(lse), arg(labels), 0.1);
    });
    REQUIRE_FALSE(backward.empty());
    CHECK(error_of([&] {
            kernels::fast::cross_entropy_backward(arg(grad), arg(g), 1.0, arg(logits), arg(lse), arg(labels), 0.1);
          }) == backward);
  }
}
