// SAM under data parallelism and m-sharpness on one device: when the gradient
// sync runs in each mode (and that the steps use what it left), step_chunks()
// with one chunk against step() bit for bit, step_chunks() with several
// chunks against the m-sharpness definition written tensor by tensor with
// core ops, BatchNorm running statistics, errors, and CUDA against the CPU.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/autograd.h"
#include "core/elementwise.h"
#include "core/loss.h"
#include "core/random.h"
#include "core/reduce.h"
#include "nn/layers.h"
#include "optim/sam.h"
#include "optim/sam_oracle.h"
#include "optim/sgd.h"
#include "support/compare.h"
#include "support/cuda.h"

using namespace basin;
using namespace basin::optim;
using basin::testing::describe;
using basin::testing::equal;
using basin::testing::option_cases;
using basin::testing::relative_error;

namespace {

constexpr double kLr = 0.1;
constexpr double kMomentum = 0.9;
constexpr double kWeightDecay = 5e-4;

SGDOptions sgd_options() { return SGDOptions(kLr).momentum(kMomentum).weight_decay(kWeightDecay); }

// Conv (with bias) -> BatchNorm -> ReLU -> pool -> Linear: "weight" tensors,
// biases and running statistics. Every call builds the same initial network.
std::shared_ptr<nn::Sequential> make_net(DType dtype, Device device) {
  manual_seed(1234);
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 4, 3).padding(1)), std::make_shared<nn::BatchNorm2d>(4),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::GlobalAvgPool2d>(), std::make_shared<nn::Flatten>(),
      std::make_shared<nn::Linear>(4, 3)});
  net->to(dtype);
  net->to(device);
  net->train();
  return net;
}

struct Batch {
  Tensor images;  // [5, 3, 6, 6]
  Tensor labels;  // [5]
};

// Drawn on the host, so every device sees the same numbers.
Batch make_batch(DType dtype, Device device, std::uint64_t seed = 77) {
  manual_seed(seed);
  return {randn({5, 3, 6, 6}, TensorOptions(dtype)).to(device),
          from_vector<std::int64_t>({0, 2, 1, 1, 0}, {5}).to(device)};
}

// The batch cut into consecutive chunks of the given sizes.
struct Chunks {
  explicit Chunks(std::vector<std::int64_t> chunk_sizes) : sizes(std::move(chunk_sizes)) {
    std::int64_t n = 0;
    for (std::int64_t s : sizes) {
      starts.push_back(n);
      n += s;
    }
    for (std::int64_t s : sizes) weights.push_back(static_cast<double>(s) / static_cast<double>(n));
  }
  std::vector<std::int64_t> sizes, starts;
  std::vector<double> weights;  // n_c / n
};

// Chunk c's mean loss, after its backward().
Tensor chunk_loss(nn::Sequential& net, const Batch& batch, const Chunks& chunks, std::size_t c) {
  const std::int64_t start = chunks.starts[c], end = start + chunks.sizes[c];
  Tensor loss = cross_entropy(net(batch.images.slice(0, start, end)), batch.labels.slice(0, start, end));
  loss.backward();
  return loss;
}

Tensor whole_batch_loss(nn::Sequential& net, const Batch& batch) {
  Tensor loss = cross_entropy(net(batch.images), batch.labels);
  loss.backward();
  return loss;
}

nn::BatchNorm2d& batchnorm_of(nn::Sequential& net) { return dynamic_cast<nn::BatchNorm2d&>(*net[1]); }

TensorMap host_state(const nn::Module& net) {
  TensorMap out;
  for (const auto& [name, t] : net.state_dict()) out[name] = t.detach().cpu().clone();
  return out;
}

// Every entry equal bit for bit; names the first one that is not.
void check_states_equal(const TensorMap& got, const TensorMap& expected) {
  REQUIRE(got.size() == expected.size());
  for (const auto& [name, value] : expected) {
    INFO(name);
    CHECK(equal(got.at(name), value));
  }
}

