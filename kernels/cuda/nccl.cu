// NCCL for basin's data parallelism (kernels/cuda/nccl.h): one communicator
// per process, its collectives queued on basin's stream so a step's gradient
// all-reduce is ordered after the backward pass that wrote the gradients and
// before the update that reads them, with no host synchronization. With the
// CUDA emulator, <nccl.h> is the emulator's NCCL, built on MPI.
#include "kernels/cuda/nccl.h"

#include "core/error.h"

#if BASIN_WITH_NCCL
#include <nccl.h>

#include <cstring>

#include "kernels/cuda/check.cuh"

#define BASIN_NCCL_CHECK(call)                                                                          \
  do {                                                                                                  \
    const ncclResult_t basin_nccl_status_ = (call);                                                     \
    BASIN_CHECK(basin_nccl_status_ == ncclSuccess, "NCCL error: ", ncclGetErrorString(basin_nccl_status_), \
                " in ", #call, ::basin::kernels::cuda::nccl::last_error_detail(comm_));                   \
  } while (0)
#endif

namespace basin::kernels::cuda::nccl {

#if BASIN_WITH_NCCL

namespace {

// NCCL's own account of the last failure (its text says more than the code).
std::string last_error_detail(void* comm) {
  const char* text = ncclGetLastError(static_cast<ncclComm_t>(comm));
  return text != nullptr && *text != '\0' ? std::string(" (") + text + ")" : std::string();
}

}  // namespace

std::string version() {
  int code = 0;
  if (ncclGetVersion(&code) != ncclSuccess) return "unknown";
  // NCCL_VERSION(X, Y, Z) is X * 10000 + Y * 100 + Z since 2.9.
  return std::to_string(code / 10000) + "." + std::to_string(code / 100 % 100) + "." + std::to_string(code % 100);
}

std::string unique_id() {
  ncclUniqueId id;
  void* comm_ = nullptr;  // for the check's message
  BASIN_NCCL_CHECK(ncclGetUniqueId(&id));
  return std::string(id.internal, sizeof id.internal);
}

Communicator::Communicator(const std::string& id, int ranks, int rank) {
  ncclUniqueId nccl_id;
  BASIN_CHECK(id.size() == sizeof nccl_id.internal, "NCCL: the unique id has ", id.size(), " bytes, expected ",
              sizeof nccl_id.internal);
  std::memcpy(nccl_id.internal, id.data(), id.size());
  (void)stream();  // makes basin's context: NCCL binds the communicator to the current GPU
  ncclComm_t comm = nullptr;
  BASIN_NCCL_CHECK(ncclCommInitRank(&comm, ranks, nccl_id, rank));
  comm_ = comm;
}

Communicator::~Communicator() {
  // At exit the CUDA runtime may be gone already; the driver frees the rest.
  if (comm_ != nullptr) (void)ncclCommDestroy(static_cast<ncclComm_t>(comm_));
}

void Communicator::all_reduce_sum(void* data, std::size_t count, bool float64) {
  BASIN_NCCL_CHECK(ncclAllReduce(data, data, count, float64 ? ncclFloat64 : ncclFloat32, ncclSum,
                                 static_cast<ncclComm_t>(comm_), stream()));
}

void Communicator::broadcast(void* data, std::size_t bytes, int root) {
  BASIN_NCCL_CHECK(ncclBroadcast(data, data, bytes, ncclUint8, root, static_cast<ncclComm_t>(comm_), stream()));
}

#else  // built without NCCL

namespace {
[[noreturn]] void no_nccl() {
  BASIN_FAIL("this build of basin has no NCCL (configure the CUDA build with -DNCCL_ROOT=<its folder>)");
}
}  // namespace

std::string version() { return ""; }
std::string unique_id() { no_nccl(); }
Communicator::Communicator(const std::string&, int, int) { no_nccl(); }
Communicator::~Communicator() = default;
void Communicator::all_reduce_sum(void*, std::size_t, bool) { no_nccl(); }
void Communicator::broadcast(void*, std::size_t, int) { no_nccl(); }

#endif

}  // namespace basin::kernels::cuda::nccl
