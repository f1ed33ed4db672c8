// DataParallel: what an optimizer step needs from the other replicas of a
// data-parallel job (core/distributed.h). Every rank holds the whole model;
// each computes gradients on its own shard of the global batch, and
// reduce_gradients() turns them into the gradient of the global batch's mean
// loss before the update. Because the parameter arena keeps every gradient in
// one buffer, that is one scale pass and one all-reduce call per step, queued
// on basin's stream like any kernel (no per-tensor buckets, no host wait).
//
//   optim::DataParallel replicas(device);
//   replicas.broadcast_state(*model);                     // rank 0's initial weights everywhere
//   auto sgd = std::make_shared<optim::SGD>(model->named_parameters(), ...);
//   ... forward and backward on this rank's shard (n_r of the batch's n images) ...
//   replicas.reduce_gradients(sgd->arena(), double(n_r) / n);
//   sgd->step();
//
// SAM calls the reduction itself, once or twice a step by its mode
// (optim::SAM::set_gradient_sync, SamMode).
#pragma once

#include <cstdint>

#include "core/distributed.h"
#include "nn/module.h"
#include "optim/arena.h"

namespace basin::optim {

class DataParallel {
 public:
  // The job's communicator for tensors on `device` (dist::communicator).
  explicit DataParallel(Device device);

  int rank() const { return rank_; }
  int size() const { return size_; }

  // Every rank's parameters and buffers become rank 0's: one broadcast per
  // tensor. Call once, after building (or loading) the model and before the
  // optimizer packs it, so every replica starts from the same point whatever
  // its own random draws.
  void broadcast_state(nn::Module& model);
  // Rank 0's buffers (BatchNorm running statistics) on every rank.
  void broadcast_buffers(nn::Module& model);

  // The arena's gradients become sum over ranks r of share_r * g_r, the same
  // on every rank: share_r = n_r / n makes it the gradient of the mean loss
  // over the whole batch when rank r's loss is the mean over its n_r images.
  // A rank with no images of this batch passes share 0 (its gradients are
  // zero anyway) and still takes part.
  void reduce_gradients(ParameterArena& arena, double share);

  // A fingerprint of the model's tensors (parameters and buffers, bytes as
  // they are) on every rank; throws basin::Error naming the first rank whose
  // fingerprint differs from rank 0's. Copies the model to the host once.
  std::uint64_t check_replicas_agree(const nn::Module& model) const;

 private:
  dist::Communicator* comm_;
  int rank_, size_;
};

// FNV-1a over the bytes of every tensor of `tensors` in name order, each
// preceded by its name: equal fingerprints mean equal bits, in practice.
std::uint64_t fingerprint(const TensorMap& tensors);

}  // namespace basin::optim
