#include "support/op_table.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "core/autograd.h"
#include "core/cpu_engine.h"
#include "core/elementwise.h"
#include "core/indexing.h"
#include "core/random.h"
#include "core/reduce.h"
#include "support/cuda.h"

namespace basin::testing {

// ---------------------------------------------------------------- domains

Domain normal(double mean, double stddev) { return {Domain::Kind::Normal, mean, stddev}; }

Domain uniform(double low, double high) {
  BASIN_CHECK(low < high, "uniform: empty range [", low, ", ", high, ")");
  return {Domain::Kind::Uniform, low, high};
}

Domain positive(double low, double high) {
  BASIN_CHECK(low > 0.0, "positive: the range must start above zero, got ", low);
  return uniform(low, high);
}

Domain away_from(std::vector<double> points, double margin, double low, double high) {
  BASIN_CHECK(low < high && margin >= 0.0, "away_from: bad range [", low, ", ", high, ") or margin ", margin);
  Domain d{Domain::Kind::AwayFrom, low, high};
  d.points = std::move(points);
  d.margin = margin;
  return d;
}

Domain integers(std::int64_t low, std::int64_t high) {
  BASIN_CHECK(low < high, "integers: empty range [", low, ", ", high, ")");
  return {Domain::Kind::Integers, static_cast<double>(low), static_cast<double>(high)};
}

Domain custom(MakeTensor make) {
  Domain d{Domain::Kind::Custom};
  d.make = std::move(make);
  return d;
}

namespace {

// [low, high) less the points' margins: the allowed intervals, in order.
std::vector<std::pair<double, double>> allowed_intervals(const Domain& d) {
  std::vector<std::pair<double, double>> cut;
  for (double p : d.points) cut.emplace_back(p - d.margin, p + d.margin);
  std::sort(cut.begin(), cut.end());
  std::vector<std::pair<double, double>> allowed;
  double start = d.a;
  for (const auto& [from, to] : cut) {
    if (from > start) allowed.emplace_back(start, std::min(from, d.b));
    start = std::max(start, to);
    if (start >= d.b) break;
  }
  if (start < d.b) allowed.emplace_back(start, d.b);
  return allowed;
}

}  // namespace

Tensor Domain::draw(const Shape& shape, DType dtype) const {
  switch (kind) {
    case Kind::Normal:
      BASIN_CHECK(is_floating(dtype), "normal: expected a floating dtype, got ", dtype_name(dtype));
      return randn(shape, dtype, a, b);
    case Kind::Uniform:
      BASIN_CHECK(is_floating(dtype), "uniform: expected a floating dtype, got ", dtype_name(dtype));
      return rand(shape, dtype, a, b);
    case Kind::AwayFrom: {
      BASIN_CHECK(is_floating(dtype), "away_from: expected a floating dtype, got ", dtype_name(dtype));
      // One uniform draw over the total allowed length, laid onto the intervals.
      const auto allowed = allowed_intervals(*this);
      double length = 0.0;
      for (const auto& [from, to] : allowed) length += to - from;
      BASIN_CHECK(length > 0.0, "away_from: the margins cover all of [", a, ", ", b, ")");
      std::vector<double> values = rand(shape, kFloat64, 0.0, length).to_vector<double>();
      for (double& v : values) {
        for (const auto& [from, to] : allowed) {
          if (v < to - from) {
            v += from;
            break;
          }
          v -= to - from;
        }
      }
      return from_vector<double>(values, shape, dtype);
    }
    case Kind::Integers: {
      std::vector<std::int64_t> values;
      const auto high = static_cast<std::int64_t>(b);
      for (double v : rand(shape, kFloat64, a, b).to_vector<double>()) {
        values.push_back(std::min(static_cast<std::int64_t>(std::floor(v)), high - 1));
      }
      const Tensor t = from_vector<std::int64_t>(values, shape);
      return dtype == kInt64 ? t : t.to(dtype);
    }
    case Kind::Custom: {
      BASIN_CHECK(static_cast<bool>(make), "custom: no function to make the tensor");
      const Tensor t = make(shape, dtype);
      BASIN_CHECK(t.shape() == shape && t.device().is_cpu(), "custom: made ", shape_str(t.shape()), " on ",
                  t.device().str(), ", expected ", shape_str(shape), " on the CPU");
      return t;
    }
  }
  BASIN_FAIL("Domain::draw: unknown kind");
}

// ---------------------------------------------------------------- inputs

InputSpec input(Shape shape, Domain domain) { return {std::move(shape), std::move(domain)}; }

InputSpec input(Shape shape, Shape parity_shape, Domain domain) {
  return {std::move(shape), std::move(domain), std::move(parity_shape)};
}

InputSpec input_no_grad(Shape shape, Domain domain) {
  InputSpec spec = input(std::move(shape), std::move(domain));
  spec.requires_grad = false;
  return spec;
}

InputSpec input_no_grad(Shape shape, Shape parity_shape, Domain domain) {
  InputSpec spec = input(std::move(shape), std::move(parity_shape), std::move(domain));
  spec.requires_grad = false;
  return spec;
}

InputSpec indices(Shape shape, std::int64_t high, DType dtype) {
  BASIN_CHECK(!is_floating(dtype), "indices: expected an integer dtype, got ", dtype_name(dtype));
  InputSpec spec = input(std::move(shape), integers(0, high));
  spec.dtype = dtype;
  spec.requires_grad = false;
  return spec;
}

// ---------------------------------------------------------------- tolerances

Tolerances scaled(double float32, double float64) {
  return {{float32, float32, Norm::Max}, {float64, float64, Norm::Max}};
}

Tolerances absolute(double float32, double float64) { return {{0.0, float32, Norm::Max}, {0.0, float64, Norm::Max}}; }

Tolerances relative(double float32, double float64) { return {{float32, 0.0, Norm::L2}, {float64, 0.0, Norm::L2}}; }

Tolerances exact(bool nan_equal) {
  const Tolerance t{0.0, 0.0, Norm::Max, nan_equal};
  return {t, t};
}

bool close_enough(const Tensor& got, const Tensor& want, const Tolerance& tolerance, std::string* why) {
  std::ostringstream out;
  const auto fail = [&](auto&&... parts) {
    if (why != nullptr) {
      (out << ... << parts);
      *why = out.str();
    }
    return false;
  };
  if (!got.defined() || !want.defined()) return fail("a tensor is undefined");
  if (got.shape() != want.shape()) return fail("shapes ", shape_str(got.shape()), " and ", shape_str(want.shape()));
  if (got.dtype() != want.dtype()) return fail("dtypes ", dtype_name(got.dtype()), " and ", dtype_name(want.dtype()));
  const std::vector<double> x = got.to_vector<double>();
  const std::vector<double> y = want.to_vector<double>();
  const bool integral = !is_floating(got.dtype());
  const double rtol = integral ? 0.0 : tolerance.rtol;
  const double atol = integral ? 0.0 : tolerance.atol;

  double worst = 0.0, scale = 0.0, diff_squares = 0.0, want_squares = 0.0;
  std::size_t worst_at = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    double d = 0.0;
    if (std::isnan(x[i]) || std::isnan(y[i])) {
      d = std::isnan(x[i]) && std::isnan(y[i]) && tolerance.nan_equal ? 0.0 : INFINITY;
    } else if (x[i] != y[i]) {
      d = std::abs(x[i] - y[i]);  // infinite when one side is infinite
    }
    if (d > worst || (i == 0 && d == worst)) {
      worst = d;
      worst_at = i;
    }
    if (std::isfinite(y[i])) {
      scale = std::max(scale, std::abs(y[i]));
      want_squares += y[i] * y[i];
    }
    diff_squares += d * d;
  }
  const double measure = tolerance.norm == Norm::Max ? worst : std::sqrt(diff_squares);
  const double allowed = atol + rtol * (tolerance.norm == Norm::Max ? scale : std::sqrt(want_squares));
  if (measure <= allowed) return true;
  return fail(tolerance.norm == Norm::Max ? "max |got - want| = " : "||got - want|| = ", measure, ", allowed ", allowed,
              " (rtol ", rtol, ", atol ", atol, "); worst at element ", worst_at, ": got ", x[worst_at], ", want ",
              y[worst_at]);
}

