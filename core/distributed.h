// Data parallelism: the processes of one training job and the collectives
// between them.
//
//   mpirun -np 4 basin-train ...        (one process per GPU, or per CPU socket)
//
// MPI starts the processes ("ranks"), tells each its rank, and carries the
// collectives on CPU tensors and on small host values (loss sums, a stop
// flag). CUDA tensors go through NCCL, whose communicator is bootstrapped by
// broadcasting NCCL's unique id over MPI; each rank drives one GPU, chosen
// from its rank on its own machine (the local rank). core/ sees only the
// interfaces below: MPI lives in core/distributed.cpp behind BASIN_WITH_MPI,
// NCCL in kernels/cuda/nccl.cu (on the CUDA emulator: an NCCL built on MPI,
// kernels/cuda/emulator/nccl.cpp, since emulated device memory is host memory).
//
// A process not started by an MPI launcher (no OMPI_COMM_WORLD_SIZE,
// PMI_SIZE or PMIX_RANK in its environment) is a world of one rank, and MPI is
// never initialized: single-process use pays nothing and needs no MPI at all.
// Every collective on a world of one returns at once, leaving the data as it is.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"

namespace basin::dist {

// True when this build of basin contains MPI (-DBASIN_MPI=ON and MPI found),
// and NCCL (a CUDA build that found NCCL, or the emulator's NCCL).
bool mpi_is_built();
bool nccl_is_built();

// Joins the job this process was started in: initializes MPI when an MPI
// launcher started the process (see above), else makes a world of one. Call
// once, early in main(), before any CUDA work (the rank picks its GPU here).
// Throws basin::Error when launched by mpirun but built without MPI, and when
// MPI cannot start. Idempotent.
void init();
// Ends MPI cleanly (MPI_Finalize) when init() started it; registered with
// std::atexit by init(), callable earlier.
void finalize();
// Ends every rank of the job at once, with this exit status: MPI_Abort when
// distributed (mpirun then stops the other ranks), std::exit otherwise. The
// caller prints its message first.
[[noreturn]] void abort_job(int status);

int rank();        // 0 .. world_size() - 1; 0 in a world of one
int world_size();  // 1 when not distributed
int local_rank();  // the rank among the processes on this machine
bool is_distributed();  // world_size() > 1
// "4 ranks on 2 hosts (Open MPI v4.1.4)", or "1 process (not started by mpirun)".
std::string describe_world();

// ---------------------------------------------------------------- host collectives
// Over MPI, on values the host holds; all ranks must call them in the same
// order. Cheap (a few microseconds on one machine): for control values.
// Sums `values` element-wise over the ranks, in place, in float64.
void all_reduce_sum(std::vector<double>& values);
// True on every rank when `flag` is true on any rank.
bool any_rank(bool flag);
// Every rank's copy of `value`, indexed by rank.
std::vector<std::uint64_t> all_gather(std::uint64_t value);
// Rank `root`'s bytes on every rank (resized to the root's length).
void broadcast(std::string& bytes, int root = 0);
void barrier();

// ---------------------------------------------------------------- tensor collectives
// A communicator carries collectives on tensors of one device: MPI for the
// CPU, NCCL for CUDA. Work on CUDA tensors is queued on basin's stream and does
// not wait for the host. Every rank must call the same collectives in the
// same order with tensors of the same shape and dtype; every rank then ends
// with the same bits.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual Device device() const = 0;
  virtual const char* backend() const = 0;  // "mpi", "nccl", or "single" (a world of one)

  // In place: `tensor` (contiguous, float32 or float64, on device()) becomes
  // the element-wise sum over the ranks.
  virtual void all_reduce_sum(Tensor& tensor) = 0;
  // In place: every rank's `tensor` gets rank `root`'s values.
  virtual void broadcast(Tensor& tensor, int root) = 0;
};

// The communicator for tensors on `device`, made on first use: MPI's for the
// CPU, NCCL's for CUDA (throws basin::Error naming what is missing when basin
// was built without MPI or NCCL and the world has more than one rank).
Communicator& communicator(Device device);

}  // namespace basin::dist