// Relative error of every floating entry below `tolerance`; counters equal.
void check_states_close(const TensorMap& got, const TensorMap& expected, double tolerance) {
  REQUIRE(got.size() == expected.size());
  for (const auto& [name, value] : expected) {
    if (!is_floating(value.dtype())) {
      INFO(name);
      CHECK(equal(got.at(name), value));
      continue;
    }
    const double err = relative_error(got.at(name), value);
    INFO(name << ": relative error " << err);
    CHECK(err < tolerance);
  }
}


void set_weights(const std::vector<Tensor>& params, const std::vector<Tensor>& values) {
  NoGradGuard no_grad;
  for (std::size_t i = 0; i < params.size(); ++i) {
    Tensor w = params[i];
    w.copy_(values[i]);
  }
}

// ---------------------------------------------------------------- the oracle

// One m-sharpness step by its definition, tensor by tensor with core ops and
// without an arena or any SAM code: for each chunk c, the gradient g_c at w,
//   e_c = rho * T^2 g_c / (||T g_c|| + eps)   (T = |w| + eta on ASAM's tensors, else 1),
// the gradient g'_c at w + e_c; then g = sum_c weights[c] * g'_c and an SGD
// step from w with momentum and weight decay (PyTorch's rule; `momentum` holds
// its buffers, empty before the first step). Running statistics move in chunk
// 0's first pass only. Returns sum_c weights[c] * loss_c.
double oracle_chunk_step(nn::Sequential& net, const SAMOptions& o, const Batch& batch, const Chunks& chunks,
                         std::vector<Tensor>& momentum) {
  std::vector<std::string> names;
  std::vector<Tensor> params;
  for (const auto& [name, p] : net.named_parameters()) {
    names.push_back(name);
    params.push_back(p);
  }
  std::vector<Tensor> w;
  for (const Tensor& p : params) w.push_back(p.detach().clone());
  const bool all_tensors = o.scope() == AsamScope::AllTensors;
  auto scaled_by_t = [&](std::size_t i) {
    return o.adaptive() && (all_tensors || names[i].find("weight") != std::string::npos);
  };

  std::vector<Tensor> total(params.size());
  double loss_total = 0.0;
  for (std::size_t c = 0; c < chunks.sizes.size(); ++c) {
    const double weight = chunks.weights[c];
    set_weights(params, w);
    net.zero_grad();
    {
      std::optional<nn::RunningStatsFreeze> freeze;
      if (c > 0) freeze.emplace(net);
      loss_total += weight * chunk_loss(net, batch, chunks, c).item();
    }

    std::vector<Tensor> perturbed;
    {
      NoGradGuard no_grad;
      std::vector<Tensor> t(params.size());
      double squares = 0.0;
      for (std::size_t i = 0; i < params.size(); ++i) {
        Tensor tg = params[i].grad();
        if (scaled_by_t(i)) {
          t[i] = add(abs(w[i]), all_tensors ? 0.0 : o.eta());
          tg = mul(t[i], tg);
        }
        squares += sum(mul(tg, tg)).item();
      }
      const double scale = o.rho() / (std::sqrt(squares) + o.eps());
      for (std::size_t i = 0; i < params.size(); ++i) {
        Tensor e = mul(params[i].grad(), scale);
        if (t[i].defined()) e = mul(e, mul(t[i], t[i]));
        perturbed.push_back(add(w[i], e));
      }
    }
    set_weights(params, perturbed);
    net.zero_grad();
    {
      nn::RunningStatsFreeze freeze(net);
      chunk_loss(net, batch, chunks, c);
    }
    NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Tensor share = mul(params[i].grad(), weight);
      total[i] = c == 0 ? share : add(total[i], share);
    }
  }

  NoGradGuard no_grad;
  const bool first = momentum.empty();
  std::vector<Tensor> updated;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Tensor d = add(total[i], mul(w[i], kWeightDecay));
    if (first) {
      momentum.push_back(d.clone());
    } else {
      momentum[i] = add(mul(momentum[i], kMomentum), d);
    }
    updated.push_back(add(w[i], mul(momentum[i], -kLr)));
  }
  set_weights(params, updated);
  return loss_total;
}

// ---------------------------------------------------------------- runs

