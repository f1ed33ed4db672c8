// basin-sharpness: measures how flat a trained model's minimum is: the top
// Hessian eigenvalues, the Hessian trace, SAM / ASAM / m-sharpness, and loss
// landscapes along random or interpolating directions. The measurements are
// the analysis/ library's; this program picks the model, the checkpoint and
// the examples, shows progress, and writes sharpness.json and the landscape
// CSVs. docs/sharpness.md explains each number; `basin-sharpness --help`
// lists the options.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "analysis/hessian.h"
#include "analysis/landscape.h"
#include "analysis/objective.h"
#include "analysis/sharpness.h"
#include "apps/trainer.h"
#include "core/cpu_engine.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/serialization.h"
#include "data/cifar.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "nn/models/models.h"

namespace {

namespace fs = std::filesystem;
namespace analysis = basin::analysis;
using basin::apps::format_duration;
using basin::apps::model_tensors;
using basin::Tensor;
using basin::TensorMap;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

// An error of this program's own: one line, without the library's "(file:line)".
[[noreturn]] void fail(const std::string& message) { throw basin::Error(message); }

template <class... Args>
void require(bool condition, const Args&... parts) {
  if (!condition) fail(basin::detail::concat(parts...));
}

const std::vector<std::string> kMetricNames = {"lambda_max", "trace", "sharpness", "landscape1d", "landscape2d"};

// ---------------------------------------------------------------- the command line

struct Options {
  std::string run, checkpoint, model, dataset, data_dir, device = "auto", out;
  int threads = 0;
  std::string split = "train";
  std::int64_t subset = 256;
  std::int64_t batch_size = 128;
  std::string dtype = "float64";
  std::string bn = "eval";
  double label_smoothing = 0.0;
  bool noisy_labels = false;
  std::string metrics = "lambda_max,trace,sharpness";
  std::uint64_t seed = 0;
  double hvp_step = analysis::HessianOptions().step();
  // lambda_max
  std::int64_t top_k = 1, max_iterations = 100;
  double tolerance = 1e-4;
  // trace
  std::int64_t trace_samples = 50;
  // sharpness
  double rho = 0.05, asam_rho = 0.5, eta = 0.01;
  std::int64_t ascent_steps = 1;
  std::int64_t m = 0;  // 0: no m-sharpness
  // landscapes
  std::int64_t line_points = 51;
  std::vector<double> line_range = {-1.0, 1.0};
  std::string between;
  std::int64_t grid = 21;
  std::vector<double> range = {-1.0, 1.0};
};

std::vector<std::string> parse_metrics(const std::string& text) {
  std::vector<std::string> chosen;
  std::stringstream list(text);
  for (std::string item; std::getline(list, item, ',');) {
    const auto first = item.find_first_not_of(" \t");
    const auto last = item.find_last_not_of(" \t");
    item = first == std::string::npos ? "" : item.substr(first, last - first + 1);
    if (item.empty()) continue;
    require(std::find(kMetricNames.begin(), kMetricNames.end(), item) != kMetricNames.end(), "unknown metric '",
            item, "' in --metrics (known: lambda_max, trace, sharpness, landscape1d, landscape2d)");
    if (std::find(chosen.begin(), chosen.end(), item) == chosen.end()) chosen.push_back(item);
  }
  require(!chosen.empty(), "--metrics names no metric (known: lambda_max, trace, sharpness, landscape1d, landscape2d)");
  return chosen;
}

bool wants(const std::vector<std::string>& metrics, const std::string& name) {
  return std::find(metrics.begin(), metrics.end(), name) != metrics.end();
}

void check_range(const std::vector<double>& range, const char* option) {
  require(range.size() == 2 && std::isfinite(range[0]) && std::isfinite(range[1]) && range[0] < range[1], option,
          " must be two finite numbers FIRST,LAST with FIRST < LAST");
}

// Every value that can be judged before anything is loaded.
void validate(const Options& o, const CLI::App& app, const std::vector<std::string>& metrics) {
  require(o.subset > 0, "--subset must be positive, got ", o.subset);
  require(o.batch_size > 0, "--batch-size must be positive, got ", o.batch_size);
  require(o.split == "train" || o.split == "test", "--split must be train or test, got '", o.split, "'");
  require(o.dtype == "float64" || o.dtype == "float32", "--dtype must be float64 or float32, got '", o.dtype, "'");
  require(o.bn == "eval" || o.bn == "train", "--bn must be eval or train, got '", o.bn, "'");
  require(o.label_smoothing >= 0.0 && o.label_smoothing < 1.0, "--label-smoothing must be in [0, 1), got ",
          o.label_smoothing);
  require(std::isfinite(o.hvp_step) && o.hvp_step > 0.0, "--hvp-step must be positive, got ", o.hvp_step);
  require(o.top_k > 0, "--top-k must be positive, got ", o.top_k);
  require(o.max_iterations > 0, "--max-iterations must be positive, got ", o.max_iterations);
  require(std::isfinite(o.tolerance) && o.tolerance > 0.0, "--tolerance must be positive, got ", o.tolerance);
  require(o.trace_samples > 0, "--trace-samples must be positive, got ", o.trace_samples);
  require(std::isfinite(o.rho) && o.rho > 0.0, "--rho must be positive, got ", o.rho);
  require(std::isfinite(o.asam_rho) && o.asam_rho > 0.0, "--asam-rho must be positive, got ", o.asam_rho);
  require(std::isfinite(o.eta) && o.eta >= 0.0, "--eta must be non-negative, got ", o.eta);
  require(o.ascent_steps > 0, "--ascent-steps must be positive, got ", o.ascent_steps);
  if (app.count("--m")) {
    require(o.m > 0, "--m must be positive, got ", o.m);
    require(o.m <= o.subset, "--m must be at most --subset (", o.subset, "), got ", o.m);
    require(wants(metrics, "sharpness"), "--m measures m-sharpness: add sharpness to --metrics");
  }
  require(o.line_points >= 2, "--line-points must be at least 2, got ", o.line_points);
  check_range(o.line_range, "--line-range");
  require(o.grid >= 2, "--grid must be at least 2, got ", o.grid);
  check_range(o.range, "--range");
  if (!o.between.empty()) require(wants(metrics, "landscape1d"), "--between draws landscape1d: add it to --metrics");
  if (o.run.empty()) {
    require(!o.checkpoint.empty(), "say what to measure: --run DIR, or --checkpoint FILE with --model NAME");
    require(!o.noisy_labels, "--noisy-labels needs --run: the run's config.json says which labels were replaced");
  }
}

// ---------------------------------------------------------------- progress display

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// One measurement's progress. On a terminal: a bar redrawn in place (at most
// every 0.2 s); otherwise a plain line at most every 10 s. The analysis
// functions call it with done/total (a total may be an upper bound: an
// iteration that converges stops early) and a short status.
class ProgressLine {
 public:
  ProgressLine(std::string label, bool interactive)
      : label_(std::move(label)), interactive_(interactive), start_(Clock::now()), last_(start_) {}
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  analysis::ProgressFn callback() {
    return [this](std::int64_t done, std::int64_t total, const std::string& status) { show(done, total, status); };
  }

