// The CUDA emulator's NCCL between ranks: one process per rank under mpirun
// (at least 2), each all-reducing and broadcasting emulated device memory with
// rank-dependent values whose results are exact, so they are checked with ==,
// and then bitwise across the ranks. Also what must not hang: a rank that
// refuses its call, ranks that disagree on a call, and a communicator whose
// ranks do not add up all end in an error on every rank.
//
//   mpirun -n 2 basin_emulator_nccl_ranks
//
// Prints "nccl_ranks: rank R of N ok" and exits 0, or says what failed and exits 1.
#if !__has_include(<mpi.h>)
#error "nccl_ranks_main.cpp needs MPI: build it only where MPI was found"
#endif

// Only MPI's C API is used.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

int rank = 0;
int size = 1;
std::vector<std::string> failures;

void expect(bool ok, const std::string& what) {
  if (!ok) failures.push_back(what);
}

std::string nccl_text(ncclResult_t result) {
  return std::string(ncclGetErrorString(result)) + " (" + ncclGetLastError(nullptr) + ")";
}

bool nccl_ok(ncclResult_t result, const std::string& what) {
  expect(result == ncclSuccess, what + ": " + nccl_text(result));
  return result == ncclSuccess;
}

// Device memory holding `values`, freed at scope exit.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& values) : size_(values.size()) {
    ok_ = cudaMalloc(&ptr_, bytes()) == cudaSuccess &&
          cudaMemcpy(ptr_, values.data(), bytes(), cudaMemcpyHostToDevice) == cudaSuccess;
    expect(ok_, "cudaMalloc or cudaMemcpy of " + std::to_string(bytes()) + " bytes");
  }
  ~DeviceArray() { cudaFree(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() const { return ptr_; }
  std::vector<T> read() const {
    std::vector<T> values(size_);
    expect(cudaMemcpy(values.data(), ptr_, bytes(), cudaMemcpyDeviceToHost) == cudaSuccess, "cudaMemcpy back");
    return values;
  }

 private:
  std::size_t bytes() const { return size_ * sizeof(T); }
  std::size_t size_;
  T* ptr_ = nullptr;
  bool ok_ = false;
};

// FNV-1a over the bytes.
template <class T>
std::uint64_t hash_of(const std::vector<T>& values) {
  std::uint64_t hash = 14695981039346656037ULL;
  const auto* bytes = reinterpret_cast<const unsigned char*>(values.data());
  for (std::size_t i = 0; i < values.size() * sizeof(T); ++i) hash = (hash ^ bytes[i]) * 1099511628211ULL;
  return hash;
}

// Every rank holds the same bits.
template <class T>
void expect_same_on_every_rank(const std::vector<T>& values, const std::string& what) {
  const unsigned long long mine = hash_of(values);
  std::vector<unsigned long long> all(static_cast<std::size_t>(size));
  MPI_Allgather(&mine, 1, MPI_UNSIGNED_LONG_LONG, all.data(), 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD);
  for (int r = 0; r < size; ++r) expect(all[r] == mine, what + ": rank " + std::to_string(r) + " holds other bits");
}

template <class T>
void expect_equal(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (got[i] == want[i]) continue;
    expect(false, what + ": element " + std::to_string(i) + " is " + std::to_string(got[i]) + ", expected " +
                      std::to_string(want[i]));
    return;
  }
}

void all_reduce_float32(ncclComm_t comm) {
  // Quarters below 2^10 plus the rank: every partial sum is exact in float.
  const std::size_t count = 1000003;
  std::vector<float> values(count), want(count);
  for (std::size_t i = 0; i < count; ++i) {
    const float base = static_cast<float>(i % 1000) * 0.25f;
    values[i] = base + static_cast<float>(rank);
    want[i] = base * static_cast<float>(size) + static_cast<float>(size * (size - 1) / 2);
  }
  DeviceArray<float> send(values), recv(std::vector<float>(count, -77.0f));
  if (!nccl_ok(ncclAllReduce(send.get(), recv.get(), count, ncclFloat32, ncclSum, comm, nullptr),
               "float32 all-reduce out of place")) {
    return;
  }
  const std::vector<float> got = recv.read();
  expect_equal(got, want, "float32 sum");
  expect_equal(send.read(), values, "float32 sendbuff after the all-reduce");
  expect_same_on_every_rank(got, "float32 sum");
}