// ---------------------------------------------------------------- runners

std::uint64_t case_seed(const std::string& name, DType dtype) {
  std::uint64_t h = 14695981039346656037ull;  // FNV-1a
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h ^ (static_cast<std::uint64_t>(dtype) * 0x9e3779b97f4a7c15ull);
}

void poison_free_memory(Device device) {
  (void)full({1 << 22}, std::numeric_limits<double>::quiet_NaN(), TensorOptions(kFloat64).device(device));
}

void check_close(const Tensor& got, const Tensor& want, const Tolerance& tolerance) {
  std::string why;
  const bool ok = close_enough(got, want, tolerance, &why);
  INFO(why);
  CHECK(ok);
}

namespace {

// One tensor for gradcheck: the single output, or every floating output flattened and joined.
Tensor joined(const Outputs& outputs) {
  if (outputs.tensors.size() == 1) return outputs.tensors[0];
  TensorList parts;
  for (const Tensor& t : outputs.tensors) {
    if (t.defined() && is_floating(t.dtype())) parts.push_back(t.reshape({-1}));
  }
  BASIN_CHECK(!parts.empty(), "check_gradients: the op has no floating output");
  return cat(parts, 0);
}

std::string describe(const std::vector<Tensor>& tensors) {
  std::ostringstream out;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (i > 0) out << ", ";
    const Tensor& t = tensors[i];
    if (!t.defined()) {
      out << "undefined";
    } else {
      out << shape_str(t.shape()) << " " << dtype_name(t.dtype()) << " on " << t.device().str();
    }
  }
  return out.str();
}