  void show(std::int64_t done, std::int64_t total, const std::string& status) {
    const double since = seconds_since(last_);
    if (!(interactive_ ? since >= 0.2 : since >= 10.0) && done < total) return;
    if (!interactive_ && done >= total) return;  // the result line follows at once
    last_ = Clock::now();
    const double elapsed = seconds_since(start_);
    const double eta = done > 0 && total > done
                           ? elapsed * static_cast<double>(total - done) / static_cast<double>(done)
                           : 0.0;
    std::ostringstream line;
    line << label_ << " ";
    if (interactive_) {
      constexpr int kWidth = 24;
      const std::int64_t clamped = std::clamp<std::int64_t>(done, 0, std::max<std::int64_t>(total, 1));
      const int filled = static_cast<int>(kWidth * clamped / std::max<std::int64_t>(total, 1));
      line << "[" << std::string(filled, '#') << std::string(kWidth - filled, '.') << "] ";
    }
    line << done << "/" << total;
    if (!status.empty()) line << "  " << status;
    line << "  " << format_duration(elapsed) << " elapsed, ETA " << format_duration(eta);
    if (interactive_) {
      std::cout << "\r" << line.str() << "\033[K" << std::flush;
      drawn_ = true;
    } else {
      std::cout << line.str() << "\n" << std::flush;
    }
  }

  // Clears the bar; the caller then prints the result line.
  void finish() {
    if (interactive_ && drawn_) std::cout << "\r\033[K" << std::flush;
    drawn_ = false;
  }
  double seconds() const { return seconds_since(start_); }

 private:
  std::string label_;
  bool interactive_;
  Clock::time_point start_, last_;
  bool drawn_ = false;
};

// ---------------------------------------------------------------- model and data

void require_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  require(status.type() != fs::file_type::not_found, what, " ", path, " not found");
  require(!ec, "cannot read ", what, " ", path, ": ", ec.message());
  require(status.type() == fs::file_type::regular, what, " ", path, " is not a regular file");
}

