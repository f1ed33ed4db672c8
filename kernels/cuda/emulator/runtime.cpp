// The CUDA runtime API of basin's CUDA emulator (include/cuda_runtime.h):
// one emulated device, its memory, the stream, events and errors.
//
// Device memory is host memory. Every allocation is exactly the size asked
// for (256-byte aligned, as cudaMalloc guarantees), so AddressSanitizer
// reports the first byte read or written past its end, and it starts filled
// with 0xff bytes (NaN in every floating type), as fresh GPU memory holds
// whatever was there before: a kernel that reads what nobody wrote shows it.
// A registry of live allocations lets the emulator refuse what a GPU would
// refuse or fault on: copies whose direction does not match their pointers,
// ranges that leave an allocation, a host pointer handed to a kernel.
//
// Work runs when it is submitted, so the one stream is trivially in order and
// synchronizing waits for nothing. There is no clock: events record nothing,
// and asking one for an elapsed time is an error rather than a made-up figure.
//
// Errors follow the runtime's two kinds. A bad call (an invalid argument or
// launch configuration) is returned, or kept for cudaGetLastError(), and
// forgotten. A fault while the device works (an illegal address, a broken
// barrier, a trap) is sticky: every later call returns it, as on a GPU, where
// the process must exit. reset() (for the emulator's tests) is the only way back.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "core/error.h"
#include "kernels/cuda/emulator/emulator.h"
#include "kernels/cuda/emulator/runtime_state.h"

// The handle types are opaque pointers in the API; here they point to these.
struct CUstream_st {
  unsigned int flags = 0;
};
struct CUevent_st {
  bool recorded = false;
};
struct CUmemPoolHandle_st {};

