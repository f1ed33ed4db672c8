// Data parallelism in a world of one process (what every test binary and
// every basin-train without mpirun is): no MPI, collectives that leave the
// data as it is, and on CUDA the NCCL path itself, on one rank, so that a
// machine with a single GPU runs the real NCCL calls. The collectives across
// ranks are tested by tests/dist/ under mpirun.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "core/distributed.h"
#include "nn/layers.h"
#include "optim/data_parallel.h"
#include "optim/sgd.h"
#include "support/compare.h"
#include "support/cuda.h"

using namespace basin;

namespace {

void check_identity_collectives(Device device) {
  dist::Communicator& comm = dist::communicator(device);
  CHECK(comm.device() == device);
  for (const DType dtype : {kFloat32, kFloat64}) {
    INFO(dtype_name(dtype));
    const Tensor before = arange(0.0, 1001.0, 1.0).to(dtype);
    Tensor t = before.to(device);
    comm.all_reduce_sum(t);
    CHECK(testing::equal(t.to(Device::cpu()), before));
  }
  Tensor ints = arange(0.0, 7.0, 1.0).to(kInt64).to(device);
  comm.broadcast(ints, 0);
  CHECK(testing::equal(ints.to(Device::cpu()), arange(0.0, 7.0, 1.0).to(kInt64)));
  CHECK_THROWS_WITH(comm.broadcast(ints, 1), Catch::Contains("root 1"));
  Tensor wrong = zeros({2}, TensorOptions(kInt64).device(device));
  CHECK_THROWS_WITH(comm.all_reduce_sum(wrong), Catch::Contains("expected a float32 or float64 tensor, got int64"));

  // One rank's share 0.5 of the batch is the whole sum: the gradients are halved.
  auto layer = std::make_shared<nn::Linear>(3, 2);
  layer->to(device);
  optim::SGD sgd(layer->named_parameters(), optim::SGDOptions(0.1));
  Tensor weight_grad = layer->weight.grad();  // a view into the arena
  weight_grad.fill_(3.0);
  optim::DataParallel replicas(device);
  replicas.reduce_gradients(sgd.arena(), 0.5);
  CHECK(testing::equal(layer->weight.grad().to(Device::cpu()), full({2, 3}, 1.5)));
  CHECK_THROWS_WITH(replicas.reduce_gradients(sgd.arena(), 1.5), Catch::Contains("must be in [0, 1], got 1.5"));
  CHECK(replicas.check_replicas_agree(*layer) == optim::fingerprint(layer->state_dict()));
}

}  // namespace

TEST_CASE("dist: a process not started by mpirun is a world of one", "[dist]") {
  dist::init();
  CHECK(dist::rank() == 0);
  CHECK(dist::world_size() == 1);
  CHECK(dist::local_rank() == 0);
  CHECK_FALSE(dist::is_distributed());
  CHECK(dist::describe_world() == "1 process");
  std::vector<double> values{1.5, -2.0};
  dist::all_reduce_sum(values);
  CHECK(values == std::vector<double>{1.5, -2.0});
  CHECK(dist::any_rank(true));
  CHECK_FALSE(dist::any_rank(false));
  CHECK(dist::all_gather(7) == std::vector<std::uint64_t>{7});
  std::string text = "unchanged";
  dist::broadcast(text, 0);
  CHECK(text == "unchanged");
  CHECK(std::string(dist::communicator(Device::cpu()).backend()) == "single");
  check_identity_collectives(Device::cpu());
}

TEST_CASE("dist: on one GPU the CUDA communicator is NCCL's, on one rank", "[dist][cuda]") {
  BASIN_REQUIRE_CUDA();
  dist::init();
  const std::string backend = dist::communicator(Device::cuda()).backend();
  // Every CUDA build with NCCL (and the emulator, whose NCCL is always there).
  CHECK(backend == (dist::nccl_is_built() ? "nccl" : "single"));
  check_identity_collectives(Device::cuda());
}

TEST_CASE("dist: fingerprints tell tensors apart by name and by bits", "[dist]") {
  const Tensor a = arange(0.0, 5.0, 1.0);
  Tensor b = a.clone();
  CHECK(optim::fingerprint({{"x", a}}) == optim::fingerprint({{"x", b}}));
  CHECK(optim::fingerprint({{"x", a}}) != optim::fingerprint({{"y", a}}));
  b.view({5}).slice(0, 2, 3).fill_(2.0000005);  // the next float32 after 2 is 2 + 2.4e-7
  CHECK(optim::fingerprint({{"x", a}}) != optim::fingerprint({{"x", b}}));
}
