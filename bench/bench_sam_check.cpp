// bench_sam_check: the SAM benchmark's validation path, run on the CPU, so
// that it is exercised where there is no GPU (and in CPU-only builds).
// bench_sam_kernels trusts this path to keep wrong kernels from being timed;
// here it has to prove that it can tell right from wrong:
//   1. the reference step (kernels::reference over optim::SGD's arena) for each model;
//   2. a CPU replica of the baseline variants (per tensor, float32, the same
//      element functions their CUDA kernels call: sam_reference.h) must pass;
//   3. replicas with one planted fault each must fail, each on the check
//      that the fault concerns.
// Both SAM and ASAM. Exits 1 when any outcome differs from the expected one.
//
// Usage: bench_sam_check [--models resnet18,wrn16-8,wrn28-10] [--dump-shapes FILE] [--verbose]
// --dump-shapes writes the same JSON as bench_sam_kernels --dump-shapes.
#include <cmath>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/common.h"
#include "bench/sam_reference.h"
#include "nn/models/models.h"

namespace basin::bench {

namespace {

enum class Fault {
  None,
  DropPerturbation,  // one tensor is not perturbed
  NoSavedCopy,       // the saved copy is never written (it keeps its NaN poison)
  SaveAfterPerturb,  // the copy is taken after the perturbation
  StaleMomentum,     // the momentum buffer is not written back
  NormOff,           // the norm is 1e-4 too large
  PlainNormForAsam,  // ASAM's norm without T (a SAM norm)
};

struct FaultCase {
  Fault fault;
  const char* label;
  const char* fails;  // the check that must catch it ("" when it must pass)
};

const std::vector<FaultCase>& fault_cases() {
  static const std::vector<FaultCase> cases = {
      {Fault::None, "per-tensor replica", ""},
      {Fault::DropPerturbation, "one tensor not perturbed", "perturbed weights"},
      {Fault::NoSavedCopy, "saved copy never written", "saved copy"},
      {Fault::SaveAfterPerturb, "saved copy taken after the perturbation", "saved copy"},
      {Fault::StaleMomentum, "momentum not written back", "momentum"},
      {Fault::NormOff, "norm 1e-4 too large", "gradient norm"},
      {Fault::PlainNormForAsam, "ASAM norm without T", "gradient norm"},
  };
  return cases;
}

// The v1/v2 math on the CPU, tensor by tensor, with a fault planted on request.
class CpuReplica : public SamVariant {
 public:
  CpuReplica(const ParamSet& set, const SamSettings& settings, Fault fault)
      : set_(set), settings_(settings), fault_(fault) {}
  std::string name() const override { return "cpu replica"; }

  void load(const StepInputs& in) override {
    w_.clear();
    g_.clear();
    m_.clear();
    saved_.clear();
    for (std::size_t i = 0; i < set_.size(); ++i) {
      w_.push_back(in.w[i].contiguous().to_vector<float>());
      g_.push_back(in.g[i].contiguous().to_vector<float>());
      m_.push_back(in.m[i].contiguous().to_vector<float>());
      saved_.emplace_back(w_.back().size(), std::numeric_limits<float>::quiet_NaN());
    }
  }
  void load_grads(const std::vector<Tensor>& grads) override {
    for (std::size_t i = 0; i < set_.size(); ++i) g_[i] = grads[i].contiguous().to_vector<float>();
  }

  void norm() override {
    // Per tensor a float32 norm (summed in double here: a sequential float sum
    // of millions of squares would drift further than the GPU's tree does),
    // then the norm of the norms, as the v1 kernels compute it.
    const bool plain = fault_ == Fault::PlainNormForAsam;
    double squares = 0.0;
    for (std::size_t i = 0; i < set_.size(); ++i) {
      double sum = 0.0;
      const bool scaled = is_scaled(i) && !plain;
      for (std::size_t e = 0; e < g_[i].size(); ++e) {
        sum += norm_term(w_[i][e], g_[i][e], scaled, static_cast<float>(settings_.eta));
      }
      const double tensor_norm = static_cast<float>(std::sqrt(sum));
      squares += tensor_norm * tensor_norm;
    }
    norm_ = std::sqrt(squares);
    if (fault_ == Fault::NormOff) norm_ *= 1.0 + 1e-4;
    scale_ = settings_.rho / (norm_ + settings_.eps);
  }

  void perturb() override {
    const float s = static_cast<float>(scale_);
    const float eta = static_cast<float>(settings_.eta);
    for (std::size_t i = 0; i < set_.size(); ++i) {
      const bool skip = fault_ == Fault::DropPerturbation && i == set_.size() / 2;
      for (std::size_t e = 0; e < w_[i].size(); ++e) {
        if (fault_ != Fault::NoSavedCopy && fault_ != Fault::SaveAfterPerturb) saved_[i][e] = w_[i][e];
        if (!skip) w_[i][e] = perturbed_weight(w_[i][e], g_[i][e], s, is_scaled(i), eta);
        if (fault_ == Fault::SaveAfterPerturb) saved_[i][e] = w_[i][e];
      }
    }
  }