namespace basin::emulator {

namespace {

constexpr std::size_t kAllocationAlignment = 256;  // cudaMalloc's guarantee
constexpr unsigned char kFreshByte = 0xff;
const char* const kDeviceName = "basin CUDA emulator (host CPU)";

// ---------------------------------------------------------------- errors

std::atomic<cudaError_t> sticky{cudaSuccess};
thread_local cudaError_t last_error = cudaSuccess;

std::mutex& detail_mutex() {
  static std::mutex mutex;
  return mutex;
}
// The latest account of each code the emulator raised.
std::map<int, std::string>& details() {
  static std::map<int, std::string> map;
  return map;
}

void note_detail(cudaError_t code, std::string detail) {
  if (detail.empty()) return;
  std::lock_guard<std::mutex> lock(detail_mutex());
  details()[static_cast<int>(code)] = std::move(detail);
}

// A bad call: returned now and kept for cudaGetLastError(), as the runtime does.
cudaError_t refuse(cudaError_t code, std::string detail) {
  note_detail(code, std::move(detail));
  last_error = code;
  return code;
}

// ---------------------------------------------------------------- the device's state

struct Device {
  Schedule initial_schedule;
  cudaError_t init_error = cudaSuccess;
};

// Built on first use: reads BASIN_EMULATE_SCHEDULE once.
const Device& device_state() {
  static const Device device = [] {
    Device d;
    if (const char* text = std::getenv("BASIN_EMULATE_SCHEDULE"); text != nullptr && *text != '\0') {
      try {
        d.initial_schedule = parse_schedule(text);
      } catch (const Error& error) {
        d.init_error = cudaErrorInitializationError;
        note_detail(d.init_error, std::string("BASIN_EMULATE_SCHEDULE: ") + error.what());
      }
    }
    return d;
  }();
  return device;
}

// Every entry point starts here: the device must have started, and a sticky
// fault answers every call.
cudaError_t entry_status() {
  const Device& d = device_state();
  if (d.init_error != cudaSuccess) return refuse(d.init_error, "");
  if (const cudaError_t s = sticky.load(); s != cudaSuccess) {
    last_error = s;
    return s;
  }
  return cudaSuccess;
}

std::mutex& schedule_mutex() {
  static std::mutex mutex;
  return mutex;
}
std::optional<Schedule>& schedule_override() {
  static std::optional<Schedule> value;
  return value;
}

// ---------------------------------------------------------------- memory

enum class Memory { Device, MappedHost };

struct Allocation {
  std::size_t bytes = 0;
  Memory kind = Memory::Device;
};

std::mutex& memory_mutex() {
  static std::mutex mutex;
  return mutex;
}
// Keyed by start address. Never destroyed: after a sticky fault the frees
// fail and the memory stays allocated until the process ends, still reachable
// from here, so LeakSanitizer does not count it as leaked.
std::map<std::uintptr_t, Allocation>& allocations() {
  static auto* map = new std::map<std::uintptr_t, Allocation>();
  return *map;
}
std::size_t live_bytes = 0;

std::uintptr_t address_of(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

// The allocation holding [p, p + bytes), if any (p itself inside it, also when bytes is 0).
const Allocation* find_allocation(const void* p, std::size_t bytes, std::uintptr_t* start = nullptr) {
  const auto& map = allocations();
  const std::uintptr_t a = address_of(p);
  auto it = map.upper_bound(a);
  if (it == map.begin()) return nullptr;
  --it;
  const std::uintptr_t begin = it->first;
  const std::uintptr_t end = begin + it->second.bytes;
  // Strictly inside: a pointer one past the end belongs to whatever the host
  // allocator put next, maybe a host buffer.
  if (a < begin || a >= end || bytes > end - a) return nullptr;
  if (start != nullptr) *start = begin;
  return &it->second;
}

std::string pointer_text(const void* p) {
  char text[32];
  std::snprintf(text, sizeof text, "%p", p);
  return text;
}

cudaError_t allocate(void** ptr, std::size_t size, Memory kind, const char* call) {
  if (ptr == nullptr) return refuse(cudaErrorInvalidValue, std::string(call) + ": the result pointer is null");
  *ptr = nullptr;
  if (size == 0) return cudaSuccess;  // as the runtime: success and a null pointer
  void* memory = nullptr;
  if (posix_memalign(&memory, kAllocationAlignment, size) != 0) {
    return refuse(cudaErrorMemoryAllocation, std::string(call) + ": the host has no " + std::to_string(size) +
                                                 " bytes to give the emulated device");
  }
  std::memset(memory, kFreshByte, size);
  std::lock_guard<std::mutex> lock(memory_mutex());
  allocations()[address_of(memory)] = {size, kind};
  live_bytes += size;
  *ptr = memory;
  return cudaSuccess;
}

cudaError_t release_allocation(void* ptr, Memory kind, const char* call) {
  if (ptr == nullptr) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(memory_mutex());
    auto it = allocations().find(address_of(ptr));
    if (it == allocations().end() || it->second.kind != kind) {
      return refuse(cudaErrorInvalidValue, std::string(call) + ": " + pointer_text(ptr) + " is not the start of a live " +
                                               (kind == Memory::Device ? "device" : "host") +
                                               " allocation (freed twice, never allocated, or from another call)");
    }
    live_bytes -= it->second.bytes;
    allocations().erase(it);
  }
  std::free(ptr);
  return cudaSuccess;
}

bool is_device_memory(const void* p, std::size_t bytes) {
  std::lock_guard<std::mutex> lock(memory_mutex());
  const Allocation* a = find_allocation(p, bytes);
  return a != nullptr && a->kind == Memory::Device;
}

// Whether p is inside any device allocation at all (the start of a range).
bool points_into_device(const void* p) { return is_device_memory(p, 0); }

const char* kind_name(cudaMemcpyKind kind) {
  switch (kind) {
    case cudaMemcpyHostToHost: return "cudaMemcpyHostToHost";
    case cudaMemcpyHostToDevice: return "cudaMemcpyHostToDevice";
    case cudaMemcpyDeviceToHost: return "cudaMemcpyDeviceToHost";
    case cudaMemcpyDeviceToDevice: return "cudaMemcpyDeviceToDevice";
    case cudaMemcpyDefault: return "cudaMemcpyDefault";
  }
  return "an unknown cudaMemcpyKind";
}

// Checks one side of a copy: device memory for its whole length, or not
// device memory at all.
cudaError_t check_side(const char* call, const char* side, const void* p, std::size_t count, bool device,
                       cudaMemcpyKind kind) {
  if (p == nullptr) return refuse(cudaErrorInvalidValue, std::string(call) + ": the " + side + " pointer is null");
  const bool inside = points_into_device(p);
  if (device && !is_device_memory(p, count)) {
    return refuse(cudaErrorInvalidValue,
                  std::string(call) + ": the " + side + " " + pointer_text(p) + " (" + std::to_string(count) +
                      " bytes) is " +
                      (inside ? "device memory, but the range runs past the end of its allocation"
                              : "not device memory") +
                      ", and " + kind_name(kind) + " says it is");
  }
  if (!device && inside) {
    return refuse(cudaErrorInvalidValue, std::string(call) + ": the " + side + " " + pointer_text(p) +
                                             " is device memory, and " + kind_name(kind) + " says it is host memory");
  }
  return cudaSuccess;
}

cudaError_t copy(const char* call, void* dst, const void* src, std::size_t count, cudaMemcpyKind kind) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (count == 0) return cudaSuccess;
  bool dst_device = false;
  bool src_device = false;
  switch (kind) {
    case cudaMemcpyHostToHost: break;
    case cudaMemcpyHostToDevice: dst_device = true; break;
    case cudaMemcpyDeviceToHost: src_device = true; break;
    case cudaMemcpyDeviceToDevice: dst_device = src_device = true; break;
    case cudaMemcpyDefault:
      dst_device = points_into_device(dst);
      src_device = points_into_device(src);
      break;
    default:
      return refuse(cudaErrorInvalidMemcpyDirection,
                    std::string(call) + ": " + std::to_string(static_cast<int>(kind)) + " is not a cudaMemcpyKind");
  }
  if (const cudaError_t s = check_side(call, "destination", dst, count, dst_device, kind); s != cudaSuccess) return s;
  if (const cudaError_t s = check_side(call, "source", src, count, src_device, kind); s != cudaSuccess) return s;
  // memcpy, not memmove: overlapping ranges are undefined for cudaMemcpy too,
  // and AddressSanitizer reports them.
  std::memcpy(dst, src, count);
  return cudaSuccess;
}

cudaError_t fill(const char* call, void* ptr, int value, std::size_t count) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (count == 0) return cudaSuccess;
  if (!is_device_memory(ptr, count)) {
    return refuse(cudaErrorInvalidValue, std::string(call) + ": " + pointer_text(ptr) + " (" + std::to_string(count) +
                                             " bytes) is not inside one device allocation");
  }
  std::memset(ptr, value, count);
  return cudaSuccess;
}

