// NCCL for basin's CUDA emulator: communicators, all-reduce and broadcast on
// emulated device memory, carried out on the host over MPI.
//
// On a GPU, NCCL moves device buffers between the GPUs of a job; here device
// memory is host memory, so each rank is one MPI process (mpirun starts them;
// basin's dist::init calls MPI_Init) and a collective is the matching MPI call
// on the buffers themselves. A communicator of one rank needs no MPI at all:
// its collectives are copies.
//
// Faithful, from NCCL's documented semantics:
//  - the API subset basin uses (include/nccl.h), with NCCL's codes;
//  - ncclCommInitRank is collective: the ranks that pass the same unique id
//    form one communicator, and a mismatch in nranks or rank is refused;
//  - all-reduce (sum, prod, max, min, avg) in place or out of place, and
//    broadcast from any root, where sendbuff is read on the root only; every
//    rank ends with the same bits (as Open MPI's all-reduce gives them;
//    tests/emulate/nccl_ranks_main.cpp checks it);
//  - the argument checks: a dead communicator, an unknown datatype or op, a
//    root outside the communicator, and a buffer that is not device memory
//    over its whole extent are refused with ncclInvalidArgument; a stream that
//    is not live, or a device with a sticky fault, with ncclUnhandledCudaError
//    (NCCL would meet them as a failing CUDA call);
//  - ncclGetLastError: this thread's account of its last error, which NCCL
//    also prints when NCCL_DEBUG is WARN, INFO or TRACE.
// Hostile where the real library would hang or corrupt silently: each
// collective of more than one rank first checks that the ranks agree on it
// (which collective, count, datatype, op, root) and that none refused its own
// arguments; if not, every rank returns an error instead of one waiting
// forever. A sendbuff and recvbuff that overlap without being the same buffer
// are refused (NCCL leaves the result undefined).
//
// Not modelled: timing, asynchrony and overlap (the emulator runs work when it
// is submitted, so the stream is already complete and the collective finishes
// before the call returns; group calls therefore only nest, and collectives
// inside them run at once), the reduction order of NCCL's rings and trees
// (ncclAvg here is the sum divided by nranks; compare floating results across
// devices with a tolerance), and communicators over part of a job:
// ncclCommInitRank with more than one rank splits MPI_COMM_WORLD, so every
// process of the job calls it together. Reductions support float32, float64, int32, int64 and uint8;
// broadcast moves bytes and takes any NCCL datatype.
#include <nccl.h>
#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <unordered_set>

#if BASIN_WITH_MPI
// Only MPI's C API is used: leave out the C++ bindings some MPIs still add.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#endif

#include "kernels/cuda/emulator/emulator.h"

// The state behind an ncclComm_t.
struct ncclComm {
  int nranks = 1;
  int rank = 0;
#if BASIN_WITH_MPI
  MPI_Comm mpi = MPI_COMM_NULL;  // only with more than one rank
#endif
};

namespace {

// ---------------------------------------------------------------- errors
// Per thread, so that the pointer ncclGetLastError returns stays valid until
// this thread's next error, whatever other threads do.
thread_local std::string last_error;

// NCCL prints its warnings when NCCL_DEBUG asks for them; so does the emulator.
bool print_warnings() {
  static const bool on = [] {
    const char* level = std::getenv("NCCL_DEBUG");
    return level != nullptr &&
           (strcasecmp(level, "WARN") == 0 || strcasecmp(level, "INFO") == 0 || strcasecmp(level, "TRACE") == 0);
  }();
  return on;
}

ncclResult_t fail(ncclResult_t code, std::string detail) {
  if (print_warnings()) std::fprintf(stderr, "NCCL WARN (basin emulator) %s\n", detail.c_str());
  last_error = std::move(detail);
  return code;
}

std::string pointer_text(const void* ptr) {
  if (ptr == nullptr) return "null";
  std::ostringstream text;
  text << ptr;
  return text.str();
}

// ---------------------------------------------------------------- communicators
// The communicators ncclCommInitRank made and nobody destroyed yet, so a
// destroyed or made-up one is refused instead of being read.
class LiveComms {
 public:
  void add(const ncclComm* comm) {
    const std::lock_guard<std::mutex> lock(mutex_);
    comms_.insert(comm);
  }
  bool remove(const ncclComm* comm) {
    const std::lock_guard<std::mutex> lock(mutex_);
    return comms_.erase(comm) == 1;
  }
  bool contains(const ncclComm* comm) {
    const std::lock_guard<std::mutex> lock(mutex_);
    return comms_.count(comm) == 1;
  }

