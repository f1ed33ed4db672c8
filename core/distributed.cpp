// The process group of a data-parallel job over MPI, and the communicators of
// core/distributed.h: MPI's for CPU tensors, NCCL's (kernels/cuda/nccl.h) for
// CUDA tensors, and a no-op one for a world of one.
#include "core/distributed.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>

#include "core/error.h"
#if BASIN_WITH_MPI
#include <mpi.h>
#endif
#if BASIN_WITH_CUDA
#include "kernels/cuda/nccl.h"
#include "kernels/cuda/runtime.h"
#endif

namespace basin::dist {

namespace {

struct World {
  bool initialized = false;
  bool mpi_started = false;  // init() called MPI_Init (and finalize() must end it)
  int rank = 0, size = 1, local_rank = 0, local_size = 1, hosts = 1;
  std::string mpi_version;
};

World& world() {
  static World w;
  return w;
}

// Whether an MPI launcher started this process: Open MPI's mpirun, and the
// PMI/PMIx variables of MPICH's hydra and of Slurm's srun.
bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

#if BASIN_WITH_MPI
std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<std::size_t>(length));
}

// MPI's default handler ends the job on an error without saying where; basin
// sets MPI_ERRORS_RETURN and turns each failure into a basin::Error.
#define BASIN_MPI_CHECK(call)                                                                        \
  do {                                                                                               \
    const int basin_mpi_status_ = (call);                                                            \
    BASIN_CHECK(basin_mpi_status_ == MPI_SUCCESS, "MPI error: ", mpi_error_text(basin_mpi_status_), \
                " in ", #call);                                                                      \
  } while (0)

MPI_Datatype mpi_type(DType dtype, const char* who) {
  switch (dtype) {
    case kFloat32: return MPI_FLOAT;
    case kFloat64: return MPI_DOUBLE;
    default: BASIN_FAIL(who, ": expected a float32 or float64 tensor, got ", dtype_name(dtype));
  }
}

// MPI counts are ints: larger buffers go in pieces.
template <class Call>
void in_pieces(char* data, std::size_t count, std::size_t element_bytes, const Call& call) {
  constexpr std::size_t kPiece = INT_MAX / 16;
  for (std::size_t done = 0; done < count; done += kPiece) {
    const std::size_t n = std::min(kPiece, count - done);
    call(data + done * element_bytes, static_cast<int>(n));
  }
}
#endif

void check_collective_tensor(const Tensor& tensor, Device device, const char* who, bool floating_only) {
  BASIN_CHECK(tensor.defined(), who, ": the tensor is undefined");
  BASIN_CHECK(tensor.device() == device, who, ": the tensor is on ", tensor.device().str(),
              " but this communicator works on ", device.str());
  BASIN_CHECK(tensor.is_contiguous(), who, ": the tensor must be contiguous (shape ", shape_str(tensor.shape()),
              ")");
  BASIN_CHECK(!floating_only || tensor.dtype() == kFloat32 || tensor.dtype() == kFloat64, who,
              ": expected a float32 or float64 tensor, got ", dtype_name(tensor.dtype()));
}

// ---------------------------------------------------------------- communicators

// A world of one: the sum over one rank is the tensor itself.
class SingleCommunicator final : public Communicator {
 public:
  explicit SingleCommunicator(Device device) : device_(device) {}
  Device device() const override { return device_; }
  const char* backend() const override { return "single"; }
  void all_reduce_sum(Tensor& tensor) override {
    check_collective_tensor(tensor, device_, "all_reduce_sum", true);
  }
  void broadcast(Tensor& tensor, int root) override {
    check_collective_tensor(tensor, device_, "broadcast", false);
    BASIN_CHECK(root == 0, "broadcast: root ", root, " is not a rank of a world of one");
  }

 private:
  Device device_;
};

#if BASIN_WITH_MPI
class MpiCommunicator final : public Communicator {
 public:
  Device device() const override { return Device::cpu(); }
  const char* backend() const override { return "mpi"; }
  void all_reduce_sum(Tensor& tensor) override {
    check_collective_tensor(tensor, Device::cpu(), "all_reduce_sum", true);
    const MPI_Datatype type = mpi_type(tensor.dtype(), "all_reduce_sum");
    in_pieces(static_cast<char*>(tensor.data_ptr()), static_cast<std::size_t>(tensor.numel()),
              dtype_size(tensor.dtype()), [&](char* piece, int n) {
                BASIN_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, piece, n, type, MPI_SUM, MPI_COMM_WORLD));
              });
  }
  void broadcast(Tensor& tensor, int root) override {
    check_collective_tensor(tensor, Device::cpu(), "broadcast", false);
    BASIN_CHECK(root >= 0 && root < world().size, "broadcast: root ", root, " is not a rank (", world().size,
                " ranks)");
    in_pieces(static_cast<char*>(tensor.data_ptr()), static_cast<std::size_t>(tensor.numel()) *
                                                         dtype_size(tensor.dtype()),
              1, [&](char* piece, int n) { BASIN_MPI_CHECK(MPI_Bcast(piece, n, MPI_BYTE, root, MPI_COMM_WORLD)); });
  }
};
#endif

