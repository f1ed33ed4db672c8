// Kernel names and static shared memory sizes, read from the program's own
// ELF symbol table.
//
// nvcc knows how much static __shared__ memory a kernel declares and refuses
// to build one over the limit. The emulator compiles a __shared__ array as a
// function-local static, and the compiler names such a static after its
// function: the array `partial` of `sum_rows_kernel<float>` is the local
// object _ZZ<the kernel's mangled name without _Z>E7partial. Summing the sizes
// of the objects with that prefix gives the kernel's static shared memory,
// which the launch checks against the 48 KiB a block may have. The same table
// names the kernel in error messages.
//
// A binary without a symbol table (stripped) yields no name and 0 bytes: the
// check is then skipped, and docs/emulator.md says so.
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/cuda/emulator/emulator.h"

namespace basin::emulator {

namespace {

struct Function {
  std::uint64_t address = 0;  // relative to the module's load address
  std::uint64_t size = 0;
  std::string name;
};

struct Module {
  std::vector<Function> functions;                   // sorted by address
  std::map<std::string, std::uint64_t> local_objects;  // "_ZZ..." function-local statics and their sizes
};

// A read-only view of a whole file; empty when it cannot be mapped.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat info {};
    if (fstat(fd, &info) == 0 && info.st_size > 0) {
      void* p = mmap(nullptr, static_cast<std::size_t>(info.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        data_ = static_cast<const char*>(p);
        size_ = static_cast<std::size_t>(info.st_size);
      }
    }
    close(fd);
  }
  ~MappedFile() {
    if (data_ != nullptr) munmap(const_cast<char*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const char* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

// Reads the .symtab of an ELF64 file; an unreadable file gives an empty
// module. Mapped, not read: only the symbol and string tables are touched,
// not the code and debug information around them.
Module read_module(const std::string& path) {
  Module module;
  const MappedFile file(path);
  const char* bytes = file.data();
  if (file.size() < sizeof(Elf64_Ehdr)) return module;
  Elf64_Ehdr header;
  std::memcpy(&header, bytes, sizeof header);
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64) return module;
  const auto section = [&](std::size_t i) {
    Elf64_Shdr s;
    std::memcpy(&s, bytes + header.e_shoff + i * header.e_shentsize, sizeof s);
    return s;
  };
  if (header.e_shoff == 0 || header.e_shoff + std::size_t{header.e_shnum} * header.e_shentsize > file.size()) {
    return module;
  }
  for (std::size_t i = 0; i < header.e_shnum; ++i) {
    const Elf64_Shdr symbols = section(i);
    if (symbols.sh_type != SHT_SYMTAB || symbols.sh_link >= header.e_shnum) continue;
    const Elf64_Shdr strings = section(symbols.sh_link);
    if (symbols.sh_offset + symbols.sh_size > file.size() || strings.sh_offset + strings.sh_size > file.size()) {
      continue;
    }
    const std::size_t count = symbols.sh_size / sizeof(Elf64_Sym);
    for (std::size_t k = 0; k < count; ++k) {
      Elf64_Sym sym;
      std::memcpy(&sym, bytes + symbols.sh_offset + k * sizeof(Elf64_Sym), sizeof sym);
      if (sym.st_name >= strings.sh_size) continue;
      const char* name = bytes + strings.sh_offset + sym.st_name;
      const std::size_t length = strnlen(name, strings.sh_size - sym.st_name);
      const int type = ELF64_ST_TYPE(sym.st_info);
      if (type == STT_FUNC && sym.st_size > 0) {
        module.functions.push_back({sym.st_value, sym.st_size, std::string(name, length)});
      } else if (type == STT_OBJECT && length > 3 && std::strncmp(name, "_ZZ", 3) == 0) {
        module.local_objects[std::string(name, length)] = sym.st_size;
      }
    }
  }
  std::sort(module.functions.begin(), module.functions.end(),
            [](const Function& a, const Function& b) { return a.address < b.address; });
  return module;
}

struct Found {
  std::string path;
  std::uintptr_t base = 0;
};

// The loaded module (the program or a shared library) that holds `address`.
Found module_of(const void* address) {
  Found found;
  struct Search {
    std::uintptr_t address;
    Found* found;
  } search{reinterpret_cast<std::uintptr_t>(address), &found};
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        auto& s = *static_cast<Search*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& segment = info->dlpi_phdr[i];
          if (segment.p_type != PT_LOAD) continue;
          const std::uintptr_t begin = info->dlpi_addr + segment.p_vaddr;
          if (s.address >= begin && s.address < begin + segment.p_memsz) {
            const char* name = info->dlpi_name;
            s.found->path = name != nullptr && *name != '\0' ? name : "/proc/self/exe";
            s.found->base = info->dlpi_addr;
            return 1;
          }
        }
        return 0;
      },
      &search);
  return found;
}

struct KernelInfo {
  std::string symbol;
  std::size_t shared_bytes = 0;
};

std::mutex& cache_mutex() {
  static std::mutex mutex;
  return mutex;
}

const KernelInfo& info_of(const void* kernel) {
  static std::map<const void*, KernelInfo> kernels;
  static std::map<std::string, Module> modules;
  std::lock_guard<std::mutex> lock(cache_mutex());
  auto known = kernels.find(kernel);
  if (known != kernels.end()) return known->second;

  KernelInfo info;
  const Found where = module_of(kernel);
  if (!where.path.empty()) {
    auto loaded = modules.find(where.path);
    if (loaded == modules.end()) loaded = modules.emplace(where.path, read_module(where.path)).first;
    const Module& module = loaded->second;
    const std::uint64_t relative = reinterpret_cast<std::uintptr_t>(kernel) - where.base;
    auto after = std::upper_bound(module.functions.begin(), module.functions.end(), relative,
                                  [](std::uint64_t a, const Function& f) { return a < f.address; });
    if (after != module.functions.begin()) {
      const Function& f = *std::prev(after);
      if (relative < f.address + f.size) info.symbol = f.name;
    }
    if (info.symbol.size() > 2 && info.symbol.compare(0, 2, "_Z") == 0) {
      const std::string prefix = "_ZZ" + info.symbol.substr(2) + "E";
      for (auto it = module.local_objects.lower_bound(prefix);
           it != module.local_objects.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
        info.shared_bytes += it->second;
      }
    }
  }
  return kernels.emplace(kernel, std::move(info)).first->second;
}

}  // namespace

std::string kernel_symbol(const void* kernel) { return info_of(kernel).symbol; }

std::size_t static_shared_bytes(const void* kernel) { return info_of(kernel).shared_bytes; }

}  // namespace basin::emulator
