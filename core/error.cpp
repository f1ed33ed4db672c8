#include "core/error.h"

#include <cstring>

namespace basin::detail {

[[noreturn]] void throw_error(const char* file, int line, const std::string& message) {
  // Keep only the path below the source root: "core/tensor.cpp", not the build machine's layout.
  const char* shown = file;
  for (const char* room : {"core/", "kernels/", "nn/", "optim/", "data/", "apps/"}) {
    if (const char* found = std::strstr(file, room)) {
      shown = found;
      break;
    }
  }
  throw Error(concat(message, " (", shown, ":", line, ")"));
}

}  // namespace basin::detail
