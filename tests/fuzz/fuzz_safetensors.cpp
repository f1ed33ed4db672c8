// Fuzz target: the safetensors reader on arbitrary bytes
// (load_safetensors_from_bytes, the same checks as load_safetensors on a file).
//
// A basin::Error is the reader's answer to a bad file; anything else (a
// crash, a sanitizer report, another exception, a hang, an allocation beyond
// the fuzzer's limit) is a bug. A file that loads must give tensors that
// hold what its header promised.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <span>
#include <string>

#include "core/error.h"
#include "core/serialization.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  basin::TensorMap tensors;
  std::map<std::string, std::string> metadata;
  try {
    tensors = basin::load_safetensors_from_bytes(std::span<const std::uint8_t>(data, size), "fuzz input", &metadata);
  } catch (const basin::Error&) {
    return 0;
  }
  // What loads is what the reader promises (outside the try: a failure here is a bug).
  std::size_t bytes = 0;
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined() || !tensor.is_contiguous() || !tensor.device().is_cpu()) std::abort();
    bytes += static_cast<std::size_t>(tensor.numel()) * basin::dtype_size(tensor.dtype());
  }
  // Each tensor's bytes lie within the input (tensors may share them), so
  // together they are at most the input's size times their count.
  if (!tensors.empty() && bytes > size * tensors.size()) std::abort();
  return 0;
}
