// The fused optimizer kernels (kernels/optim.h) over a parameter arena, and
// gradient clipping: values against direct computations, exactness of the
// SAM invariants and of the restore, PyTorch's SGD, determinism, non-finite
// gradients, CUDA-vs-CPU parity on odd sizes, and the CPU engine against the
// reference, bit for bit.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/elementwise.h"
#include "core/random.h"
#include "kernels/optim.h"
#include "optim/arena.h"
#include "optim/clip.h"
#include "support/compare.h"
#include "support/cpu_threads.h"
#include "support/cuda.h"

using namespace basin;
using basin::optim::ParameterArena;
using basin::testing::equal;
using basin::testing::max_abs_diff;
using basin::testing::relative_error;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Odd sizes (one of them above the norm's 131072 first-stage "threads" x 4 / 2
// elements, so some threads sum several groups); tensors 0 and 2 are the
// adaptive run, so adaptive_end falls in the middle of the arena.
const std::vector<Shape> kShapes = {{1}, {7}, {10, 100}, {65537}, {3, 3}};
const std::vector<bool> kAdaptive = {true, false, true, false, false};

std::vector<Tensor> make_params(DType dtype) {
  std::vector<Tensor> out;
  for (const Shape& shape : kShapes) out.push_back(randn(shape, TensorOptions(dtype)).requires_grad_());
  return out;
}

ParameterArena make_arena(std::vector<Tensor> params) {
  return ParameterArena(std::move(params), [](std::size_t i, const Tensor&) { return kAdaptive[i]; });
}

// Fresh random gradients for every tensor (the padding stays zero).
void set_grads(const ParameterArena& arena) {
  NoGradGuard no_grad;
  for (const Tensor& p : arena.tensors()) {
    p.grad().copy_(randn(p.shape(), TensorOptions(p.dtype())).to(p.device()));
  }
}

// Whether tensor i lies in the adaptive run.
bool is_adaptive(const ParameterArena& arena, std::size_t i) { return arena.offset(i) < arena.adaptive_end(); }

// The same parameters and gradients, in the same layout, on another device.
ParameterArena copy_to(const ParameterArena& source, Device device) {
  std::vector<Tensor> params;
  for (const Tensor& p : source.tensors()) {
    Tensor q = p.detach().to(device).clone().requires_grad_();
    q.set_grad(p.grad().to(device).clone());
    params.push_back(q);
  }
  return ParameterArena(params, [&](std::size_t i, const Tensor&) { return is_adaptive(source, i); });
}

kernels::SamArgs sam_args(const ParameterArena& arena, bool adaptive) {
  kernels::SamArgs args;
  args.rho = 0.05;
  args.eps = 1e-12;
  args.adaptive = adaptive;
  args.eta = 0.01;
  args.adaptive_end = arena.adaptive_end();
  return args;
}

struct NormBuffers {
  Tensor scale, partials;
};

// Poisoned, so a slot the kernel forgets to write shows up as NaN.
NormBuffers norm_buffers(Device device) {
  const TensorOptions options = TensorOptions(kFloat64).device(device);
  return {full({kernels::kSamScaleSlots}, kNaN, options), full({kernels::kNormPartials}, kNaN, options)};
}

void run_norm(const NormBuffers& out, const Tensor& params, const Tensor& grads, const kernels::SamArgs& args) {
  BASIN_RUN_KERNEL(grads.device(), sam_norm, arg(out.scale), arg(out.partials), arg(params), arg(grads), args);
}

void run_perturb(const Tensor& params, const Tensor& saved, const Tensor& grads, const Tensor& scale,
                 const kernels::SamArgs& args) {
  BASIN_RUN_KERNEL(grads.device(), sam_perturb, arg(params), arg(saved), arg(grads), arg(scale), args);
}


void run_sgd(const Tensor& params, const Tensor& saved, const Tensor& grads, const Tensor& momentum,
             const kernels::SgdArgs& args) {
  BASIN_RUN_KERNEL(grads.device(), sgd_update, arg(params), optional_arg(saved), arg(grads), optional_arg(momentum),
                   args);
}

// ||T g|| on the host in long double, T = |w| + eta on adaptive tensors.
double direct_norm(const ParameterArena& arena, bool adaptive, double eta) {
  long double squares = 0.0L;
  for (std::size_t i = 0; i < arena.size(); ++i) {
    const std::vector<double> w = arena.tensors()[i].to_vector<double>();
    const std::vector<double> g = arena.tensors()[i].grad().to_vector<double>();
    for (std::size_t k = 0; k < w.size(); ++k) {
      const long double t = adaptive && is_adaptive(arena, i) ? std::abs(w[k]) + eta : 1.0;
      squares += (t * g[k]) * (t * g[k]);
    }
  }
  return static_cast<double>(std::sqrt(squares));
}

// T of every arena element (1 outside the adaptive run), from weights w.
std::vector<double> t_of(const ParameterArena& arena, const std::vector<double>& w, bool adaptive, double eta) {
  std::vector<double> t(w.size(), 1.0);
  if (!adaptive) return t;
  for (std::int64_t k = 0; k < arena.adaptive_end(); ++k) t[k] = std::abs(w[k]) + eta;
  return t;
}

// Every element of `flat` outside the tensors is still zero.
bool padding_is_zero(const ParameterArena& arena, const Tensor& flat) {
  const std::vector<double> values = flat.to_vector<double>();
  std::vector<bool> used(values.size(), false);
  for (std::size_t i = 0; i < arena.size(); ++i) {
    for (std::int64_t j = 0; j < arena.tensors()[i].numel(); ++j) used[arena.offset(i) + j] = true;
  }
  for (std::size_t k = 0; k < values.size(); ++k) {
    if (!used[k] && values[k] != 0.0) return false;
  }
  return true;
}

struct SgdCase {
  const char* name;
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
};

std::vector<SgdCase> sgd_cases() {
  return {
      {"plain", 0.1, 0.0, 0.0, 0.0, false},
      {"weight decay", 0.05, 0.0, 0.0, 5e-4, false},
      {"momentum", 0.1, 0.9, 0.0, 0.0, false},
      {"momentum, dampening, weight decay", 0.1, 0.9, 0.25, 1e-2, false},
      {"nesterov, weight decay", 0.2, 0.9, 0.0, 5e-4, true},
  };
}

kernels::SgdArgs sgd_args(const SgdCase& c, bool first_step) {
  kernels::SgdArgs args;
  args.lr = c.lr;
  args.momentum = c.momentum;
  args.dampening = c.dampening;
  args.weight_decay = c.weight_decay;
  args.nesterov = c.nesterov;
  args.first_step = first_step;
  return args;
}

// torch.optim.SGD's loop for one tensor, in T, one rounding per operation.
template <class T>
void reference_sgd_step(std::vector<T>& w, std::vector<T>& buf, const std::vector<T>& g, const SgdCase& c,
                        bool first_step) {
  const T lr = static_cast<T>(c.lr), m = static_cast<T>(c.momentum), wd = static_cast<T>(c.weight_decay);
  const T keep = static_cast<T>(1.0 - c.dampening);
  for (std::size_t k = 0; k < w.size(); ++k) {
    T d = g[k];
    if (c.weight_decay != 0.0) d = d + wd * w[k];
    if (c.momentum != 0.0) {
      if (first_step) {
        buf[k] = d;
      } else {
        buf[k] = buf[k] * m + keep * d;
      }
      d = c.nesterov ? d + m * buf[k] : buf[k];
    }
    w[k] = w[k] - lr * d;
  }
}

template <class T>
void check_sgd_against_reference(DType dtype, double tolerance) {
  for (const SgdCase& c : sgd_cases()) {
    INFO(c.name << ", " << dtype_name(dtype));
    manual_seed(20);
    ParameterArena arena = make_arena(make_params(dtype));
    std::vector<std::vector<T>> w, buf;
    for (const Tensor& p : arena.tensors()) {
      w.push_back(p.to_vector<T>());
      buf.push_back(std::vector<T>(w.back().size(), T(0)));
    }
    Tensor momentum = c.momentum != 0.0 ? arena.make_buffer() : Tensor();
    if (momentum.defined()) momentum.fill_(kNaN);  // the first step must not read it
    for (int step = 0; step < 4; ++step) {
      set_grads(arena);
      for (std::size_t i = 0; i < arena.size(); ++i) {
        reference_sgd_step(w[i], buf[i], arena.tensors()[i].grad().to_vector<T>(), c, step == 0);
      }
      run_sgd(arena.params(), Tensor(), arena.grads(), momentum, sgd_args(c, step == 0));
    }
    double worst = 0.0;
    for (std::size_t i = 0; i < arena.size(); ++i) {
      const std::vector<T> got = arena.tensors()[i].to_vector<T>();
      for (std::size_t k = 0; k < got.size(); ++k) {
        worst = std::max(worst, std::abs(static_cast<double>(got[k]) - static_cast<double>(w[i][k])) /
                                    (1.0 + std::abs(static_cast<double>(w[i][k]))));
      }
      if (momentum.defined()) {
        const std::vector<T> got_buf = arena.view(momentum, i).to_vector<T>();
        for (std::size_t k = 0; k < got_buf.size(); ++k) {
          worst = std::max(worst, std::abs(static_cast<double>(got_buf[k]) - static_cast<double>(buf[i][k])) /
                                      (1.0 + std::abs(static_cast<double>(buf[i][k]))));
        }
      }
    }
    INFO("worst relative difference " << worst);
    CHECK(worst <= tolerance);
    CHECK(padding_is_zero(arena, arena.params()));  // d = 0 + wd * 0: the padding never moves
  }
}

}  // namespace