struct Run {
  TensorMap state;             // after the last step, on the host
  std::vector<double> losses;  // what each step returned
};

// `steps` step_chunks() calls on the batch cut into `sizes`.
Run run_chunked(const SAMOptions& options, const std::vector<std::int64_t>& sizes, DType dtype, Device device,
                int steps = 2) {
  auto net = make_net(dtype, device);
  const Batch batch = make_batch(dtype, device);
  const Chunks chunks(sizes);
  auto base = std::make_shared<SGD>(net->named_parameters(), sgd_options());
  SAM sam(base, options, net.get());
  Run run;
  for (int step = 0; step < steps; ++step) {
    const Tensor loss =
        sam.step_chunks([&](std::size_t c) { return chunk_loss(*net, batch, chunks, c); }, chunks.weights);
    run.losses.push_back(loss.item());
  }
  run.state = host_state(*net);
  return run;
}

// The same with step() on the whole batch.
Run run_whole(const SAMOptions& options, DType dtype, Device device, int steps = 2) {
  auto net = make_net(dtype, device);
  const Batch batch = make_batch(dtype, device);
  auto base = std::make_shared<SGD>(net->named_parameters(), sgd_options());
  SAM sam(base, options, net.get());
  Run run;
  for (int step = 0; step < steps; ++step) {
    sam.zero_grad();
    run.losses.push_back(sam.step([&] { return whole_batch_loss(*net, batch); }).item());
  }
  run.state = host_state(*net);
  return run;
}

Run run_oracle(const SAMOptions& options, const std::vector<std::int64_t>& sizes, DType dtype, int steps = 2) {
  auto net = make_net(dtype, Device::cpu());
  const Batch batch = make_batch(dtype, Device::cpu());
  const Chunks chunks(sizes);
  std::vector<Tensor> momentum;
  Run run;
  for (int step = 0; step < steps; ++step) {
    run.losses.push_back(oracle_chunk_step(*net, options, batch, chunks, momentum));
  }
  run.state = host_state(*net);
  return run;
}

// A stand-in for the other replicas: averages the arena's gradients with a
// fixed direction, g <- (g + d) / 2. Unlike a plain scale, it turns the
// gradient, so a perturbation or an update that skipped it would show.
class FakeReplicaSync {
 public:
  explicit FakeReplicaSync(Optimizer& opt) : opt_(opt) {
    const ParameterArena& arena = opt.arena();
    manual_seed(4242);
    direction_ = arena.make_buffer();
    NoGradGuard no_grad;
    for (std::size_t i = 0; i < arena.size(); ++i) {
      const Tensor& p = arena.tensors()[i];
      arena.view(direction_, i).copy_(randn(p.shape(), TensorOptions(p.dtype())));
    }
  }
  void operator()() const {
    NoGradGuard no_grad;
    Tensor g = opt_.arena().grads();
    g.add_(direction_);
    g.mul_(0.5);
  }

 private:
  Optimizer& opt_;
  Tensor direction_;
};

}  // namespace

// ---------------------------------------------------------------- the gradient sync

