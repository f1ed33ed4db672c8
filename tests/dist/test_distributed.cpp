// Data parallelism on two (or more) ranks: the host collectives, the CPU (MPI)
// and CUDA (NCCL; on the emulator, its NCCL built on MPI) communicators,
// optim::DataParallel, and SAM's two modes against single-process SAM that
// each rank also runs on the whole batch.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/distributed.h"
#include "core/loss.h"
#include "core/random.h"
#include "nn/layers.h"
#include "optim/data_parallel.h"
#include "optim/sam.h"
#include "optim/sgd.h"
#include "support/compare.h"
#include "support/cuda.h"

using namespace basin;

namespace {

int me() { return dist::rank(); }
int ranks() { return dist::world_size(); }

// 1 + 2 + ... + ranks
double rank_sum() { return ranks() * (ranks() + 1) / 2.0; }

void check_all_reduce(Device device, DType dtype, std::int64_t n) {
  INFO("device " << device.str() << ", " << dtype_name(dtype) << ", " << n << " elements");
  // Element i on rank r holds (r + 1) * (i % 97 + 1): exact in float32 for these sizes.
  std::vector<double> values(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = (me() + 1) * static_cast<double>(i % 97 + 1);
  Tensor t = from_vector(values, {n}).to(dtype).to(device);
  dist::communicator(device).all_reduce_sum(t);
  const std::vector<double> got = t.to(kFloat64).to(Device::cpu()).to_vector<double>();
  std::int64_t wrong = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (got[static_cast<std::size_t>(i)] != rank_sum() * static_cast<double>(i % 97 + 1)) ++wrong;
  }
  CHECK(wrong == 0);
  // Every rank holds the same bits.
  const std::vector<std::uint64_t> prints = dist::all_gather(optim::fingerprint({{"t", t}}));
  for (const std::uint64_t p : prints) CHECK(p == prints[0]);
}

void check_broadcast(Device device) {
  Tensor t = full({5, 3}, static_cast<double>(me() + 10), TensorOptions(kInt64).device(device));
  dist::communicator(device).broadcast(t, 1);
  CHECK(testing::equal(t.to(Device::cpu()), full({5, 3}, 11.0, TensorOptions(kInt64))));
}

void check_reduce_gradients(Device device) {
  auto layer = std::make_shared<nn::Linear>(3, 2);
  layer->to(device);
  optim::SGD sgd(layer->named_parameters(), optim::SGDOptions(0.1));
  Tensor weight_grad = layer->weight.grad();  // a view into the arena
  weight_grad.fill_(static_cast<double>(me() + 1));
  // Rank 0 holds a quarter of the batch, rank 1 three quarters (two ranks);
  // with more ranks the shares are equal.
  const double share = ranks() == 2 ? (me() == 0 ? 0.25 : 0.75) : 1.0 / ranks();
  optim::DataParallel(device).reduce_gradients(sgd.arena(), share);
  double expected = 0.0;
  for (int r = 0; r < ranks(); ++r) expected += (ranks() == 2 ? (r == 0 ? 0.25 : 0.75) : 1.0 / ranks()) * (r + 1);
  CHECK(testing::equal(layer->weight.grad().to(Device::cpu()), full({2, 3}, expected)));
}

// A float64 two-layer network, the same on every rank.
std::shared_ptr<nn::Sequential> small_net(Device device) {
  manual_seed(21);
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(6, 5), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(5, 3)});
  net->to(kFloat64);
  net->to(device);
  return net;
}

struct Batch {
  Tensor x, y;
};

// Eight examples, the same on every rank; `rows` picks a part of them.
Batch batch(Device device, std::int64_t begin = 0, std::int64_t end = 8) {
  manual_seed(77);
  const Tensor x = randn({8, 6}, TensorOptions(kFloat64));
  const Tensor y = from_vector<std::int64_t>({0, 1, 2, 0, 2, 1, 1, 0}, {8});
  return {x.slice(0, begin, end).to(device), y.slice(0, begin, end).to(device)};
}

