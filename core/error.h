// basin::Error and BASIN_CHECK: the one way the library reports bad input.
//
// The library throws; only programs in apps/ catch, print one line and exit
// non-zero. A message names what was wrong ("matmul: a is [2, 3] but b is
// [4, 5]"); the file and line are appended so a report points at the check.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace basin {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

[[noreturn]] void throw_error(const char* file, int line, const std::string& message);

}  // namespace detail
}  // namespace basin

// BASIN_CHECK(condition, message parts...): throws basin::Error when the
// condition is false. The parts are streamed, so shapes and numbers can be
// passed as they are.
#define BASIN_CHECK(condition, ...)                                                  \
  do {                                                                               \
    if (!(condition)) {                                                              \
      ::basin::detail::throw_error(__FILE__, __LINE__, ::basin::detail::concat(__VA_ARGS__)); \
    }                                                                                \
  } while (0)

#define BASIN_FAIL(...) ::basin::detail::throw_error(__FILE__, __LINE__, ::basin::detail::concat(__VA_ARGS__))
