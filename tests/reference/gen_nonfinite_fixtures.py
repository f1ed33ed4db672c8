#!/usr/bin/python3
"""Writes core_nonfinite.safetensors: what PyTorch's ops give for NaN and
infinite inputs, forward and backward, in float64. tests/core/test_nonfinite.cpp
holds basin's ops to the same results on every device.

Run from anywhere with Debian's python3-torch:
    /usr/bin/python3 tests/reference/gen_nonfinite_fixtures.py
"""

import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_writer import write_safetensors  # noqa: E402

OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "core_nonfinite.safetensors")

NAN, INF = math.nan, math.inf

# Every special value against ordinary ones, and against each other.
X = torch.tensor([NAN, INF, -INF, 0.0, 1.5, -2.0, NAN, INF, -INF], dtype=torch.float64)
Y = torch.tensor([1.0, 2.0, -3.0, NAN, INF, -INF, INF, INF, NAN], dtype=torch.float64)

# Rows for the ops that reduce along a dimension: one special value per row.
ROWS = torch.tensor(
    [
        [NAN, 1.0, 2.0],
        [INF, 1.0, 2.0],
        [-INF, 1.0, 2.0],
        [INF, -INF, 2.0],
        [1.0, 2.0, 3.0],
    ],
    dtype=torch.float64,
)
LABELS = torch.tensor([0, 1, 2, 0, 2], dtype=torch.int64)

UNARY = {
    "neg": torch.neg,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "sign": torch.sign,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "pow2": lambda x: torch.pow(x, 2.0),
    "pow_half": lambda x: torch.pow(x, 0.5),
    "clamp": lambda x: torch.clamp(x, -1.0, 1.0),
    "add_scalar": lambda x: x + 1.0,
    "mul_scalar": lambda x: x * 2.0,
}
NOT_DIFFERENTIABLE = {"sign"}

BINARY = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
}

ROW_OPS = {
    "sum_rows": lambda r: r.sum(dim=1),
    "mean_rows": lambda r: r.mean(dim=1),
    "max_rows": lambda r: r.amax(dim=1),
    "softmax": lambda r: torch.softmax(r, dim=1),
    "log_softmax": lambda r: torch.log_softmax(r, dim=1),
    "cross_entropy": lambda r: torch.nn.functional.cross_entropy(r, LABELS, reduction="none"),
}
ROW_GRADIENTS = {"sum_rows", "mean_rows", "softmax", "log_softmax", "cross_entropy"}


def gradient(fn, *inputs):
    """The gradient of sum(fn(inputs) * upstream) for each input, upstream = 1."""
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    out = fn(*leaves)
    return torch.autograd.grad(out, leaves, torch.ones_like(out))


def main():
    tensors = {"x": X, "y": Y, "rows": ROWS, "labels": LABELS}
    for name, fn in UNARY.items():
        tensors[f"{name}.out"] = fn(X)
        if name not in NOT_DIFFERENTIABLE:
            (tensors[f"{name}.grad"],) = gradient(fn, X)
    for name, fn in BINARY.items():
        tensors[f"{name}.out"] = fn(X, Y)
        tensors[f"{name}.grad_a"], tensors[f"{name}.grad_b"] = gradient(fn, X, Y)
    for name, fn in ROW_OPS.items():
        tensors[f"{name}.out"] = fn(ROWS)
        if name in ROW_GRADIENTS:
            (tensors[f"{name}.grad"],) = gradient(fn, ROWS)
    tensors["argmax_rows.out"] = ROWS.argmax(dim=1)
    tensors["sum_all.out"] = X.sum()
    tensors["max_all.out"] = X.amax()

    metadata = {"generator": "tests/reference/gen_nonfinite_fixtures.py", "torch": torch.__version__}
    write_safetensors(OUTPUT, tensors, metadata)
    print(f"wrote {OUTPUT} ({os.path.getsize(OUTPUT)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