optim::SAMOptions sam_options(bool adaptive, optim::SamMode mode) {
  return optim::SAMOptions().rho(adaptive ? 0.5 : 0.05).adaptive(adaptive).mode(mode);
}

std::shared_ptr<optim::SGD> sgd_for(nn::Module& net) {
  return std::make_shared<optim::SGD>(net.named_parameters(),
                                      optim::SGDOptions(0.1).momentum(0.9).weight_decay(5e-4));
}

Tensor loss_of(nn::Module& net, const Batch& b) {
  Tensor loss = cross_entropy(net(b.x), b.y);
  loss.backward();
  return loss;
}

void check_close(nn::Module& a, nn::Module& b) {
  const TensorMap sa = a.state_dict(), sb = b.state_dict();
  for (const auto& [name, t] : sa) {
    INFO(name);
    CHECK(testing::relative_error(t.to(Device::cpu()), sb.at(name).to(Device::cpu())) < 1e-12);
  }
}

// Three SAM steps with 2+ ranks, each on its part of the batch, against
// single-process SAM on the whole batch: Global mode against step(), Replica
// mode against step_chunks() with one chunk per rank.
void check_sam_modes(Device device, bool adaptive, optim::SamMode mode) {
  INFO("device " << device.str() << (adaptive ? ", ASAM" : ", SAM")
                 << (mode == optim::SamMode::Global ? ", global" : ", replica"));
  REQUIRE(8 % ranks() == 0);
  const std::int64_t piece = 8 / ranks();

  auto reference = small_net(device);
  auto reference_sgd = sgd_for(*reference);
  optim::SAM reference_sam(reference_sgd, sam_options(adaptive, mode), reference.get());

  auto replica = small_net(device);
  optim::DataParallel replicas(device);
  replicas.broadcast_state(*replica);
  auto replica_sgd = sgd_for(*replica);
  optim::SAM replica_sam(replica_sgd, sam_options(adaptive, mode), replica.get());
  replica_sam.set_gradient_sync([&] { replicas.reduce_gradients(replica_sgd->arena(), 1.0 / ranks()); });

  const Batch whole = batch(device);
  const Batch mine = batch(device, me() * piece, (me() + 1) * piece);
  for (int step = 0; step < 3; ++step) {
    reference_sgd->zero_grad();
    if (mode == optim::SamMode::Global) {
      reference_sam.step([&] { return loss_of(*reference, whole); });
    } else {
      std::vector<Batch> chunks;
      for (int r = 0; r < ranks(); ++r) chunks.push_back(batch(device, r * piece, (r + 1) * piece));
      reference_sam.step_chunks([&](std::size_t c) { return loss_of(*reference, chunks[c]); },
                                std::vector<double>(static_cast<std::size_t>(ranks()), 1.0 / ranks()));
    }
    replica_sgd->zero_grad();
    replica_sam.step([&] { return loss_of(*replica, mine); });
  }
  check_close(*reference, *replica);
  const std::vector<std::uint64_t> prints = dist::all_gather(optim::fingerprint(replica->state_dict()));
  for (const std::uint64_t p : prints) CHECK(p == prints[0]);
}

}  // namespace

TEST_CASE("dist: host collectives", "[dist]") {
  std::vector<double> values{1.0 * me(), 2.5};
  dist::all_reduce_sum(values);
  CHECK(values[0] == rank_sum() - ranks());
  CHECK(values[1] == 2.5 * ranks());
  CHECK(dist::any_rank(me() == 1));
  CHECK_FALSE(dist::any_rank(false));
  const std::vector<std::uint64_t> all = dist::all_gather(static_cast<std::uint64_t>(100 + me()));
  REQUIRE(all.size() == static_cast<std::size_t>(ranks()));
  for (int r = 0; r < ranks(); ++r) CHECK(all[static_cast<std::size_t>(r)] == static_cast<std::uint64_t>(100 + r));
  std::string text = me() == 1 ? std::string(100000, 'x') + "end" : "short";
  dist::broadcast(text, 1);
  CHECK(text.size() == 100003);
  CHECK(text.substr(100000) == "end");
  dist::barrier();
}

