// Where a tensor's memory lives. basin has one CUDA device (index 0) and the
// host; data moves between them only through an explicit Tensor::to(Device).
#pragma once

#include <cstdint>
#include <string>

namespace basin {

enum class DeviceType : std::uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {DeviceType::CPU, 0}; }
  // Throws basin::Error when basin was built without CUDA or no GPU is present.
  static Device cuda(int index = 0);
  // "cpu", "cuda", "cuda:0"; "auto" is the GPU when there is one, else the CPU.
  static Device parse(const std::string& name);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;

  friend bool operator==(const Device&, const Device&) = default;
};

// True when this build of basin contains the CUDA backend.
bool cuda_is_built();
// True when the CUDA device is basin's CUDA emulator (a build configured with
// -DBASIN_CUDA=EMULATE): CUDA code runs, on the CPU, and nothing it does says
// how fast a GPU would do it.
bool cuda_is_emulated();
// True when the CUDA backend is built and at least one GPU is usable. Throws
// basin::Error when CUDA is installed but unusable (cuda_device_count()).
bool cuda_is_available();
// The number of usable GPUs: 0 without a driver or device; throws
// basin::Error naming the CUDA error when the driver or device is broken.
int cuda_device_count();
// "cpu", or "cuda:0 (NVIDIA H200, sm_90, 139.8 GiB)".
std::string describe(Device device);
// Kernel launches so far, every one made through basin's launch helper
// (kernels/cuda/launch.cuh; 0 without CUDA): tests use the difference around
// an operation to count what it costs.
long long cuda_kernel_launches();
// Blocks the host until all queued work on the device is done (no-op on CPU).
void synchronize(Device device);

}  // namespace basin
