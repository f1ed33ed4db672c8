// safetensors reader and writer.
//
// Layout: [u64 little-endian N][N bytes of JSON header][data]. The header maps
// each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, the
// offsets counting from the first byte after the header; an optional
// "__metadata__" entry maps strings to strings.
//
// Writing goes through AtomicFile (core/file_io.h): "<path>.tmp", flushed to
// disk, then renamed over the final path, so a trainer killed mid-save leaves
// the previous checkpoint intact. Reading
// checks every field before trusting it, because a checkpoint may be truncated
// or written by another program, and reads each tensor straight into its own
// storage so a large checkpoint is not held in memory twice. One reader serves
// files and bytes already in memory: it sees either through ByteSource.
#include "core/serialization.h"

#include "core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <vector>

namespace basin {
namespace {

// safetensors data is little-endian, and tensors are written and read as raw host bytes.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

using Json = nlohmann::json;
// The writer keeps the header in the order it was built (metadata first, then
// tensors by name) so the file reads the same way its data is laid out.
using OrderedJson = nlohmann::ordered_json;

constexpr const char* kMetadataKey = "__metadata__";

const char* safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int32: return "I32";
    case DType::Int64: return "I64";
    case DType::UInt8: return "U8";
  }
  return "?";
}

std::optional<DType> parse_dtype(const std::string& name) {
  if (name == "F32") return kFloat32;
  if (name == "F64") return kFloat64;
  if (name == "I32") return kInt32;
  if (name == "I64") return kInt64;
  if (name == "U8") return kUInt8;
  return std::nullopt;
}

std::string errno_text(int error) { return std::strerror(error); }

// ------------------------------------------------------------------ writing

void put_u64_le(std::uint64_t value, unsigned char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(value >> (8 * i));
}

// ------------------------------------------------------------------ reading

// What the reader reads from: a size, and bytes at absolute offsets. Reads
// past the end throw naming the source, though the reader checks every range
// against size() before it asks.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual std::uint64_t size() const = 0;
  virtual void read(std::uint64_t offset, void* out, std::size_t nbytes) const = 0;
};

// A read-only file with its size, read with pread at absolute offsets.
// O_NONBLOCK keeps open() from waiting for a writer when the path is a FIFO,
// which is then refused as not a regular file; it changes nothing for one.
class InputFile final : public ByteSource {
 public:
  explicit InputFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    BASIN_CHECK(fd_ >= 0, "load_safetensors: cannot open ", path, ": ", errno_text(errno));
    struct stat info {};
    if (::fstat(fd_, &info) != 0 || !S_ISREG(info.st_mode)) {
      ::close(fd_);
      BASIN_FAIL("load_safetensors: ", path, " is not a regular file");
    }
    size_ = static_cast<std::uint64_t>(info.st_size);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile() { ::close(fd_); }

  std::uint64_t size() const override { return size_; }