TEST_CASE("SAM syncs twice per step in Global mode and once in Replica mode, where the steps read it",
          "[optim][sam][modes]") {
  const Batch batch = make_batch(kFloat64, Device::cpu());
  for (const SAMOptions& base_options : option_cases()) {
    for (SamMode mode : {SamMode::Global, SamMode::Replica}) {
      const bool global = mode == SamMode::Global;
      INFO(describe(base_options) << (global ? ", Global" : ", Replica"));
      SAMOptions options = base_options;
      options.mode(mode);

      // Through step(), with the sync.
      auto net = make_net(kFloat64, Device::cpu());
      auto base = std::make_shared<SGD>(net->named_parameters(), sgd_options());
      SAM sam(base, options, net.get());
      const FakeReplicaSync average(*base);
      const std::vector<Tensor> initial = testing::host_copies(net->parameters());
      std::vector<bool> at_initial_weights;  // one entry per sync call
      int closure_calls = 0;
      std::vector<int> closure_calls_at_sync;
      sam.set_gradient_sync([&] {
        at_initial_weights.push_back(equal(net->parameters()[0].detach().cpu(), initial[0]));
        closure_calls_at_sync.push_back(closure_calls);
        average();
      });
      sam.zero_grad();
      const Tensor loss = sam.step([&] {
        ++closure_calls;
        return whole_batch_loss(*net, batch);
      });
      const double synced_norm = sam.last_grad_norm().item();

      if (global) {
        // After the first pass, at w; after the second, at w + e.
        CHECK(at_initial_weights == std::vector<bool>{true, false});
        CHECK(closure_calls_at_sync == std::vector<int>{1, 2});
      } else {
        CHECK(at_initial_weights == std::vector<bool>{false});
        CHECK(closure_calls_at_sync == std::vector<int>{2});
      }

      // By hand, without a sync: the same calls with the stand-in applied where the mode says.
      auto manual_net = make_net(kFloat64, Device::cpu());
      auto manual_base = std::make_shared<SGD>(manual_net->named_parameters(), sgd_options());
      SAM manual(manual_base, options, manual_net.get());
      const FakeReplicaSync manual_average(*manual_base);
      manual.zero_grad();
      const Tensor manual_loss = whole_batch_loss(*manual_net, batch);
      if (global) manual_average();
      manual.first_step();
      const double manual_norm = manual.last_grad_norm().item();
      manual.zero_grad();
      {
        nn::RunningStatsFreeze freeze(*manual_net);
        whole_batch_loss(*manual_net, batch);
      }
      manual_average();
      manual.second_step();

      CHECK(synced_norm == manual_norm);
      CHECK(loss.item() == manual_loss.item());
      check_states_equal(host_state(*net), host_state(*manual_net));

      // And the sync mattered: without it the step lands elsewhere.
      const Run unsynced = run_whole(options, kFloat64, Device::cpu(), 1);
      CHECK_FALSE(equal(host_state(*net).at("0.weight"), unsynced.state.at("0.weight")));
    }
  }
}

TEST_CASE("SAM's Global and Replica modes differ only through the first sync", "[optim][sam][modes]") {
  // Without a sync the mode changes nothing; with one, Replica perturbs by the
  // local gradient, so the two modes land on different weights.
  const Batch batch = make_batch(kFloat64, Device::cpu());
  std::vector<TensorMap> unsynced, synced;
  for (SamMode mode : {SamMode::Global, SamMode::Replica}) {
    for (bool with_sync : {false, true}) {
      auto net = make_net(kFloat64, Device::cpu());
      auto base = std::make_shared<SGD>(net->named_parameters(), sgd_options());
      SAM sam(base, SAMOptions().mode(mode), net.get());
      const FakeReplicaSync average(*base);
      int calls = 0;
      if (with_sync) {
        sam.set_gradient_sync([&] {
          ++calls;
          average();
        });
      }
      sam.zero_grad();
      sam.step([&] { return whole_batch_loss(*net, batch); });
      (with_sync ? synced : unsynced).push_back(host_state(*net));

      // nullptr removes the sync: the next step does not call it.
      const int calls_before = calls;
      sam.set_gradient_sync(nullptr);
      sam.zero_grad();
      sam.step([&] { return whole_batch_loss(*net, batch); });
      CHECK(calls == calls_before);
    }
  }
  check_states_equal(unsynced[1], unsynced[0]);
  CHECK_FALSE(equal(synced[0].at("0.weight"), synced[1].at("0.weight")));
}

// ---------------------------------------------------------------- one chunk is step()

TEST_CASE("SAM step_chunks with one chunk of weight 1 is step(), bit for bit", "[optim][sam][modes]") {
  for (const SAMOptions& options : option_cases()) {
    for (DType dtype : {kFloat32, kFloat64}) {
      INFO(describe(options) << " in " << dtype_name(dtype));
      const Run whole = run_whole(options, dtype, Device::cpu(), 3);
      const Run chunked = run_chunked(options, {5}, dtype, Device::cpu(), 3);
      check_states_equal(chunked.state, whole.state);
      CHECK(chunked.losses == whole.losses);
      // The state moved (and the running statistics with it): the check above can fail.
      const TensorMap initial = host_state(*make_net(dtype, Device::cpu()));
      CHECK_FALSE(equal(chunked.state.at("0.weight"), initial.at("0.weight")));
      CHECK_FALSE(equal(chunked.state.at("1.running_mean"), initial.at("1.running_mean")));
    }
  }
}