std::mutex& stream_mutex() {
  static std::mutex mutex;
  return mutex;
}
std::set<cudaStream_t>& live_streams() {
  static std::set<cudaStream_t> set;
  return set;
}

// The default stream (null) or a live one from cudaStreamCreateWithFlags.
cudaError_t check_stream(const char* call, cudaStream_t stream) {
  if (stream == nullptr) return cudaSuccess;
  std::lock_guard<std::mutex> lock(stream_mutex());
  if (live_streams().count(stream) != 0) return cudaSuccess;
  return refuse(cudaErrorInvalidResourceHandle,
                std::string(call) + ": " + pointer_text(stream) + " is not a live stream (destroyed, or never created)");
}

std::size_t host_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) : 0;
}

// ---------------------------------------------------------------- counters

std::mutex& counter_mutex() {
  static std::mutex mutex;
  return mutex;
}
Counters totals;

}  // namespace

// ---------------------------------------------------------------- emulator.h

Schedule parse_schedule(std::string_view text) {
  if (text == "forward") return {Order::Forward, 0};
  if (text == "reverse") return {Order::Reverse, 0};
  constexpr std::string_view random = "random:";
  if (text.substr(0, random.size()) == random) {
    const std::string digits(text.substr(random.size()));
    const bool all_digits = !digits.empty() && digits.size() <= 19 &&
                            std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (all_digits) return {Order::Random, std::stoull(digits)};
  }
  BASIN_FAIL("'", text, "' is not a schedule: expected forward, reverse or random:SEED (SEED a decimal integer)");
}

std::string schedule_name(const Schedule& s) {
  switch (s.order) {
    case Order::Forward: return "forward";
    case Order::Reverse: return "reverse";
    case Order::Random: return "random:" + std::to_string(s.seed);
  }
  return "unknown";
}

Schedule schedule() {
  std::lock_guard<std::mutex> lock(schedule_mutex());
  return schedule_override().value_or(device_state().initial_schedule);
}

