// The CUDA runtime as the rest of basin sees it: plain C++ declarations, no
// CUDA headers, so core/ can allocate and copy without knowing CUDA.
// Implemented in runtime.cu; present only in builds with the CUDA backend.
#pragma once

#include <cstddef>
#include <string>

namespace basin::kernels::cuda {

// Usable GPUs; 0 when there is no driver or no device (never throws).
int device_count();
// "NVIDIA H200, sm_90, 139.8 GiB"
std::string device_description();

// Stream-ordered allocation on basin's stream from a pool that keeps freed
// memory cached, so a training loop in steady state never calls cudaMalloc.
void* allocate(std::size_t nbytes);
void deallocate(void* ptr);

// Copies queued on basin's stream. The device-to-host copy waits for the
// stream, because the host is about to read the bytes.
void copy_host_to_device(void* dst, const void* src, std::size_t nbytes);
void copy_device_to_host(void* dst, const void* src, std::size_t nbytes);
void copy_device_to_device(void* dst, const void* src, std::size_t nbytes);

// Kernel launches of basin's own kernels since the process started.
long long launch_count();

// Waits for everything queued on basin's stream.
void synchronize();

}  // namespace basin::kernels::cuda
