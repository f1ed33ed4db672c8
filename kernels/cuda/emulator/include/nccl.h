// NCCL as basin's CUDA emulator provides it: the part of nccl.h that basin
// calls (unique ids, communicators of one rank per process, all-reduce and
// broadcast, group calls, error strings), with NCCL's names, signatures and
// numeric codes, implemented over MPI in kernels/cuda/emulator/nccl.cpp.
//
// Only builds configured with -DBASIN_CUDA=EMULATE put this folder on the
// include path, where it stands in for the library's header.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#define BASIN_NCCL_EMULATED 1

// The release whose API this follows. NCCL encodes versions from 2.9 on as
// major * 10000 + minor * 100 + patch (earlier ones as major * 1000 + ...).
#define NCCL_MAJOR 2
#define NCCL_MINOR 28
#define NCCL_PATCH 0
#define NCCL_SUFFIX ""
#define NCCL_VERSION(X, Y, Z) \
  (((X) <= 2 && (Y) <= 8) ? (X) * 1000 + (Y) * 100 + (Z) : (X) * 10000 + (Y) * 100 + (Z))
#define NCCL_VERSION_CODE NCCL_VERSION(NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH)

// ---------------------------------------------------------------- types
typedef struct ncclComm* ncclComm_t;

// What one rank makes (ncclGetUniqueId) and hands to the others, out of band,
// so that they all name the same communicator.
#define NCCL_UNIQUE_ID_BYTES 128
typedef struct {
  char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;

// As in cublas_v2.h, the enums take int as their underlying type, so a value
// outside the enumerators, which a C caller can pass, reaches the library's
// checks and is refused there. The values are NCCL's own, so a number in a
// log means the same thing on either device.
typedef enum : int {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
  ncclNumResults = 8,
} ncclResult_t;

typedef enum : int {
  ncclInt8 = 0,
  ncclChar = 0,
  ncclUint8 = 1,
  ncclInt32 = 2,
  ncclInt = 2,
  ncclUint32 = 3,
  ncclInt64 = 4,
  ncclUint64 = 5,
  ncclFloat16 = 6,
  ncclHalf = 6,
  ncclFloat32 = 7,
  ncclFloat = 7,
  ncclFloat64 = 8,
  ncclDouble = 8,
  ncclBfloat16 = 9,
  ncclFloat8e4m3 = 10,
  ncclFloat8e5m2 = 11,
  ncclNumTypes = 12,
} ncclDataType_t;

typedef enum : int {
  ncclSum = 0,
  ncclProd = 1,
  ncclMax = 2,
  ncclMin = 3,
  ncclAvg = 4,
  ncclNumOps = 5,
} ncclRedOp_t;

// ---------------------------------------------------------------- the API
extern "C" {

// NCCL_VERSION_CODE of the library.
ncclResult_t ncclGetVersion(int* version);
ncclResult_t ncclGetUniqueId(ncclUniqueId* uniqueId);

// Collective: every rank of the new communicator calls it with the same id and
// nranks, each with its own rank in [0, nranks).
ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
ncclResult_t ncclCommAbort(ncclComm_t comm);
ncclResult_t ncclCommCount(const ncclComm_t comm, int* count);
ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank);

// recvbuff[i] = op over the ranks of sendbuff[i], on every rank; in place when
// sendbuff == recvbuff.
ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, std::size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
// recvbuff = rank root's sendbuff, on every rank; sendbuff is read on root only.
ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, std::size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream);

ncclResult_t ncclGroupStart(void);
ncclResult_t ncclGroupEnd(void);

const char* ncclGetErrorString(ncclResult_t result);
// The library's account of the last error it returned, or "".
const char* ncclGetLastError(ncclComm_t comm);

}  // extern "C"