void set_schedule(const Schedule& s) {
  std::lock_guard<std::mutex> lock(schedule_mutex());
  schedule_override() = s;
}

bool is_device_range(const void* ptr, std::size_t bytes) {
  std::lock_guard<std::mutex> lock(memory_mutex());
  return find_allocation(ptr, bytes) != nullptr;  // device or mapped host: both reachable from kernels
}

void device_fault(cudaError_t code, std::string detail) {
  note_detail(code, std::move(detail));
  cudaError_t expected = cudaSuccess;
  sticky.compare_exchange_strong(expected, code);  // the first fault is the one reported
  last_error = sticky.load();
}

cudaError_t sticky_error() { return sticky.load(); }

std::string error_detail(cudaError_t code) {
  std::lock_guard<std::mutex> lock(detail_mutex());
  const auto found = details().find(static_cast<int>(code));
  return found == details().end() ? "" : found->second;
}

void set_last_error(cudaError_t code, std::string detail) {
  note_detail(code, std::move(detail));
  last_error = code;
}

void reset() {
  sticky.store(cudaSuccess);
  last_error = cudaSuccess;
  std::lock_guard<std::mutex> lock(detail_mutex());
  details().clear();
}

void record_launch(long long switches) {
  std::lock_guard<std::mutex> lock(counter_mutex());
  ++totals.launches;
  totals.switches += switches;
}

void record_blocks(long long blocks, long long threads) {
  std::lock_guard<std::mutex> lock(counter_mutex());
  totals.blocks += blocks;
  totals.threads += threads;
}

Counters counters() {
  std::lock_guard<std::mutex> lock(counter_mutex());
  return totals;
}

}  // namespace basin::emulator

// ---------------------------------------------------------------- the CUDA runtime API

using namespace basin::emulator;

extern "C" {

cudaError_t cudaGetLastError(void) {
  const cudaError_t s = sticky.load();
  if (s != cudaSuccess) return s;
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) {
  const cudaError_t s = sticky.load();
  return s != cudaSuccess ? s : last_error;
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
#define BASIN_ERROR_NAME(code) \
  case code: return #code;
    BASIN_ERROR_NAME(cudaSuccess)
    BASIN_ERROR_NAME(cudaErrorInvalidValue)
    BASIN_ERROR_NAME(cudaErrorMemoryAllocation)
    BASIN_ERROR_NAME(cudaErrorInitializationError)
    BASIN_ERROR_NAME(cudaErrorInvalidConfiguration)
    BASIN_ERROR_NAME(cudaErrorInvalidPitchValue)
    BASIN_ERROR_NAME(cudaErrorInvalidSymbol)
    BASIN_ERROR_NAME(cudaErrorInvalidDevicePointer)
    BASIN_ERROR_NAME(cudaErrorInvalidMemcpyDirection)
    BASIN_ERROR_NAME(cudaErrorInsufficientDriver)
    BASIN_ERROR_NAME(cudaErrorNoDevice)
    BASIN_ERROR_NAME(cudaErrorInvalidDevice)
    BASIN_ERROR_NAME(cudaErrorInvalidResourceHandle)
    BASIN_ERROR_NAME(cudaErrorNotReady)
    BASIN_ERROR_NAME(cudaErrorIllegalAddress)
    BASIN_ERROR_NAME(cudaErrorLaunchOutOfResources)
    BASIN_ERROR_NAME(cudaErrorLaunchTimeout)
    BASIN_ERROR_NAME(cudaErrorAssert)
    BASIN_ERROR_NAME(cudaErrorIllegalInstruction)
    BASIN_ERROR_NAME(cudaErrorLaunchFailure)
    BASIN_ERROR_NAME(cudaErrorNotSupported)
    BASIN_ERROR_NAME(cudaErrorUnknown)
#undef BASIN_ERROR_NAME
  }
  return "unrecognized error code";
}

