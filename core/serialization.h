// safetensors files (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape
// and byte range, then the raw bytes. PyTorch reads and writes the same
// format, so basin checkpoints and test fixtures move between the two.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "core/tensor.h"

namespace basin {

using TensorMap = std::map<std::string, Tensor>;

// Writes the tensors (any device and layout: copied to the host, row-major, in
// name order) and string metadata. The file appears atomically: it is written
// to "<path>.tmp", flushed, then renamed over path, so an interrupted save
// leaves the previous file intact. Failures throw basin::Error naming the path
// and remove the temporary file. Supports float32/64, int32/64 and uint8
// (F32, F64, I32, I64, U8).
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// Reads every tensor onto the CPU as a contiguous tensor with its own storage;
// when metadata is given it is replaced by the file's "__metadata__" (empty if
// none). The whole header is validated before any data is read; errors name the
// file and what is wrong with it (truncation, bad JSON, unknown dtype, offsets
// that disagree with the shape or leave the file).
TensorMap load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);
// The same reader on a file's bytes already in memory (a checkpoint received
// over the network, a test's or a fuzzer's input): the same checks and
// messages, with `name` where the path would be. The tensors are copies; the
// bytes need only outlive the call.
TensorMap load_safetensors_from_bytes(std::span<const std::uint8_t> bytes, const std::string& name,
                                      std::map<std::string, std::string>* metadata = nullptr);

}  // namespace basin
