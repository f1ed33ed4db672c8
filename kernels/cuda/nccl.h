// NCCL as the rest of basin sees it: plain C++ declarations, no CUDA or NCCL
// headers, so core/distributed.cpp can build a CUDA communicator without
// knowing either. Implemented in nccl.cu; present only in builds with the CUDA
// backend. Built without NCCL, every function throws basin::Error saying so.
#pragma once

#include <cstddef>
#include <string>

namespace basin::kernels::cuda::nccl {

// NCCL's version, e.g. "2.28.3"; "" when basin was built without NCCL.
std::string version();
// A new ncclUniqueId's bytes (made by one rank, then sent to the others).
std::string unique_id();

// One NCCL communicator (ncclComm_t) of `ranks` ranks, this one being `rank`,
// on basin's device; every rank must call it with the same id.
class Communicator {
 public:
  Communicator(const std::string& id, int ranks, int rank);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // Element-wise sums, in place, queued on basin's stream (no host wait).
  void all_reduce_sum(void* data, std::size_t count, bool float64);
  // Rank root's `bytes` bytes at data, to every rank, in place, on the stream.
  void broadcast(void* data, std::size_t bytes, int root);

 private:
  void* comm_ = nullptr;  // ncclComm_t
};

}  // namespace basin::kernels::cuda::nccl