// The runtime's own wording for the codes it shares with the emulator.
const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidPitchValue: return "invalid pitch argument";
    case cudaErrorInvalidSymbol: return "invalid device symbol";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchTimeout: return "the launch timed out and was terminated";
    case cudaErrorAssert: return "device-side assert triggered";
    case cudaErrorIllegalInstruction: return "an illegal instruction was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorUnknown: return "unknown error";
  }
  return "unrecognized error code";
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return refuse(cudaErrorInvalidValue, "cudaGetDeviceCount: the result pointer is null");
  *count = 0;
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (device != 0) {
    return refuse(cudaErrorInvalidDevice, "device " + std::to_string(device) + " was asked for; the emulator has one, 0");
  }
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (device == nullptr) return refuse(cudaErrorInvalidValue, "cudaGetDevice: the result pointer is null");
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (prop == nullptr) return refuse(cudaErrorInvalidValue, "cudaGetDeviceProperties: the result pointer is null");
  if (device != 0) return refuse(cudaErrorInvalidDevice, "cudaGetDeviceProperties: no device " + std::to_string(device));
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "%s", kDeviceName);
  prop->totalGlobalMem = host_memory_bytes();
  prop->sharedMemPerBlock = kMaxStaticSharedBytes;
  prop->warpSize = warpSize;
  prop->maxThreadsPerBlock = static_cast<int>(kMaxThreadsPerBlock);
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->major = 9;  // the semantics emulated are those of sm_90 (H100/H200), the GPUs basin is tuned for
  prop->minor = 0;
  prop->multiProcessorCount = kMultiprocessors;
  prop->l2CacheSize = 1 << 20;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (value == nullptr) return refuse(cudaErrorInvalidValue, "cudaDeviceGetAttribute: the result pointer is null");
  cudaDeviceProp prop;
  if (const cudaError_t s = cudaGetDeviceProperties(&prop, device); s != cudaSuccess) return s;
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = prop.maxThreadsPerBlock; break;
    case cudaDevAttrMaxBlockDimX: *value = prop.maxThreadsDim[0]; break;
    case cudaDevAttrMaxBlockDimY: *value = prop.maxThreadsDim[1]; break;
    case cudaDevAttrMaxBlockDimZ: *value = prop.maxThreadsDim[2]; break;
    case cudaDevAttrMaxGridDimX: *value = prop.maxGridSize[0]; break;
    case cudaDevAttrMaxGridDimY: *value = prop.maxGridSize[1]; break;
    case cudaDevAttrMaxGridDimZ: *value = prop.maxGridSize[2]; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(prop.sharedMemPerBlock); break;
    case cudaDevAttrWarpSize: *value = prop.warpSize; break;
    case cudaDevAttrMultiProcessorCount: *value = prop.multiProcessorCount; break;
    case cudaDevAttrL2CacheSize: *value = prop.l2CacheSize; break;
    case cudaDevAttrComputeCapabilityMajor: *value = prop.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = prop.minor; break;
    default:
      return refuse(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute " +
                                               std::to_string(static_cast<int>(attr)) + " is not emulated");
  }
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* version) {
  if (version == nullptr) return refuse(cudaErrorInvalidValue, "cudaDriverGetVersion: the result pointer is null");
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
  if (version == nullptr) return refuse(cudaErrorInvalidValue, "cudaRuntimeGetVersion: the result pointer is null");
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return entry_status(); }

cudaError_t cudaMemGetInfo(std::size_t* free, std::size_t* total) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (free == nullptr || total == nullptr) return refuse(cudaErrorInvalidValue, "cudaMemGetInfo: a result pointer is null");
  *total = host_memory_bytes();
  std::lock_guard<std::mutex> lock(memory_mutex());
  *free = *total > live_bytes ? *total - live_bytes : 0;
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (stream == nullptr) return refuse(cudaErrorInvalidValue, "cudaStreamCreateWithFlags: the result pointer is null");
  if ((flags & ~static_cast<unsigned int>(cudaStreamNonBlocking)) != 0) {
    return refuse(cudaErrorInvalidValue, "cudaStreamCreateWithFlags: unknown flags " + std::to_string(flags));
  }
  *stream = new CUstream_st{flags};
  std::lock_guard<std::mutex> lock(stream_mutex());
  live_streams().insert(*stream);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (stream == nullptr) return refuse(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: the default stream");
  if (const cudaError_t s = check_stream("cudaStreamDestroy", stream); s != cudaSuccess) return s;
  {
    std::lock_guard<std::mutex> lock(stream_mutex());
    live_streams().erase(stream);
  }
  delete stream;
  return cudaSuccess;
}

