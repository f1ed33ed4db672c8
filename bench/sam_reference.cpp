// Host side of the SAM optimizer benchmark: see sam_reference.h.
#include "bench/sam_reference.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/dispatch.h"
#include "core/random.h"
#include "nn/models/models.h"
#include "optim/sgd.h"

namespace basin::bench {

// ---------------------------------------------------------------- parameter sets

ParamSet param_set(const std::string& model) {
  ParamSet set;
  set.model = model;
  // Building the model initializes weights we do not need, but it is the one
  // place the shapes are defined: no hand-written list can drift from it.
  const nn::ModulePtr net = nn::create_model(model);
  for (const auto& [name, p] : net->named_parameters()) {
    set.names.push_back(name);
    set.shapes.push_back(p.shape());
    set.numels.push_back(p.numel());
    const bool adaptive = name.find("weight") != std::string::npos;
    set.adaptive.push_back(adaptive);
    set.params += p.numel();
    if (adaptive) set.adaptive_params += p.numel();
  }
  return set;
}

void dump_shapes(const std::vector<ParamSet>& sets, const std::string& path) {
  nlohmann::ordered_json models = nlohmann::ordered_json::object();
  for (const ParamSet& set : sets) {
    nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < set.size(); ++i) {
      tensors.push_back({{"name", set.names[i]}, {"shape", set.shapes[i]}, {"adaptive", bool(set.adaptive[i])}});
    }
    models[set.model] = {{"params", set.params}, {"tensors", tensors}};
  }
  const nlohmann::ordered_json doc = {{"generator", "bench_sam_kernels --dump-shapes"}, {"models", models}};
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp);
    BASIN_CHECK(out.good(), "--dump-shapes: cannot write ", temp);
    out << doc.dump(1) << "\n";
    BASIN_CHECK(out.good(), "--dump-shapes: writing ", temp, " failed");
  }
  BASIN_CHECK(std::rename(temp.c_str(), path.c_str()) == 0, "--dump-shapes: cannot rename ", temp, " to ", path);
}

// ---------------------------------------------------------------- one step

kernels::SamArgs SamSettings::sam_args(std::int64_t adaptive_end) const {
  kernels::SamArgs a;
  a.rho = rho;
  a.eps = eps;
  a.adaptive = asam;
  a.eta = eta;
  a.adaptive_end = asam ? adaptive_end : 0;
  return a;
}

kernels::SgdArgs SamSettings::sgd_args() const {
  kernels::SgdArgs a;
  a.lr = lr;
  a.momentum = momentum;
  a.weight_decay = weight_decay;
  a.first_step = false;
  return a;
}

SamSettings sam_settings(bool asam) {
  SamSettings s;
  s.asam = asam;
  s.rho = asam ? 0.5 : 0.05;
  return s;
}

SgdConstants sgd_constants(const SamSettings& settings) {
  return {static_cast<float>(settings.lr), static_cast<float>(settings.momentum), 1.0f,
          static_cast<float>(settings.weight_decay)};
}

StepInputs make_inputs(const ParamSet& set, Device device, std::uint64_t seed) {
  manual_seed(seed);
  const TensorOptions f32 = TensorOptions(kFloat32).device(device);
  const double grad_scale = 1.0 / std::sqrt(static_cast<double>(set.params));
  StepInputs in;
  for (const Shape& shape : set.shapes) {
    in.w.push_back(randn(shape, f32, 0.0, 0.05));
    in.g.push_back(randn(shape, f32, 0.0, grad_scale));
    in.g2.push_back(randn(shape, f32, 0.0, grad_scale));
    in.m.push_back(randn(shape, f32, 0.0, grad_scale));
  }
  return in;
}

StepInputs to_cpu(const StepInputs& in) {
  StepInputs out;
  for (std::size_t i = 0; i < in.w.size(); ++i) {
    out.w.push_back(in.w[i].cpu());
    out.g.push_back(in.g[i].cpu());
    out.g2.push_back(in.g2[i].cpu());
    out.m.push_back(in.m[i].cpu());
  }
  return out;
}

namespace {

std::vector<Tensor> copies(const optim::ParameterArena& arena, const Tensor& buffer) {
  std::vector<Tensor> out;
  for (std::size_t i = 0; i < arena.size(); ++i) out.push_back(arena.view(buffer, i).clone());
  return out;
}

}  // namespace

StepResults reference_step(const ParamSet& set, const StepInputs& in, const SamSettings& settings) {
  // Named leaves holding w: optim::SGD packs them exactly as it packs a
  // model's parameters ("weight" tensors first), so the layout, the adaptive
  // boundary and therefore the norm's summation order are the real ones.
  std::vector<std::pair<std::string, Tensor>> named;
  for (std::size_t i = 0; i < set.size(); ++i) {
    Tensor p = in.w[i].detach().clone();
    p.requires_grad_(true);
    named.emplace_back(set.names[i], p);
  }
  optim::SGD sgd(named, optim::SGDOptions(settings.lr).momentum(settings.momentum).weight_decay(settings.weight_decay));
  optim::ParameterArena& arena = sgd.arena();
  const Tensor w = arena.params();
  const Tensor g = arena.grads();
  Tensor momentum = arena.make_buffer();
  const Tensor saved = arena.make_buffer();
  for (std::size_t i = 0; i < set.size(); ++i) {
    arena.view(g, i).copy_(in.g[i]);
    arena.view(momentum, i).copy_(in.m[i]);
  }
  const TensorOptions f64(kFloat64);
  const Tensor scale = zeros({kernels::kSamScaleSlots}, f64);
  const Tensor partials = zeros({kernels::kNormPartials}, f64);
  const kernels::SamArgs args = settings.sam_args(arena.adaptive_end());

  StepResults r;
  kernels::reference::sam_norm(arg(scale), arg(partials), arg(w), arg(g), args);
  r.norm = scale.to_vector<double>()[kernels::kSamNorm];
  kernels::reference::sam_perturb(arg(w), arg(saved), arg(g), arg(scale), args);
  r.perturbed = copies(arena, w);
  r.saved = copies(arena, saved);
  for (std::size_t i = 0; i < set.size(); ++i) arena.view(g, i).copy_(in.g2[i]);
  kernels::reference::sgd_update(arg(w), arg(saved), arg(g), arg(momentum), settings.sgd_args());
  r.updated = copies(arena, w);
  r.momentum = copies(arena, momentum);
  return r;
}