 private:
  std::mutex mutex_;
  std::unordered_set<const ncclComm*> comms_;
};

LiveComms& live_comms() {
  // Never destroyed: a communicator may be destroyed by a static destructor at exit.
  static auto* comms = new LiveComms();
  return *comms;
}

bool is_live(const ncclComm* comm) { return comm != nullptr && live_comms().contains(comm); }

std::string not_live(const char* call, const ncclComm* comm) {
  return std::string(call) + ": comm " + pointer_text(comm) +
         " is not a live communicator (null, destroyed, or not made by ncclCommInitRank)";
}

// ---------------------------------------------------------------- datatypes and ops
struct TypeInfo {
  const char* name = nullptr;  // null: not an ncclDataType_t
  std::size_t size = 0;
  bool reducible = false;  // the emulator can reduce it
  bool floating = false;
};

TypeInfo type_info(ncclDataType_t type) {
  switch (type) {
    case ncclInt8: return {"ncclInt8", 1, false, false};
    case ncclUint8: return {"ncclUint8", 1, true, false};
    case ncclInt32: return {"ncclInt32", 4, true, false};
    case ncclUint32: return {"ncclUint32", 4, false, false};
    case ncclInt64: return {"ncclInt64", 8, true, false};
    case ncclUint64: return {"ncclUint64", 8, false, false};
    case ncclFloat16: return {"ncclFloat16", 2, false, true};
    case ncclFloat32: return {"ncclFloat32", 4, true, true};
    case ncclFloat64: return {"ncclFloat64", 8, true, true};
    case ncclBfloat16: return {"ncclBfloat16", 2, false, true};
    case ncclFloat8e4m3: return {"ncclFloat8e4m3", 1, false, true};
    case ncclFloat8e5m2: return {"ncclFloat8e5m2", 1, false, true};
    case ncclNumTypes: break;
  }
  return {};
}

const char* op_name(ncclRedOp_t op) {
  switch (op) {
    case ncclSum: return "ncclSum";
    case ncclProd: return "ncclProd";
    case ncclMax: return "ncclMax";
    case ncclMin: return "ncclMin";
    case ncclAvg: return "ncclAvg";
    case ncclNumOps: break;
  }
  return nullptr;
}

// ---------------------------------------------------------------- one collective
enum class Kind : int { AllReduce = 1, Broadcast = 2 };

struct Call {
  const char* name;
  Kind kind;
  const void* send;
  void* recv;
  std::size_t count;
  ncclDataType_t type;
  ncclRedOp_t op;  // all-reduce only
  int root;        // broadcast only
  ncclComm_t comm;
  cudaStream_t stream;