// ---------------------------------------------------------------- sam_norm

TEST_CASE("fused sam_norm matches a direct computation of ||T g||", "[optim][fused]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    for (bool adaptive : {false, true}) {
      INFO(dtype_name(dtype) << (adaptive ? " ASAM" : " SAM"));
      manual_seed(10);
      ParameterArena arena = make_arena(make_params(dtype));
      set_grads(arena);
      REQUIRE(arena.adaptive_end() > 0);
      REQUIRE(arena.adaptive_end() < arena.padded_numel());
      const kernels::SamArgs args = sam_args(arena, adaptive);
      const NormBuffers out = norm_buffers(Device::cpu());
      run_norm(out, arena.params(), arena.grads(), args);

      const std::vector<double> scale = out.scale.to_vector<double>();
      const double expected = direct_norm(arena, adaptive, args.eta);
      CHECK(std::abs(scale[kernels::kSamNorm] - expected) <= 1e-12 * expected);
      CHECK(scale[kernels::kSamScale] == args.rho / (scale[kernels::kSamNorm] + args.eps));
      CHECK(scale[kernels::kSamFinite] == 1.0);
      CHECK_FALSE(testing::any_nan(out.partials));  // every partial written
      // The check can tell T from 1: the SAM and ASAM norms differ by far more.
      const double other = direct_norm(arena, !adaptive, args.eta);
      CHECK(std::abs(other - expected) > 1e-6 * expected);
    }
  }
}