void all_reduce_float64(ncclComm_t comm) {
  const std::size_t count = 7777;
  std::vector<double> values(count), sum(count), avg(count);
  for (std::size_t i = 0; i < count; ++i) {
    values[i] = static_cast<double>(i) * 0.5 + 2.0 * rank;
    sum[i] = static_cast<double>(i) * 0.5 * size + static_cast<double>(size * (size - 1));
    avg[i] = static_cast<double>(i) * 0.5 + static_cast<double>(size - 1);
  }
  DeviceArray<double> data(values);
  if (nccl_ok(ncclAllReduce(data.get(), data.get(), count, ncclFloat64, ncclSum, comm, nullptr),
              "float64 all-reduce in place")) {
    const std::vector<double> got = data.read();
    expect_equal(got, sum, "float64 sum in place");
    expect_same_on_every_rank(got, "float64 sum");
  }
  DeviceArray<double> send(values), recv(std::vector<double>(count, -77.0));
  if (nccl_ok(ncclAllReduce(send.get(), recv.get(), count, ncclFloat64, ncclAvg, comm, nullptr), "float64 average")) {
    expect_equal(recv.read(), avg, "float64 average");
  }
}

void all_reduce_integers(ncclComm_t comm) {
  const std::size_t count = 1001;
  std::vector<std::int64_t> values(count), most(count);
  std::vector<std::int32_t> small(count), least(count);
  for (std::size_t i = 0; i < count; ++i) {
    values[i] = static_cast<std::int64_t>(i) * size + rank - (std::int64_t{1} << 40);
    most[i] = static_cast<std::int64_t>(i) * size + (size - 1) - (std::int64_t{1} << 40);
    small[i] = static_cast<std::int32_t>(i) - 100 * rank;
    least[i] = static_cast<std::int32_t>(i) - 100 * (size - 1);
  }
  DeviceArray<std::int64_t> big(values);
  if (nccl_ok(ncclAllReduce(big.get(), big.get(), count, ncclInt64, ncclMax, comm, nullptr), "int64 max")) {
    expect_equal(big.read(), most, "int64 max");
  }
  DeviceArray<std::int32_t> ints(small);
  if (nccl_ok(ncclAllReduce(ints.get(), ints.get(), count, ncclInt32, ncclMin, comm, nullptr), "int32 min")) {
    expect_equal(ints.read(), least, "int32 min");
  }
}

void broadcast_from_rank_1(ncclComm_t comm) {
  const std::size_t count = 100003;
  std::vector<float> values(count);
  for (std::size_t i = 0; i < count; ++i) values[i] = static_cast<float>(i % 4099) * 0.125f - 7.0f;
  // Only the root's sendbuff is read: the others pass poison there.
  DeviceArray<float> send(rank == 1 ? values : std::vector<float>(count, -77.0f));
  DeviceArray<float> recv(std::vector<float>(count, -77.0f));
  if (nccl_ok(ncclBroadcast(send.get(), recv.get(), count, ncclFloat32, 1, comm, nullptr), "broadcast from rank 1")) {
    const std::vector<float> got = recv.read();
    expect_equal(got, values, "broadcast from rank 1");
    expect_same_on_every_rank(got, "broadcast from rank 1");
  }
  DeviceArray<float> in_place(rank == 1 ? values : std::vector<float>(count, -77.0f));
  if (nccl_ok(ncclBroadcast(in_place.get(), in_place.get(), count, ncclFloat32, 1, comm, nullptr),
              "broadcast in place from rank 1")) {
    expect_equal(in_place.read(), values, "broadcast in place from rank 1");
  }
}