  bool reads_send() const { return kind == Kind::AllReduce || comm->rank == root; }
};

std::string buffer_text(const Call& c, const char* which, const void* ptr, std::size_t bytes) {
  return std::string(c.name) + ": " + which + " " + pointer_text(ptr) + " is not device memory: its " +
         std::to_string(bytes) + " bytes (" + std::to_string(c.count) + " x " + type_info(c.type).name +
         ") are not inside one live device allocation (cudaMalloc)";
}

// This rank's own checks, in NCCL's order: the arguments, then what the device
// is asked (its state, the stream, the buffers). Success means "go on".
ncclResult_t check_arguments(const Call& c) {
  const TypeInfo info = type_info(c.type);
  if (info.name == nullptr) {
    return fail(ncclInvalidArgument,
                std::string(c.name) + ": datatype " + std::to_string(static_cast<int>(c.type)) + " is not an ncclDataType_t");
  }
  if (c.kind == Kind::AllReduce) {
    if (op_name(c.op) == nullptr) {
      return fail(ncclInvalidArgument,
                  std::string(c.name) + ": op " + std::to_string(static_cast<int>(c.op)) + " is not an ncclRedOp_t");
    }
    if (!info.reducible) {
      return fail(ncclInvalidArgument, std::string(c.name) + ": reducing " + info.name +
                                           " is not supported by the emulator (it reduces ncclFloat32, ncclFloat64, "
                                           "ncclInt32, ncclInt64 and ncclUint8)");
    }
    if (c.op == ncclAvg && !info.floating) {
      return fail(ncclInvalidArgument, std::string(c.name) + ": ncclAvg of " + info.name +
                                           " is not supported by the emulator (only of floating types)");
    }
  } else if (c.root < 0 || c.root >= c.comm->nranks) {
    return fail(ncclInvalidArgument, std::string(c.name) + ": root " + std::to_string(c.root) + " is outside [0, " +
                                         std::to_string(c.comm->nranks) + "), the communicator's ranks");
  }
  std::size_t bytes = 0;
  if (__builtin_mul_overflow(c.count, info.size, &bytes)) {
    return fail(ncclInvalidArgument, std::string(c.name) + ": count " + std::to_string(c.count) + " of " + info.name +
                                         " spans more bytes than the address space holds");
  }

  // A device with a sticky fault runs no more work, NCCL's included.
  if (const cudaError_t sticky = basin::emulator::sticky_error(); sticky != cudaSuccess) {
    return fail(ncclUnhandledCudaError, std::string(c.name) + ": the device has a sticky error, " +
                                            cudaGetErrorName(sticky) + " (" +
                                            basin::emulator::error_detail(sticky) + "), and runs no more work");
  }
  // Synchronizing is what the collective must do first anyway (work queued
  // before it on the stream has already run here), and it is how the
  // runtime's public API tells a live stream from a destroyed or made-up one.
  if (const cudaError_t s = cudaStreamSynchronize(c.stream); s != cudaSuccess) {
    const std::string detail = basin::emulator::error_detail(s);
    cudaGetLastError();  // the failure is reported as NCCL's, not left for the caller's next CUDA check
    return fail(ncclUnhandledCudaError, std::string(c.name) + ": stream " + pointer_text(c.stream) +
                                            " cannot be used: " + cudaGetErrorName(s) + " (" + detail + ")");
  }

  if (bytes == 0) return ncclSuccess;  // nothing is read or written
  if (c.reads_send() && !basin::emulator::is_device_range(c.send, bytes)) {
    return fail(ncclInvalidArgument, buffer_text(c, "sendbuff", c.send, bytes));
  }
  if (!basin::emulator::is_device_range(c.recv, bytes)) {
    return fail(ncclInvalidArgument, buffer_text(c, "recvbuff", c.recv, bytes));
  }
  if (c.reads_send() && c.send != c.recv) {
    const auto send = reinterpret_cast<std::uintptr_t>(c.send);
    const auto recv = reinterpret_cast<std::uintptr_t>(c.recv);
    if (send < recv + bytes && recv < send + bytes) {
      return fail(ncclInvalidArgument, std::string(c.name) + ": sendbuff " + pointer_text(c.send) + " and recvbuff " +
                                           pointer_text(c.recv) + " overlap in their " + std::to_string(bytes) +
                                           " bytes without being the same buffer (NCCL's result is then undefined)");
    }
  }
  return ncclSuccess;
}

template <class T>
void divide(void* data, std::size_t count, int nranks) {
  T* values = static_cast<T*>(data);
  const T divisor = static_cast<T>(nranks);
  for (std::size_t i = 0; i < count; ++i) values[i] = values[i] / divisor;
}

// One rank: every op of one value is that value (ncclAvg divides by 1).
void run_alone(const Call& c) {
  const std::size_t bytes = c.count * type_info(c.type).size;
  if (bytes > 0 && c.send != c.recv) std::memcpy(c.recv, c.send, bytes);
}

#if BASIN_WITH_MPI
// MPI counts are ints: longer buffers go in chunks of at most this many elements.
constexpr std::size_t kMaxChunk = INT_MAX;

bool mpi_finalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

ncclResult_t mpi_failed(const char* call, const char* mpi_call, int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  const std::string reason = MPI_Error_string(code, text, &length) == MPI_SUCCESS ? std::string(text, length)
                                                                                  : "MPI error " + std::to_string(code);
  return fail(ncclSystemError, std::string(call) + ": " + mpi_call + " failed: " + reason);
}

MPI_Datatype mpi_type(ncclDataType_t type) {
  switch (type) {
    case ncclUint8: return MPI_UINT8_T;
    case ncclInt32: return MPI_INT32_T;
    case ncclInt64: return MPI_INT64_T;
    case ncclFloat32: return MPI_FLOAT;
    case ncclFloat64: return MPI_DOUBLE;
    default: return MPI_DATATYPE_NULL;  // check_arguments refused it
  }
}

MPI_Op mpi_op(ncclRedOp_t op) {
  switch (op) {
    case ncclProd: return MPI_PROD;
    case ncclMax: return MPI_MAX;
    case ncclMin: return MPI_MIN;
    default: return MPI_SUM;  // ncclSum, and ncclAvg before its division
  }
}

// What every rank's call must agree on; the first field says whether this
// rank refused its own call.
constexpr int kFields = 6;
const char* const kFieldNames[kFields] = {"refusal", "collective", "count", "datatype", "op", "root"};

const char* kind_name(long long kind) {
  if (kind == static_cast<int>(Kind::AllReduce)) return "ncclAllReduce";
  if (kind == static_cast<int>(Kind::Broadcast)) return "ncclBroadcast";
  return "an unknown collective";
}

std::string field_text(int field, long long value) {
  switch (field) {
    case 1: return kind_name(value);
    case 3: {
      const char* name = type_info(static_cast<ncclDataType_t>(value)).name;
      return name != nullptr ? name : std::to_string(value);
    }
    case 4: {
      const char* name = op_name(static_cast<ncclRedOp_t>(value));
      return name != nullptr ? name : std::to_string(value);
    }
    default: return std::to_string(value);
  }
}

// One small all-reduce of the calls' descriptions (their maxima and minima),
// so that a rank that refused its call, or calls differing between ranks,
// end the collective on every rank instead of leaving the others waiting.
ncclResult_t agree(const Call& c, ncclResult_t local) {
  const long long count = c.count > static_cast<std::size_t>(LLONG_MAX) ? LLONG_MAX : static_cast<long long>(c.count);
  const long long mine[kFields] = {local != ncclSuccess ? 1 : 0,
                                   static_cast<int>(c.kind),
                                   count,
                                   static_cast<int>(c.type),
                                   c.kind == Kind::AllReduce ? static_cast<int>(c.op) : 0,
                                   c.kind == Kind::Broadcast ? c.root : 0};
  long long send[2 * kFields];
  long long extremes[2 * kFields];
  for (int i = 0; i < kFields; ++i) {
    send[i] = mine[i];
    send[kFields + i] = -mine[i];  // the maximum of the negations is the minimum
  }
  const int rc = MPI_Allreduce(send, extremes, 2 * kFields, MPI_LONG_LONG, MPI_MAX, c.comm->mpi);
  if (local != ncclSuccess) return local;  // its own account stands
  if (rc != MPI_SUCCESS) return mpi_failed(c.name, "MPI_Allreduce (the ranks' agreement on the call)", rc);
  if (extremes[0] != 0) {
    return fail(ncclInvalidUsage, std::string(c.name) +
                                      ": another rank refused its call (its ncclGetLastError says why), so no rank ran it");
  }
  for (int i = 1; i < kFields; ++i) {
    const long long most = extremes[i];
    const long long least = -extremes[kFields + i];
    if (most == least) continue;
    return fail(ncclInvalidUsage, std::string(c.name) + ": the ranks disagree on the " + kFieldNames[i] + " (" +
                                      field_text(i, least) + " on some, " + field_text(i, most) +
                                      " on others): every rank must make the same collectives in the same order, "
                                      "with the same count, datatype, op and root");
  }
  return ncclSuccess;
}

ncclResult_t run_over_mpi(const Call& c, ncclResult_t local) {
  if (mpi_finalized()) {
    return fail(ncclInvalidUsage, std::string(c.name) +
                                      ": MPI is finalized, and the emulated NCCL carries collectives over MPI: "
                                      "destroy the communicator before MPI_Finalize");
  }
  if (const ncclResult_t agreed = agree(c, local); agreed != ncclSuccess) return agreed;
  const std::size_t size = type_info(c.type).size;
  char* recv = static_cast<char*>(c.recv);
  const char* send = static_cast<const char*>(c.send);
  if (c.kind == Kind::AllReduce) {
    const bool in_place = c.send == c.recv;
    for (std::size_t done = 0; done < c.count;) {
      const std::size_t n = std::min(c.count - done, kMaxChunk);
      const std::size_t offset = done * size;
      const int rc = MPI_Allreduce(in_place ? MPI_IN_PLACE : send + offset, recv + offset, static_cast<int>(n),
                                   mpi_type(c.type), mpi_op(c.op), c.comm->mpi);
      if (rc != MPI_SUCCESS) return mpi_failed(c.name, "MPI_Allreduce", rc);
      done += n;
    }
    if (c.op == ncclAvg) {
      if (c.type == ncclFloat32) divide<float>(c.recv, c.count, c.comm->nranks);
      if (c.type == ncclFloat64) divide<double>(c.recv, c.count, c.comm->nranks);
    }
    return ncclSuccess;
  }
  // Broadcast: the root's bytes, whatever their type.
  const std::size_t bytes = c.count * size;
  if (c.comm->rank == c.root && bytes > 0 && c.send != c.recv) std::memcpy(recv, send, bytes);
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t n = std::min(bytes - done, kMaxChunk);
    const int rc = MPI_Bcast(recv + done, static_cast<int>(n), MPI_BYTE, c.root, c.comm->mpi);
    if (rc != MPI_SUCCESS) return mpi_failed(c.name, "MPI_Bcast", rc);
    done += n;
  }
  return ncclSuccess;
}