// Work ran when it was queued: there is nothing to wait for, only a fault to report.
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  return check_stream("cudaStreamSynchronize", stream);
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (event == nullptr) return refuse(cudaErrorInvalidValue, "cudaEventCreate: the result pointer is null");
  *event = new CUevent_st{};
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (event == nullptr) return refuse(cudaErrorInvalidResourceHandle, "cudaEventRecord: a null event");
  event->recorded = true;
  return check_stream("cudaEventRecord", stream);
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (event == nullptr) return refuse(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: a null event");
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  (void)start, (void)end;
  if (ms != nullptr) *ms = 0.0f;
  return refuse(cudaErrorNotSupported,
                "the emulated device has no clock: its events measure nothing, so there is no time to report "
                "(time kernels on a GPU)");
}

cudaError_t cudaMalloc(void** ptr, std::size_t size) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  return allocate(ptr, size, Memory::Device, "cudaMalloc");
}

cudaError_t cudaFree(void* ptr) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  return release_allocation(ptr, Memory::Device, "cudaFree");
}

cudaError_t cudaMallocAsync(void** ptr, std::size_t size, cudaStream_t stream) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (const cudaError_t s = check_stream("cudaMallocAsync", stream); s != cudaSuccess) return s;
  return allocate(ptr, size, Memory::Device, "cudaMallocAsync");
}

cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (const cudaError_t s = check_stream("cudaFreeAsync", stream); s != cudaSuccess) return s;
  return release_allocation(ptr, Memory::Device, "cudaFreeAsync");
}

cudaError_t cudaHostAlloc(void** ptr, std::size_t size, unsigned int flags) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  (void)flags;  // every host allocation is mapped: with one address space, kernels can read it
  return allocate(ptr, size, Memory::MappedHost, "cudaHostAlloc");
}

cudaError_t cudaFreeHost(void* ptr) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  return release_allocation(ptr, Memory::MappedHost, "cudaFreeHost");
}

cudaError_t cudaHostGetDevicePointer(void** device, void* host, unsigned int flags) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (device == nullptr || flags != 0) {
    return refuse(cudaErrorInvalidValue, "cudaHostGetDevicePointer: a null result pointer or non-zero flags");
  }
  {
    std::lock_guard<std::mutex> lock(memory_mutex());
    const Allocation* a = find_allocation(host, 0);
    if (a == nullptr || a->kind != Memory::MappedHost) {
      return refuse(cudaErrorInvalidValue, "cudaHostGetDevicePointer: " + pointer_text(host) +
                                               " is not memory from cudaHostAlloc");
    }
  }
  *device = host;  // unified addressing: the same address on both sides
  return cudaSuccess;
}

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (pool == nullptr || device != 0) {
    return refuse(cudaErrorInvalidValue, "cudaDeviceGetDefaultMemPool: a null result pointer or a device other than 0");
  }
  static CUmemPoolHandle_st the_pool;
  *pool = &the_pool;
  return cudaSuccess;
}

// Freed memory goes back to the host at once, so the pool's attributes change nothing.
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
  if (const cudaError_t s = entry_status(); s != cudaSuccess) return s;
  if (pool == nullptr || value == nullptr) {
    return refuse(cudaErrorInvalidValue, "cudaMemPoolSetAttribute: a null pool or value");
  }
  (void)attr;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t count, cudaMemcpyKind kind) {
  return copy("cudaMemcpy", dst, src, count, kind);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t count, cudaMemcpyKind kind, cudaStream_t stream) {
  if (const cudaError_t s = check_stream("cudaMemcpyAsync", stream); s != cudaSuccess) return s;
  return copy("cudaMemcpyAsync", dst, src, count, kind);
}

cudaError_t cudaMemset(void* ptr, int value, std::size_t count) { return fill("cudaMemset", ptr, value, count); }

cudaError_t cudaMemsetAsync(void* ptr, int value, std::size_t count, cudaStream_t stream) {
  if (const cudaError_t s = check_stream("cudaMemsetAsync", stream); s != cudaSuccess) return s;
  return fill("cudaMemsetAsync", ptr, value, count);
}

}  // extern "C"
