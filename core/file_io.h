// Writing files so that a failure is never silent and a crash never leaves a
// half-written file under the final name.
//
// AtomicFile writes "<path>.tmp", flushes it to disk and renames it over
// path: rename() within one directory is atomic on POSIX, so a process killed
// at any moment leaves either the old file or the new one. Every write, flush,
// close and rename is checked; a failure throws basin::Error naming the file
// and the reason (strerror: "No space left on device", "Permission denied")
// and removes the temporary file. append_to_file does the same checking for a
// log that grows by whole lines.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace basin {

class AtomicFile {
 public:
  // `what` starts every error message ("save_safetensors", "basin-train").
  AtomicFile(const std::string& path, std::string what);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  // Without a successful commit(): closes and removes the temporary file.
  ~AtomicFile();

  void write(const void* data, std::size_t nbytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // fsync, close, rename over the final path, then fsync the folder.
  void commit();

 private:
  std::string path_, tmp_path_, what_;
  int fd_ = -1;
  bool committed_ = false;
};

// Replaces path's contents with `text`, atomically (AtomicFile).
void write_file_atomically(const std::string& path, std::string_view text, const std::string& what);

// Appends `text` to path (created when missing) and flushes it to disk.
void append_to_file(const std::string& path, std::string_view text, const std::string& what);

// The whole file's bytes; an error names `what`, the file and the reason.
std::string read_whole_file(const std::string& path, const std::string& what);

}  // namespace basin