// The named model with the checkpoint's weights, in float32 on the CPU as
// stored. A checkpoint of another model is one line naming the mismatch.
basin::nn::ModulePtr load_model(const std::string& name, std::int64_t num_classes, const std::string& checkpoint) {
  require_file(checkpoint, "checkpoint");
  basin::nn::ModulePtr model = basin::nn::create_model(name, num_classes);
  const TensorMap state = model_tensors(basin::load_safetensors(checkpoint));
  try {
    model->load_state_dict(state);
  } catch (const std::exception& e) {
    fail(checkpoint + " does not hold a " + name + " checkpoint: " + e.what());
  }
  return model;
}

basin::data::Dataset load_split(const std::string& dataset, const std::string& dir, bool train) {
  return dataset == "cifar10" ? basin::data::load_cifar10(dir, train) : basin::data::load_cifar100(dir, train);
}

// The chosen examples as batches in file order, normalized, not augmented.
std::vector<analysis::LabelledBatch> make_batches(const basin::data::Dataset& set, std::int64_t batch_size,
                                                  basin::Device device) {
  const basin::data::BatchLoader loader(set, basin::data::LoaderOptions()
                                                 .batch_size(batch_size)
                                                 .shuffle(false)
                                                 .device(device)
                                                 .augment(basin::data::AugmentOptions::none())
                                                 .prefetch(0));
  std::vector<analysis::LabelledBatch> batches;
  for (const basin::data::Batch& batch : loader.epoch(0)) batches.push_back({batch.images, batch.labels});
  return batches;
}

// A second checkpoint's parameters as a vector of the objective's arena
// layout (the other end of a --between line).
Tensor weights_of(const analysis::Objective& objective, const std::string& model_name, std::int64_t num_classes,
                  const std::string& checkpoint) {
  basin::nn::ModulePtr other = load_model(model_name, num_classes, checkpoint);
  std::map<std::string, Tensor> params;
  for (const auto& [name, tensor] : other->named_parameters()) params[name] = tensor;
  Tensor flat = objective.new_vector();
  const std::vector<std::string>& names = objective.parameter_names();
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto found = params.find(names[i]);
    require(found != params.end(), checkpoint, " has no parameter '", names[i], "'");
    Tensor part = objective.view(flat, i);
    part.copy_(found->second);  // any dtype or device: converted to the arena's
  }
  return flat;
}

// ---------------------------------------------------------------- output

std::string number(double value, int precision = 6) {
  if (std::isnan(value)) return "nan";
  std::ostringstream out;
  out << std::setprecision(precision) << value;
  return out.str();
}

std::string with_commas(std::int64_t value) { return basin::data::detail::with_commas(value); }

struct SummaryRow {
  std::string metric, value, cost;
};

void print_summary(const std::vector<SummaryRow>& rows) {
  std::size_t metric_width = 6, value_width = 5;
  for (const SummaryRow& row : rows) {
    metric_width = std::max(metric_width, row.metric.size());
    value_width = std::max(value_width, row.value.size());
  }
  const auto pad = [](const std::string& text, std::size_t width) {
    return text + std::string(width > text.size() ? width - text.size() : 0, ' ');
  };
  std::cout << "\n" << pad("metric", metric_width) << "  " << pad("value", value_width) << "  cost\n";
  std::cout << std::string(metric_width + value_width + 30, '-') << "\n";
  for (const SummaryRow& row : rows) {
    std::cout << pad(row.metric, metric_width) << "  " << pad(row.value, value_width) << "  " << row.cost << "\n";
  }
}

// "3 gradients", "1 gradient".
std::string count(std::int64_t n, const std::string& what) {
  return with_commas(n) + " " + what + (n == 1 ? "" : "s");
}

std::string cost_text(std::int64_t gradients, std::int64_t losses, double seconds) {
  std::ostringstream out;
  if (gradients > 0) out << count(gradients, "gradient") << ", ";
  if (losses > 0) out << count(losses, "loss evaluation") << ", ";
  out << std::fixed << std::setprecision(1) << seconds << " s";
  return out.str();
}

