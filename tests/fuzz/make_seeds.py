#!/usr/bin/python3
"""Writes the seed corpora of the fuzz harnesses in tests/fuzz/corpus/<target>/.

    /usr/bin/python3 tests/fuzz/make_seeds.py

Standard library only. Each seed is small and either valid or wrong in one
way, so the fuzzer starts from inputs that reach every check of the reader.
The files are written in the harnesses' input formats (see fuzz_<target>.cpp):

  safetensors  a safetensors file
  state_dict   a safetensors file for the harness's model: Conv2d(1, 2, 3),
               BatchNorm2d(2), Flatten, Linear(8, 3) in a Sequential
  cifar        one selector byte (value % 3: CIFAR-10, CIFAR-100 fine, coarse),
               then one file's records
  mnist        a 2-byte big-endian length n, n bytes of idx images file, then
               the idx labels file

Existing files of the same names are replaced; other files in the folders
(inputs saved from a fuzzer's finding) are left alone. Running it twice
writes the same bytes.
"""

import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

FORMATS = {"F32": "<f", "F64": "<d", "I32": "<i", "I64": "<q", "U8": "<B"}


def safetensors(tensors, metadata=None, pad=True):
    """A safetensors file: tensors is a list of (name, dtype, shape, values), stored in that order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    data = b""
    for name, dtype, shape, values in tensors:
        blob = b"".join(struct.pack(FORMATS[dtype], v) for v in values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    return raw_safetensors(json.dumps(header, separators=(",", ":")), data, pad=pad)


def raw_safetensors(header_text, data, declared=None, pad=True):
    """A safetensors file from header text as given (it may be wrong) and the data bytes."""
    text = header_text.encode("utf-8")
    if pad:
        text += b" " * (-len(text) % 8)
    size = len(text) if declared is None else declared
    return struct.pack("<Q", size) + text + data


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- safetensors


def safetensors_seeds():
    write("safetensors", "every_dtype", safetensors(
        [
            ("f32", "F32", [2, 3], [0.5, -1.0, 2.0, float("inf"), float("nan"), -0.0]),
            ("f64", "F64", [2], [1e300, -3.25]),
            ("i32", "I32", [3], [-7, 0, 2147483647]),
            ("i64", "I64", [1, 2], [-(2**63), 2**62 + 1]),
            ("u8", "U8", [4], [0, 1, 128, 255]),
            ("scalar", "F32", [], [7.0]),
            ("empty", "F32", [0, 3], []),
        ],
        metadata={"format": "pt", "epoch": "3"}))
    write("safetensors", "empty_header", raw_safetensors("{}", b""))
    # A zero size after the first dimension: the tensor still reads as
    # contiguous (it did not, before the fix in Tensor::is_contiguous).
    write("safetensors", "empty_inner_dim", safetensors([("x", "F64", [31433, 67296, 4294967296, 0], [])]))
    write("safetensors", "unpadded", safetensors([("x", "U8", [3], [1, 2, 3])], pad=False))
    # Two tensors reading the same bytes: allowed, each gets its own copy.
    write("safetensors", "shared_bytes", raw_safetensors(
        '{"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},'
        '"b":{"dtype":"U8","shape":[2,4],"data_offsets":[0,8]}}', bytes(range(8))))
    # One thing wrong in each.
    write("safetensors", "truncated_data", raw_safetensors(
        '{"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}', bytes(20)))
    write("safetensors", "header_too_long", raw_safetensors(
        '{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\x01", declared=1 << 40))
    write("safetensors", "unknown_dtype", raw_safetensors(
        '{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}', bytes(4)))
    write("safetensors", "repeated_key", raw_safetensors(
        '{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
        b"\x05"))
    write("safetensors", "overflowing_shape", raw_safetensors(
        '{"x":{"dtype":"F64","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}', b""))
    write("safetensors", "nested_shape", raw_safetensors(
        '{"x":{"dtype":"U8","shape":[[[[1]]]],"data_offsets":[0,1]}}', b"\x00"))
    # Nesting past the reader's limit of 64 levels (printing a shape nested
    # 100,000 deep in an error message overflowed the stack).
    write("safetensors", "too_deep", raw_safetensors(
        '{"x":{"dtype":"U8","shape":' + "[" * 70 + "1" + "]" * 70 + ',"data_offsets":[0,1]}}', b"\x00"))
    write("safetensors", "bad_metadata", raw_safetensors(
        '{"__metadata__":{"epoch":3},"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\x00"))


# ---------------------------------------------------------------- state_dict

# The harness's model, in state_dict order: (name, dtype, shape).
MODEL = [
    ("0.weight", "F32", [2, 1, 3, 3]),
    ("0.bias", "F32", [2]),
    ("1.weight", "F32", [2]),
    ("1.bias", "F32", [2]),
    ("1.running_mean", "F32", [2]),
    ("1.running_var", "F32", [2]),
    ("1.num_batches_tracked", "I64", []),
    ("3.weight", "F32", [3, 8]),
    ("3.bias", "F32", [3]),
]


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def model_state(batches=5, change=None, drop=None, extra=None):
    """The model's state with small distinct values; change maps a name to (dtype, shape)."""
    tensors = []
    for i, (name, dtype, shape) in enumerate(MODEL):
        if name == drop:
            continue
        if change and name in change:
            dtype, shape = change[name]
        count = numel(shape)
        if name == "1.num_batches_tracked":
            values = [batches] * count
        elif name == "1.running_var":
            values = [1.0 + 0.25 * k for k in range(count)]
        elif dtype in ("I32", "I64", "U8"):
            values = [k % 7 for k in range(count)]
        else:
            values = [((k * 7 + i) % 11 - 5) / 8.0 for k in range(count)]
        tensors.append((name, dtype, shape, values))
    if extra:
        tensors.append(extra)
    return safetensors(tensors, metadata={"epoch": "1"})


