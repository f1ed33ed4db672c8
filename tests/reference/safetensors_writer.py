"""A minimal safetensors writer for the fixture generators, so that they need
nothing beyond torch.

The format: an 8-byte little-endian header length, a JSON header (padded with
spaces to a multiple of 8) that names each tensor's dtype, shape and byte
range plus a "__metadata__" map of strings, then the raw little-endian bytes.
"""

import json
import struct

import torch

DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
}


def write_safetensors(path, tensors, metadata):
    """Writes tensors (a dict of name -> torch.Tensor) and metadata (str -> str) to path."""
    # numpy writes native byte order; refuse to write a wrong file on a big-endian host.
    assert struct.pack("=H", 1) == struct.pack("<H", 1), "big-endian host"
    for key, value in metadata.items():
        assert isinstance(key, str) and isinstance(value, str), f"metadata {key!r} must map a string to a string"
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        assert t.dtype in DTYPE_NAMES, f"{name}: dtype {t.dtype} has no safetensors name here"
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
