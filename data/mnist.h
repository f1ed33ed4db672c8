// MNIST and Fashion-MNIST from the official idx files
// (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte).
//
// idx: a big-endian header, then raw bytes. Images: magic 0x00000803 (unsigned
// bytes, 3 dimensions), count, rows, cols, then count * rows * cols pixels.
// Labels: magic 0x00000801, count, then count label bytes.
//
// The files must be uncompressed: basin does not link zlib, so the
// distributed .gz files need `gunzip -k *.gz` first (an error says so when
// only the .gz is there). Headers, sizes, the image/label counts and every
// label are checked, and an error names the file and what was expected.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "data/dataset.h"

namespace basin::data {

// images uint8 [N, 1, rows, cols] (60,000 / 10,000 of 28x28 in the official files), 10 classes.
Dataset load_mnist(const std::string& dir, bool train);
// The same format with Fashion-MNIST's names and statistics.
Dataset load_fashion_mnist(const std::string& dir, bool train);

namespace detail {

// The decoding of an images file and a labels file, apart from reading them:
// the loaders above read the two files and decode them here, and the tests and
// the fuzz harness (tests/fuzz/fuzz_mnist.cpp) decode bytes held in memory.
// Every check and message is the loaders': `dataset` ("MNIST") and the two
// names (the files' paths) say where the problem is. The sizes the headers
// declare are checked against the bytes before anything is allocated. Gives
// images [N, 1, rows, cols], labels and num_classes 10, named `dataset`, with
// no statistics or class names.
Dataset decode_mnist(const std::string& dataset, std::span<const std::uint8_t> images, const std::string& images_name,
                     std::span<const std::uint8_t> labels, const std::string& labels_name);

}  // namespace detail

}  // namespace basin::data
