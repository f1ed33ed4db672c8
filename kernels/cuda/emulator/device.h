// The device side of CUDA C++ for basin's CUDA emulator: what a kernel source
// sees when it is compiled by the host C++ compiler instead of nvcc.
//
// How a kernel runs here (docs/emulator.md has the whole story):
//  - every CUDA thread is a fiber with its own small stack, and the blocks of
//    a launch run one after another (scheduler.cpp);
//  - threadIdx, blockIdx, blockDim and gridDim are per-host-thread variables
//    that the scheduler sets before it resumes a fiber;
//  - a __shared__ array is a function-local static: one object that the
//    threads of the running block share, reused by the next block (as a real
//    block's shared memory starts with whatever was there, never zeroed);
//  - __syncthreads() suspends the fiber until every thread of the block has
//    reached the same barrier; the order in which the threads then resume is
//    the schedule (BASIN_EMULATE_SCHEDULE);
//  - warp operations suspend the fiber until every lane named in the mask has
//    reached the same operation, then exchange the values;
//  - arithmetic is the host's IEEE arithmetic: the __*_rn intrinsics are
//    exact because the emulated build compiles with -ffp-contract=off, and the
//    math functions are the C library's.
#pragma once

#include <math.h>  // CUDA's math functions are global overloads: exp(float) is float

#include <atomic>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <type_traits>

// ---------------------------------------------------------------- qualifiers
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// __noinline__ is left undefined: libstdc++ spells its own attribute that way.
#define __launch_bounds__(...)
// Internal linkage matters: AddressSanitizer puts red zones around a
// function-local static only when its function has internal linkage, which
// basin's kernels (in anonymous namespaces) do.
#define __shared__ static
#define __constant__ static

// ---------------------------------------------------------------- vector types
struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

#define BASIN_EMULATOR_VECTOR2(name, type, align)                                       \
  struct alignas(align) name {                                                          \
    type x, y;                                                                          \
  };                                                                                    \
  inline name make_##name(type x, type y) { return name{x, y}; }
#define BASIN_EMULATOR_VECTOR4(name, type, align)                                       \
  struct alignas(align) name {                                                          \
    type x, y, z, w;                                                                    \
  };                                                                                    \
  inline name make_##name(type x, type y, type z, type w) { return name{x, y, z, w}; }

BASIN_EMULATOR_VECTOR2(float2, float, 8)
BASIN_EMULATOR_VECTOR4(float4, float, 16)
BASIN_EMULATOR_VECTOR2(double2, double, 16)
BASIN_EMULATOR_VECTOR2(int2, int, 8)
BASIN_EMULATOR_VECTOR4(int4, int, 16)
BASIN_EMULATOR_VECTOR2(uint2, unsigned int, 8)
BASIN_EMULATOR_VECTOR4(uint4, unsigned int, 16)
BASIN_EMULATOR_VECTOR2(longlong2, long long, 16)
BASIN_EMULATOR_VECTOR2(ulonglong2, unsigned long long, 16)
#undef BASIN_EMULATOR_VECTOR2
#undef BASIN_EMULATOR_VECTOR4

// ---------------------------------------------------------------- built-in variables
// Set by the scheduler before it resumes a CUDA thread's fiber; fibers run on
// the host thread that launched the kernel, so per-host-thread storage is
// per-CUDA-thread storage while a kernel runs. __thread rather than
// thread_local: these need no dynamic initialization, and GCC 12's
// UndefinedBehaviorSanitizer misreads the address of an extern thread_local
// as null (its null check tests flags that the address computation never set).
extern __thread uint3 threadIdx;
extern __thread uint3 blockIdx;
extern __thread dim3 blockDim;
extern __thread dim3 gridDim;
constexpr int warpSize = 32;

namespace basin::emulator {

// ---------------------------------------------------------------- synchronization
// Each takes the call site, so a divergent barrier is reported by file and line.
void syncthreads(const char* file, int line);
enum class Vote { Count, All, Any };
int syncthreads_vote(Vote vote, int predicate, const char* file, int line);

enum class WarpOp { Sync, Index, Up, Down, Xor, Ballot, All, Any };
// One warp operation for the calling lane: waits for every lane of `mask`,
// then returns this lane's result (for shuffles, the 8 bytes of the source
// lane's value; for votes, the ballot word or a 0/1).
std::uint64_t warp_collective(WarpOp op, unsigned mask, std::uint64_t value, int operand, int width, const char* file,
                              int line);
[[noreturn]] void trap(const char* file, int line);

template <class T>
T shuffle(WarpOp op, unsigned mask, T value, int operand, int width, const char* file, int line) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp shuffles move values of up to 8 bytes");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  bits = warp_collective(op, mask, bits, operand, width, file, line);
  T result;
  std::memcpy(&result, &bits, sizeof(T));
  return result;
}

