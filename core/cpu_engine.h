// Which kernels run the ops on CPU tensors, and on how many threads.
//
// Every CPU op has two implementations:
//   kernels/reference/  the readable loops, float64 accumulation, one thread:
//                       the oracle every other backend is tested against;
//   kernels/fast/       the engine: oneDNN (float32) and OpenBLAS (float64)
//                       for convolutions and GEMM, OpenMP loops that
//                       accumulate in the tensor's own dtype for the
//                       memory-bound float32 ops, as PyTorch computes them.
// An op without an engine kernel, and the float64 tensors of the memory-bound
// ops, run on the reference (kernels/fast.h).
//
// The choice is made per process: BASIN_CPU_KERNELS=reference (or fast, the
// default) in the environment, or set_cpu_kernels() in code. The thread count
// follows OMP_NUM_THREADS, or set_cpu_threads() (basin-train --threads).
#pragma once

#include <string>

namespace basin {

enum class CpuKernels { fast, reference };

// The kernels CPU ops run on now. The first call reads BASIN_CPU_KERNELS and
// throws basin::Error naming it when it is neither "fast" nor "reference".
CpuKernels cpu_kernels();
void set_cpu_kernels(CpuKernels kernels);
// "fast" or "reference".
const char* cpu_kernels_name(CpuKernels kernels);

// Sets the CPU kernels for one scope and restores the previous choice after.
class CpuKernelsScope {
 public:
  explicit CpuKernelsScope(CpuKernels kernels) : previous_(cpu_kernels()) { set_cpu_kernels(kernels); }
  ~CpuKernelsScope() { set_cpu_kernels(previous_); }
  CpuKernelsScope(const CpuKernelsScope&) = delete;
  CpuKernelsScope& operator=(const CpuKernelsScope&) = delete;

 private:
  CpuKernels previous_;
};

// Threads the engine's kernels use (1 in a build without OpenMP). The
// reference kernels always run on one thread.
int cpu_threads();
// Throws basin::Error unless threads >= 1.
void set_cpu_threads(int threads);

// One line for logs and benchmarks: "fast kernels (oneDNN 2.6.3, OpenMP, 2
// threads)" or "reference kernels (1 thread)".
std::string describe_cpu_engine();

}  // namespace basin
