// What the CUDA emulator's runtime (runtime.cpp) and its scheduler
// (scheduler.cpp) share beyond emulator.h.
#pragma once

#include <cuda_runtime.h>

#include <string>

namespace basin::emulator {

// The error the next cudaGetLastError() on this host thread returns (and
// clears, unless the device holds a sticky error), with the emulator's account
// of it for error_detail().
void set_last_error(cudaError_t code, std::string detail);

// Counters (emulator.h): one launch and its fiber switches; the blocks and
// threads it ran.
void record_launch(long long switches);
void record_blocks(long long blocks, long long threads);

}  // namespace basin::emulator
