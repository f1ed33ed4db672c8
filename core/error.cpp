#include "core/error.h"

#include <string_view>

namespace basin::detail {

[[noreturn]] void throw_error(const char* file, int line, const std::string& message) {
  // Show paths below the source root ("core/tensor.cpp"), not the build machine's layout.
  std::string_view shown = file;
#ifdef BASIN_SOURCE_DIR
  constexpr std::string_view root = BASIN_SOURCE_DIR "/";
  if (shown.substr(0, root.size()) == root) shown.remove_prefix(root.size());
#endif
  throw Error(concat(message, " (", shown, ":", line, ")"));
}

}  // namespace basin::detail
