#include "optim/data_parallel.h"

#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"

namespace basin::optim {

DataParallel::DataParallel(Device device)
    : comm_(&dist::communicator(device)), rank_(dist::rank()), size_(dist::world_size()) {}

void DataParallel::broadcast_state(nn::Module& model) {
  NoGradGuard no_grad;
  for (auto& [name, param] : model.named_parameters()) {
    Tensor data = param.detach();
    BASIN_CHECK(data.is_contiguous(), "DataParallel: parameter '", name, "' is not contiguous");
    comm_->broadcast(data, 0);
  }
  broadcast_buffers(model);
}

void DataParallel::broadcast_buffers(nn::Module& model) {
  NoGradGuard no_grad;
  for (auto& [name, buffer] : model.named_buffers()) {
    BASIN_CHECK(buffer.is_contiguous(), "DataParallel: buffer '", name, "' is not contiguous");
    comm_->broadcast(buffer, 0);
  }
}

void DataParallel::reduce_gradients(ParameterArena& arena, double share) {
  BASIN_CHECK(std::isfinite(share) && share >= 0.0 && share <= 1.0,
              "DataParallel: a rank's share of the batch must be in [0, 1], got ", share);
  BASIN_CHECK(arena.is_bound(), "DataParallel: the optimizer's parameters moved since it packed them; make the "
                                "optimizer after moving the model");
  if (size_ == 1 && share == 1.0) return;
  NoGradGuard no_grad;
  Tensor grads = arena.grads();
  grads.mul_(share);
  comm_->all_reduce_sum(grads);
}

std::uint64_t fingerprint(const TensorMap& tensors) {
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a, 64 bits
  const auto mix = [&hash](const void* data, std::size_t bytes) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < bytes; ++i) {
      hash ^= p[i];
      hash *= 1099511628211ull;
    }
  };
  for (const auto& [name, tensor] : tensors) {
    mix(name.data(), name.size());
    const Tensor host = tensor.detach().to(Device::cpu()).contiguous();
    mix(host.data_ptr(), static_cast<std::size_t>(host.numel()) * dtype_size(host.dtype()));
  }
  return hash;
}

std::uint64_t DataParallel::check_replicas_agree(const nn::Module& model) const {
  const std::uint64_t mine = fingerprint(model.state_dict());
  const std::vector<std::uint64_t> all = dist::all_gather(mine);
  for (std::size_t r = 1; r < all.size(); ++r) {
    BASIN_CHECK(all[r] == all[0], "the replicas drifted apart: rank ", r,
                "'s weights and buffers differ from rank 0's (fingerprints ", std::hex, all[r], " and ", all[0],
                ")");
  }
  return mine;
}

}  // namespace basin::optim