TEST_CASE("SAM step_chunks with one chunk and a Replica sync is step() with that sync", "[optim][sam][modes]") {
  const Batch batch = make_batch(kFloat32, Device::cpu());
  std::vector<TensorMap> states;
  for (bool chunked : {false, true}) {
    auto net = make_net(kFloat32, Device::cpu());
    auto base = std::make_shared<SGD>(net->named_parameters(), sgd_options());
    SAM sam(base, SAMOptions().rho(0.1).mode(SamMode::Replica), net.get());
    const FakeReplicaSync average(*base);
    int calls = 0;
    sam.set_gradient_sync([&] {
      ++calls;
      average();
    });
    for (int step = 0; step < 2; ++step) {
      if (chunked) {
        sam.step_chunks([&](std::size_t) { return whole_batch_loss(*net, batch); }, {1.0});
      } else {
        sam.zero_grad();
        sam.step([&] { return whole_batch_loss(*net, batch); });
      }
    }
    CHECK(calls == 2);
    states.push_back(host_state(*net));
  }
  check_states_equal(states[1], states[0]);
}

// ---------------------------------------------------------------- several chunks against the definition

TEST_CASE("SAM step_chunks over 2 and 3 chunks follows the m-sharpness definition", "[optim][sam][modes]") {
  // float64, so the only differences are the order of sums: 1e-12 leaves room
  // for that and none for a wrong chunk, weight or perturbation.
  for (const SAMOptions& options : option_cases()) {
    for (const std::vector<std::int64_t>& sizes :
         {std::vector<std::int64_t>{3, 2}, std::vector<std::int64_t>{2, 2, 1}}) {
      INFO(describe(options) << ", " << sizes.size() << " chunks");
      const Run got = run_chunked(options, sizes, kFloat64, Device::cpu());
      const Run expected = run_oracle(options, sizes, kFloat64);
      check_states_close(got.state, expected.state, 1e-12);
      REQUIRE(got.losses.size() == expected.losses.size());
      for (std::size_t step = 0; step < got.losses.size(); ++step) {
        INFO("step " << step + 1 << " loss " << got.losses[step] << " vs " << expected.losses[step]);
        CHECK(std::abs(got.losses[step] - expected.losses[step]) <= 1e-12 * std::abs(expected.losses[step]));
      }
      // Chunks are not the whole batch: per-chunk perturbations give another step.
      const Run whole = run_whole(options, kFloat64, Device::cpu());
      CHECK(relative_error(got.state.at("0.weight"), whole.state.at("0.weight")) > 1e-6);
    }
  }
}

TEST_CASE("SAM step_chunks in float32 stays within float32 rounding of the definition", "[optim][sam][modes]") {
  const SAMOptions options = SAMOptions().rho(0.5).adaptive(true);
  const Run got = run_chunked(options, {3, 2}, kFloat32, Device::cpu());
  const Run expected = run_oracle(options, {3, 2}, kFloat32);
  check_states_close(got.state, expected.state, 1e-6);
}

// ---------------------------------------------------------------- running statistics