json sharpness_json(const analysis::SharpnessEstimate& s, const analysis::SharpnessOptions& o) {
  json j = {{"rho", o.rho()},
            {"ascent_steps", o.ascent_steps()},
            {"sharpness", s.sharpness},
            {"loss", s.loss},
            {"perturbed_loss", s.perturbed_loss},
            {"perturbation_norm", s.perturbation_norm},
            {"best_step", s.best_step},
            {"step_sharpness", s.step_sharpness}};
  if (o.adaptive()) {
    j["eta"] = o.eta();
    j["scaled_norm"] = s.scaled_norm;
  }
  return j;
}

// ---------------------------------------------------------------- the measurement

int measure(const Options& o, const CLI::App& app) {
  const std::vector<std::string> metrics = parse_metrics(o.metrics);
  validate(o, app, metrics);

  // ---- what to measure: the run's configuration, the explicit options over it
  std::optional<basin::apps::TrainConfig> run_config;
  json run_json;  // config.json as written, for keys TrainConfig does not keep (label_noise_flipped)
  std::string model_name = o.model, dataset = o.dataset.empty() ? "cifar10" : o.dataset;
  std::string data_dir = o.data_dir.empty() ? "datasets" : o.data_dir;
  std::string checkpoint = o.checkpoint;
  if (!o.run.empty()) {
    std::error_code ec;
    const fs::file_status status = fs::status(o.run, ec);
    require(status.type() != fs::file_type::not_found, "--run folder ", o.run, " not found");
    require(fs::is_directory(status), "--run ", o.run, " is not a folder");
    const std::string config_path = (fs::path(o.run) / "config.json").string();
    require(fs::exists(config_path, ec), "--run ", o.run, " holds no config.json: is it a basin-train run folder?");
    run_config = basin::apps::TrainConfig::read_file(config_path);
    std::ifstream in(config_path);
    run_json = json::parse(in, nullptr, /*allow_exceptions=*/false);
    model_name = run_config->model;
    dataset = run_config->dataset;
    if (o.data_dir.empty()) data_dir = run_config->data_dir;
    if (checkpoint.empty()) checkpoint = (fs::path(o.run) / "checkpoint.safetensors").string();
  }
  require(!model_name.empty(), "--model is needed with --checkpoint (resnet18, wrn16-8, resnet20, cnn-small, ...)");
  require(dataset == "cifar10" || dataset == "cifar100", "--dataset must be cifar10 or cifar100, got '", dataset,
          "'");
  basin::nn::check_model_name(model_name);
  const double label_noise = run_config ? run_config->label_noise : 0.0;
  if (o.noisy_labels) {
    require(label_noise > 0.0, "--noisy-labels: the run ", o.run, " was trained without label noise");
    require(o.split == "train", "--noisy-labels measures the training labels: use --split train");
  }
  const basin::Device device = basin::Device::parse(o.device);
  const basin::DType dtype = o.dtype == "float64" ? basin::kFloat64 : basin::kFloat32;
  const analysis::BatchNormMode bn_mode = analysis::parse_batchnorm_mode(o.bn);

  // ---- the model (before the data: a wrong checkpoint is found at once)
  const std::int64_t num_classes = dataset == "cifar100" ? 100 : 10;
  basin::nn::ModulePtr model = load_model(model_name, num_classes, checkpoint);
  if (!o.between.empty()) require_file(o.between, "--between checkpoint");

  // ---- the examples
  basin::data::Dataset set = load_split(dataset, data_dir, o.split == "train");
  std::int64_t flipped_in_subset = 0;
  if (o.noisy_labels) {
    // The same labels the run trained on: the noise is drawn over the run's
    // own training subset with the run's seed (data::with_label_noise).
    if (run_config->train_subset > 0) set = set.head(std::min(run_config->train_subset, set.size()));
    basin::data::LabelNoise noisy = basin::data::with_label_noise(set, run_config->label_noise, run_config->seed);
    set = std::move(noisy.dataset);
    const std::int64_t n = std::min(o.subset, set.size());
    flipped_in_subset = std::count_if(noisy.flipped.begin(), noisy.flipped.end(), [n](std::int64_t i) { return i < n; });
  }
  require(set.size() > 0, set.name, " holds no images");
  const std::int64_t examples = std::min(o.subset, set.size());
  set = set.head(examples);
  if (app.count("--m")) require(o.m <= examples, "--m must be at most the ", examples, " images measured, got ", o.m);

  model->to(dtype);
  model->to(device);
  const analysis::Objective objective(
      model, make_batches(set, o.batch_size, device),
      analysis::ObjectiveOptions().batchnorm(bn_mode).label_smoothing(o.label_smoothing));
  const analysis::HessianOptions hessian_options = analysis::HessianOptions().step(o.hvp_step);
  const double h = analysis::HessianVectorProduct(objective, hessian_options).step_length();

  std::cout << "basin-sharpness: " << model_name << " (" << with_commas(objective.parameter_count())
            << " parameters) from " << checkpoint << "; " << with_commas(examples) << " images of " << set.name
            << " in batches of " << o.batch_size << "; " << basin::dtype_name(dtype) << ", device "
            << basin::describe(device);
  if (device.is_cpu()) std::cout << ", " << basin::describe_cpu_engine();
  std::cout << "; " << objective.describe_batchnorm() << "\n";
  if (o.noisy_labels) {
    std::cout << "measuring on the labels the run trained on: " << with_commas(flipped_in_subset) << " of the "
              << with_commas(examples) << " were replaced by its " << number(100.0 * label_noise, 4)
              << "% label noise\n";
  }
  if (dtype == basin::kFloat32 && (wants(metrics, "lambda_max") || wants(metrics, "trace"))) {
    std::cout << "note: float32 Hessian-vector products are finite differences swamped by rounding; use --dtype "
                 "float64 for lambda_max and trace\n";
  }
  if (!o.between.empty() && bn_mode == analysis::BatchNormMode::Eval) {
    std::cout << "note: along --between the BatchNorm running statistics stay those of " << checkpoint
              << "; --bn train normalizes with batch statistics instead\n";
  }

  const analysis::Evaluation at_start = objective.evaluate();
  std::cout << "loss " << number(at_start.loss) << ", accuracy " << number(100.0 * at_start.accuracy, 4)
            << "% at the checkpoint\n";

  // ---- sharpness.json: the setup now, each metric as it finishes
  const fs::path out_dir = !o.out.empty() ? fs::path(o.out) : !o.run.empty() ? fs::path(o.run) : fs::path("sharpness");
  {
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    require(!ec, "cannot create the output folder ", out_dir.string(), ": ", ec.message());
  }
  const std::string json_path = (out_dir / "sharpness.json").string();
  json report;
  json& setup = report["setup"];
  setup = {{"model", model_name},
           {"parameters", objective.parameter_count()},
           {"checkpoint", checkpoint},
           {"run", o.run.empty() ? json(nullptr) : json(o.run)},
           {"dataset", dataset},
           {"data_dir", data_dir},
           {"split", o.split},
           {"subset", examples},
           {"batch_size", o.batch_size},
           {"dtype", basin::dtype_name(dtype)},
           {"device", device.str()},
           {"batchnorm", analysis::batchnorm_mode_name(bn_mode)},
           {"label_smoothing", o.label_smoothing},
           {"seed", o.seed},
           {"hvp", {{"step", o.hvp_step}, {"h", h}}},
           {"loss", at_start.loss},
           {"accuracy", at_start.accuracy}};
  if (label_noise > 0.0) {
    json noise = {{"fraction", label_noise}, {"labels_measured", o.noisy_labels ? "noisy" : "clean"}};
    if (run_json.is_object() && run_json.contains("label_noise_flipped")) {
      noise["flipped_in_run"] = run_json["label_noise_flipped"];
    }
    if (o.noisy_labels) noise["flipped_in_subset"] = flipped_in_subset;
    setup["label_noise"] = noise;
  }
  report["metrics"] = json::object();
  const auto save_report = [&] { basin::write_file_atomically(json_path, report.dump(2) + "\n", "basin-sharpness"); };
  save_report();

  const bool interactive = isatty(STDOUT_FILENO) != 0;
  std::vector<SummaryRow> summary;
  summary.push_back({"loss", number(at_start.loss) + " (accuracy " + number(100.0 * at_start.accuracy, 4) + "%)",
                     "at the checkpoint"});
  std::vector<std::string> files{json_path};

  for (const std::string& metric : metrics) {
    const std::int64_t gradients_before = objective.gradient_evaluations();
    const std::int64_t losses_before = objective.loss_evaluations();
    const auto gradients_used = [&] { return objective.gradient_evaluations() - gradients_before; };
    const auto losses_used = [&] { return objective.loss_evaluations() - losses_before; };
    json& entry = report["metrics"][metric];

    if (metric == "lambda_max") {
      ProgressLine line("lambda_max", interactive);
      analysis::HessianVectorProduct hvp(objective, hessian_options);
      const auto pairs = analysis::top_eigenpairs(
          hvp,
          analysis::EigenOptions().top_k(o.top_k).max_iterations(o.max_iterations).tolerance(o.tolerance).seed(o.seed),
          line.callback());
      line.finish();
      json values = json::array(), iterations = json::array(), converged = json::array(), change = json::array(),
           history = json::array();
      for (const analysis::Eigenpair& p : pairs) {
        values.push_back(p.value);
        iterations.push_back(p.iterations);
        converged.push_back(p.converged);
        change.push_back(p.relative_change);
        history.push_back(p.history);
      }
      entry = {{"top_k", o.top_k},         {"max_iterations", o.max_iterations}, {"tolerance", o.tolerance},
               {"eigenvalues", values},    {"iterations", iterations},           {"converged", converged},
               {"relative_change", change}, {"history", history},                {"hvp_products", hvp.products()},
               {"gradients", gradients_used()}, {"seconds", line.seconds()}};
      const std::string cost = count(hvp.products(), "HVP") + ", " + cost_text(gradients_used(), 0, line.seconds());
      for (std::size_t k = 0; k < pairs.size(); ++k) {
        const analysis::Eigenpair& p = pairs[k];
        const std::string name = k == 0 ? "lambda_max" : "lambda_" + std::to_string(k + 1);
        const std::string value = number(p.value) + " (" + std::to_string(p.iterations) + " iterations, " +
                                  (p.converged ? "converged" : "not converged, change " + number(p.relative_change, 2)) +
                                  ")";
        std::cout << name << " = " << value << "\n";
        summary.push_back({name, value, k == 0 ? cost : ""});
      }
      std::cout << "  " << cost << "\n";
    } else if (metric == "trace") {
      ProgressLine line("trace", interactive);
      analysis::HessianVectorProduct hvp(objective, hessian_options);
      const analysis::TraceEstimate t = analysis::hutchinson_trace(
          hvp, analysis::TraceOptions().samples(o.trace_samples).seed(o.seed), line.callback());
      line.finish();
      entry = {{"mean", t.mean},
               {"standard_error", t.standard_error},
               {"samples", static_cast<std::int64_t>(t.samples.size())},
               {"values", t.samples},
               {"hvp_products", hvp.products()},
               {"gradients", gradients_used()},
               {"seconds", line.seconds()}};
      const std::string value = number(t.mean) + " +- " + number(t.standard_error, 3) + " (" +
                                std::to_string(t.samples.size()) + " samples)";
      const std::string cost = count(hvp.products(), "HVP") + ", " + cost_text(gradients_used(), 0, line.seconds());
      std::cout << "trace = " << value << "\n  " << cost << "\n";
      summary.push_back({"trace", value, cost});
    } else if (metric == "sharpness") {
      const auto sam_options = analysis::SharpnessOptions().rho(o.rho).ascent_steps(o.ascent_steps);
      const auto asam_options =
          analysis::SharpnessOptions().rho(o.asam_rho).ascent_steps(o.ascent_steps).adaptive(true).eta(o.eta);
      const Clock::time_point start = Clock::now();
      const auto run_one = [&](const char* label, const analysis::SharpnessOptions& options) {
        const std::int64_t g0 = objective.gradient_evaluations(), l0 = objective.loss_evaluations();
        ProgressLine line(label, interactive);
        const analysis::SharpnessEstimate s = analysis::sharpness(objective, options, line.callback());
        line.finish();
        json j = sharpness_json(s, options);
        j["gradients"] = objective.gradient_evaluations() - g0;
        j["loss_evaluations"] = objective.loss_evaluations() - l0;
        j["seconds"] = line.seconds();
        const std::string value = number(s.sharpness) + " (rho " + number(options.rho()) + ", K " +
                                  std::to_string(options.ascent_steps()) + ", L(w+e) " + number(s.perturbed_loss) + ")";
        const std::string cost = cost_text(j["gradients"].get<std::int64_t>(), j["loss_evaluations"].get<std::int64_t>(),
                                           line.seconds());
        std::cout << label << " = " << value << "\n  " << cost << "\n";
        summary.push_back({label, value, cost});
        return j;
      };
      entry["sam"] = run_one("SAM sharpness", sam_options);
      save_report();
      entry["asam"] = run_one("ASAM sharpness", asam_options);
      if (app.count("--m")) {
        save_report();
        const std::int64_t g0 = objective.gradient_evaluations(), l0 = objective.loss_evaluations();
        ProgressLine line("m-sharpness", interactive);
        const analysis::MSharpnessEstimate ms = analysis::m_sharpness(objective, o.m, sam_options, line.callback());
        line.finish();
        const std::int64_t g = objective.gradient_evaluations() - g0, l = objective.loss_evaluations() - l0;
        entry["m_sharpness"] = {{"m", ms.m},
                                {"rho", o.rho},
                                {"ascent_steps", o.ascent_steps},
                                {"mean", ms.mean},
                                {"standard_error", ms.standard_error},
                                {"groups", ms.groups},
                                {"gradients", g},
                                {"loss_evaluations", l},
                                {"seconds", line.seconds()}};
        const std::string value = number(ms.mean) + " +- " + number(ms.standard_error, 3) + " (m " +
                                  std::to_string(ms.m) + ", " + std::to_string(ms.groups.size()) + " groups)";
        const std::string cost = cost_text(g, l, line.seconds());
        std::cout << "m-sharpness = " << value << "\n  " << cost << "\n";
        summary.push_back({"m-sharpness", value, cost});
      }
      entry["gradients"] = gradients_used();
      entry["loss_evaluations"] = losses_used();
      entry["seconds"] = seconds_since(start);
    } else if (metric == "landscape1d") {
      const bool between = !o.between.empty();
      std::vector<double> range = o.line_range;
      if (between && !app.count("--line-range")) range = {-0.5, 1.5};
      const std::vector<double> ts = analysis::linspace(range[0], range[1], o.line_points);
      ProgressLine line("landscape1d", interactive);
      std::vector<analysis::LinePoint> points;
      if (between) {
        const Tensor b = weights_of(objective, model_name, num_classes, o.between);
        points = analysis::line_between(objective, objective.copy_of_weights(), b, ts, line.callback());
      } else {
        const Tensor d = analysis::random_direction(objective, analysis::DirectionOptions().seed(o.seed));
        points = analysis::line_along(objective, d, ts, line.callback());
      }
      line.finish();
      const std::string csv_path = (out_dir / "landscape1d.csv").string();
      basin::write_file_atomically(csv_path, analysis::to_csv(points), "basin-sharpness");
      files.push_back(csv_path);
      const auto lowest = std::min_element(points.begin(), points.end(), [](const auto& a, const auto& b) {
        return a.value.loss < b.value.loss;
      });
      entry = {{"direction", between ? "between checkpoints" : "random, filter-normalized"},
               {"points", o.line_points},
               {"range", range},
               {"file", "landscape1d.csv"},
               {"lowest_loss", lowest->value.loss},
               {"lowest_at", lowest->t},
               {"loss_evaluations", losses_used()},
               {"seconds", line.seconds()}};
      if (between) {
        entry["from"] = checkpoint;
        entry["to"] = o.between;
      } else {
        entry["seed"] = o.seed;
      }
      const std::string value = "lowest " + number(lowest->value.loss) + " at t = " + number(lowest->t, 4) + " -> " +
                                csv_path;
      const std::string cost = cost_text(0, losses_used(), line.seconds());
      std::cout << "landscape1d: " << value << "\n  " << cost << "\n";
      summary.push_back({"landscape1d", value, cost});
    } else if (metric == "landscape2d") {
      const std::vector<double> axis = analysis::linspace(o.range[0], o.range[1], o.grid);
      // The first direction is landscape1d's (the same seed), so the line is the plot's x axis.
      const Tensor d1 = analysis::random_direction(objective, analysis::DirectionOptions().seed(o.seed));
      const Tensor d2 = analysis::random_direction(objective, analysis::DirectionOptions().seed(o.seed + 1));
      ProgressLine line("landscape2d", interactive);
      const std::vector<analysis::SurfacePoint> points =
          analysis::surface(objective, d1, d2, axis, axis, line.callback());
      line.finish();
      const std::string csv_path = (out_dir / "landscape2d.csv").string();
      basin::write_file_atomically(csv_path, analysis::to_csv(points), "basin-sharpness");
      files.push_back(csv_path);
      const double cosine = analysis::dot(d1, d2) / (analysis::norm(d1) * analysis::norm(d2));
      entry = {{"directions", "random, filter-normalized"},
               {"seeds", {o.seed, o.seed + 1}},
               {"grid", o.grid},
               {"range", o.range},
               {"direction_cosine", cosine},
               {"file", "landscape2d.csv"},
               {"loss_evaluations", losses_used()},
               {"seconds", line.seconds()}};
      const std::string value = std::to_string(o.grid) + " x " + std::to_string(o.grid) + " -> " + csv_path;
      const std::string cost = cost_text(0, losses_used(), line.seconds());
      std::cout << "landscape2d: " << value << "\n  " << cost << "\n";
      summary.push_back({"landscape2d", value, cost});
    }
    save_report();
  }

  print_summary(summary);
  std::cout << "wrote";
  for (const std::string& file : files) std::cout << " " << file;
  std::cout << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"basin-sharpness: measures the sharpness of a trained model (Hessian eigenvalues and trace, SAM/ASAM "
               "sharpness, loss landscapes); docs/sharpness.md explains the numbers"};
  app.get_formatter()->column_width(36);

  auto* run = app.add_option("--run", o.run, "a basin-train run folder: its config.json and checkpoint.safetensors");
  app.add_option("--checkpoint", o.checkpoint, "the weights to measure (default with --run: its checkpoint)");
  app.add_option("--model", o.model, "the checkpoint's model (without --run): resnet18, wrn16-8, resnet20, ...")
      ->excludes(run);
  app.add_option("--dataset", o.dataset, "cifar10 or cifar100 (without --run; default cifar10)")->excludes(run);
  app.add_option("--data-dir", o.data_dir, "folder with the binary CIFAR files (default: the run's, else datasets)");
  app.add_option("--device", o.device, "auto, cuda or cpu")->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads of the fast kernels (default: OMP_NUM_THREADS, else every core)")
      ->check(CLI::PositiveNumber);
  app.add_option("--out", o.out, "folder for sharpness.json and the landscape CSVs (default: the --run folder, else "
                                 "sharpness)");

  app.add_option("--split", o.split, "measure on the train or test images")->capture_default_str();
  app.add_option("--subset", o.subset, "the first N images of the split")->capture_default_str();
  app.add_option("--batch-size", o.batch_size, "images per forward pass (with --bn train it also shapes the loss)")
      ->capture_default_str();
  app.add_flag("--noisy-labels", o.noisy_labels,
               "with a --run trained with --label-noise: measure on the training labels it trained on");
  app.add_option("--dtype", o.dtype, "float64 or float32 (Hessian products need float64)")->capture_default_str();
  app.add_option("--bn", o.bn, "BatchNorm: eval (running statistics) or train (batch statistics)")
      ->capture_default_str();
  app.add_option("--label-smoothing", o.label_smoothing, "in the cross-entropy measured")->capture_default_str();

  app.add_option("--metrics", o.metrics, "comma list of lambda_max, trace, sharpness, landscape1d, landscape2d")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "seed of every random vector (power iteration, Hutchinson, directions)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--hvp-step", o.hvp_step, "finite-difference step of H v, relative: h = step * max(1, ||w||)")
      ->capture_default_str();

  app.add_option("--top-k", o.top_k, "lambda_max: how many top eigenvalues")->capture_default_str();
  app.add_option("--max-iterations", o.max_iterations, "lambda_max: power iterations per eigenvalue")
      ->capture_default_str();
  app.add_option("--tolerance", o.tolerance, "lambda_max: stop at this relative change")->capture_default_str();
  app.add_option("--trace-samples", o.trace_samples, "trace: Hutchinson samples")->capture_default_str();
  app.add_option("--rho", o.rho, "sharpness: SAM neighbourhood radius")->capture_default_str();
  app.add_option("--ascent-steps", o.ascent_steps, "sharpness: gradient-ascent steps K (1: SAM's own estimate)")
      ->capture_default_str();
  app.add_option("--asam-rho", o.asam_rho, "sharpness: ASAM neighbourhood radius")->capture_default_str();
  app.add_option("--eta", o.eta, "sharpness: ASAM's T = |w| + eta")->capture_default_str();
  app.add_option("--m", o.m, "sharpness: also m-sharpness over groups of M images");
  app.add_option("--line-points", o.line_points, "landscape1d: points on the line")->capture_default_str();
  app.add_option("--line-range", o.line_range, "landscape1d: FIRST,LAST (default -1,1; -0.5,1.5 with --between)")
      ->delimiter(',')
      ->expected(2);
  app.add_option("--between", o.between, "landscape1d: the line from this checkpoint (t=0) to another (t=1)");
  app.add_option("--grid", o.grid, "landscape2d: points per axis")->capture_default_str();
  app.add_option("--range", o.range, "landscape2d: FIRST,LAST of both axes (default -1,1)")
      ->delimiter(',')
      ->expected(2);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    (void)basin::cpu_kernels();  // a bad BASIN_CPU_KERNELS fails here, before any work
    if (o.threads > 0) basin::set_cpu_threads(o.threads);
    return measure(o, app);
  } catch (const std::exception& e) {
    std::cout << std::flush;
    std::cerr << "basin-sharpness: error: " << e.what() << "\n";
    return 1;
  }
}