StepResults run_step(SamVariant& variant, const StepInputs& in) {
  StepResults r;
  variant.load(in);
  variant.norm();
  r.norm = variant.read_norm();
  variant.perturb();
  r.perturbed = variant.read_weights();
  r.saved = variant.read_saved();
  variant.load_grads(in.g2);
  variant.restore_update();
  r.updated = variant.read_weights();
  r.momentum = variant.read_momentum();
  return r;
}

// ---------------------------------------------------------------- the check

namespace {

std::string element_label(const ParamSet& set, std::size_t tensor, std::int64_t index, float got, float want) {
  std::ostringstream out;
  out.precision(9);
  out << set.names[tensor] << "[" << index << "]: " << got << " vs " << want;
  return out.str();
}

Check compare_tensors(const ParamSet& set, const std::string& what, const std::vector<Tensor>& got,
                      const std::vector<Tensor>& ref, double rtol, bool exact) {
  Check c;
  c.what = what;
  if (got.size() != ref.size()) {
    c.where = "got " + std::to_string(got.size()) + " tensors, expected " + std::to_string(ref.size());
    c.worst = std::numeric_limits<double>::infinity();
    return c;
  }
  double squares = 0.0;
  std::int64_t count = 0;
  for (const Tensor& r : ref) {
    for (const float v : r.contiguous().to_vector<float>()) squares += static_cast<double>(v) * v;
    count += r.numel();
  }
  const double floor = count > 0 ? std::sqrt(squares / static_cast<double>(count)) : 0.0;
  const double tiny = std::numeric_limits<double>::min();

  std::int64_t mismatches = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (got[i].shape() != ref[i].shape() || got[i].dtype() != kFloat32) {
      c.where = set.names[i] + ": got " + shape_str(got[i].shape()) + " " + dtype_name(got[i].dtype()) + ", expected " +
                shape_str(ref[i].shape()) + " float32";
      c.worst = std::numeric_limits<double>::infinity();
      return c;
    }
    const std::vector<float> x = got[i].contiguous().to_vector<float>();
    const std::vector<float> r = ref[i].contiguous().to_vector<float>();
    for (std::size_t e = 0; e < r.size(); ++e) {
      if (exact) {
        // Bit for bit: a copy must not even turn -0 into +0.
        if (std::memcmp(&x[e], &r[e], sizeof(float)) != 0) {
          if (mismatches++ == 0) c.where = element_label(set, i, static_cast<std::int64_t>(e), x[e], r[e]);
        }
        continue;
      }
      double rel = std::abs(static_cast<double>(x[e]) - r[e]) / (std::abs(static_cast<double>(r[e])) + floor + tiny);
      if (std::isnan(rel)) rel = std::numeric_limits<double>::infinity();
      if (rel > c.worst) {
        c.worst = rel;
        c.where = element_label(set, i, static_cast<std::int64_t>(e), x[e], r[e]);
      }
    }
  }
  if (exact) {
    c.ok = mismatches == 0;
    c.worst = mismatches == 0 ? 0.0 : std::numeric_limits<double>::infinity();
    if (mismatches > 0) c.where = std::to_string(mismatches) + " elements differ, first " + c.where;
    return c;
  }
  c.ok = c.worst <= rtol;
  return c;
}

std::string short_number(double v) {
  std::ostringstream out;
  out.precision(2);
  out << std::scientific << v;
  return out.str();
}

}  // namespace

Verdict compare_step(const ParamSet& set, const StepResults& got, const StepResults& ref, double rtol) {
  Verdict v;
  Check norm;
  norm.what = "gradient norm";
  norm.worst = std::abs(got.norm - ref.norm) / std::abs(ref.norm);
  if (std::isnan(norm.worst)) norm.worst = std::numeric_limits<double>::infinity();
  std::ostringstream where;
  where.precision(12);
  where << got.norm << " vs " << ref.norm;
  norm.where = where.str();
  norm.ok = norm.worst <= rtol;
  v.checks.push_back(norm);
  v.checks.push_back(compare_tensors(set, "perturbed weights", got.perturbed, ref.perturbed, rtol, false));
  v.checks.push_back(compare_tensors(set, "saved copy", got.saved, ref.saved, 0.0, true));
  v.checks.push_back(compare_tensors(set, "updated weights", got.updated, ref.updated, rtol, false));
  v.checks.push_back(compare_tensors(set, "momentum", got.momentum, ref.momentum, rtol, false));
  return v;
}

bool Verdict::ok() const {
  return std::all_of(checks.begin(), checks.end(), [](const Check& c) { return c.ok; });
}

std::string Verdict::summary() const {
  std::string failed;
  double worst = 0.0;
  for (const Check& c : checks) {
    if (!c.ok) {
      failed += (failed.empty() ? "" : "; ") + c.what + ": " +
                (std::isfinite(c.worst) ? "relative error " + short_number(c.worst) + " at " : "") + c.where;
    }
    worst = std::max(worst, c.worst);
  }
  if (!failed.empty()) return "FAILED: " + failed;
  return "ok (worst relative error " + short_number(worst) + ")";
}

}  // namespace basin::bench
