#!/usr/bin/python3
"""Writes core_softmax_ce.safetensors: PyTorch's softmax, log_softmax and
label-smoothed cross-entropy on one small batch of logits, in float64.

Run from anywhere with Debian's python3-torch:
    /usr/bin/python3 tests/reference/gen_core_fixtures.py
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_writer import write_safetensors  # noqa: E402

OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "core_softmax_ce.safetensors")


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
