// The CUDA runtime as the rest of basin sees it: plain C++ declarations, no
// CUDA headers, so core/ can allocate and copy without knowing CUDA.
// Implemented in runtime.cu; present only in builds with the CUDA backend.
#pragma once

#include <cstddef>
#include <string>

namespace basin::kernels::cuda {

// Usable GPUs: 0 when there is no GPU (no device, or no driver installed);
// throws basin::Error when CUDA is there but unusable (say, a driver too old
// for the runtime), so a broken GPU machine is never taken for one without a GPU.
int device_count();
// "NVIDIA H200, sm_90, 139.8 GiB"
std::string device_description();
// True in a build with the CUDA emulator (-DBASIN_CUDA=EMULATE).
bool is_emulator();
// Picks the GPU this process drives (modulo the number of GPUs), before any
// CUDA work: a data-parallel rank passes its local rank (core/distributed.h).
// Throws when basin's CUDA context already lives on another GPU.
void select_device(int ordinal);
// The GPU basin's context lives on (makes the context).
int device_ordinal();

// Stream-ordered allocation on basin's stream from a pool that keeps freed
// memory cached, so a training loop in steady state never calls cudaMalloc.
void* allocate(std::size_t nbytes);
void deallocate(void* ptr);

// Copies queued on basin's stream. The device-to-host copy waits for the
// stream, because the host is about to read the bytes.
void copy_host_to_device(void* dst, const void* src, std::size_t nbytes);
void copy_device_to_host(void* dst, const void* src, std::size_t nbytes);

// Kernel launches of basin's own kernels since the process started.
long long launch_count();

// Waits for everything queued on basin's stream.
void synchronize();

// Device memory owned by a scope: the scratch space of a kernel or a library
// call, freed on the stream (after the work queued before the free) when the
// scope ends. 0 bytes allocate nothing (a null pointer).
//
// The destructor never throws. After a sticky CUDA error the free fails too,
// and a throw from a destructor while that error unwinds would end the
// process and lose its message; the failed free is left for the next check.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }
  // The buffer as an array of T, from element `index` on.
  template <class T>
  T* as(std::size_t index = 0) const {
    return static_cast<T*>(ptr_) + index;
  }

 private:
  std::size_t bytes_;
  void* ptr_;
};

}  // namespace basin::kernels::cuda