TEST_CASE("dist: the MPI communicator sums and broadcasts CPU tensors", "[dist]") {
  CHECK(std::string(dist::communicator(Device::cpu()).backend()) == "mpi");
  for (const std::int64_t n : {1, 7, 1000003}) {
    check_all_reduce(Device::cpu(), kFloat32, n);
    check_all_reduce(Device::cpu(), kFloat64, n);
  }
  check_broadcast(Device::cpu());
  Tensor ints = zeros({3}, TensorOptions(kInt64));
  CHECK_THROWS_WITH(dist::communicator(Device::cpu()).all_reduce_sum(ints),
                    Catch::Contains("expected a float32 or float64 tensor, got int64"));
  Tensor strided = zeros({4, 4}).transpose(0, 1);
  CHECK_THROWS_WITH(dist::communicator(Device::cpu()).all_reduce_sum(strided), Catch::Contains("contiguous"));
}

TEST_CASE("dist: the NCCL communicator sums and broadcasts CUDA tensors", "[dist][cuda]") {
  BASIN_REQUIRE_CUDA();
  CHECK(std::string(dist::communicator(Device::cuda()).backend()) == "nccl");
  for (const std::int64_t n : {1, 7, 1000003}) {
    check_all_reduce(Device::cuda(), kFloat32, n);
    check_all_reduce(Device::cuda(), kFloat64, n);
  }
  check_broadcast(Device::cuda());
  Tensor host = zeros({3});
  CHECK_THROWS_WITH(dist::communicator(Device::cuda()).all_reduce_sum(host),
                    Catch::Contains("the tensor is on cpu but this communicator works on cuda:0"));
}

TEST_CASE("dist: DataParallel weights each rank's gradients by its share of the batch", "[dist]") {
  check_reduce_gradients(Device::cpu());
}

TEST_CASE("dist: DataParallel weights each rank's gradients by its share of the batch on CUDA", "[dist][cuda]") {
  BASIN_REQUIRE_CUDA();
  check_reduce_gradients(Device::cuda());
}

TEST_CASE("dist: broadcast_state gives every rank rank 0's weights and buffers, and the check sees a drift",
          "[dist]") {
  manual_seed(static_cast<std::uint64_t>(1000 + me()));  // each rank draws other weights
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions(2, 3, 3)), std::make_shared<nn::BatchNorm2d>(3)});
  net->named_buffers()[0].second.fill_(static_cast<double>(me()));
  optim::DataParallel replicas(Device::cpu());
  CHECK_THROWS_WITH(replicas.check_replicas_agree(*net), Catch::Contains("rank 1's weights and buffers differ"));
  replicas.broadcast_state(*net);
  CHECK_NOTHROW(replicas.check_replicas_agree(*net));
  // One element of one rank's weights moved: every rank sees it.
  if (me() == 1) {
    NoGradGuard no_grad;
    Tensor weight = net->named_parameters()[0].second;
    weight.view({weight.numel()}).slice(0, 5, 6).add_(full({1}, 1e-6));
  }
  CHECK_THROWS_WITH(replicas.check_replicas_agree(*net), Catch::Contains("rank 1's weights and buffers differ"));
}

TEST_CASE("dist: SAM and ASAM, global mode on N ranks = SAM on the whole batch; replica mode = m-sharpness",
          "[dist][sam]") {
  for (const bool adaptive : {false, true}) {
    check_sam_modes(Device::cpu(), adaptive, optim::SamMode::Global);
    check_sam_modes(Device::cpu(), adaptive, optim::SamMode::Replica);
  }
}

TEST_CASE("dist: SAM and ASAM modes on N ranks on CUDA", "[dist][sam][cuda]") {
  BASIN_REQUIRE_CUDA();
  for (const bool adaptive : {false, true}) {
    check_sam_modes(Device::cuda(), adaptive, optim::SamMode::Global);
    check_sam_modes(Device::cuda(), adaptive, optim::SamMode::Replica);
  }
}