TEST_CASE("fused sam_norm is bit-identical from run to run", "[optim][fused]") {
  manual_seed(11);
  ParameterArena arena = make_arena(make_params(kFloat32));
  set_grads(arena);
  for (bool adaptive : {false, true}) {
    const NormBuffers a = norm_buffers(Device::cpu());
    const NormBuffers b = norm_buffers(Device::cpu());
    run_norm(a, arena.params(), arena.grads(), sam_args(arena, adaptive));
    run_norm(b, arena.params(), arena.grads(), sam_args(arena, adaptive));
    CHECK(equal(a.scale, b.scale));
    CHECK(equal(a.partials, b.partials));
  }
}

// ---------------------------------------------------------------- sam_perturb

TEST_CASE("fused sam_perturb moves SAM by rho and ASAM by rho in the T-scaled norm", "[optim][fused]") {
  for (bool adaptive : {false, true}) {
    INFO((adaptive ? "ASAM" : "SAM"));
    manual_seed(12);
    ParameterArena arena = make_arena(make_params(kFloat64));
    set_grads(arena);
    const kernels::SamArgs args = sam_args(arena, adaptive);
    const NormBuffers out = norm_buffers(Device::cpu());
    run_norm(out, arena.params(), arena.grads(), args);
    const Tensor before = arena.params().clone();
    Tensor saved = arena.make_buffer();
    saved.fill_(kNaN);  // poison: every element must be written
    run_perturb(arena.params(), saved, arena.grads(), out.scale, args);

    CHECK(equal(saved, before));  // bit for bit, padding included
    const std::vector<double> w0 = before.to_vector<double>();
    const std::vector<double> w1 = arena.params().to_vector<double>();
    const std::vector<double> g = arena.grads().to_vector<double>();
    const std::vector<double> t = t_of(arena, w0, adaptive, args.eta);
    const double s = out.scale.to_vector<double>()[kernels::kSamScale];
    double scaled_norm = 0.0, worst = 0.0;
    for (std::size_t k = 0; k < w0.size(); ++k) {
      const double e = w1[k] - w0[k];
      scaled_norm += (e / t[k]) * (e / t[k]);
      worst = std::max(worst, std::abs(e - s * t[k] * t[k] * g[k]));  // e = s T^2 g, element by element
    }
    CHECK(std::abs(std::sqrt(scaled_norm) - args.rho) <= 1e-9 * args.rho);
    CHECK(worst <= 1e-14);
    CHECK(padding_is_zero(arena, arena.params()));
  }
}

TEST_CASE("fused kernels: a non-finite gradient norm leaves the weights untouched", "[optim][fused]") {
  for (double bad : {kNaN, std::numeric_limits<double>::infinity()}) {
    for (bool adaptive : {false, true}) {
      INFO((adaptive ? "ASAM, " : "SAM, ") << "a gradient of " << bad);
      manual_seed(13);
      ParameterArena arena = make_arena(make_params(kFloat32));
      set_grads(arena);
      {
        NoGradGuard no_grad;
        arena.tensors()[3].grad().slice(0, 4000, 4001).fill_(bad);
      }
      const kernels::SamArgs args = sam_args(arena, adaptive);
      const NormBuffers out = norm_buffers(Device::cpu());
      run_norm(out, arena.params(), arena.grads(), args);
      const std::vector<double> scale = out.scale.to_vector<double>();
      CHECK_FALSE(std::isfinite(scale[kernels::kSamNorm]));
      CHECK(scale[kernels::kSamFinite] == 0.0);
      CHECK(scale[kernels::kSamScale] == 0.0);

      const Tensor before = arena.params().clone();
      Tensor saved = arena.make_buffer();
      saved.fill_(kNaN);
      run_perturb(arena.params(), saved, arena.grads(), out.scale, args);
      CHECK(equal(arena.params(), before));  // 0 * NaN never reached w
      CHECK_FALSE(testing::any_nan(arena.params()));
      CHECK(equal(saved, before));
    }
  }
}

TEST_CASE("fused sam_norm: a zero gradient with eps = 0 gives a zero scale, not inf", "[optim][fused]") {
  ParameterArena arena = make_arena(make_params(kFloat64));
  kernels::SamArgs args = sam_args(arena, false);
  args.eps = 0.0;
  const NormBuffers out = norm_buffers(Device::cpu());
  run_norm(out, arena.params(), arena.grads(), args);  // gradients are all zero after packing
  CHECK(out.scale.to_vector<double>() == std::vector<double>{0.0, 0.0, 1.0});
  const Tensor before = arena.params().clone();
  run_perturb(arena.params(), arena.make_buffer(), arena.grads(), out.scale, args);
  CHECK(equal(arena.params(), before));
}

// ---------------------------------------------------------------- restore + SGD