// A non-negative int from the id's bytes (FNV-1a): the colour under which the
// processes that hold the same id meet in MPI_Comm_split.
int id_colour(const ncclUniqueId& id) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (const char byte : id.internal) {
    hash = (hash ^ static_cast<unsigned char>(byte)) * 1099511628211ULL;
  }
  return static_cast<int>((hash ^ (hash >> 32)) & 0x7fffffffU);
}

ncclResult_t join_over_mpi(ncclComm& comm, const ncclUniqueId& id) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized == 0 || mpi_finalized()) {
    return fail(ncclInvalidUsage, "ncclCommInitRank: " + std::to_string(comm.nranks) +
                                      " ranks need MPI, which is " + (initialized == 0 ? "not initialized" : "finalized") +
                                      ": the emulated NCCL runs on MPI, one process per rank, so MPI_Init must be "
                                      "called first (basin's dist::init does it in a process mpirun started)");
  }
  MPI_Comm split = MPI_COMM_NULL;
  if (const int rc = MPI_Comm_split(MPI_COMM_WORLD, id_colour(id), comm.rank, &split); rc != MPI_SUCCESS) {
    return mpi_failed("ncclCommInitRank", "MPI_Comm_split", rc);
  }
  // Failures on this communicator come back as codes, to be returned as NCCL's.
  MPI_Comm_set_errhandler(split, MPI_ERRORS_RETURN);
  int size = 0;
  int rank = 0;
  MPI_Comm_size(split, &size);
  MPI_Comm_rank(split, &rank);
  if (size != comm.nranks || rank != comm.rank) {
    MPI_Comm_free(&split);
    return fail(ncclInvalidUsage,
                "ncclCommInitRank: asked for rank " + std::to_string(comm.rank) + " of nranks " +
                    std::to_string(comm.nranks) + ", but the processes that passed this id number " +
                    std::to_string(size) + ", among whom this one is rank " + std::to_string(rank) +
                    ": every rank must pass the id one rank got from ncclGetUniqueId, the same nranks, and a rank "
                    "of its own (and every process of MPI_COMM_WORLD must call ncclCommInitRank together)");
  }
  comm.mpi = split;
  return ncclSuccess;
}
#endif  // BASIN_WITH_MPI

