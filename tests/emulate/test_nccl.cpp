// The CUDA emulator's NCCL (kernels/cuda/emulator/nccl.cpp) within one
// process: ids, communicators of one rank, all-reduce and broadcast on device
// memory from cudaMalloc, and the refusals. A communicator of one rank needs no
// MPI, so this runs in every emulated build; the collectives between ranks run
// under mpirun in tests/emulate/nccl_ranks_main.cpp.
#include <catch2/catch.hpp>

#include <cuda_runtime.h>
#include <nccl.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "emulate/device_array.h"
#include "kernels/cuda/emulator/emulator.h"

namespace {

using basin::testing::DeviceArray;

// A communicator of one rank, destroyed at scope exit.
struct SoloComm {
  ncclComm_t comm = nullptr;
  SoloComm() {
    ncclUniqueId id;
    REQUIRE(ncclGetUniqueId(&id) == ncclSuccess);
    REQUIRE(ncclCommInitRank(&comm, 1, id, 0) == ncclSuccess);
  }
  ~SoloComm() { ncclCommDestroy(comm); }
};

// Clears a planted sticky error when the test ends, even by a failed REQUIRE.
struct ResetEmulatorAtExit {
  ~ResetEmulatorAtExit() { basin::emulator::reset(); }
};

template <class T>
ncclDataType_t nccl_type();
template <>
ncclDataType_t nccl_type<float>() { return ncclFloat32; }
template <>
ncclDataType_t nccl_type<double>() { return ncclFloat64; }
template <>
ncclDataType_t nccl_type<std::int64_t>() { return ncclInt64; }
template <>
ncclDataType_t nccl_type<std::int32_t>() { return ncclInt32; }
template <>
ncclDataType_t nccl_type<std::uint8_t>() { return ncclUint8; }

// Distinct values (fractions and negatives where the type has them), exact in every type.
template <class T>
std::vector<T> values_for(std::size_t count) {
  std::vector<T> values(count);
  for (std::size_t i = 0; i < count; ++i) {
    const long long v = static_cast<long long>(i % 251) - (std::is_signed_v<T> ? 125 : 0);
    values[i] = std::is_floating_point_v<T> ? static_cast<T>(static_cast<double>(v) * 0.25) : static_cast<T>(v);
  }
  return values;
}

// A value the collectives here never produce.
template <class T>
constexpr T kPoison = T(77);

bool bitwise_equal(const void* a, const void* b, std::size_t bytes) { return std::memcmp(a, b, bytes) == 0; }

std::string last_error() { return ncclGetLastError(nullptr); }

}  // namespace

TEST_CASE("emulated NCCL: version, unique ids and result strings", "[emulator][nccl]") {
  int version = 0;
  REQUIRE(ncclGetVersion(&version) == ncclSuccess);
  CHECK(version == NCCL_VERSION_CODE);
  CHECK(version == 22800);  // 2.28.0 in NCCL's encoding
  CHECK(ncclGetVersion(nullptr) == ncclInvalidArgument);

  ncclUniqueId a, b;
  REQUIRE(ncclGetUniqueId(&a) == ncclSuccess);
  REQUIRE(ncclGetUniqueId(&b) == ncclSuccess);
  CHECK_FALSE(bitwise_equal(a.internal, b.internal, NCCL_UNIQUE_ID_BYTES));
  CHECK(ncclGetUniqueId(nullptr) == ncclInvalidArgument);

  // Every code has its own text, and a value outside them has one too.
  std::vector<std::string> texts;
  for (int code = ncclSuccess; code < ncclNumResults; ++code) {
    const std::string text = ncclGetErrorString(static_cast<ncclResult_t>(code));
    CHECK_FALSE(text.empty());
    for (const std::string& seen : texts) CHECK(text != seen);
    texts.push_back(text);
  }
  CHECK_FALSE(std::string(ncclGetErrorString(static_cast<ncclResult_t>(99))).empty());
}

