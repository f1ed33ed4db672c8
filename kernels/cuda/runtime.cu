// basin's CUDA runtime: one stream, a stream-ordered memory pool, copies,
// and the checks behind every launch.
#include <cxxabi.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <sstream>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/runtime.h"

namespace basin::kernels::cuda {

namespace {

// The GPU this process drives (select_device); read once, when the context is made.
std::atomic<int> selected_ordinal{0};
std::atomic<bool> context_made{false};

struct Context {
  cudaStream_t stream = nullptr;
  int multiprocessors = 0;
  int ordinal = 0;

  Context() {
    int count = 0;
    BASIN_CUDA_CHECK(cudaGetDeviceCount(&count));
    ordinal = count > 0 ? selected_ordinal.load() % count : 0;
    BASIN_CUDA_CHECK(cudaSetDevice(ordinal));
    BASIN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    BASIN_CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, ordinal));
    // Keep freed blocks in the pool instead of returning them to the driver at
    // every synchronization: this is what makes steady-state allocation free.
    cudaMemPool_t pool;
    BASIN_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, ordinal));
    std::uint64_t keep_everything = UINT64_MAX;
    BASIN_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_everything));
  }
};

Context& context() {
  // Built on first use, after the caller checked that a device exists.
  static Context instance;
  context_made.store(true);
  return instance;
}

}  // namespace

cudaStream_t stream() { return context().stream; }

void select_device(int ordinal) {
  BASIN_CHECK(ordinal >= 0, "select_device: the GPU number must be >= 0, got ", ordinal);
  BASIN_CHECK(!context_made.load() || context().ordinal == ordinal % std::max(device_count(), 1),
              "select_device(", ordinal, ") after basin's CUDA context was made on GPU ", context().ordinal,
              ": choose the GPU before any CUDA work");
  selected_ordinal.store(ordinal);
}

int device_ordinal() { return context().ordinal; }

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
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status == cudaSuccess) return count;
  cudaGetLastError();  // the failed query is not a launch error for later checks to report
  // Two answers mean "no GPU here": no device, and no driver installed at all
  // (the runtime then reports an insufficient driver of version 0). Anything
  // else (a driver too old for this runtime, a broken installation) is a GPU
  // machine that cannot run basin's CUDA code, and must not pass for one
  // without a GPU.
  if (status == cudaErrorNoDevice) return 0;
  int driver = 0;
  if (status == cudaErrorInsufficientDriver && cudaDriverGetVersion(&driver) == cudaSuccess && driver == 0) return 0;
  BASIN_FAIL("CUDA is installed but unusable: ", describe_error(status), " (cudaGetDeviceCount)");
}

std::string device_description() {
  cudaDeviceProp prop{};
  BASIN_CUDA_CHECK(cudaGetDeviceProperties(&prop, context().ordinal));
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

void synchronize() { BASIN_CUDA_CHECK(cudaStreamSynchronize(stream())); }

DeviceBuffer::DeviceBuffer(std::size_t bytes) : bytes_(bytes), ptr_(bytes > 0 ? allocate(bytes) : nullptr) {}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_ == nullptr) return;
  try {
    deallocate(ptr_);
  } catch (const Error&) {
    // The CUDA error stays with the runtime; the next check reports it.
  }
}

bool is_emulator() {
#if BASIN_CUDA_EMULATED
  return true;
#else
  return false;
#endif
}

std::string describe_error(cudaError_t status) {
  std::string text = cudaGetErrorString(status);
#if BASIN_CUDA_EMULATED
  const std::string detail = emulator::error_detail(status);
  if (!detail.empty()) text += " [CUDA emulator: " + detail + "]";
#endif
  return text;
}

namespace {

// "sum_rows_kernel<float>" from a mangled kernel symbol: the demangled name
// without its namespaces, return type and parameter list.
std::string short_kernel_name(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  std::string name = status == 0 && demangled ? demangled.get() : mangled;
  const std::string anonymous = "(anonymous namespace)::";
  for (std::size_t at; (at = name.find(anonymous)) != std::string::npos;) name.erase(at, anonymous.size());
  // Outside template brackets, the first '(' opens the parameter list, and the
  // name starts after the last space (the return type) or "::" before it.
  int depth = 0;
  std::size_t begin = 0;
  std::size_t end = name.size();
  for (std::size_t i = 0; i < name.size() && end == name.size(); ++i) {
    const char c = name[i];
    if (c == '<') ++depth;
    if (c == '>') --depth;
    if (depth != 0) continue;
    if (c == '(') end = i;
    if (c == ' ') begin = i + 1;
    if (c == ':' && i + 1 < name.size() && name[i + 1] == ':') begin = i + 2;
  }
  return name.substr(begin, end - begin);
}

std::string kernel_name(const void* kernel) {
#if BASIN_CUDA_EMULATED
  const std::string symbol = emulator::kernel_symbol(kernel);
  if (!symbol.empty()) return short_kernel_name(symbol.c_str());
#else
  const char* symbol = nullptr;
  if (cudaFuncGetName(&symbol, kernel) == cudaSuccess && symbol != nullptr) return short_kernel_name(symbol);
  cudaGetLastError();  // the name is a courtesy: its failure is not the error being reported
#endif
  return "a kernel";
}

}  // namespace

void check_launch(const void* kernel, dim3 grid, dim3 block) {
  const cudaError_t status = cudaGetLastError();
  BASIN_CHECK(status == cudaSuccess, "CUDA error: ", describe_error(status), " in the launch of ", kernel_name(kernel),
              " (grid [", grid.x, ", ", grid.y, ", ", grid.z, "], block [", block.x, ", ", block.y, ", ", block.z,
              "])");
}

}  // namespace basin::kernels::cuda
