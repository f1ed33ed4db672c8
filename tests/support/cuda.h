// [cuda] tests run wherever a CUDA device is: a GPU, or basin's CUDA emulator
// (-DBASIN_CUDA=EMULATE). Elsewhere they print the skip marker and return;
// ctest matches the marker (SKIP_REGULAR_EXPRESSION in tests/CMakeLists.txt)
// and reports the test as skipped, never as passed. A CUDA installation that
// is present but broken is neither: cuda_is_available() throws, and the test
// fails saying why.
#pragma once

#include <catch2/catch.hpp>

#include "core/device.h"

#define BASIN_REQUIRE_CUDA()                                                          \
  do {                                                                                \
    if (!::basin::cuda_is_available()) {                                              \
      WARN("BASIN_TEST_SKIPPED: no CUDA device (built with CUDA: "                    \
           << (::basin::cuda_is_built() ? "yes" : "no") << ")");                      \
      return;                                                                         \
    }                                                                                 \
  } while (0)