TEST_CASE("emulated NCCL: a communicator of one rank reports itself and is destroyed once", "[emulator][nccl]") {
  ncclUniqueId id;
  REQUIRE(ncclGetUniqueId(&id) == ncclSuccess);
  ncclComm_t comm = nullptr;
  REQUIRE(ncclCommInitRank(&comm, 1, id, 0) == ncclSuccess);
  REQUIRE(comm != nullptr);
  int count = 0, rank = -1;
  CHECK(ncclCommCount(comm, &count) == ncclSuccess);
  CHECK(count == 1);
  CHECK(ncclCommUserRank(comm, &rank) == ncclSuccess);
  CHECK(rank == 0);
  CHECK(ncclCommCount(comm, nullptr) == ncclInvalidArgument);
  CHECK(ncclCommUserRank(comm, nullptr) == ncclInvalidArgument);

  CHECK(ncclCommDestroy(comm) == ncclSuccess);
  // Destroyed: refused, not read.
  CHECK(ncclCommCount(comm, &count) == ncclInvalidArgument);
  CHECK_THAT(last_error(), Catch::Contains("ncclCommCount") && Catch::Contains("not a live communicator"));
  CHECK(ncclCommDestroy(comm) == ncclInvalidArgument);
  CHECK(ncclCommDestroy(nullptr) == ncclSuccess);  // as NCCL: nothing to destroy

  ncclComm_t aborted = nullptr;
  REQUIRE(ncclCommInitRank(&aborted, 1, id, 0) == ncclSuccess);
  CHECK(ncclCommAbort(aborted) == ncclSuccess);
  CHECK(ncclCommUserRank(aborted, &rank) == ncclInvalidArgument);
}

TEMPLATE_TEST_CASE("emulated NCCL all-reduce on one rank: every op leaves the values, in place and out of place",
                   "[emulator][nccl]", float, double, std::int64_t, std::int32_t, std::uint8_t) {
  using T = TestType;
  SoloComm c;
  const ncclDataType_t type = nccl_type<T>();
  std::vector<ncclRedOp_t> ops = {ncclSum, ncclProd, ncclMax, ncclMin};
  if (std::is_floating_point_v<T>) ops.push_back(ncclAvg);
  for (const std::size_t count : {std::size_t{1}, std::size_t{7}, std::size_t{1000003}}) {
    const std::vector<T> values = values_for<T>(count);
    const std::vector<T> poison(count, kPoison<T>);
    for (const ncclRedOp_t op : ops) {
      INFO("count " << count << ", op " << static_cast<int>(op));
      DeviceArray<T> send(values), recv(poison);
      REQUIRE(ncclAllReduce(send.get(), recv.get(), count, type, op, c.comm, nullptr) == ncclSuccess);
      const std::vector<T> out = recv.read();
      CHECK(bitwise_equal(out.data(), values.data(), count * sizeof(T)));
      const std::vector<T> unchanged = send.read();
      CHECK(bitwise_equal(unchanged.data(), values.data(), count * sizeof(T)));

      DeviceArray<T> both(values);
      REQUIRE(ncclAllReduce(both.get(), both.get(), count, type, op, c.comm, nullptr) == ncclSuccess);
      const std::vector<T> in_place = both.read();
      CHECK(bitwise_equal(in_place.data(), values.data(), count * sizeof(T)));
    }
  }
}

TEST_CASE("emulated NCCL all-reduce leaves memory past count untouched, and count 0 touches nothing",
          "[emulator][nccl]") {
  SoloComm c;
  const std::vector<float> values = values_for<float>(9);
  DeviceArray<float> send(values), recv(std::vector<float>(9, kPoison<float>));
  REQUIRE(ncclAllReduce(send.get(), recv.get(), 5, ncclFloat32, ncclSum, c.comm, nullptr) == ncclSuccess);
  const std::vector<float> out = recv.read();
  for (std::size_t i = 0; i < 9; ++i) CHECK(out[i] == (i < 5 ? values[i] : kPoison<float>));

  DeviceArray<float> untouched(std::vector<float>(3, kPoison<float>));
  REQUIRE(ncclAllReduce(send.get(), untouched.get(), 0, ncclFloat32, ncclSum, c.comm, nullptr) == ncclSuccess);
  CHECK(untouched.read() == std::vector<float>(3, kPoison<float>));
}

