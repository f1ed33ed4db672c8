// BASIN_HOST_DEVICE marks small functions that both the CPU kernels and the
// CUDA kernels call (index math, Philox). Plain C++ compilers see nothing.
#pragma once

#ifdef __CUDACC__
#define BASIN_HOST_DEVICE __host__ __device__
#else
#define BASIN_HOST_DEVICE
#endif