TEST_CASE("fused sgd_update: the restore from the saved copy is exact", "[optim][fused]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO(dtype_name(dtype));
    manual_seed(14);
    ParameterArena arena = make_arena(make_params(dtype));
    set_grads(arena);
    const Tensor original = arena.params().clone();
    const kernels::SamArgs args = sam_args(arena, true);
    const NormBuffers out = norm_buffers(Device::cpu());
    run_norm(out, arena.params(), arena.grads(), args);
    const Tensor saved = arena.make_buffer();
    run_perturb(arena.params(), saved, arena.grads(), out.scale, args);
    REQUIRE_FALSE(equal(arena.params(), original));

    // lr = 0: w = saved - 0 * d, bit for bit the weights before the perturbation.
    kernels::SgdArgs none;
    none.lr = 0.0;
    set_grads(arena);
    run_sgd(arena.params(), saved, arena.grads(), Tensor(), none);
    CHECK(equal(arena.params(), original));

    // And restore + step equals a step from the original weights.
    const SgdCase c = sgd_cases()[4];
    run_perturb(arena.params(), saved, arena.grads(), out.scale, args);
    const Tensor plain_w = original.clone();
    const Tensor plain_m = arena.make_buffer();
    const Tensor fused_m = arena.make_buffer();
    run_sgd(plain_w, Tensor(), arena.grads(), plain_m, sgd_args(c, true));
    run_sgd(arena.params(), saved, arena.grads(), fused_m, sgd_args(c, true));
    CHECK(equal(arena.params(), plain_w));
    CHECK(equal(fused_m, plain_m));
    CHECK(equal(saved, original));  // the saved copy is only read
  }
}

TEST_CASE("fused sgd_update follows torch.optim.SGD over several steps", "[optim][fused]") {
  check_sgd_against_reference<double>(kFloat64, 1e-15);
  check_sgd_against_reference<float>(kFloat32, 1e-6);
}

// ---------------------------------------------------------------- bad arguments

TEST_CASE("the fused kernels reject mismatched buffers", "[optim][fused]") {
  ParameterArena arena = make_arena(make_params(kFloat32));
  const kernels::SamArgs args = sam_args(arena, true);
  const Tensor scale = zeros({kernels::kSamScaleSlots}, kFloat64);
  const Tensor partials = zeros({kernels::kNormPartials}, kFloat64);
  const auto w = arg(arena.params());
  const auto g = arg(arena.grads());
  CHECK_THROWS_WITH(kernels::reference::sam_norm(arg(scale), arg(zeros({100}, kFloat64)), w, g, args),
                    Catch::Contains("sam_norm: partials must be a contiguous float64 buffer of at least 512 elements"));
  CHECK_THROWS_WITH(kernels::reference::sam_norm(arg(zeros({3})), arg(partials), w, g, args),
                    Catch::Contains("sam_norm: scale must be a contiguous float64 buffer of at least 3 elements"));
  CHECK_THROWS_WITH(kernels::reference::sam_norm(arg(scale), arg(partials), arg(zeros({5})), g, args),
                    Catch::Contains("sam_norm: params has 5 elements but the gradients have"));
  kernels::SamArgs beyond = args;
  beyond.adaptive_end = arena.padded_numel() + 1;
  CHECK_THROWS_WITH(kernels::reference::sam_norm(arg(scale), arg(partials), w, g, beyond),
                    Catch::Contains("sam_norm: adaptive_end " + std::to_string(arena.padded_numel() + 1) +
                                    " is outside the arena"));
  CHECK_THROWS_WITH(kernels::reference::sam_perturb(w, arg(arena.make_buffer().to(kFloat64)), g, arg(scale), args),
                    Catch::Contains("sam_perturb: saved is float64 but the gradients are float32"));
  CHECK_THROWS_WITH(kernels::reference::sam_perturb(w, kernels::TensorArg{}, g, arg(scale), args),
                    Catch::Contains("sam_perturb: saved is missing"));
  kernels::SgdArgs sgd;
  sgd.momentum = 0.9;
  CHECK_THROWS_WITH(kernels::reference::sgd_update(w, kernels::TensorArg{}, g, kernels::TensorArg{}, sgd),
                    Catch::Contains("sgd_update: the momentum buffer is missing"));
  CHECK_THROWS_WITH(kernels::reference::sgd_update(w, kernels::TensorArg{}, g, arg(zeros({4, 4}).t()), sgd),
                    Catch::Contains("sgd_update: the momentum buffer must be contiguous"));
}

// ---------------------------------------------------------------- clip_grad_norm_

TEST_CASE("clip_grad_norm_ scales all gradients by max_norm / norm", "[optim][clip]") {
  for (DType dtype : {kFloat32, kFloat64}) {
    INFO(dtype_name(dtype));
    manual_seed(30);
    ParameterArena arena = make_arena(make_params(dtype));
    set_grads(arena);
    const Tensor grads = arena.grads().clone();
    const double norm = direct_norm(arena, false, 0.0);
    const double tolerance = dtype == kFloat32 ? 1e-6 : 1e-13;

    // Above the limit: scaled down to max_norm.
    const double max_norm = 0.25 * norm;
    const Tensor got = optim::clip_grad_norm_(arena, max_norm);
    CHECK(got.dim() == 0);
    CHECK(got.dtype() == kFloat64);
    CHECK(std::abs(got.item() - norm) <= 1e-12 * norm);
    const double factor = max_norm / (norm + 1e-6);
    CHECK(max_abs_diff(arena.grads(), mul(grads, factor)) <= tolerance);
    CHECK(std::abs(direct_norm(arena, false, 0.0) - factor * norm) <= tolerance * norm);
    CHECK(padding_is_zero(arena, arena.grads()));

    // Below the limit: the factor is 1 and nothing changes.
    const Tensor clipped = arena.grads().clone();
    const Tensor again = optim::clip_grad_norm_(arena, 10.0 * norm);
    CHECK(std::abs(again.item() - factor * norm) <= tolerance * norm);
    CHECK(equal(arena.grads(), clipped));

    // The list version computes the same on the same gradients.
    Tensor flat = arena.grads();
    flat.copy_(grads);
    const Tensor listed = optim::clip_grad_norm_(arena.tensors(), max_norm);
    CHECK(std::abs(listed.item() - norm) <= 1e-12 * norm);
    CHECK(max_abs_diff(arena.grads(), mul(grads, factor)) <= tolerance);
  }
}