#if BASIN_WITH_CUDA
class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const std::string& id, int ranks, int rank) : comm_(id, ranks, rank) {}
  Device device() const override { return Device::cuda(); }
  const char* backend() const override { return "nccl"; }
  void all_reduce_sum(Tensor& tensor) override {
    check_collective_tensor(tensor, Device::cuda(), "all_reduce_sum", true);
    comm_.all_reduce_sum(tensor.data_ptr(), static_cast<std::size_t>(tensor.numel()), tensor.dtype() == kFloat64);
  }
  void broadcast(Tensor& tensor, int root) override {
    check_collective_tensor(tensor, Device::cuda(), "broadcast", false);
    BASIN_CHECK(root >= 0 && root < world().size, "broadcast: root ", root, " is not a rank (", world().size,
                " ranks)");
    comm_.broadcast(tensor.data_ptr(), static_cast<std::size_t>(tensor.numel()) * dtype_size(tensor.dtype()), root);
  }

 private:
  kernels::cuda::nccl::Communicator comm_;
};
#endif

void check_initialized(const char* who) {
  BASIN_CHECK(world().initialized || !launched_by_mpi(), who,
              ": this process was started by an MPI launcher but dist::init() was not called");
}

}  // namespace

bool mpi_is_built() { return BASIN_WITH_MPI != 0; }

bool nccl_is_built() {
#if BASIN_WITH_CUDA
  return !kernels::cuda::nccl::version().empty();
#else
  return false;
#endif
}

void init() {
  World& w = world();
  if (w.initialized) return;
  if (!launched_by_mpi()) {
    w.initialized = true;
    return;
  }
#if BASIN_WITH_MPI
  int already = 0;
  BASIN_MPI_CHECK(MPI_Initialized(&already));
  if (!already) {
    // Only the main thread calls MPI; the data loader's thread never does.
    int provided = 0;
    const int status = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    BASIN_CHECK(status == MPI_SUCCESS, "MPI could not start (MPI_Init_thread returned ", status, ")");
    w.mpi_started = true;
    std::atexit(finalize);
  }
  BASIN_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  BASIN_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &w.rank));
  BASIN_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &w.size));
  // The ranks that share this machine (its memory): their order picks the GPUs.
  MPI_Comm node;
  BASIN_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w.rank, MPI_INFO_NULL, &node));
  BASIN_MPI_CHECK(MPI_Comm_rank(node, &w.local_rank));
  BASIN_MPI_CHECK(MPI_Comm_size(node, &w.local_size));
  BASIN_MPI_CHECK(MPI_Comm_free(&node));
  int leader = w.local_rank == 0 ? 1 : 0;
  BASIN_MPI_CHECK(MPI_Allreduce(&leader, &w.hosts, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  if (MPI_Get_library_version(version, &length) == MPI_SUCCESS) {
    w.mpi_version.assign(version, static_cast<std::size_t>(length));
    w.mpi_version = w.mpi_version.substr(0, w.mpi_version.find_first_of(",\n"));
  }
#if BASIN_WITH_CUDA
  kernels::cuda::select_device(w.local_rank);
#endif
  w.initialized = true;
#else
  BASIN_FAIL("this process was started by mpirun (or another MPI launcher), but this build of basin has no MPI: "
             "install it (Debian: apt-get install libopenmpi-dev openmpi-bin, or bash scripts/setup-deps.sh) and "
             "rebuild, or run without mpirun on one process");
#endif
}

void finalize() {
#if BASIN_WITH_MPI
  World& w = world();
  if (!w.mpi_started) return;
  w.mpi_started = false;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
#endif
}

void abort_job(int status) {
  std::cout.flush();
  std::cerr.flush();
#if BASIN_WITH_MPI
  if (world().size > 1) MPI_Abort(MPI_COMM_WORLD, status);
#endif
  std::exit(status);
}

int rank() {
  check_initialized("dist::rank");
  return world().rank;
}
int world_size() {
  check_initialized("dist::world_size");
  return world().size;
}
int local_rank() {
  check_initialized("dist::local_rank");
  return world().local_rank;
}
bool is_distributed() { return world_size() > 1; }

std::string describe_world() {
  const World& w = world();
  if (w.size == 1) return launched_by_mpi() ? "1 rank (" + w.mpi_version + ")" : "1 process";
  std::string text = std::to_string(w.size) + " ranks on " + std::to_string(w.hosts) +
                     (w.hosts == 1 ? " host" : " hosts");
  if (!w.mpi_version.empty()) text += " (" + w.mpi_version + ")";
  return text;
}

// ---------------------------------------------------------------- host collectives

void all_reduce_sum(std::vector<double>& values) {
  if (world_size() == 1 || values.empty()) return;
#if BASIN_WITH_MPI
  BASIN_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM,
                                MPI_COMM_WORLD));
