// The CPU engine's namespace (kernels/fast/, core/cpu_engine.h).
//
// kernels::fast holds the engine kernels: oneDNN convolutions and GEMM, and
// OpenMP loops over contiguous float32 for the memory-bound ops, each
// declared in its op's header beside the reference and CUDA entry points and
// with the same signature. Every name the engine does not define is found in
// kernels::reference through the using-directive below, so
// kernels::fast::name(...) is always a complete set of CPU kernels: the
// engine where there is one, the reference elsewhere. An engine kernel hands
// the cases it does not take (strided views; float64 except in convolutions
// and GEMM) to its reference itself.
#pragma once

namespace basin::kernels {
namespace reference {}
namespace fast {
using namespace ::basin::kernels::reference;
}  // namespace fast
}  // namespace basin::kernels
