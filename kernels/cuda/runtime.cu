// basin's CUDA runtime: one stream, a stream-ordered memory pool, copies.
#include <atomic>
#include <cstdint>
#include <sstream>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/runtime.h"

namespace basin::kernels::cuda {

namespace {

struct Context {
  cudaStream_t stream = nullptr;
  int multiprocessors = 0;

  Context() {
    BASIN_CUDA_CHECK(cudaSetDevice(0));
    BASIN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    BASIN_CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, 0));
    // Keep freed blocks in the pool instead of returning them to the driver at
    // every synchronization: this is what makes steady-state allocation free.
    cudaMemPool_t pool;
    BASIN_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, 0));
    std::uint64_t keep_everything = UINT64_MAX;
    BASIN_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_everything));
  }
};

Context& context() {
  // Built on first use, after the caller checked that a device exists.
  static Context instance;
  return instance;
}

}  // namespace

cudaStream_t stream() { return context().stream; }

namespace {
std::atomic<long long> launches{0};
}

void note_launch() { launches.fetch_add(1, std::memory_order_relaxed); }
long long launch_count() { return launches.load(std::memory_order_relaxed); }

int grid_for(long long n, int block_size) {
  const long long needed = (n + block_size - 1) / block_size;
  const long long enough = static_cast<long long>(context().multiprocessors) * 8;
  const long long blocks = needed < enough ? needed : enough;
  return static_cast<int>(blocks > 0 ? blocks : 1);
}

int device_count() {
  int count = 0;
  // No driver or no device is a normal answer here, not an error.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky status so later checks start clean
    return 0;
  }
  return count;
}

std::string device_description() {
  cudaDeviceProp prop{};
  BASIN_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::ostringstream out;
  out.precision(1);
  out << prop.name << ", sm_" << prop.major << prop.minor << ", " << std::fixed
      << static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0) << " GiB";
  return out.str();
}

void* allocate(std::size_t nbytes) {
  void* ptr = nullptr;
  const cudaError_t status = cudaMallocAsync(&ptr, nbytes, stream());
  BASIN_CHECK(status == cudaSuccess, "CUDA out of memory: could not allocate ", nbytes, " bytes (",
              cudaGetErrorString(status), ")");
  return ptr;
}

void deallocate(void* ptr) { BASIN_CUDA_CHECK(cudaFreeAsync(ptr, stream())); }

void copy_host_to_device(void* dst, const void* src, std::size_t nbytes) {
  // From pageable memory the driver stages the bytes before returning, so the
  // caller may free src at once without a stream synchronization here.
  BASIN_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, stream()));
}

void copy_device_to_host(void* dst, const void* src, std::size_t nbytes) {
  BASIN_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, stream()));
  BASIN_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void copy_device_to_device(void* dst, const void* src, std::size_t nbytes) {
  BASIN_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, stream()));
}

void synchronize() { BASIN_CUDA_CHECK(cudaStreamSynchronize(stream())); }

}  // namespace basin::kernels::cuda
