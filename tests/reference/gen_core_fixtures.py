#!/usr/bin/python3
"""Writes core_softmax_ce.safetensors: PyTorch's softmax, log_softmax and
label-smoothed cross-entropy on one small batch of logits, in float64.

Run from anywhere with Debian's python3-torch:
    /usr/bin/python3 tests/reference/gen_core_fixtures.py

The safetensors format is written by hand (an 8-byte little-endian header
length, a JSON header padded with spaces to a multiple of 8, then the raw
little-endian bytes) so that the script needs nothing beyond torch.
"""

import json
import os
import struct

import torch

OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "core_softmax_ce.safetensors")

DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.int64: "I64",
    torch.int32: "I32",
}


def write_safetensors(path, tensors, metadata):
    # numpy writes native byte order; refuse to write a wrong file on a big-endian host.
    assert struct.pack("=H", 1) == struct.pack("<H", 1), "big-endian host"
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.numpy().tobytes()
        header[name] = {
            "dtype": DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def main():
    torch.manual_seed(20240601)
    rows, classes = 7, 11
    logits = torch.randn(rows, classes, dtype=torch.float64) * 3.0
    labels = torch.randint(0, classes, (rows,), dtype=torch.int64)
    # Large logits exercise the max subtraction: a confident correct row, a row
    # whose label logit is far below the rest, and a row with a large negative outlier.
    logits[0, labels[0]] = 30.0
    logits[1, labels[1]] = -30.0
    logits[1, (labels[1] + 1) % classes] = 30.0
    logits[2, 3] = -30.0
    logits[4, 5] = 25.0

    tensors = {"logits": logits, "labels": labels}
    for dim in (0, 1):
        tensors[f"softmax_dim{dim}"] = torch.softmax(logits, dim=dim)
        tensors[f"log_softmax_dim{dim}"] = torch.log_softmax(logits, dim=dim)

    # Gradients of the softmax family for one upstream gradient, over dim 1.
    upstream = torch.randn(rows, classes, dtype=torch.float64)
    tensors["upstream"] = upstream
    for name, fn in (("softmax", torch.softmax), ("log_softmax", torch.log_softmax)):
        x = logits.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(x, dim=1), x, upstream)
        tensors[f"{name}_dim1_grad"] = grad

    for smoothing, tag in ((0.0, "0.0"), (0.1, "0.1")):
        for reduction in ("mean", "sum", "none"):
            loss = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing, reduction=reduction)
            tensors[f"ce_ls{tag}_{reduction}"] = loss
        x = logits.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(x, labels, label_smoothing=smoothing, reduction="mean")
        (grad,) = torch.autograd.grad(loss, x)
        tensors[f"ce_ls{tag}_grad_mean"] = grad

    metadata = {"generator": "tests/reference/gen_core_fixtures.py", "torch": torch.__version__}
    write_safetensors(OUTPUT, tensors, metadata)
    print(f"wrote {OUTPUT} ({os.path.getsize(OUTPUT)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
