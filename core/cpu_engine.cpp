#include "core/cpu_engine.h"

#include <atomic>
#include <cstdlib>
#include <string_view>

#if BASIN_WITH_OPENMP
#include <omp.h>
#endif
#if BASIN_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif
#if BASIN_WITH_CBLAS
#include <cblas.h>
#endif

#include "core/error.h"

namespace basin {
namespace {

CpuKernels kernels_from_environment() {
  const char* value = std::getenv("BASIN_CPU_KERNELS");
  if (value == nullptr || std::string_view(value).empty() || std::string_view(value) == "fast") {
    return CpuKernels::fast;
  }
  if (std::string_view(value) == "reference") return CpuKernels::reference;
  BASIN_FAIL("BASIN_CPU_KERNELS must be \"fast\" or \"reference\", got \"", value, "\"");
}

// -1 until the first cpu_kernels() reads the environment. Atomic: the data
// loader's threads run CPU ops too.
std::atomic<int> chosen_kernels{-1};

}  // namespace

CpuKernels cpu_kernels() {
  int chosen = chosen_kernels.load(std::memory_order_relaxed);
  if (chosen < 0) {
    int unset = -1;
    chosen_kernels.compare_exchange_strong(unset, static_cast<int>(kernels_from_environment()));
    chosen = chosen_kernels.load(std::memory_order_relaxed);
  }
  return static_cast<CpuKernels>(chosen);
}

void set_cpu_kernels(CpuKernels kernels) { chosen_kernels.store(static_cast<int>(kernels), std::memory_order_relaxed); }

const char* cpu_kernels_name(CpuKernels kernels) { return kernels == CpuKernels::fast ? "fast" : "reference"; }

int cpu_threads() {
#if BASIN_WITH_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_cpu_threads(int threads) {
  BASIN_CHECK(threads >= 1, "the CPU thread count must be at least 1, got ", threads);
#if BASIN_WITH_OPENMP
  omp_set_num_threads(threads);
#endif
}

std::string describe_cpu_engine() {
  if (cpu_kernels() == CpuKernels::reference) return "reference kernels (1 thread)";
  std::string text = "fast kernels (";
#if BASIN_WITH_ONEDNN
  const dnnl_version_t* version = dnnl_version();
  text += "oneDNN " + std::to_string(version->major) + "." + std::to_string(version->minor) + "." +
          std::to_string(version->patch) + ", ";
#else
  text += "no oneDNN: convolutions and GEMM on the reference, ";
#endif
#if BASIN_WITH_CBLAS
  // "OpenBLAS 0.3.21 DYNAMIC_ARCH ... Zen MAX_THREADS=64": the name and version of the library loaded.
  const std::string config = openblas_get_config();
  text += config.substr(0, config.find(' ', config.find(' ') + 1)) + " for float64, ";
#endif
#if BASIN_WITH_OPENMP
  text += "OpenMP, ";
#endif
  const int threads = cpu_threads();
  text += std::to_string(threads) + (threads == 1 ? " thread)" : " threads)");
  return text;
}

}  // namespace basin