def state_dict_seeds():
    write("state_dict", "valid", model_state())
    write("state_dict", "valid_fresh_batchnorm", model_state(batches=0))
    # Batch counts at int64's ends: 2^63 - 1 was read through a double
    # (undefined behaviour) before the fix in BatchNorm2d::forward.
    write("state_dict", "batch_count_max", model_state(batches=2**63 - 1))
    write("state_dict", "batch_count_min", model_state(batches=-(2**63)))
    write("state_dict", "missing_buffer", model_state(drop="1.num_batches_tracked"))
    write("state_dict", "unexpected_tensor", model_state(extra=("optimizer.step", "I64", [], [10])))
    write("state_dict", "wrong_shape", model_state(change={"3.weight": ("F32", [8, 3])}))
    write("state_dict", "wrong_dtype_count", model_state(change={"1.num_batches_tracked": ("F32", [])}))
    write("state_dict", "wrong_dtype_weight", model_state(change={"0.weight": ("F64", [2, 1, 3, 3])}))


# ---------------------------------------------------------------- cifar

PIXELS = 3 * 32 * 32


def cifar_record(labels, seed):
    return bytes(labels) + bytes((seed + 3 * k) % 256 for k in range(PIXELS))


def cifar_seeds():
    write("cifar", "cifar10_one_record", b"\x00" + cifar_record([3], 1))
    write("cifar", "cifar100_fine_two_records", b"\x01" + cifar_record([13, 42], 2) + cifar_record([19, 99], 3))
    write("cifar", "cifar100_coarse_label_20", b"\x02" + cifar_record([20, 5], 4))
    write("cifar", "cifar10_short", b"\x00" + b"\x07" * 100)


# ---------------------------------------------------------------- mnist


def idx_images(count, rows, cols, pixels, magic=0x00000803):
    return struct.pack(">IIII", magic, count, rows, cols) + bytes(pixels)


def idx_labels(labels, count=None, magic=0x00000801):
    return struct.pack(">II", magic, len(labels) if count is None else count) + bytes(labels)


def mnist_input(images, labels):
    return struct.pack(">H", len(images)) + images + labels


def mnist_seeds():
    pixels = [(k * 37) % 256 for k in range(3 * 2 * 2)]
    write("mnist", "valid_3x2x2", mnist_input(idx_images(3, 2, 2, pixels), idx_labels([3, 1, 4])))
    write("mnist", "valid_28x28", mnist_input(idx_images(1, 28, 28, [k % 256 for k in range(784)]), idx_labels([9])))
    write("mnist", "labels_where_images_belong", mnist_input(idx_labels([1, 2, 3, 4, 5, 6, 7, 8]), idx_labels([1])))
    write("mnist", "count_mismatch", mnist_input(idx_images(3, 2, 2, pixels), idx_labels([1, 2])))
    write("mnist", "label_10", mnist_input(idx_images(3, 2, 2, pixels), idx_labels([1, 10, 3])))
    write("mnist", "short_images", mnist_input(idx_images(3, 2, 2, pixels[:-1]), idx_labels([1, 2, 3])))
    # A header that asks for 2^32 - 1 images of 4096 x 4096 pixels, in a few bytes.
    write("mnist", "huge_header", mnist_input(idx_images(0xFFFFFFFF, 4096, 4096, pixels),
                                              idx_labels([1], count=0xFFFFFFFF)))
    write("mnist", "gzipped", mnist_input(b"\x1f\x8b\x08\x00" + bytes(12), idx_labels([0])))


def main():
    safetensors_seeds()
    state_dict_seeds()
    cifar_seeds()
    mnist_seeds()
    for target in sorted(os.listdir(CORPUS)):
        folder = os.path.join(CORPUS, target)
        files = os.listdir(folder)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in files)
        print(f"{os.path.relpath(folder)}: {len(files)} files, {size} bytes")


if __name__ == "__main__":
    main()