TEST_CASE("clip_grad_norm_ on parameter lists, unbound arenas and bad input", "[optim][clip]") {
  manual_seed(31);
  const Tensor a = randn({3, 4}, kFloat64).requires_grad_();
  const Tensor b = randn({5}, kFloat64).requires_grad_();
  const Tensor c = randn({2}, kFloat64).requires_grad_();  // no gradient: skipped
  a.set_grad(full({3, 4}, 1.0, kFloat64));
  b.set_grad(full({5}, 2.0, kFloat64));
  // norm = sqrt(12 * 1 + 5 * 4) = sqrt(32)
  const Tensor norm = optim::clip_grad_norm_({a, b, c}, 2.0, 0.0);
  CHECK(std::abs(norm.item() - std::sqrt(32.0)) <= 1e-15);
  CHECK(max_abs_diff(a.grad(), full({3, 4}, 2.0 / std::sqrt(32.0), kFloat64)) <= 1e-15);
  CHECK(max_abs_diff(b.grad(), full({5}, 4.0 / std::sqrt(32.0), kFloat64)) <= 1e-15);
  CHECK_FALSE(c.grad().defined());
  CHECK(optim::clip_grad_norm_({c}, 1.0).item() == 0.0);

  // An arena whose gradient was replaced by hand clips the tensors' gradients.
  ParameterArena arena({a, b});
  a.set_grad(full({3, 4}, 3.0, kFloat64));
  REQUIRE_FALSE(arena.is_bound());
  const Tensor unbound = optim::clip_grad_norm_(arena, 1.0, 0.0);
  const double expected = std::sqrt(12 * 9.0 + 5 * (4.0 / 32.0) * 4.0);
  CHECK(std::abs(unbound.item() - expected) <= 1e-14);
  CHECK(std::abs(a.grad().to_vector<double>()[0] - 3.0 / expected) <= 1e-15);

  // A NaN gradient: the norm says so and the finite gradients are zeroed.
  arena.rebind();
  {
    NoGradGuard no_grad;
    a.grad().fill_(1.0);
    b.grad().slice(0, 2, 3).fill_(kNaN);
  }
  CHECK(std::isnan(optim::clip_grad_norm_(arena, 1.0).item()));
  CHECK(a.grad().to_vector<double>() == std::vector<double>(12, 0.0));

  CHECK_THROWS_WITH(optim::clip_grad_norm_(arena, 0.0),
                    Catch::Contains("clip_grad_norm_: max_norm must be positive and finite, got 0"));
  CHECK_THROWS_WITH(optim::clip_grad_norm_({a}, -1.0), Catch::Contains("max_norm must be positive and finite, got -1"));
  CHECK_THROWS_WITH(optim::clip_grad_norm_({a}, kNaN), Catch::Contains("max_norm must be positive and finite"));
  CHECK_THROWS_WITH(optim::clip_grad_norm_(arena, 1.0, -1e-3),
                    Catch::Contains("clip_grad_norm_: eps must be non-negative and finite, got -0.001"));
  CHECK_THROWS_WITH(optim::clip_grad_norm_({a, Tensor()}, 1.0),
                    Catch::Contains("clip_grad_norm_: parameter 1 is undefined"));
}

// ---------------------------------------------------------------- CUDA parity

namespace {

// CPU and CUDA results of one kernel should agree to the last bit; allow a
// rounding step in case a compiler contracts a multiply-add on the CPU side.
double parity_tolerance(DType dtype) { return dtype == kFloat32 ? 1e-6 : 1e-14; }

void check_close(const Tensor& gpu, const Tensor& cpu, DType dtype, const char* what) {
  const double diff = max_abs_diff(gpu.cpu(), cpu);
  const double size = max_abs_diff(cpu, zeros_like(cpu));
  INFO(what << ": max |cuda - cpu| = " << diff << " (values up to " << size << ")");
  CHECK(diff <= parity_tolerance(dtype) * (1.0 + size));
}

}  // namespace