  void read(std::uint64_t offset, void* out, std::size_t nbytes) const override {
    char* bytes = static_cast<char*>(out);
    while (nbytes > 0) {
      const ::ssize_t got = ::pread(fd_, bytes, nbytes, static_cast<::off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      BASIN_CHECK(got > 0, "load_safetensors: reading ", path_, " failed at byte ", offset, ": ",
                  got < 0 ? errno_text(errno) : std::string("unexpected end of file"));
      bytes += got;
      offset += static_cast<std::uint64_t>(got);
      nbytes -= static_cast<std::size_t>(got);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// Bytes in memory, named for messages as a file would be by its path.
class MemoryBytes final : public ByteSource {
 public:
  MemoryBytes(std::span<const std::uint8_t> bytes, const std::string& name) : bytes_(bytes), name_(name) {}

  std::uint64_t size() const override { return bytes_.size(); }

  void read(std::uint64_t offset, void* out, std::size_t nbytes) const override {
    BASIN_CHECK(offset <= bytes_.size() && nbytes <= bytes_.size() - offset, "load_safetensors: reading ", name_,
                " failed at byte ", offset, ": unexpected end of file");
    if (nbytes > 0) std::memcpy(out, bytes_.data() + offset, nbytes);
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::string name_;
};

// A JSON value that must be a non-negative integer (a size or an offset).
// JSON numbers such as 2.0 or -1 are rejected rather than converted.
std::optional<std::uint64_t> as_unsigned(const Json& value) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  return std::nullopt;
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  std::uint64_t begin = 0, end = 0;
};

Entry parse_entry(const std::string& path, const std::string& name, const Json& value, std::uint64_t data_size) {
  const std::string where = "load_safetensors: " + path + ": tensor \"" + name + "\"";
  BASIN_CHECK(value.is_object(), where, " is not an object but ", value.type_name());

  Entry entry;
  entry.name = name;

  const auto dtype_it = value.find("dtype");
  BASIN_CHECK(dtype_it != value.end() && dtype_it->is_string(), where, " has no \"dtype\" string");
  const std::string dtype = dtype_it->get<std::string>();
  const std::optional<DType> parsed = parse_dtype(dtype);
  BASIN_CHECK(parsed.has_value(), where, " has unsupported dtype \"", dtype, "\" (basin reads F32, F64, I32, I64, U8)");
  entry.dtype = *parsed;

  const auto shape_it = value.find("shape");
  BASIN_CHECK(shape_it != value.end() && shape_it->is_array(), where, " has no \"shape\" array");
  // The element count is computed with an overflow check: a hostile shape must
  // not wrap around to a small number that happens to match the offsets. Zero
  // sizes are left out of the product so [2^62, 2^62, 0] is refused too (the
  // tensor's strides would overflow) rather than passing as empty.
  constexpr std::uint64_t kMaxCount = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::uint64_t count = 1;
  bool has_zero = false;
  for (const Json& size : *shape_it) {
    if (size.is_number_integer() && !size.is_number_unsigned()) {
      BASIN_FAIL(where, " has a negative size ", size.get<std::int64_t>(), " in shape ", shape_it->dump());
    }
    const std::optional<std::uint64_t> dim = as_unsigned(size);
    BASIN_CHECK(dim.has_value(), where, " has a shape entry that is not an integer: ", shape_it->dump());
    if (*dim == 0) {
      has_zero = true;
    } else {
      BASIN_CHECK(count <= kMaxCount / *dim, where, " has shape ", shape_it->dump(), " whose element count overflows");
      count *= *dim;
    }
    entry.shape.push_back(static_cast<std::int64_t>(*dim));  // *dim <= count <= INT64_MAX
  }
  const std::uint64_t numel = has_zero ? 0 : count;
  const std::uint64_t elem = dtype_size(entry.dtype);
  // numel <= data_size / elem also keeps numel * elem from overflowing.
  BASIN_CHECK(numel <= data_size / elem, where, " has shape ", shape_str(entry.shape), " (", numel, " ", dtype,
              " elements) that cannot fit in the file's ", data_size, "-byte data section; the file may be truncated");
  const std::uint64_t nbytes = numel * elem;

  const auto offsets_it = value.find("data_offsets");
  BASIN_CHECK(offsets_it != value.end() && offsets_it->is_array() && offsets_it->size() == 2, where,
              " has no \"data_offsets\" pair [begin, end]");
  const std::optional<std::uint64_t> begin = as_unsigned((*offsets_it)[0]);
  const std::optional<std::uint64_t> end = as_unsigned((*offsets_it)[1]);
  BASIN_CHECK(begin && end && *begin <= *end, where, " has data_offsets ", offsets_it->dump(),
              " that are not two non-negative integers with begin <= end");
  BASIN_CHECK(*end - *begin == nbytes, where, " has data_offsets ", offsets_it->dump(), " spanning ", *end - *begin,
              " bytes, but shape ", shape_str(entry.shape), " of ", dtype, " needs ", nbytes, " bytes");
  BASIN_CHECK(*end <= data_size, where, " has data_offsets ", offsets_it->dump(),
              " outside the data section, which is ", data_size, " bytes");
  entry.begin = *begin;
  entry.end = *end;
  return entry;
}

}  // namespace

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Host copies first: a device error or a bad tensor then fails before any
  // file exists. Each copy is cut from the graph so saving records nothing.
  std::vector<Tensor> host;
  host.reserve(tensors.size());
  OrderedJson header = OrderedJson::object();
  if (!metadata.empty()) {
    OrderedJson meta = OrderedJson::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header[kMetadataKey] = std::move(meta);
  }
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {  // std::map: sorted by name
    BASIN_CHECK(name != kMetadataKey, "save_safetensors: ", path, ": \"", kMetadataKey,
                "\" is reserved for metadata and cannot name a tensor");
    BASIN_CHECK(tensor.defined(), "save_safetensors: ", path, ": tensor \"", name, "\" is undefined");
    Tensor h = tensor.detach().to(Device::cpu()).contiguous();
    const std::uint64_t nbytes = static_cast<std::uint64_t>(h.numel()) * dtype_size(h.dtype());
    header[name] = {{"dtype", safetensors_dtype(h.dtype())},
                    {"shape", h.shape()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    host.push_back(std::move(h));
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    // dump() rejects names and metadata that are not valid UTF-8.
    BASIN_FAIL("save_safetensors: ", path, ": a tensor name or metadata string is not valid UTF-8 (", e.what(), ")");
  }
  // Padding to 8 bytes keeps the data section aligned for readers that map the file.
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char prefix[8];
  put_u64_le(text.size(), prefix);

  AtomicFile file(path, "save_safetensors");
  file.write(prefix, sizeof prefix);
  file.write(text.data(), text.size());
  for (const Tensor& h : host) {
    if (h.numel() > 0) file.write(h.data_ptr(), static_cast<std::size_t>(h.numel()) * dtype_size(h.dtype()));
  }
  file.commit();
}

namespace {

// The reader of both entry points; `path` names the source in every message.
TensorMap read_safetensors(const ByteSource& file, const std::string& path,
                           std::map<std::string, std::string>* metadata) {
  BASIN_CHECK(file.size() >= 8, "load_safetensors: ", path, " is ", file.size(),
              " bytes, shorter than the 8-byte header length; not a safetensors file");
  unsigned char prefix[8];
  file.read(0, prefix, sizeof prefix);
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | prefix[i];
  BASIN_CHECK(header_size <= file.size() - 8, "load_safetensors: ", path, " declares a ", header_size,
              "-byte header but the file has only ", file.size() - 8, " bytes after the length");
  const std::uint64_t data_start = 8 + header_size;
  const std::uint64_t data_size = file.size() - data_start;

  std::string text(static_cast<std::size_t>(header_size), '\0');
  file.read(8, text.data(), text.size());
  // JSON parsers disagree on repeated keys (nlohmann keeps the last), so a
  // header that names a tensor twice is ambiguous and refused. So is nesting
  // far deeper than any header needs (its values sit three levels down): the
  // messages print parts of the header, and printing a value nested 100,000
  // deep would overflow the stack.
  constexpr int kMaxDepth = 64;
  std::vector<std::set<std::string>> open_objects;
  std::string repeated;
  const auto track_keys = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) {
      BASIN_CHECK(depth < kMaxDepth, "load_safetensors: ", path, ": the header nests deeper than ", kMaxDepth,
                  " levels");
    }
    if (event == Json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == Json::parse_event_t::key && repeated.empty() &&
               !open_objects.back().insert(parsed.get<std::string>()).second) {
      repeated = parsed.get<std::string>();
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(text, track_keys);
  } catch (const nlohmann::json::exception& e) {
    BASIN_FAIL("load_safetensors: ", path, ": the header is not valid JSON (", e.what(), ")");
  }
  BASIN_CHECK(repeated.empty(), "load_safetensors: ", path, ": the header repeats the key \"", repeated, "\"");
  BASIN_CHECK(header.is_object(), "load_safetensors: ", path, ": the header is a JSON ", header.type_name(),
              ", not an object");

  std::vector<Entry> entries;
  std::map<std::string, std::string> meta;
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      BASIN_CHECK(value.is_object(), "load_safetensors: ", path, ": \"", kMetadataKey, "\" is not an object");
      for (const auto& [key, item] : value.items()) {
        BASIN_CHECK(item.is_string(), "load_safetensors: ", path, ": metadata \"", key,
                    "\" is not a string but ", item.type_name());
        meta[key] = item.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, name, value, data_size));
  }

  // Every entry is checked before any tensor is allocated or any data read.
  TensorMap out;
  for (const Entry& entry : entries) {
    Tensor t = empty(entry.shape, TensorOptions(entry.dtype));
    if (entry.end > entry.begin) file.read(data_start + entry.begin, t.data_ptr(), entry.end - entry.begin);
    out.emplace(entry.name, std::move(t));
  }
  if (metadata != nullptr) *metadata = std::move(meta);
  return out;
}

}  // namespace

TensorMap load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  const InputFile file(path);
  return read_safetensors(file, path, metadata);
}

TensorMap load_safetensors_from_bytes(std::span<const std::uint8_t> bytes, const std::string& name,
                                      std::map<std::string, std::string>* metadata) {
  const MemoryBytes source(bytes, name);
  return read_safetensors(source, name, metadata);
}

}  // namespace basin
