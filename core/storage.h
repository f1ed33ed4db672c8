// Storage: one allocation on one device, shared by every tensor that views it.
// It frees itself when the last view goes away. Allocation goes through
// basin's allocators, which count the bytes in use (memory_stats).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/device.h"

namespace basin {

struct MemoryStats {
  std::int64_t current_bytes = 0;  // bytes held by live storages
  std::int64_t peak_bytes = 0;     // the most held at once since the last reset
};

MemoryStats memory_stats(Device device);
void reset_peak_memory(Device device);

class Storage {
 public:
  // Uninitialized memory of nbytes on the device (CPU: 64-byte aligned).
  Storage(std::size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t nbytes_ = 0;
  Device device_;
};

}  // namespace basin