#endif
}

bool any_rank(bool flag) {
  if (world_size() == 1) return flag;
  int value = flag ? 1 : 0;
#if BASIN_WITH_MPI
  BASIN_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD));
#endif
  return value != 0;
}

std::vector<std::uint64_t> all_gather(std::uint64_t value) {
  std::vector<std::uint64_t> values(static_cast<std::size_t>(world_size()), value);
#if BASIN_WITH_MPI
  if (values.size() > 1) {
    BASIN_MPI_CHECK(MPI_Allgather(&value, 1, MPI_UINT64_T, values.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD));
  }
#endif
  return values;
}

void broadcast(std::string& bytes, int root) {
  BASIN_CHECK(root >= 0 && root < world_size(), "broadcast: root ", root, " is not a rank (", world_size(),
              world_size() == 1 ? " rank)" : " ranks)");
  if (world_size() == 1) return;
#if BASIN_WITH_MPI
  unsigned long long length = bytes.size();
  BASIN_MPI_CHECK(MPI_Bcast(&length, 1, MPI_UNSIGNED_LONG_LONG, root, MPI_COMM_WORLD));
  bytes.resize(static_cast<std::size_t>(length));
  in_pieces(bytes.data(), bytes.size(), 1,
            [&](char* piece, int n) { BASIN_MPI_CHECK(MPI_Bcast(piece, n, MPI_BYTE, root, MPI_COMM_WORLD)); });
#else
  (void)bytes;  // a world of one (above): MPI is never needed
#endif
}

void barrier() {
  if (world_size() == 1) return;
#if BASIN_WITH_MPI
  BASIN_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
#endif
}

// ---------------------------------------------------------------- tensor collectives

Communicator& communicator(Device device) {
  static std::mutex mutex;
  static std::map<DeviceType, std::unique_ptr<Communicator>> made;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = made[device.type];
  if (slot) return *slot;
  const World& w = world();
  const int size = world_size();
  if (device.is_cpu()) {
    if (size == 1) {
      slot = std::make_unique<SingleCommunicator>(device);
    } else {
#if BASIN_WITH_MPI
      slot = std::make_unique<MpiCommunicator>();
#endif
    }
    return *slot;
  }
#if BASIN_WITH_CUDA
  // A world of one still goes through NCCL when basin has it, so that the
  // NCCL path runs (and is tested) on a machine with a single GPU.
  if (!nccl_is_built()) {
    BASIN_CHECK(size == 1, "data-parallel training on CUDA needs NCCL, but this build of basin has none (configure "
                           "with -DNCCL_ROOT=<its folder>), or train on --device cpu");
    slot = std::make_unique<SingleCommunicator>(device);
    return *slot;
  }
  if (!kernels::cuda::is_emulator()) {
    const int gpus = kernels::cuda::device_count();
    BASIN_CHECK(w.local_size <= gpus, "rank ", w.rank, ": ", w.local_size, " ranks share a machine with ", gpus,
                gpus == 1 ? " GPU" : " GPUs", ", but NCCL needs a GPU of its own for each rank: start at most ",
                gpus, " ranks per machine (mpirun -npernode ", gpus, ")");
  }
  std::string id;
  if (w.rank == 0) id = kernels::cuda::nccl::unique_id();
  broadcast(id, 0);
  slot = std::make_unique<NcclCommunicator>(id, size, w.rank);
  return *slot;
#else
  (void)w;
  BASIN_FAIL("communicator: ", device.str(), " needs the CUDA backend, which this build of basin does not have");
#endif
}

}  // namespace basin::dist
