// BASIN_OPTION declares one chainable option of an options struct, libtorch
// style: `Conv2dOptions(3, 16, 3).stride(2).bias(false)` sets, `opts.stride()` reads.
#pragma once

#define BASIN_OPTION(type, name)          \
 public:                                  \
  auto& name(const type& value) {         \
    name##_ = value;                      \
    return *this;                         \
  }                                       \
  const type& name() const { return name##_; } \
                                          \
 private:                                 \
  type name##_