TEST_CASE("fused SAM kernels on CUDA match the CPU kernels", "[optim][fused][cuda]") {
  BASIN_REQUIRE_CUDA();
  for (DType dtype : {kFloat32, kFloat64}) {
    for (bool adaptive : {false, true}) {
      INFO(dtype_name(dtype) << (adaptive ? " ASAM" : " SAM"));
      manual_seed(40);
      ParameterArena cpu = make_arena(make_params(dtype));
      set_grads(cpu);
      ParameterArena gpu = copy_to(cpu, Device::cuda());
      REQUIRE(gpu.padded_numel() == cpu.padded_numel());
      const kernels::SamArgs args = sam_args(cpu, adaptive);

      const NormBuffers norm_cpu = norm_buffers(Device::cpu());
      const NormBuffers norm_gpu = norm_buffers(Device::cuda());
      run_norm(norm_cpu, cpu.params(), cpu.grads(), args);
      long long launches = cuda_kernel_launches();
      run_norm(norm_gpu, gpu.params(), gpu.grads(), args);
      CHECK(cuda_kernel_launches() - launches == 2);
      check_close(norm_gpu.partials, norm_cpu.partials, kFloat64, "partials");
      check_close(norm_gpu.scale, norm_cpu.scale, kFloat64, "scale");
      CHECK(norm_gpu.scale.to_vector<double>()[kernels::kSamFinite] == 1.0);

      // Deterministic on the GPU: a second run gives the same bits.
      const NormBuffers again = norm_buffers(Device::cuda());
      run_norm(again, gpu.params(), gpu.grads(), args);
      CHECK(equal(again.scale.cpu(), norm_gpu.scale.cpu()));
      CHECK(equal(again.partials.cpu(), norm_gpu.partials.cpu()));

      Tensor saved_cpu = cpu.make_buffer();
      Tensor saved_gpu = gpu.make_buffer();
      saved_cpu.fill_(kNaN);
      saved_gpu.fill_(kNaN);
      run_perturb(cpu.params(), saved_cpu, cpu.grads(), norm_cpu.scale, args);
      launches = cuda_kernel_launches();
      run_perturb(gpu.params(), saved_gpu, gpu.grads(), norm_gpu.scale, args);
      CHECK(cuda_kernel_launches() - launches == 1);
      check_close(gpu.params(), cpu.params(), dtype, "perturbed weights");
      check_close(saved_gpu, saved_cpu, dtype, "saved weights");
      CHECK(padding_is_zero(gpu, gpu.params().cpu()));

      // Restore + SGD, two steps (the first starts the momentum buffer).
      const SgdCase c = sgd_cases()[adaptive ? 4 : 3];
      Tensor m_cpu = cpu.make_buffer();
      Tensor m_gpu = gpu.make_buffer();
      m_cpu.fill_(kNaN);  // the first step must not read the buffer
      m_gpu.fill_(kNaN);
      for (int step = 0; step < 2; ++step) {
        set_grads(cpu);
        Tensor flat = gpu.grads();
        flat.copy_(cpu.grads());
        run_sgd(cpu.params(), saved_cpu, cpu.grads(), m_cpu, sgd_args(c, step == 0));
        launches = cuda_kernel_launches();
        run_sgd(gpu.params(), saved_gpu, gpu.grads(), m_gpu, sgd_args(c, step == 0));
        CHECK(cuda_kernel_launches() - launches == 1);
      }
      check_close(gpu.params(), cpu.params(), dtype, "updated weights");
      check_close(m_gpu, m_cpu, dtype, "momentum");
      CHECK_FALSE(testing::any_nan(m_gpu));
    }
  }
}

TEST_CASE("fused kernels on CUDA handle odd lengths and unaligned pointers", "[optim][fused][cuda]") {
  BASIN_REQUIRE_CUDA();
  // Outside an arena: a length that is no multiple of a vector, and views that
  // start one element in, so both the vector path and the scalar path run.
  for (DType dtype : {kFloat32, kFloat64}) {
    for (std::int64_t start : {0, 1}) {
      INFO(dtype_name(dtype) << ", offset " << start);
      manual_seed(41);
      const std::int64_t n = 70001;
      const TensorOptions opts(dtype);
      const Tensor w = randn({n + 1}, opts), g = randn({n + 1}, opts), m = randn({n + 1}, opts);
      auto on = [&](const Tensor& t, Device d) { return t.to(d).clone().slice(0, start, start + n); };
      kernels::SamArgs args;
      args.adaptive = true;
      args.adaptive_end = 30001;  // not a multiple of a vector either
      args.eta = 0.01;

      const NormBuffers norm_cpu = norm_buffers(Device::cpu());
      const NormBuffers norm_gpu = norm_buffers(Device::cuda());
      const Tensor w_cpu = on(w, Device::cpu()), w_gpu = on(w, Device::cuda());
      const Tensor g_cpu = on(g, Device::cpu()), g_gpu = on(g, Device::cuda());
      run_norm(norm_cpu, w_cpu, g_cpu, args);
      run_norm(norm_gpu, w_gpu, g_gpu, args);
      check_close(norm_gpu.scale, norm_cpu.scale, kFloat64, "scale");

      const Tensor s_cpu = full({n}, kNaN, opts), s_gpu = full({n}, kNaN, opts.device(Device::cuda()));
      run_perturb(w_cpu, s_cpu, g_cpu, norm_cpu.scale, args);
      run_perturb(w_gpu, s_gpu, g_gpu, norm_gpu.scale, args);
      check_close(w_gpu, w_cpu, dtype, "perturbed weights");
      check_close(s_gpu, s_cpu, dtype, "saved weights");

      const Tensor m_cpu = on(m, Device::cpu()), m_gpu = on(m, Device::cuda());
      const kernels::SgdArgs sgd = sgd_args(sgd_cases()[3], false);
      run_sgd(w_cpu, s_cpu, g_cpu, m_cpu, sgd);
      run_sgd(w_gpu, s_gpu, g_gpu, m_gpu, sgd);
      check_close(w_gpu, w_cpu, dtype, "updated weights");
      check_close(m_gpu, m_cpu, dtype, "momentum");
    }
  }
}