// Errors that the real library could leave hanging end on every rank here.
void refusals(ncclComm_t comm, const ncclUniqueId& id) {
  DeviceArray<float> data(std::vector<float>(64, 1.0f));
  std::vector<float> host(64, 1.0f);

  // Rank 0 passes host memory: it says so, the others say another rank refused.
  float* mine = rank == 0 ? host.data() : data.get();
  const ncclResult_t refused = ncclAllReduce(mine, mine, 64, ncclFloat32, ncclSum, comm, nullptr);
  const std::string text = ncclGetLastError(comm);
  if (rank == 0) {
    expect(refused == ncclInvalidArgument && text.find("not device memory") != std::string::npos,
           "host memory on rank 0: " + nccl_text(refused));
  } else {
    expect(refused == ncclInvalidUsage && text.find("another rank") != std::string::npos,
           "host memory on rank 0, seen from rank " + std::to_string(rank) + ": " + nccl_text(refused));
  }

  // The ranks disagree on the count.
  const ncclResult_t disagreed =
      ncclAllReduce(data.get(), data.get(), 32 + static_cast<std::size_t>(rank), ncclFloat32, ncclSum, comm, nullptr);
  expect(disagreed == ncclInvalidUsage && std::string(ncclGetLastError(comm)).find("count") != std::string::npos,
         "counts that differ between ranks: " + nccl_text(disagreed));

  // Rank 0 reduces while the others broadcast.
  const ncclResult_t mixed = rank == 0 ? ncclAllReduce(data.get(), data.get(), 64, ncclFloat32, ncclSum, comm, nullptr)
                                       : ncclBroadcast(data.get(), data.get(), 64, ncclFloat32, 0, comm, nullptr);
  expect(mixed == ncclInvalidUsage, "an all-reduce against broadcasts: " + nccl_text(mixed));
  expect(data.read() == std::vector<float>(64, 1.0f), "refused collectives left the data as it was");

  // More ranks than there are processes.
  ncclComm_t too_many = nullptr;
  const ncclResult_t split = ncclCommInitRank(&too_many, size + 1, id, rank);
  expect(split == ncclInvalidUsage && too_many == nullptr,
         "a communicator of " + std::to_string(size + 1) + " ranks among " + std::to_string(size) +
             " processes: " + nccl_text(split));
}

}  // namespace

int main(int argc, char** argv) {
  if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
    std::fprintf(stderr, "nccl_ranks: MPI_Init failed\n");
    return 1;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  if (size < 2) {
    expect(false, "needs at least 2 ranks (run it under mpirun -n 2), has " + std::to_string(size));
  } else {
    ncclUniqueId id;
    std::memset(&id, 0, sizeof id);
    if (rank == 0) nccl_ok(ncclGetUniqueId(&id), "ncclGetUniqueId");
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);

    ncclComm_t comm = nullptr;
    if (nccl_ok(ncclCommInitRank(&comm, size, id, rank), "ncclCommInitRank")) {
      int count = 0, user_rank = -1;
      nccl_ok(ncclCommCount(comm, &count), "ncclCommCount");
      nccl_ok(ncclCommUserRank(comm, &user_rank), "ncclCommUserRank");
      expect(count == size && user_rank == rank, "the communicator reports rank " + std::to_string(user_rank) +
                                                     " of " + std::to_string(count));
      all_reduce_float32(comm);
      all_reduce_float64(comm);
      all_reduce_integers(comm);
      broadcast_from_rank_1(comm);
      refusals(comm, id);
      nccl_ok(ncclCommDestroy(comm), "ncclCommDestroy");
    }
  }

  MPI_Finalize();
  if (failures.empty()) {
    std::printf("nccl_ranks: rank %d of %d ok\n", rank, size);
    return 0;
  }
  for (const std::string& failure : failures) {
    std::printf("nccl_ranks: rank %d of %d FAILED: %s\n", rank, size, failure.c_str());
  }
  return 1;
}