// A table mistake (a repeated name, which Catch would take for the same
// section; a case without a function) fails once, naming the case.
void check_table(const std::vector<OpCase>& table) {
  std::set<std::string> seen;
  std::string problem;
  for (const OpCase& op : table) {
    if (!seen.insert(op.name).second) problem += "case \"" + op.name + "\" appears twice; ";
    if (!op.fn) problem += "case \"" + op.name + "\" has no function; ";
  }
  INFO(problem);
  REQUIRE(problem.empty());
}

// The side a parity run tests against the reference kernels: CUDA, or the
// CPU engine (core/cpu_engine.h).
enum class Target { cuda, cpu_engine };

void parity_in(const OpCase& op, DType dtype, Target target) {
  INFO(op.name << " in " << dtype_name(dtype) << (target == Target::cuda ? " on CUDA" : " on the CPU engine"));
  manual_seed(case_seed(op.name, dtype));
  const Device cuda = target == Target::cuda ? Device::cuda() : Device::cpu();
  // The expected side always runs on the reference kernels, the oracle; the
  // other on CUDA, or on the CPU engine's kernels.
  const auto on_reference = [](auto&& body) {
    const CpuKernelsScope scope(CpuKernels::reference);
    body();
  };
  const auto on_target = [](auto&& body) {
    const CpuKernelsScope scope(CpuKernels::fast);
    body();
  };
  ParityRun run;
  run.dtype = dtype;
  std::vector<bool> wrt;
  for (const InputSpec& spec : op.inputs) {
    const Tensor drawn = spec.domain.draw(spec.shape_for_parity(), spec.dtype.value_or(dtype));
    const bool grad = op.differentiable && spec.requires_grad && is_floating(drawn.dtype());
    run.inputs.push_back(drawn);
    run.cpu_inputs.push_back(drawn.clone().requires_grad_(grad));
    run.cuda_inputs.push_back(drawn.clone().to(cuda).requires_grad_(grad));
    wrt.push_back(grad);
  }

  on_reference([&] { run.expected = op.fn(run.cpu_inputs).tensors; });
  if (op.poison && target == Target::cuda) poison_free_memory(cuda);
  on_target([&] { run.got = op.fn(run.cuda_inputs).tensors; });
  REQUIRE(run.got.size() == run.expected.size());
  const Tolerance& tolerance = op.tolerances(dtype);
  for (std::size_t i = 0; i < run.got.size(); ++i) {
    INFO("output " << i);
    CHECK(run.got[i].device() == cuda);
    check_close(run.got[i], run.expected[i], tolerance);
  }
  // Inputs an op may update in place (running statistics) must agree too; a
  // NaN it leaves alone is still a NaN on both sides.
  Tolerance same_inputs = tolerance;
  same_inputs.nan_equal = true;
  for (std::size_t i = 0; i < run.inputs.size(); ++i) {
    if (wrt[i]) continue;
    INFO("input " << i << " after the op");
    check_close(run.cuda_inputs[i], run.cpu_inputs[i], same_inputs);
  }

  if (op.differentiable) {
    // The same random upstream gradient on both sides.
    std::vector<std::size_t> outs;
    std::vector<Tensor> upstream;
    for (std::size_t i = 0; i < run.expected.size(); ++i) {
      if (!run.expected[i].requires_grad()) continue;
      outs.push_back(i);
      upstream.push_back(randn(run.expected[i].shape(), run.expected[i].dtype()));
    }
    REQUIRE_FALSE(outs.empty());
    if (outs.size() == 1) {
      on_reference([&] { run.expected[outs[0]].backward(upstream[0]); });
      if (op.poison && target == Target::cuda) poison_free_memory(cuda);
      on_target([&] { run.got[outs[0]].backward(upstream[0].to(cuda)); });
    } else {
      // Several outputs: the gradient of sum_i <output_i, upstream_i>.
      Tensor cpu_total, cuda_total;
      on_reference([&] {
        for (std::size_t k = 0; k < outs.size(); ++k) {
          const Tensor cpu_term = sum(mul(run.expected[outs[k]], upstream[k]));
          cpu_total = k == 0 ? cpu_term : add(cpu_total, cpu_term);
        }
        cpu_total.backward();
      });
      if (op.poison && target == Target::cuda) poison_free_memory(cuda);
      on_target([&] {
        for (std::size_t k = 0; k < outs.size(); ++k) {
          const Tensor cuda_term = sum(mul(run.got[outs[k]], upstream[k].to(cuda)));
          cuda_total = k == 0 ? cuda_term : add(cuda_total, cuda_term);
        }
        cuda_total.backward();
      });
    }
    for (std::size_t i = 0; i < run.inputs.size(); ++i) {
      if (!wrt[i]) continue;
      INFO("gradient of input " << i);
      REQUIRE(run.cpu_inputs[i].grad().defined());
      REQUIRE(run.cuda_inputs[i].grad().defined());
      CHECK(run.cuda_inputs[i].grad().device() == cuda);
      check_close(run.cuda_inputs[i].grad(), run.cpu_inputs[i].grad(), tolerance);
    }
  }
  if (op.also) on_target([&] { op.also(run); });
}

}  // namespace