TEST_CASE("SAM step_chunks moves BatchNorm running statistics in chunk 0's first pass only", "[optim][sam][modes]") {
  const Batch batch = make_batch(kFloat32, Device::cpu());
  const Chunks chunks({3, 2});

  // One training forward of chunk 0 from the initial state.
  auto reference = make_net(kFloat32, Device::cpu());
  (*reference)(batch.images.slice(0, 0, 3));
  const TensorMap after_chunk0 = host_state(*reference);
  const TensorMap initial = host_state(*make_net(kFloat32, Device::cpu()));
  REQUIRE_FALSE(equal(after_chunk0.at("1.running_mean"), initial.at("1.running_mean")));

  for (bool give_model : {true, false}) {
    INFO((give_model ? "model given" : "no model"));
    auto net = make_net(kFloat32, Device::cpu());
    auto base = std::make_shared<SGD>(net->named_parameters(), sgd_options());
    SAM sam(base, SAMOptions(), give_model ? net.get() : nullptr);
    std::vector<std::pair<std::size_t, bool>> calls;  // (chunk, statistics updating)
    sam.step_chunks(
        [&](std::size_t c) {
          calls.emplace_back(c, batchnorm_of(*net).update_running_stats);
          return chunk_loss(*net, batch, chunks, c);
        },
        chunks.weights);
    const TensorMap state = host_state(*net);
    if (give_model) {
      CHECK(calls == std::vector<std::pair<std::size_t, bool>>{{0, true}, {0, false}, {1, false}, {1, false}});
      for (const char* name : {"1.running_mean", "1.running_var", "1.num_batches_tracked"}) {
        INFO(name);
        CHECK(equal(state.at(name), after_chunk0.at(name)));
      }
      CHECK(batchnorm_of(*net).update_running_stats);  // the freezes ended with the step
    } else {
      // Without the model nothing can be frozen: all four passes count.
      CHECK(state.at("1.num_batches_tracked").item() == 4.0);
      CHECK_FALSE(equal(state.at("1.running_mean"), after_chunk0.at("1.running_mean")));
    }
  }
}

// ---------------------------------------------------------------- errors

TEST_CASE("SAM step_chunks refuses bad chunk weights, a null closure and a Global sync", "[optim][sam][modes]") {
  const Batch batch = make_batch(kFloat32, Device::cpu());
  auto net = make_net(kFloat32, Device::cpu());
  auto base = std::make_shared<SGD>(net->named_parameters(), sgd_options());
  SAM sam(base, SAMOptions(), net.get());
  const Chunks chunks({3, 2});
  int closure_calls = 0;
  const ChunkClosure closure = [&](std::size_t c) {
    ++closure_calls;
    return chunk_loss(*net, batch, chunks, c);
  };
  const TensorMap before = host_state(*net);

  CHECK_THROWS_WITH(sam.step_chunks(closure, {}), Catch::Contains("step_chunks() needs at least one chunk weight"));
  CHECK_THROWS_WITH(sam.step_chunks(closure, {0.0, 1.0}),
                    Catch::Contains("the weight of chunk 0 must be finite and > 0") && Catch::Contains("got 0"));
  CHECK_THROWS_WITH(sam.step_chunks(closure, {1.5, -0.5}),
                    Catch::Contains("the weight of chunk 1 must be finite and > 0") && Catch::Contains("got -0.5"));
  CHECK_THROWS_WITH(sam.step_chunks(closure, {0.5, std::nan("")}), Catch::Contains("the weight of chunk 1"));
  CHECK_THROWS_WITH(sam.step_chunks(closure, {0.6, 0.3}),
                    Catch::Contains("must sum to 1, but they sum to 0.9 (1 - 0.1)"));
  // A miss too small for the default print precision still shows.
  CHECK_THROWS_WITH(sam.step_chunks(closure, {0.5, 0.5 + 1e-8}), Catch::Contains("(1 + 1e-08)"));
  CHECK_THROWS_WITH(sam.step_chunks(nullptr, {1.0}), Catch::Contains("SAM: step_chunks() needs a closure"));

  sam.set_gradient_sync([] {});
  CHECK_THROWS_WITH(sam.step_chunks(closure, chunks.weights),
                    Catch::Contains("gradient sync in mode Global") && Catch::Contains("SamMode::Replica"));
  sam.set_gradient_sync(nullptr);

  CHECK(closure_calls == 0);  // every refusal came before any work
  check_states_equal(host_state(*net), before);

  sam.zero_grad();
  whole_batch_loss(*net, batch);
  sam.first_step();
  CHECK_THROWS_WITH(sam.step_chunks(closure, chunks.weights),
                    Catch::Contains("step_chunks() between first_step() and second_step()"));
  sam.second_step();

  const std::vector<Tensor> weights_before = testing::host_copies(net->parameters());
  CHECK_THROWS_WITH(sam.step_chunks([](std::size_t) { return Tensor(); }, {1.0}),
                    Catch::Contains("the closure returned no loss for chunk 0"));
  const std::vector<Tensor> weights_after = testing::host_copies(net->parameters());
  for (std::size_t i = 0; i < weights_before.size(); ++i) CHECK(equal(weights_after[i], weights_before[i]));

  // Replica mode with a sync is allowed: each replica chunks its own shard.
  SAM replica(base, SAMOptions().mode(SamMode::Replica), net.get());
  replica.set_gradient_sync([] {});
  CHECK_NOTHROW(replica.step_chunks(closure, chunks.weights));
}

