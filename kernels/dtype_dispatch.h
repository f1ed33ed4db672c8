// Turns a runtime DType into a compile-time element type for kernel templates:
//
//   BASIN_DISPATCH_FLOATING(out.dtype, "exp", scalar_t, [&] { exp_kernel<scalar_t>(...); });
//
// An unsupported dtype throws basin::Error naming the op.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"

#define BASIN_DISPATCH_CASE_(enum_value, type, alias, ...) \
  case ::basin::DType::enum_value: {                       \
    using alias = type;                                    \
    __VA_ARGS__();                                         \
    break;                                                 \
  }

// float32 and float64.
#define BASIN_DISPATCH_FLOATING(dtype, op_name, alias, ...)                                        \
  do {                                                                                           \
    switch (dtype) {                                                                             \
      BASIN_DISPATCH_CASE_(Float32, float, alias, __VA_ARGS__)                                   \
      BASIN_DISPATCH_CASE_(Float64, double, alias, __VA_ARGS__)                                  \
      default:                                                                                   \
        BASIN_FAIL(op_name, ": dtype ", ::basin::dtype_name(dtype), " is not supported (float32 or float64)"); \
    }                                                                                            \
  } while (0)

// int32 and int64 (labels and indices).
#define BASIN_DISPATCH_INDEX(dtype, op_name, alias, ...)                                           \
  do {                                                                                           \
    switch (dtype) {                                                                             \
      BASIN_DISPATCH_CASE_(Int32, std::int32_t, alias, __VA_ARGS__)                              \
      BASIN_DISPATCH_CASE_(Int64, std::int64_t, alias, __VA_ARGS__)                              \
      default:                                                                                   \
        BASIN_FAIL(op_name, ": index dtype ", ::basin::dtype_name(dtype), " is not supported (int32 or int64)"); \
    }                                                                                            \
  } while (0)

// Every dtype basin has.
#define BASIN_DISPATCH_ALL(dtype, op_name, alias, ...)                    \
  do {                                                                  \
    switch (dtype) {                                                    \
      BASIN_DISPATCH_CASE_(Float32, float, alias, __VA_ARGS__)          \
      BASIN_DISPATCH_CASE_(Float64, double, alias, __VA_ARGS__)         \
      BASIN_DISPATCH_CASE_(Int32, std::int32_t, alias, __VA_ARGS__)     \
      BASIN_DISPATCH_CASE_(Int64, std::int64_t, alias, __VA_ARGS__)     \
      BASIN_DISPATCH_CASE_(UInt8, std::uint8_t, alias, __VA_ARGS__)     \
      default:                                                          \
        BASIN_FAIL(op_name, ": unknown dtype");                         \
    }                                                                   \
  } while (0)
