#include "core/device.h"

#include "core/error.h"
#if BASIN_WITH_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace basin {

bool cuda_is_built() { return BASIN_WITH_CUDA != 0; }

int cuda_device_count() {
#if BASIN_WITH_CUDA
  static const int count = kernels::cuda::device_count();
  return count;
#else
  return 0;
#endif
}

bool cuda_is_available() { return cuda_device_count() > 0; }

bool cuda_is_emulated() {
#if BASIN_WITH_CUDA
  return kernels::cuda::is_emulator();
#else
  return false;
#endif
}

Device Device::cuda(int index) {
  BASIN_CHECK(cuda_is_built(), "a CUDA device was requested, but this build of basin has no CUDA backend "
                               "(configure with -DBASIN_CUDA=ON)");
  BASIN_CHECK(cuda_is_available(), "a CUDA device was requested, but no CUDA-capable GPU is available");
  BASIN_CHECK(index == 0, "CUDA device ", index, " was requested; basin uses a single GPU (cuda:0)");
  return {DeviceType::CUDA, index};
}

Device Device::parse(const std::string& name) {
  if (name == "cpu") return cpu();
  if (name == "cuda" || name == "cuda:0" || name == "gpu") return cuda();
  if (name == "auto") return cuda_is_available() ? cuda() : cpu();
  BASIN_FAIL("unknown device '", name, "' (expected auto, cpu or cuda)");
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

std::string describe(Device device) {
#if BASIN_WITH_CUDA
  if (device.is_cuda()) return device.str() + " (" + kernels::cuda::device_description() + ")";
#endif
  return device.str();
}

long long cuda_kernel_launches() {
#if BASIN_WITH_CUDA
  return kernels::cuda::launch_count();
#else
  return 0;
#endif
}

void synchronize(Device device) {
#if BASIN_WITH_CUDA
  if (device.is_cuda()) kernels::cuda::synchronize();
#else
  (void)device;
#endif
}

}  // namespace basin