TEST_CASE("SAM step_chunks puts the weights back when a closure throws", "[optim][sam][modes]") {
  const Batch batch = make_batch(kFloat32, Device::cpu());
  const Chunks chunks({2, 2, 1});
  // Calls 3 and 4 are chunk 1's first pass (at w) and second pass (at w + e_1);
  // call 2 is chunk 0's second pass.
  for (int failing_call : {2, 3, 4}) {
    INFO("the closure throws in call " << failing_call);
    auto net = make_net(kFloat32, Device::cpu());
    auto base = std::make_shared<SGD>(net->named_parameters(), sgd_options());
    SAM sam(base, SAMOptions().adaptive(true), net.get());
    const std::vector<Tensor> before = testing::host_copies(net->parameters());
    int calls = 0;
    bool perturbed_seen = false;
    const ChunkClosure closure = [&](std::size_t c) {
      if (++calls == failing_call) {
        const std::vector<Tensor> now = testing::host_copies(net->parameters());
        perturbed_seen = !equal(now[0], before[0]);
        throw Error("out of memory in chunk " + std::to_string(c));
      }
      return chunk_loss(*net, batch, chunks, c);
    };
    CHECK_THROWS_WITH(sam.step_chunks(closure, chunks.weights), Catch::Contains("out of memory in chunk"));
    CHECK(perturbed_seen == (failing_call != 3));  // a failure at w + e is the case to undo
    const std::vector<Tensor> after = testing::host_copies(net->parameters());
    for (std::size_t i = 0; i < before.size(); ++i) CHECK(equal(after[i], before[i]));
    CHECK(batchnorm_of(*net).update_running_stats);  // no freeze left behind

    // Not left half-way through a step.
    CHECK_NOTHROW(sam.step_chunks([&](std::size_t c) { return chunk_loss(*net, batch, chunks, c); }, chunks.weights));
  }
}

// ---------------------------------------------------------------- CUDA

TEST_CASE("SAM step_chunks with one chunk is step() on CUDA too", "[optim][sam][modes][cuda]") {
  BASIN_REQUIRE_CUDA();
  for (const SAMOptions& options : option_cases()) {
    INFO(describe(options));
    const Run whole = run_whole(options, kFloat32, Device::cuda(), 3);
    const Run chunked = run_chunked(options, {5}, kFloat32, Device::cuda(), 3);
    check_states_equal(chunked.state, whole.state);
    CHECK(chunked.losses == whole.losses);
  }
}

TEST_CASE("SAM step_chunks over 2 and 3 chunks on CUDA follows the CPU", "[optim][sam][modes][cuda]") {
  BASIN_REQUIRE_CUDA();
  for (const SAMOptions& options : option_cases()) {
    for (const std::vector<std::int64_t>& sizes :
         {std::vector<std::int64_t>{3, 2}, std::vector<std::int64_t>{2, 2, 1}}) {
      INFO(describe(options) << ", " << sizes.size() << " chunks");
      const Run cpu = run_chunked(options, sizes, kFloat32, Device::cpu());
      const Run gpu = run_chunked(options, sizes, kFloat32, Device::cuda());
      check_states_close(gpu.state, cpu.state, 1e-5);
      for (std::size_t step = 0; step < cpu.losses.size(); ++step) {
        CHECK(std::abs(gpu.losses[step] - cpu.losses[step]) <= 1e-5 * std::abs(cpu.losses[step]));
      }
    }
  }
}
