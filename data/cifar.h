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

#include <string>

#include "data/dataset.h"

namespace basin::data {

// images uint8 [50,000 or 10,000, 3, 32, 32], 10 classes; mean/std of the training set.
Dataset load_cifar10(const std::string& dir, bool train);

// fine = true: the 100 classes; false: the 20 superclasses. Class names come
// from fine_label_names.txt / coarse_label_names.txt when they are beside the data.
Dataset load_cifar100(const std::string& dir, bool train, bool fine = true);

}  // namespace basin::data