inline void syncwarp(const char* file, int line, unsigned mask = 0xffffffffu) {
  warp_collective(WarpOp::Sync, mask, 0, 0, warpSize, file, line);
}
template <class T>
T shfl_sync(const char* file, int line, unsigned mask, T value, int src_lane, int width = warpSize) {
  return shuffle(WarpOp::Index, mask, value, src_lane, width, file, line);
}
template <class T>
T shfl_up_sync(const char* file, int line, unsigned mask, T value, unsigned delta, int width = warpSize) {
  return shuffle(WarpOp::Up, mask, value, static_cast<int>(delta), width, file, line);
}
template <class T>
T shfl_down_sync(const char* file, int line, unsigned mask, T value, unsigned delta, int width = warpSize) {
  return shuffle(WarpOp::Down, mask, value, static_cast<int>(delta), width, file, line);
}
template <class T>
T shfl_xor_sync(const char* file, int line, unsigned mask, T value, int lane_mask, int width = warpSize) {
  return shuffle(WarpOp::Xor, mask, value, lane_mask, width, file, line);
}
inline unsigned ballot_sync(const char* file, int line, unsigned mask, int predicate) {
  return static_cast<unsigned>(warp_collective(WarpOp::Ballot, mask, predicate != 0, 0, warpSize, file, line));
}
inline int all_sync(const char* file, int line, unsigned mask, int predicate) {
  return static_cast<int>(warp_collective(WarpOp::All, mask, predicate != 0, 0, warpSize, file, line));
}
inline int any_sync(const char* file, int line, unsigned mask, int predicate) {
  return static_cast<int>(warp_collective(WarpOp::Any, mask, predicate != 0, 0, warpSize, file, line));
}

long long clock_ticks();

}  // namespace basin::emulator

#define __syncthreads() ::basin::emulator::syncthreads(__FILE__, __LINE__)
#define __syncthreads_count(p) ::basin::emulator::syncthreads_vote(::basin::emulator::Vote::Count, (p), __FILE__, __LINE__)
#define __syncthreads_and(p) ::basin::emulator::syncthreads_vote(::basin::emulator::Vote::All, (p), __FILE__, __LINE__)
#define __syncthreads_or(p) ::basin::emulator::syncthreads_vote(::basin::emulator::Vote::Any, (p), __FILE__, __LINE__)
#define __syncwarp(...) ::basin::emulator::syncwarp(__FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
#define __shfl_sync(...) ::basin::emulator::shfl_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) ::basin::emulator::shfl_up_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) ::basin::emulator::shfl_down_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) ::basin::emulator::shfl_xor_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(...) ::basin::emulator::ballot_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __all_sync(...) ::basin::emulator::all_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __any_sync(...) ::basin::emulator::any_sync(__FILE__, __LINE__, __VA_ARGS__)
#define __trap() ::basin::emulator::trap(__FILE__, __LINE__)

// ---------------------------------------------------------------- memory fences and atomics
// The fibers of a launch share one host thread, so an atomic is atomic by
// construction; std::atomic_ref still tells ThreadSanitizer that these
// accesses synchronize, as the hardware's atomics do. A fence needs only to
// keep the compiler from moving accesses across it: the CUDA threads it
// orders all run on the same host thread (and ThreadSanitizer, which does not
// model thread fences, would warn about a real one).
inline void __threadfence() { std::atomic_signal_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_signal_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_signal_fence(std::memory_order_seq_cst); }

namespace basin::emulator {
template <class T, class F>
T atomic_update(T* address, F&& next) {
  std::atomic_ref<T> ref(*address);
  T old = ref.load();
  while (!ref.compare_exchange_weak(old, next(old))) {
  }
  return old;
}
}  // namespace basin::emulator