void check_gradients(const OpCase& op) {
  INFO("gradient check of " << op.name);
  REQUIRE(op.differentiable);
  manual_seed(case_seed(op.name, kFloat64));
  std::vector<Tensor> all;
  std::vector<std::size_t> wrt;
  std::int64_t elements = 0;
  for (std::size_t i = 0; i < op.inputs.size(); ++i) {
    const InputSpec& spec = op.inputs[i];
    all.push_back(spec.domain.draw(spec.shape, spec.dtype.value_or(kFloat64)));
    if (spec.requires_grad && is_floating(all.back().dtype())) {
      wrt.push_back(i);
      elements += all.back().numel();
    }
  }
  REQUIRE_FALSE(wrt.empty());
  std::vector<Tensor> leaves;
  for (std::size_t i : wrt) leaves.push_back(all[i]);
  // gradcheck perturbs the differentiated inputs; the others stay as drawn.
  const TensorFn fn = [&](const std::vector<Tensor>& xs) {
    std::vector<Tensor> args = all;
    for (std::size_t k = 0; k < wrt.size(); ++k) args[wrt[k]] = xs[k];
    return joined(op.fn(args));
  };
  const GradcheckResult result = gradcheck(fn, leaves, op.gradcheck);
  INFO(result.report);
  CHECK(result.ok);
  CHECK(result.compared > 0);
  if (op.all_compared) {
    CHECK(result.kinks == 0);
    CHECK(result.compared == elements);
  }
}