TEST_CASE("fused kernels on CUDA: non-finite gradients and clipping", "[optim][fused][clip][cuda]") {
  BASIN_REQUIRE_CUDA();
  manual_seed(42);
  ParameterArena cpu = make_arena(make_params(kFloat32));
  set_grads(cpu);
  ParameterArena gpu = copy_to(cpu, Device::cuda());

  // Clipping: same norm and same clipped gradients, without reading the host.
  const double max_norm = 1.0;
  const Tensor norm_cpu = optim::clip_grad_norm_(cpu, max_norm);
  const Tensor norm_gpu = optim::clip_grad_norm_(gpu, max_norm);
  CHECK(norm_gpu.device().is_cuda());
  check_close(norm_gpu, norm_cpu, kFloat64, "clip norm");
  check_close(gpu.grads(), cpu.grads(), kFloat32, "clipped gradients");

  // A NaN gradient on the GPU: finite flag 0, weights untouched.
  {
    NoGradGuard no_grad;
    gpu.tensors()[3].grad().slice(0, 100, 101).fill_(kNaN);
  }
  const kernels::SamArgs args = sam_args(gpu, true);
  const NormBuffers out = norm_buffers(Device::cuda());
  run_norm(out, gpu.params(), gpu.grads(), args);
  const std::vector<double> scale = out.scale.to_vector<double>();
  CHECK(scale[kernels::kSamFinite] == 0.0);
  CHECK(scale[kernels::kSamScale] == 0.0);
  const Tensor before = gpu.params().cpu();
  run_perturb(gpu.params(), gpu.make_buffer(), gpu.grads(), out.scale, args);
  CHECK(equal(gpu.params().cpu(), before));
}

// ---------------------------------------------------------------- CPU engine