#define BASIN_EMULATOR_ATOMIC_ARITHMETIC(type)                                                              \
  inline type atomicAdd(type* address, type value) { return std::atomic_ref<type>(*address).fetch_add(value); } \
  inline type atomicExch(type* address, type value) { return std::atomic_ref<type>(*address).exchange(value); } \
  inline type atomicCAS(type* address, type compare, type value) {                                          \
    std::atomic_ref<type>(*address).compare_exchange_strong(compare, value);                                \
    return compare;                                                                                         \
  }                                                                                                         \
  inline type atomicMin(type* address, type value) {                                                        \
    return ::basin::emulator::atomic_update(address, [&](type old) { return value < old ? value : old; });  \
  }                                                                                                         \
  inline type atomicMax(type* address, type value) {                                                        \
    return ::basin::emulator::atomic_update(address, [&](type old) { return value > old ? value : old; });  \
  }                                                                                                         \
  inline type atomicAnd(type* address, type value) { return std::atomic_ref<type>(*address).fetch_and(value); } \
  inline type atomicOr(type* address, type value) { return std::atomic_ref<type>(*address).fetch_or(value); }   \
  inline type atomicXor(type* address, type value) { return std::atomic_ref<type>(*address).fetch_xor(value); }
BASIN_EMULATOR_ATOMIC_ARITHMETIC(int)
BASIN_EMULATOR_ATOMIC_ARITHMETIC(unsigned int)
BASIN_EMULATOR_ATOMIC_ARITHMETIC(unsigned long long)
BASIN_EMULATOR_ATOMIC_ARITHMETIC(long long)
#undef BASIN_EMULATOR_ATOMIC_ARITHMETIC

inline int atomicSub(int* address, int value) { return std::atomic_ref<int>(*address).fetch_sub(value); }
inline unsigned int atomicSub(unsigned int* address, unsigned int value) {
  return std::atomic_ref<unsigned int>(*address).fetch_sub(value);
}
inline float atomicAdd(float* address, float value) { return std::atomic_ref<float>(*address).fetch_add(value); }
inline double atomicAdd(double* address, double value) { return std::atomic_ref<double>(*address).fetch_add(value); }
inline float atomicExch(float* address, float value) { return std::atomic_ref<float>(*address).exchange(value); }
// ((old >= limit) ? 0 : old + 1) and ((old == 0 || old > limit) ? limit : old - 1), as CUDA defines them.
inline unsigned int atomicInc(unsigned int* address, unsigned int limit) {
  return ::basin::emulator::atomic_update(address, [&](unsigned int old) { return old >= limit ? 0u : old + 1; });
}
inline unsigned int atomicDec(unsigned int* address, unsigned int limit) {
  return ::basin::emulator::atomic_update(address,
                                          [&](unsigned int old) { return old == 0 || old > limit ? limit : old - 1; });
}

// ---------------------------------------------------------------- arithmetic intrinsics
// Round-to-nearest-even single operations: exact IEEE results, because the
// emulated build never contracts a multiply and an add into an FMA.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __drcp_rn(double a) { return 1.0 / a; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }

// The fast-math intrinsics are approximations on a GPU; here they are the
// C library's functions (docs/emulator.md: libm's ulps are not the GPU's).
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }

// CUDA's integer and floating min/max overloads.
#define BASIN_EMULATOR_MIN_MAX(type)                                   \
  inline type min(type a, type b) { return b < a ? b : a; }           \
  inline type max(type a, type b) { return a < b ? b : a; }
BASIN_EMULATOR_MIN_MAX(int)
BASIN_EMULATOR_MIN_MAX(unsigned int)
BASIN_EMULATOR_MIN_MAX(long)
BASIN_EMULATOR_MIN_MAX(unsigned long)
BASIN_EMULATOR_MIN_MAX(long long)
BASIN_EMULATOR_MIN_MAX(unsigned long long)
#undef BASIN_EMULATOR_MIN_MAX
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }

inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned int>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned int __brev(unsigned int x) {
  unsigned int r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}

// ---------------------------------------------------------------- loads, stores, time
// Cache hints have no meaning on the host: each is a plain access.
template <class T>
T __ldg(const T* p) {
  return *p;
}
template <class T>
T __ldcg(const T* p) {
  return *p;
}
template <class T>
T __ldca(const T* p) {
  return *p;
}
template <class T>
T __ldcs(const T* p) {
  return *p;
}
template <class T>
T __ldlu(const T* p) {
  return *p;
}
template <class T>
T __ldcv(const T* p) {
  return *p;
}
template <class T>
void __stcg(T* p, T v) {
  *p = v;
}
template <class T>
void __stcs(T* p, T v) {
  *p = v;
}
template <class T>
void __stwb(T* p, T v) {
  *p = v;
}
template <class T>
void __stwt(T* p, T v) {
  *p = v;
}

// Host clock ticks: they order events, they time nothing a GPU would do.
inline long long clock64() { return ::basin::emulator::clock_ticks(); }
inline void __nanosleep(unsigned int) {}
