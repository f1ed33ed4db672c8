#include "core/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace basin {
namespace {

std::string reason(int error) { return std::strerror(error); }

// Writes all of `data`, retrying short writes and EINTR. A write that makes no
// progress without an errno is reported as an I/O error.
void write_all(int fd, const void* data, std::size_t nbytes, const std::string& what, const std::string& path) {
  const char* bytes = static_cast<const char*>(data);
  while (nbytes > 0) {
    const ::ssize_t written = ::write(fd, bytes, nbytes);
    if (written < 0 && errno == EINTR) continue;
    BASIN_CHECK(written > 0, what, ": cannot write ", path, ": ", reason(written < 0 ? errno : EIO));
    bytes += written;
    nbytes -= static_cast<std::size_t>(written);
  }
}

// Makes a rename durable. Best effort: the new file is complete and in place,
// and some file systems refuse fsync on a directory.
void sync_parent_directory(const std::string& path) {
  const std::string::size_type slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

AtomicFile::AtomicFile(const std::string& path, std::string what)
    : path_(path), tmp_path_(path + ".tmp"), what_(std::move(what)) {
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  BASIN_CHECK(fd_ >= 0, what_, ": cannot write ", path_, ": cannot open ", tmp_path_, " for writing: ", reason(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

void AtomicFile::write(const void* data, std::size_t nbytes) { write_all(fd_, data, nbytes, what_, tmp_path_); }

void AtomicFile::commit() {
  // fsync before rename: otherwise a power loss can leave the new name
  // pointing at a file whose data never reached the disk.
  BASIN_CHECK(::fsync(fd_) == 0, what_, ": cannot flush ", tmp_path_, " to disk: ", reason(errno));
  const int fd = fd_;
  fd_ = -1;
  BASIN_CHECK(::close(fd) == 0, what_, ": cannot write ", tmp_path_, ": ", reason(errno));
  BASIN_CHECK(std::rename(tmp_path_.c_str(), path_.c_str()) == 0, what_, ": cannot rename ", tmp_path_, " to ",
              path_, ": ", reason(errno));
  committed_ = true;
  sync_parent_directory(path_);
}

void write_file_atomically(const std::string& path, std::string_view text, const std::string& what) {
  AtomicFile file(path, what);
  file.write(text);
  file.commit();
}

void append_to_file(const std::string& path, std::string_view text, const std::string& what) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  BASIN_CHECK(fd >= 0, what, ": cannot open ", path, " for appending: ", reason(errno));
  try {
    write_all(fd, text.data(), text.size(), what, path);
    BASIN_CHECK(::fsync(fd) == 0, what, ": cannot flush ", path, " to disk: ", reason(errno));
  } catch (...) {
    ::close(fd);
    throw;
  }
  BASIN_CHECK(::close(fd) == 0, what, ": cannot write ", path, ": ", reason(errno));
}

std::string read_whole_file(const std::string& path, const std::string& what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  BASIN_CHECK(fd >= 0, what, ": cannot open ", path, ": ", reason(errno));
  std::string bytes;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      BASIN_FAIL(what, ": cannot read ", path, ": ", reason(error));
    }
    bytes.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return bytes;
}

}  // namespace basin