namespace {

// The message of the basin::Error fn throws, or "" when it does not throw.
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// The engine computes what the reference computes, element by element and in
// the same summation order for the norm, so the two agree bit for bit; one
// arena length is large enough (1000003 floats) for the passes to run on
// several threads and for norm "threads" to sum several groups.
TEST_CASE("fused kernels: the CPU engine matches the reference bit for bit", "[optim][fused][engine]") {
  testing::for_engine_thread_counts([] {
    for (std::int64_t n : {std::int64_t{7}, std::int64_t{127}, std::int64_t{1000003}}) {
      for (bool adaptive : {false, true}) {
        INFO(n << " elements, " << (adaptive ? "ASAM" : "SAM"));
        manual_seed(50);
        const Tensor w = randn({n}), g = randn({n}), m = randn({n});
        kernels::SamArgs args;
        args.adaptive = adaptive;
        args.adaptive_end = n / 3 + 1;  // odd: not a multiple of a group
        args.eta = 0.01;

        const NormBuffers norm_ref = norm_buffers(Device::cpu());
        const NormBuffers norm_fast = norm_buffers(Device::cpu());
        kernels::reference::sam_norm(arg(norm_ref.scale), arg(norm_ref.partials), arg(w), arg(g), args);
        kernels::fast::sam_norm(arg(norm_fast.scale), arg(norm_fast.partials), arg(w), arg(g), args);
        CHECK(equal(norm_fast.scale, norm_ref.scale));
        CHECK(equal(norm_fast.partials, norm_ref.partials));

        const Tensor w_ref = w.clone(), w_fast = w.clone();
        const Tensor s_ref = full({n}, kNaN), s_fast = full({n}, kNaN);
        kernels::reference::sam_perturb(arg(w_ref), arg(s_ref), arg(g), arg(norm_ref.scale), args);
        kernels::fast::sam_perturb(arg(w_fast), arg(s_fast), arg(g), arg(norm_fast.scale), args);
        CHECK(equal(w_fast, w_ref));
        CHECK(equal(s_fast, s_ref));

        // Every SGD variant, plain and restoring from the saved copy, first
        // and later steps (the later steps read the momentum buffer).
        for (const SgdCase& c : sgd_cases()) {
          for (bool restore : {false, true}) {
            for (bool first : {true, false}) {
              INFO(c.name << (restore ? ", restoring" : "") << (first ? ", first step" : ""));
              const Tensor p_ref = w_ref.clone(), p_fast = w_ref.clone();
              const Tensor m_ref = m.clone(), m_fast = m.clone();
              const Tensor saved = restore ? s_ref : Tensor();
              const Tensor momentum_ref = c.momentum != 0.0 ? m_ref : Tensor();
              const Tensor momentum_fast = c.momentum != 0.0 ? m_fast : Tensor();
              kernels::reference::sgd_update(arg(p_ref), optional_arg(saved), arg(g), optional_arg(momentum_ref),
                                             sgd_args(c, first));
              kernels::fast::sgd_update(arg(p_fast), optional_arg(saved), arg(g), optional_arg(momentum_fast),
                                        sgd_args(c, first));
              CHECK(equal(p_fast, p_ref));
              CHECK(equal(m_fast, m_ref));
            }
          }
        }
      }
    }
  });
}

TEST_CASE("fused kernels: the CPU engine skips the perturbation when the norm is not finite",
          "[optim][fused][engine]") {
  for (double bad : {kNaN, std::numeric_limits<double>::infinity()}) {
    INFO("a gradient of " << bad);
    manual_seed(51);
    const std::int64_t n = 100003;
    const Tensor w = randn({n}), g = randn({n});
    {
      NoGradGuard no_grad;
      g.slice(0, 70000, 70001).fill_(bad);
    }
    kernels::SamArgs args;
    args.adaptive = true;
    args.adaptive_end = 50001;
    const NormBuffers ref = norm_buffers(Device::cpu());
    const NormBuffers fast = norm_buffers(Device::cpu());
    kernels::reference::sam_norm(arg(ref.scale), arg(ref.partials), arg(w), arg(g), args);
    kernels::fast::sam_norm(arg(fast.scale), arg(fast.partials), arg(w), arg(g), args);
    CHECK(fast.scale.to_vector<double>()[kernels::kSamFinite] == 0.0);
    CHECK(equal(fast.scale.slice(0, 0, 1), ref.scale.slice(0, 0, 1)));  // the scale: 0 in both

    const Tensor w_fast = w.clone(), saved = full({n}, kNaN);
    kernels::fast::sam_perturb(arg(w_fast), arg(saved), arg(g), arg(fast.scale), args);
    CHECK(equal(w_fast, w));
    CHECK(equal(saved, w));
  }
}

TEST_CASE("fused kernels: the CPU engine runs float64 on the reference", "[optim][fused][engine]") {
  manual_seed(52);
  const std::int64_t n = 70001;
  const Tensor w = randn({n}, kFloat64), g = randn({n}, kFloat64);
  kernels::SamArgs args;
  const NormBuffers ref = norm_buffers(Device::cpu());
  const NormBuffers fast = norm_buffers(Device::cpu());
  kernels::reference::sam_norm(arg(ref.scale), arg(ref.partials), arg(w), arg(g), args);
  kernels::fast::sam_norm(arg(fast.scale), arg(fast.partials), arg(w), arg(g), args);
  CHECK(equal(fast.scale, ref.scale));
  const Tensor p_ref = w.clone(), p_fast = w.clone();
  kernels::reference::sgd_update(arg(p_ref), kernels::TensorArg{}, arg(g), kernels::TensorArg{}, {});
  kernels::fast::sgd_update(arg(p_fast), kernels::TensorArg{}, arg(g), kernels::TensorArg{}, {});
  CHECK(equal(p_fast, p_ref));
}

// The engine runs the shared checks (kernels/optim_checks.h): every bad call
// the reference rejects, the engine rejects with the same message.
TEST_CASE("fused kernels: the CPU engine rejects what the reference rejects, with the same message",
          "[optim][fused][engine]") {
  ParameterArena arena = make_arena(make_params(kFloat32));
  const kernels::SamArgs args = sam_args(arena, true);
  const Tensor scale = zeros({kernels::kSamScaleSlots}, kFloat64);
  const Tensor partials = zeros({kernels::kNormPartials}, kFloat64);
  const Tensor short_partials = zeros({100}, kFloat64);
  const Tensor float_scale = zeros({3});
  const Tensor short_params = zeros({5});
  const Tensor wide_saved = arena.make_buffer().to(kFloat64);
  const Tensor transposed = zeros({4, 4}).t();
  const auto w = arg(arena.params());
  const auto g = arg(arena.grads());
  kernels::SamArgs beyond = args;
  beyond.adaptive_end = arena.padded_numel() + 1;
  kernels::SgdArgs sgd;
  sgd.momentum = 0.9;
  const kernels::TensorArg none{};

  // Each bad call, written once for both kernel sets.
  const std::vector<std::function<void(bool)>> calls = {
      [&](bool fast) {
        (fast ? kernels::fast::sam_norm : kernels::reference::sam_norm)(arg(scale), arg(short_partials), w, g, args);
      },
      [&](bool fast) {
        (fast ? kernels::fast::sam_norm : kernels::reference::sam_norm)(arg(float_scale), arg(partials), w, g, args);
      },
      [&](bool fast) {
        (fast ? kernels::fast::sam_norm : kernels::reference::sam_norm)(arg(scale), arg(partials), arg(short_params),
                                                                        g, args);
      },
      [&](bool fast) {
        (fast ? kernels::fast::sam_norm : kernels::reference::sam_norm)(arg(scale), arg(partials), w, g, beyond);
      },
      [&](bool fast) {
        (fast ? kernels::fast::sam_perturb : kernels::reference::sam_perturb)(w, arg(wide_saved), g, arg(scale), args);
      },
      [&](bool fast) {
        (fast ? kernels::fast::sam_perturb : kernels::reference::sam_perturb)(w, none, g, arg(scale), args);
      },
      [&](bool fast) {
        (fast ? kernels::fast::sam_perturb : kernels::reference::sam_perturb)(w, arg(transposed), g, arg(scale), args);
      },
      [&](bool fast) { (fast ? kernels::fast::sgd_update : kernels::reference::sgd_update)(w, none, g, none, sgd); },
      [&](bool fast) {
        (fast ? kernels::fast::sgd_update : kernels::reference::sgd_update)(w, none, g, arg(transposed), sgd);
      },
      [&](bool fast) {
        (fast ? kernels::fast::sgd_update : kernels::reference::sgd_update)(arg(short_params), none, g, none, {});
      },
  };
  for (std::size_t i = 0; i < calls.size(); ++i) {
    INFO("bad call " << i);
    const std::string expected = error_of([&] { calls[i](false); });
    REQUIRE_FALSE(expected.empty());
    CHECK(error_of([&] { calls[i](true); }) == expected);
  }
}
