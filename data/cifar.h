// CIFAR-10 and CIFAR-100 from their official binary versions
// (https://www.cs.toronto.edu/~kriz/cifar.html; scripts/download-cifar.sh
// fetches and checks them).
//
//   CIFAR-10:  data_batch_1.bin .. data_batch_5.bin (train), test_batch.bin;
//              10,000 records each of 1 label byte + 3,072 pixel bytes.
//   CIFAR-100: train.bin (50,000 records), test.bin (10,000); a record is a
//              coarse label byte (20 superclasses), a fine label byte (100
//              classes), then 3,072 pixel bytes.
//
// Pixels are planar RGB 32x32 (1,024 red bytes, then green, then blue), which
// is already the [C, H, W] layout, so a record's pixels are copied as they are.
//
// `dir` is the folder holding the files, or a folder holding the archive's
// own cifar-10-batches-bin/ or cifar-100-binary/ (as the download script
// leaves it). Every file is checked (present, exact size, labels in range)
// before anything is kept, and an error names the file and what was expected.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "data/dataset.h"

namespace basin::data {

// images uint8 [50,000 or 10,000, 3, 32, 32], 10 classes; mean/std of the training set.
Dataset load_cifar10(const std::string& dir, bool train);

// fine = true: the 100 classes; false: the 20 superclasses. Class names come
// from fine_label_names.txt / coarse_label_names.txt when they are beside the data.
Dataset load_cifar100(const std::string& dir, bool train, bool fine = true);

namespace detail {

// The decoding of one file's records, apart from reading it: the loaders above
// read each file and decode it here, and the tests and the fuzz harness
// (tests/fuzz/fuzz_cifar.cpp) decode bytes they hold in memory.
enum class CifarLayout {
  cifar10,          // 1 label byte (10 classes), 3,072 pixel bytes
  cifar100_fine,    // coarse byte, fine byte (100 classes: the label), pixels
  cifar100_coarse,  // coarse byte (20 superclasses: the label), fine byte, pixels
};

// Bytes per record: 3,073 for CIFAR-10, 3,074 for CIFAR-100.
std::int64_t cifar_record_bytes(CifarLayout layout);

// One file's bytes, which must be exactly `records` records, as a Dataset of
// that many images [records, 3, 32, 32] with their labels and num_classes
// (no name, statistics or class names). `file` names the file in the errors,
// which are the loaders' own: a size that is not records x record bytes, a
// label out of range. The size is checked before anything is allocated.
Dataset decode_cifar(std::span<const std::uint8_t> bytes, CifarLayout layout, std::int64_t records,
                     const std::string& file);

}  // namespace detail

}  // namespace basin::data