  void restore_update() override {
    const SgdConstants c = sgd_constants(settings_);
    for (std::size_t i = 0; i < set_.size(); ++i) {
      for (std::size_t e = 0; e < w_[i].size(); ++e) {
        float buf = m_[i][e];
        w_[i][e] = sgd_momentum_step(saved_[i][e], g_[i][e], buf, c);
        if (fault_ != Fault::StaleMomentum) m_[i][e] = buf;
      }
    }
  }

  double read_norm() override { return norm_; }
  std::vector<Tensor> read_weights() override { return tensors(w_); }
  std::vector<Tensor> read_saved() override { return tensors(saved_); }
  std::vector<Tensor> read_momentum() override { return tensors(m_); }

 private:
  bool is_scaled(std::size_t i) const { return settings_.asam && set_.adaptive[i]; }
  std::vector<Tensor> tensors(const std::vector<std::vector<float>>& values) const {
    std::vector<Tensor> out;
    for (std::size_t i = 0; i < set_.size(); ++i) out.push_back(from_vector(values[i], set_.shapes[i]));
    return out;
  }

  const ParamSet& set_;
  SamSettings settings_;
  Fault fault_;
  std::vector<std::vector<float>> w_, g_, m_, saved_;
  double norm_ = 0.0;
  double scale_ = 0.0;
};

// The names of the failed checks, joined by ", ".
std::string failed_checks(const Verdict& v) {
  std::string out;
  for (const Check& c : v.checks) {
    if (!c.ok) out += (out.empty() ? "" : ", ") + c.what;
  }
  return out;
}

int run(const std::vector<std::string>& models, const std::string& dump_path, bool verbose) {
  std::vector<ParamSet> sets;
  for (const std::string& m : models) sets.push_back(param_set(m));
  if (!dump_path.empty()) {
    dump_shapes(sets, dump_path);
    std::cout << "wrote the parameter shapes of " << sets.size() << " models to " << dump_path << "\n";
  }

  Table table({"model", "method", "variant", "expected", "outcome", "as expected"});
  int unexpected = 0, cases = 0;
  for (const ParamSet& set : sets) {
    const StepInputs inputs = make_inputs(set, Device::cpu(), 1);
    for (const bool asam : {false, true}) {
      const SamSettings settings = sam_settings(asam);
      const StepResults reference = reference_step(set, inputs, settings);
      for (const FaultCase& fc : fault_cases()) {
        if (fc.fault == Fault::PlainNormForAsam && !asam) continue;
        CpuReplica replica(set, settings, fc.fault);
        const Verdict verdict = compare_step(set, run_step(replica, inputs), reference, 1e-5);
        if (verbose) {
          for (const Check& c : verdict.checks) {
            std::cout << set.model << (asam ? " ASAM " : " SAM ") << fc.label << ": " << c.what << " worst " << c.worst
                      << " at " << c.where << "\n";
          }
        }
        const std::string expected = fc.fault == Fault::None ? "pass" : std::string("fail: ") + fc.fails;
        const std::string failed = failed_checks(verdict);
        // A planted fault must be caught by its own check; others may fail too
        // (a wrong saved copy also spoils the restored weights).
        const bool as_expected = fc.fault == Fault::None ? verdict.ok() : failed.find(fc.fails) != std::string::npos;
        const std::string outcome = verdict.ok() ? verdict.summary() : "fail: " + failed;
        table.add_row({set.model, asam ? "ASAM" : "SAM", fc.label, expected, outcome, as_expected ? "yes" : "NO"});
        if (!as_expected) {
          ++unexpected;
          table.add_note("unexpected: " + verdict.summary());
        }
        ++cases;
      }
    }
  }
  table.print(std::cout,
              unexpected == 0
                  ? "the SAM benchmark's check passed the replica and caught all " +
                        std::to_string(cases - 2 * static_cast<int>(sets.size())) + " planted faults"
                  : std::to_string(unexpected) + " of " + std::to_string(cases) + " outcomes were NOT as expected");
  return unexpected == 0 ? 0 : 1;
}

}  // namespace

}  // namespace basin::bench

int main(int argc, char** argv) {
  std::string models = "resnet18,wrn16-8,wrn28-10";
  std::string dump_path;
  bool verbose = false;
  CLI::App app{"bench_sam_check: exercises the SAM benchmark's check against the CPU reference"};
  app.add_option("--models", models, "comma-separated model names (create_model)")->capture_default_str();
  app.add_option("--dump-shapes", dump_path, "write the models' parameter names and shapes as JSON");
  app.add_flag("--verbose", verbose, "print every check's worst element");
  CLI11_PARSE(app, argc, argv);
  try {
    const std::vector<std::string> names = basin::bench::split_list(models);
    BASIN_CHECK(!names.empty(), "--models: no model named");
    for (const std::string& m : names) basin::nn::check_model_name(m);
    return basin::bench::run(names, dump_path, verbose);
  } catch (const std::exception& e) {
    std::cerr << "bench_sam_check: " << e.what() << "\n";
    return 1;
  }
}