TEST_CASE("emulated NCCL runs on a stream the emulator made, and inside (nested) groups", "[emulator][nccl]") {
  SoloComm c;
  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
  const std::vector<double> values = values_for<double>(1000003);
  DeviceArray<double> send(values), recv(std::vector<double>(values.size(), kPoison<double>));

  REQUIRE(ncclGroupStart() == ncclSuccess);
  REQUIRE(ncclGroupStart() == ncclSuccess);
  REQUIRE(ncclAllReduce(send.get(), recv.get(), values.size(), ncclFloat64, ncclAvg, c.comm, stream) == ncclSuccess);
  REQUIRE(ncclGroupEnd() == ncclSuccess);
  REQUIRE(ncclGroupEnd() == ncclSuccess);
  CHECK(ncclGroupEnd() == ncclInvalidUsage);  // none open
  REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
  CHECK(recv.read() == values);
  REQUIRE(cudaStreamDestroy(stream) == cudaSuccess);

  // A destroyed stream is refused as the CUDA failure NCCL would meet, and
  // leaves no CUDA error behind for the caller's next check.
  CHECK(ncclAllReduce(send.get(), recv.get(), 1, ncclFloat64, ncclSum, c.comm, stream) == ncclUnhandledCudaError);
  CHECK_THAT(last_error(), Catch::Contains("ncclAllReduce") && Catch::Contains("stream"));
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEMPLATE_TEST_CASE("emulated NCCL broadcast on one rank copies root 0's values, in place and out of place",
                   "[emulator][nccl]", float, double, std::int64_t) {
  using T = TestType;
  SoloComm c;
  for (const std::size_t count : {std::size_t{1}, std::size_t{7}, std::size_t{1000003}}) {
    INFO("count " << count);
    const std::vector<T> values = values_for<T>(count);
    DeviceArray<T> send(values), recv(std::vector<T>(count, kPoison<T>));
    REQUIRE(ncclBroadcast(send.get(), recv.get(), count, nccl_type<T>(), 0, c.comm, nullptr) == ncclSuccess);
    CHECK(recv.read() == values);
    DeviceArray<T> both(values);
    REQUIRE(ncclBroadcast(both.get(), both.get(), count, nccl_type<T>(), 0, c.comm, nullptr) == ncclSuccess);
    CHECK(both.read() == values);
  }
  // Broadcast moves bytes: a type the emulator cannot reduce is still broadcast.
  DeviceArray<std::uint16_t> halves(std::vector<std::uint16_t>{0x3c00, 0xc000, 0x7bff});
  DeviceArray<std::uint16_t> out(std::vector<std::uint16_t>(3, 0));
  REQUIRE(ncclBroadcast(halves.get(), out.get(), 3, ncclFloat16, 0, c.comm, nullptr) == ncclSuccess);
  CHECK(out.read() == halves.read());
}

TEST_CASE("emulated NCCL refuses memory that is not device memory, naming the buffer", "[emulator][nccl]") {
  SoloComm c;
  std::vector<float> host(16, 1.0f);
  DeviceArray<float> device(std::vector<float>(16, kPoison<float>));
  DeviceArray<float> shorter(std::vector<float>(15, kPoison<float>));

  SECTION("a host array as sendbuff") {
    CHECK(ncclAllReduce(host.data(), device.get(), 16, ncclFloat32, ncclSum, c.comm, nullptr) == ncclInvalidArgument);
    CHECK_THAT(last_error(), Catch::Contains("ncclAllReduce") && Catch::Contains("sendbuff") &&
                                 Catch::Contains("not device memory"));
  }
  SECTION("a host array as recvbuff") {
    CHECK(ncclAllReduce(device.get(), host.data(), 16, ncclFloat32, ncclSum, c.comm, nullptr) == ncclInvalidArgument);
    CHECK_THAT(last_error(), Catch::Contains("recvbuff") && Catch::Contains("not device memory"));
  }
  SECTION("a host array in place") {
    CHECK(ncclAllReduce(host.data(), host.data(), 16, ncclFloat32, ncclSum, c.comm, nullptr) == ncclInvalidArgument);
  }
  SECTION("a device array one element too short") {
    CHECK(ncclAllReduce(device.get(), shorter.get(), 16, ncclFloat32, ncclSum, c.comm, nullptr) ==
          ncclInvalidArgument);
    CHECK_THAT(last_error(), Catch::Contains("recvbuff") && Catch::Contains("64 bytes"));
  }
  SECTION("a host array to broadcast") {
    CHECK(ncclBroadcast(host.data(), device.get(), 16, ncclFloat32, 0, c.comm, nullptr) == ncclInvalidArgument);
    CHECK(ncclBroadcast(device.get(), host.data(), 16, ncclFloat32, 0, c.comm, nullptr) == ncclInvalidArgument);
  }
  SECTION("a null buffer") {
    CHECK(ncclAllReduce(nullptr, device.get(), 16, ncclFloat32, ncclSum, c.comm, nullptr) == ncclInvalidArgument);
  }
  SECTION("buffers that overlap without being the same") {
    CHECK(ncclAllReduce(device.get(), device.get() + 1, 8, ncclFloat32, ncclSum, c.comm, nullptr) ==
          ncclInvalidArgument);
    CHECK_THAT(last_error(), Catch::Contains("overlap"));
  }
  // Nothing was written, and the device is not broken by a refused call.
  CHECK(device.read() == std::vector<float>(16, kPoison<float>));
  CHECK(basin::emulator::sticky_error() == cudaSuccess);
}

TEST_CASE("emulated NCCL refuses a bad communicator, datatype, op or root", "[emulator][nccl]") {
  SoloComm c;
  DeviceArray<double> data(std::vector<double>(4, 1.0));
  DeviceArray<std::int64_t> integers(std::vector<std::int64_t>(4, 1));

  CHECK(ncclAllReduce(data.get(), data.get(), 4, ncclFloat64, ncclSum, nullptr, nullptr) == ncclInvalidArgument);
  CHECK_THAT(last_error(), Catch::Contains("not a live communicator"));
  CHECK(ncclBroadcast(data.get(), data.get(), 4, ncclFloat64, 0, nullptr, nullptr) == ncclInvalidArgument);

  CHECK(ncclAllReduce(data.get(), data.get(), 4, static_cast<ncclDataType_t>(42), ncclSum, c.comm, nullptr) ==
        ncclInvalidArgument);
  CHECK_THAT(last_error(), Catch::Contains("datatype 42"));
  CHECK(ncclBroadcast(data.get(), data.get(), 4, static_cast<ncclDataType_t>(-1), 0, c.comm, nullptr) ==
        ncclInvalidArgument);
  CHECK(ncclAllReduce(data.get(), data.get(), 4, ncclBfloat16, ncclSum, c.comm, nullptr) == ncclInvalidArgument);
  CHECK_THAT(last_error(), Catch::Contains("ncclBfloat16") && Catch::Contains("not supported by the emulator"));

  CHECK(ncclAllReduce(data.get(), data.get(), 4, ncclFloat64, static_cast<ncclRedOp_t>(9), c.comm, nullptr) ==
        ncclInvalidArgument);
  CHECK_THAT(last_error(), Catch::Contains("op 9"));
  CHECK(ncclAllReduce(integers.get(), integers.get(), 4, ncclInt64, ncclAvg, c.comm, nullptr) == ncclInvalidArgument);
  CHECK_THAT(last_error(), Catch::Contains("ncclAvg") && Catch::Contains("not supported by the emulator"));

  CHECK(ncclBroadcast(data.get(), data.get(), 4, ncclFloat64, 1, c.comm, nullptr) == ncclInvalidArgument);
  CHECK_THAT(last_error(), Catch::Contains("root 1"));
  CHECK(ncclBroadcast(data.get(), data.get(), 4, ncclFloat64, -1, c.comm, nullptr) == ncclInvalidArgument);
  CHECK(data.read() == std::vector<double>(4, 1.0));
}

TEST_CASE("emulated NCCL refuses a bad ncclCommInitRank, and more ranks without MPI started", "[emulator][nccl]") {
  ncclUniqueId id;
  REQUIRE(ncclGetUniqueId(&id) == ncclSuccess);
  ncclComm_t comm = nullptr;
  CHECK(ncclCommInitRank(nullptr, 1, id, 0) == ncclInvalidArgument);
  CHECK(ncclCommInitRank(&comm, 0, id, 0) == ncclInvalidArgument);
  CHECK_THAT(last_error(), Catch::Contains("nranks is 0"));
  CHECK(ncclCommInitRank(&comm, 2, id, 2) == ncclInvalidArgument);
  CHECK_THAT(last_error(), Catch::Contains("rank 2"));
  CHECK(ncclCommInitRank(&comm, 1, id, 1) == ncclInvalidArgument);
  CHECK(ncclCommInitRank(&comm, 3, id, -1) == ncclInvalidArgument);
  CHECK(comm == nullptr);

  // The test process never starts MPI (and a build may have none): more than
  // one rank is refused, saying what the emulated NCCL needs.
  CHECK(ncclCommInitRank(&comm, 2, id, 0) == ncclInvalidUsage);
  CHECK_THAT(last_error(), Catch::Contains("MPI"));
  CHECK(comm == nullptr);
}

TEST_CASE("emulated NCCL collectives fail on a device with a sticky error", "[emulator][nccl]") {
  SoloComm c;
  const std::vector<float> values = values_for<float>(7);
  DeviceArray<float> send(values), recv(std::vector<float>(7, kPoison<float>));
  const ResetEmulatorAtExit reset_at_exit;
  basin::emulator::device_fault(cudaErrorIllegalAddress, "a fault planted by the test");
  CHECK(ncclAllReduce(send.get(), recv.get(), 7, ncclFloat32, ncclSum, c.comm, nullptr) == ncclUnhandledCudaError);
  CHECK_THAT(last_error(), Catch::Contains("sticky") && Catch::Contains("cudaErrorIllegalAddress"));
  CHECK(ncclBroadcast(send.get(), recv.get(), 7, ncclFloat32, 0, c.comm, nullptr) == ncclUnhandledCudaError);
  basin::emulator::reset();
  CHECK(recv.read() == std::vector<float>(7, kPoison<float>));
}