void check_cuda_parity(const OpCase& op) {
  BASIN_REQUIRE_CUDA();
  REQUIRE_FALSE(op.dtypes.empty());
  for (DType dtype : op.dtypes) {
    DYNAMIC_SECTION(dtype_name(dtype)) { parity_in(op, dtype, Target::cuda); }
  }
}

void check_engine_parity(const OpCase& op) {
  // float64 runs on the reference on both sides (core/cpu_engine.h): only
  // float32 has engine kernels to compare.
  if (std::find(op.dtypes.begin(), op.dtypes.end(), kFloat32) == op.dtypes.end()) return;
  DYNAMIC_SECTION("float32") { parity_in(op, kFloat32, Target::cpu_engine); }
}

bool through_autograd(const OpCase& op) { return op.differentiable; }

bool kernels_only(const OpCase& op) { return !op.differentiable; }

void run_gradient_checks(const std::vector<OpCase>& table, const CaseFilter& filter) {
  check_table(table);
  int taken = 0;
  for (const OpCase& op : table) {
    if (op.runs == Runs::Parity || (filter && !filter(op))) continue;
    ++taken;
    DYNAMIC_SECTION(op.name) { check_gradients(op); }
  }
  CHECK(taken > 0);  // a table that checks nothing is a mistake
}

void run_cuda_parity(const std::vector<OpCase>& table, const CaseFilter& filter) {
  BASIN_REQUIRE_CUDA();
  check_table(table);
  int taken = 0;
  for (const OpCase& op : table) {
    if (op.runs == Runs::Gradients || (filter && !filter(op))) continue;
    ++taken;
    DYNAMIC_SECTION(op.name) { check_cuda_parity(op); }
  }
  CHECK(taken > 0);
}

void run_engine_parity(const std::vector<OpCase>& table, const CaseFilter& filter) {
  check_table(table);
  int taken = 0;
  for (const OpCase& op : table) {
    if (op.runs == Runs::Gradients || (filter && !filter(op))) continue;
    ++taken;
    DYNAMIC_SECTION(op.name) { check_engine_parity(op); }
  }
  CHECK(taken > 0);
}

void check_bad_inputs(const OpFn& fn, const std::vector<BadInput>& cases) {
  REQUIRE_FALSE(cases.empty());
  for (const BadInput& bad : cases) {
    INFO("inputs " << describe(bad.inputs) << ", expecting \"" << bad.message << "\"");
    try {
      (void)fn(bad.inputs);
      FAIL_CHECK("no error was thrown");
    } catch (const Error& e) {
      CHECK_THAT(std::string(e.what()), Catch::Contains(bad.message));
    } catch (const std::exception& e) {
      FAIL_CHECK("threw something other than basin::Error: " << e.what());
    }
  }
}

}  // namespace basin::testing
