// Dataset: a labelled image set held in host memory as it came from disk.
//
// Images stay uint8 [N, C, H, W] (a quarter of the bytes of float32): the
// conversion to normalized float happens per batch, in the augmentation
// kernel (data/augment.h), on whichever device trains. The loaders in
// data/cifar.h and data/mnist.h fill one of these; a test can build one by hand.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace basin::data {

struct Dataset {
  std::string name;                  // "CIFAR-10 train"
  Tensor images;                     // uint8 [N, C, H, W], CPU, contiguous
  Tensor labels;                     // int64 [N], CPU, each in [0, num_classes)
  std::int64_t num_classes = 0;
  // Per-channel mean and standard deviation of the dataset's TRAINING split,
  // with pixels scaled to [0, 1]; a test split carries its training split's
  // values, since that is what a model is normalized with.
  std::vector<double> mean, stddev;
  std::vector<std::string> classes;  // class names, when known (else empty)

  std::int64_t size() const { return images.defined() ? images.size(0) : 0; }
  std::int64_t channels() const { return images.size(1); }
  std::int64_t height() const { return images.size(2); }
  std::int64_t width() const { return images.size(3); }

  // The first n records as views (no copy): "CIFAR-10 train (first 5,000)".
  // The official files are stored in random order, so the head is a fair
  // sample of every class, and it is the same whatever the training seed.
  Dataset head(std::int64_t n) const;

  // Throws basin::Error naming the dataset and the broken invariant: shapes,
  // dtypes, device, labels in range, one mean and std per channel, std > 0.
  void validate() const;
};

// Per-channel mean and population standard deviation of uint8 images
// [N, C, H, W], pixels scaled to [0, 1] (exact integer sums, so the result
// does not depend on summation order).
struct ChannelStats {
  std::vector<double> mean, stddev;
};
ChannelStats channel_stats(const Tensor& images);

// How many records carry each label: counts[k] for k in [0, num_classes).
std::vector<std::int64_t> class_counts(const Dataset& dataset);

// Label noise, the experiment of the SAM paper (Foret et al. 2020, section 3.3):
// exactly round(fraction * N) records, chosen at random, get a label drawn
// uniformly from the num_classes - 1 OTHER classes (never their own). Images
// are shared with `dataset` (views, no copy); the labels are a new tensor.
//
// Reproducible from (labels, fraction, seed) alone, on any machine: the draws
// are Philox (core/random.h) under a key derived from `seed` (so a caller may
// pass its training seed: the draws stay apart from the default generator's
// and the loader's, which key by the seed itself), and nothing global is read
// or advanced: weight initialization and data order are the same as without
// noise. The records are the first k of a partial Fisher-Yates shuffle of
// 0..N-1 (counters from 0); the record chosen j-th draws its new class at
// counter 2^62 + j. So at one seed, a smaller fraction flips a subset of the
// records a larger one flips, with the same new labels.
//
// Throws basin::Error naming the dataset and the value: a fraction outside
// [0, 1) ("the label-noise fraction must be in [0, 1), got 1.5"), fewer than
// two classes when there is noise to add, a label out of range.
struct LabelNoise {
  Dataset dataset;                     // named "<name> (20% noisy labels)"; unchanged when fraction is 0
  std::vector<std::int64_t> flipped;   // the records whose label was replaced, ascending
};
LabelNoise with_label_noise(const Dataset& dataset, double fraction, std::uint64_t seed);

namespace detail {
// 30730000 -> "30,730,000": sizes in error messages read at a glance.
std::string with_commas(std::int64_t value);
// Whether a data file is there: false when nothing is at `path` (the caller
// says how to get it). Throws naming the dataset and the path when something
// is there that cannot be read as a file: a directory ("is a directory, not a
// file"), a FIFO, socket or device ("is not a regular file"), or a file that
// cannot be opened ("cannot open <path>: Permission denied").
bool data_file_present(const std::string& dataset, const std::string& path);
// Reads a whole file; throws naming the dataset and the path when it cannot,
// with the same messages as data_file_present.
std::vector<std::uint8_t> read_file(const std::string& dataset, const std::string& path);
}  // namespace detail

}  // namespace basin::data