ncclResult_t collective(const Call& c) {
  if (!is_live(c.comm)) return fail(ncclInvalidArgument, not_live(c.name, c.comm));
  const ncclResult_t local = check_arguments(c);
  if (c.comm->nranks == 1) {
    if (local == ncclSuccess) run_alone(c);
    return local;
  }
#if BASIN_WITH_MPI
  return run_over_mpi(c, local);
#else
  return fail(ncclInternalError, std::string(c.name) + ": a communicator of " + std::to_string(c.comm->nranks) +
                                     " ranks exists in a build without MPI");
#endif
}

ncclResult_t release(const char* call, ncclComm_t comm) {
  if (comm == nullptr) return ncclSuccess;  // as NCCL: nothing to release
  if (!live_comms().remove(comm)) return fail(ncclInvalidArgument, not_live(call, comm));
#if BASIN_WITH_MPI
  // After MPI_Finalize, MPI has released it already (and may no longer be called).
  if (comm->mpi != MPI_COMM_NULL && !mpi_finalized()) MPI_Comm_free(&comm->mpi);
#endif
  delete comm;
  return ncclSuccess;
}

thread_local int group_depth = 0;

}  // namespace

extern "C" {

ncclResult_t ncclGetVersion(int* version) {
  if (version == nullptr) return fail(ncclInvalidArgument, "ncclGetVersion: version is null");
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* uniqueId) {
  if (uniqueId == nullptr) return fail(ncclInvalidArgument, "ncclGetUniqueId: uniqueId is null");
  try {
    std::random_device entropy;
    for (std::size_t i = 0; i < NCCL_UNIQUE_ID_BYTES; i += sizeof(std::uint32_t)) {
      const auto word = static_cast<std::uint32_t>(entropy());
      std::memcpy(uniqueId->internal + i, &word, sizeof word);
    }
  } catch (const std::exception& error) {
    return fail(ncclSystemError, std::string("ncclGetUniqueId: no random bytes: ") + error.what());
  }
  // The process id too, so that ids made in different processes differ even
  // where the random bytes would not.
  const pid_t pid = getpid();
  std::memcpy(uniqueId->internal, &pid, sizeof pid);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank) {
  if (comm == nullptr) return fail(ncclInvalidArgument, "ncclCommInitRank: comm (where the communicator goes) is null");
  *comm = nullptr;
  if (nranks < 1) {
    return fail(ncclInvalidArgument,
                "ncclCommInitRank: nranks is " + std::to_string(nranks) + "; a communicator has at least 1 rank");
  }
  if (rank < 0 || rank >= nranks) {
    return fail(ncclInvalidArgument, "ncclCommInitRank: rank " + std::to_string(rank) + " is outside [0, " +
                                         std::to_string(nranks) + ") for nranks " + std::to_string(nranks));
  }
  auto made = std::make_unique<ncclComm>();
  made->nranks = nranks;
  made->rank = rank;
  if (nranks > 1) {
#if BASIN_WITH_MPI
    if (const ncclResult_t joined = join_over_mpi(*made, commId); joined != ncclSuccess) return joined;
#else
    (void)commId;
    return fail(ncclInvalidUsage, "ncclCommInitRank: " + std::to_string(nranks) +
                                      " ranks need MPI, and this build of basin has none: the emulated NCCL runs "
                                      "on MPI, one process per rank (install libopenmpi-dev and reconfigure)");
#endif
  }
  *comm = made.release();
  live_comms().add(*comm);
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) { return release("ncclCommDestroy", comm); }

// Nothing is ever in flight, so aborting is destroying.
ncclResult_t ncclCommAbort(ncclComm_t comm) { return release("ncclCommAbort", comm); }

ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
  if (!is_live(comm)) return fail(ncclInvalidArgument, not_live("ncclCommCount", comm));
  if (count == nullptr) return fail(ncclInvalidArgument, "ncclCommCount: count is null");
  *count = comm->nranks;
  return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
  if (!is_live(comm)) return fail(ncclInvalidArgument, not_live("ncclCommUserRank", comm));
  if (rank == nullptr) return fail(ncclInvalidArgument, "ncclCommUserRank: rank is null");
  *rank = comm->rank;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, std::size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  return collective(Call{"ncclAllReduce", Kind::AllReduce, sendbuff, recvbuff, count, datatype, op, 0, comm, stream});
}

ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, std::size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream) {
  return collective(
      Call{"ncclBroadcast", Kind::Broadcast, sendbuff, recvbuff, count, datatype, ncclSum, root, comm, stream});
}

// Collectives run when they are called, so a group only has to nest properly.
ncclResult_t ncclGroupStart(void) {
  ++group_depth;
  return ncclSuccess;
}

ncclResult_t ncclGroupEnd(void) {
  if (group_depth == 0) return fail(ncclInvalidUsage, "ncclGroupEnd: no ncclGroupStart is open on this thread");
  --group_depth;
  return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "a call to CUDA failed (ncclGetLastError says which)";
    case ncclSystemError: return "a system or MPI call failed (ncclGetLastError says which)";
    case ncclInternalError: return "an internal check failed";
    case ncclInvalidArgument: return "an argument has an invalid value (ncclGetLastError says which)";
    case ncclInvalidUsage: return "the library was called incorrectly (ncclGetLastError says how)";
    case ncclRemoteError: return "a remote rank failed, or the connection to it";
    case ncclInProgress: return "the operation is still in progress";
    case ncclNumResults: break;
  }
  return "unknown NCCL result code";
}

const char* ncclGetLastError(ncclComm_t /*comm*/) { return last_error.c_str(); }

}  // extern "C"
