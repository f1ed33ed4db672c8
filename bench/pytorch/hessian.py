#!/usr/bin/env python3
"""The top Hessian eigenvalue(s) of a basin checkpoint's training loss in
PyTorch, with exact Hessian-vector products (double backward) in float64 on
the CPU: the reference that basin-sharpness (central-difference HVPs) is
compared with.

  python3 bench/pytorch/hessian.py --checkpoint run/checkpoint.safetensors \\
      --data-dir cifar-10-batches-bin [--model resnet20] [--subset 256] [--batch-size 128] \\
      [--bn eval|train] [--iterations 100] [--tol 1e-4] [--top-k 1] [--seed 0] [--threads N] [--json OUT]

The model is the PyTorch twin of basin's (tests/reference/gen_nn_fixtures.py:
the CIFAR ResNet-20/32/44/56 of akamaster/pytorch_resnet_cifar10 with option-A
shortcuts, and the other models create_model knows), loaded strictly from the
checkpoint's tensors (keys under "optimizer." are skipped) and cast to
float64. --model defaults to the "model" of the configuration basin-train
stores in the checkpoint's metadata.

The loss is the mean cross-entropy (--label-smoothing, default 0) over the
first --subset records of the CIFAR-10 training files in file order
(data_batch_1.bin, ..., data_batch_5.bin), accumulated over batches of
--batch-size: sum over batches of the summed loss, divided by the subset
size, so H v does not depend on the batch size in eval mode. Images are
pixels / 255, normalized per channel with the constants that basin's
load_cifar10 attaches to the dataset (what basin-train and basin-sharpness
normalize with), no augmentation. --normalization computed uses the mean
and population standard deviation of the 50,000 training images in
--data-dir instead, computed exactly from integer sums (basin's
data::channel_stats): the same on the official files to about 1e-5, but not
on a re-encoded copy.

--bn eval normalizes with the running statistics; --bn train with each
batch's statistics (so H depends on the batch split), the running statistics
left untouched (BatchNorm momentum 0; checked at the end).

Power iteration with PyHessian's rule: v random (--seed), unit norm; each
iteration orthogonalizes v against the eigenvectors already found (deflation,
for --top-k > 1), computes H v, takes lambda = v . H v and v = H v / |H v|,
and stops when |lambda - lambda_prev| / (|lambda_prev| + 1e-6) < --tol or after
--iterations HVPs. Power iteration finds the eigenvalue of largest magnitude;
at a trained network's weights that is lambda_max.

Exit status: 0; 3 when an eigenvalue did not converge within --iterations
(the JSON still holds the last estimate); 1 on unreadable or mismatched
input; 2 on bad arguments.
"""

import argparse
import json
import math
import os
import struct
import sys
import time

try:
    import numpy as np
    import torch
except ImportError as error:
    sys.exit("hessian.py: needs PyTorch and numpy, which this Python ({}) cannot import: {}".format(
        sys.executable, error))
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

CIFAR10_CLASSES = 10
RECORD_BYTES = 1 + 3 * 32 * 32
RECORDS_PER_FILE = 10000
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
# basin's load_cifar10 (data/cifar.cpp): statistics of the official training images, rounded.
CIFAR10_CONSTANTS = ([0.49140, 0.48216, 0.44653], [0.24703, 0.24349, 0.26159])


def keep_freed_memory():
    """Tells glibc's malloc to serve every block from its heap (no mmap) and
    to keep freed memory there instead of returning it to the system. Every
    HVP allocates and frees the same few GB (PyTorch's CPU tensors come
    straight from malloc; float64 im2col buffers reach 150 MB); by default
    each is a fresh mmap that the kernel zero-fills, which cost a third of the
    run in system time on a small machine. Returns whether it applied (glibc only)."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4
        return all(libc.mallopt(option, value) == 1 for option, value in (
            (m_mmap_max, 0), (m_trim_threshold, 1 << 40), (m_top_pad, 256 << 20)))
    except (OSError, AttributeError):
        return False


def fail(message):
    sys.exit(f"hessian.py: {message}")


# ---------------------------------------------------------------- checkpoint

SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors(path):
    """(tensors, metadata) of a safetensors file; a small reader, so that only torch is needed."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        fail(f"--checkpoint: cannot read {path}: {error.strerror}")
    if len(data) < 8:
        fail(f"{path}: {len(data)} bytes, too short for a safetensors file")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        fail(f"{path}: header of {header_len} bytes but the file has {len(data)}: not a safetensors file?")
    try:
        header = json.loads(data[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        fail(f"{path}: header is not JSON ({error}): not a safetensors file?")
    if not isinstance(header, dict):
        fail(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + header_len:]
    tensors = {}
    for name, entry in header.items():
        try:
            dtype = SAFETENSORS_DTYPES[entry["dtype"]]
            shape = [int(d) for d in entry["shape"]]
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            fail(f"{path}: tensor {name!r} has a malformed header entry {entry!r}")
        count = math.prod(shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if not 0 <= begin <= end <= len(body) or end - begin != count * itemsize:
            fail(f"{path}: tensor {name!r} ({entry['dtype']} {shape}) has byte range [{begin}, {end}) "
                 f"in a {len(body)}-byte body: truncated or corrupt file")
        if count == 0:
            tensors[name] = torch.empty(shape, dtype=dtype)
        else:
            flat = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype)
            tensors[name] = flat.reshape(shape)
    return tensors, metadata


def checkpoint_model_name(metadata):
    try:
        return json.loads(metadata.get("config", "{}")).get("model")
    except (json.JSONDecodeError, AttributeError):
        return None


def load_model(path, model_name):
    tensors, metadata = read_safetensors(path)
    stored = checkpoint_model_name(metadata)
    if model_name is None:
        if stored is None:
            fail(f"{path}: no model name in the checkpoint's metadata; give --model")
        model_name = stored
    elif stored is not None and stored != model_name:
        fail(f"--model {model_name}, but {path} was written for {stored}")

    sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
    import gen_nn_fixtures  # noqa: E402  (the PyTorch twins of basin's models)

    if model_name not in gen_nn_fixtures.MODELS:
        fail(f"--model {model_name}: unknown; known: {', '.join(gen_nn_fixtures.MODELS)}")
    model = gen_nn_fixtures.MODELS[model_name](CIFAR10_CLASSES)
    state = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {list(state[k].shape)} (model: {list(v.shape)})" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        lines = [f"{path} does not hold a {model_name} with {CIFAR10_CLASSES} classes:"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if items:
                lines.append(f"  {title} ({len(items)}): " + ", ".join(items[:6]) + (" ..." if len(items) > 6 else ""))
        fail("\n".join(lines))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    return model.double(), model_name, metadata


# ---------------------------------------------------------------- data

def read_records(path, count):
    try:
        size = os.path.getsize(path)
        raw = np.fromfile(path, dtype=np.uint8, count=count * RECORD_BYTES)
    except OSError as error:
        fail(f"--data-dir: cannot read {path}: {error.strerror or error}")
    if size != RECORDS_PER_FILE * RECORD_BYTES:
        fail(f"{path}: {size} bytes, expected {RECORDS_PER_FILE * RECORD_BYTES} "
             f"({RECORDS_PER_FILE} records of {RECORD_BYTES}): not a CIFAR-10 binary file?")
    return raw.reshape(count, RECORD_BYTES)


def load_cifar10(data_dir, subset):
    """(images uint8 [subset, 3, 32, 32], labels int64, mean, std) with the
    statistics of all five training files, from integer sums as basin's
    data::channel_stats computes them."""
    sums = np.zeros(3, dtype=np.int64)
    squares = np.zeros(3, dtype=np.int64)
    values = np.arange(256, dtype=np.int64)
    images, labels = [], []
    for index, name in enumerate(TRAIN_FILES):
        records = read_records(os.path.join(data_dir, name), RECORDS_PER_FILE)
        pixels = records[:, 1:].reshape(-1, 3, 32 * 32)
        for c in range(3):
            counts = np.bincount(pixels[:, c, :].ravel(), minlength=256).astype(np.int64)
            sums[c] += int((counts * values).sum())
            squares[c] += int((counts * values * values).sum())
        take = min(max(subset - index * RECORDS_PER_FILE, 0), RECORDS_PER_FILE)
        if take:
            labels.append(records[:take, 0].astype(np.int64))
            images.append(pixels[:take].reshape(take, 3, 32, 32).copy())
    labels = np.concatenate(labels)
    if labels.max() >= CIFAR10_CLASSES:
        bad = int(np.argmax(labels >= CIFAR10_CLASSES))
        fail(f"record {bad} has label {labels[bad]}, expected 0..9: not CIFAR-10?")
    count = float(len(TRAIN_FILES) * RECORDS_PER_FILE * 32 * 32)
    mean, std = [], []
    for c in range(3):
        m = float(sums[c]) / count
        var = max(0.0, float(squares[c]) / count - m * m)
        mean.append(m / 255.0)
        std.append(math.sqrt(var) / 255.0)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(labels), mean, std


def normalize(images, mean, std):
    x = images.to(torch.float64) / 255.0
    return (x - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(
        std, dtype=torch.float64).view(1, 3, 1, 1)


# ---------------------------------------------------------------- Hessian

class Loss:
    """The mean cross-entropy over all examples, batch by batch."""

    def __init__(self, model, images, labels, batch_size, label_smoothing):
        self.model, self.params = model, [p for p in model.parameters()]
        self.batches = [(images[i:i + batch_size], labels[i:i + batch_size])
                        for i in range(0, images.shape[0], batch_size)]
        self.count = images.shape[0]
        self.label_smoothing = label_smoothing
        self.hvps = 0

    def hvp(self, v):
        """(loss, H v) with H the exact Hessian of the mean loss."""
        total = 0.0
        out = [torch.zeros_like(p) for p in self.params]
        for x, y in self.batches:
            loss = F.cross_entropy(self.model(x), y, reduction="sum",
                                   label_smoothing=self.label_smoothing) / self.count
            grads = torch.autograd.grad(loss, self.params, create_graph=True)
            dot = sum((g * u).sum() for g, u in zip(grads, v))
            hv = torch.autograd.grad(dot, self.params)
            for acc, h in zip(out, hv):
                acc.add_(h)
            total += loss.item()
        self.hvps += 1
        return total, out


def dot(a, b):
    return sum((x * y).sum() for x, y in zip(a, b)).item()


def normalized(v):
    norm = math.sqrt(dot(v, v))
    return [x / (norm + 1e-12) for x in v]  # PyHessian's normalization


def orthonormal(v, basis):
    for u in basis:
        c = dot(v, u)
        v = [x - c * w for x, w in zip(v, u)]
    return normalized(v)


def power_iteration(loss, top_k, iterations, tol, generator, log):
    results, eigenvectors = [], []
    first_loss = None
    start = time.perf_counter()
    for k in range(top_k):
        v = normalized([torch.randn(p.shape, dtype=torch.float64, generator=generator) for p in loss.params])
        lam_prev, lam, converged, done = None, None, False, 0
        for it in range(1, iterations + 1):
            v = orthonormal(v, eigenvectors)
            t0 = time.perf_counter()
            value, hv = loss.hvp(v)
            if first_loss is None:
                first_loss = value
            lam = dot(hv, v)
            v = normalized(hv)
            done = it
            change = None if lam_prev is None else abs(lam - lam_prev) / (abs(lam_prev) + 1e-6)
            log(f"  eigenvalue {k + 1} iteration {it:3d}: lambda {lam:.8g}  relative change "
                + ("      -" if change is None else f"{change:.2e}")
                + f"  ({time.perf_counter() - t0:.2f} s, {time.perf_counter() - start:.1f} s total)")
            if change is not None and change < tol:
                converged = True
                break
            lam_prev = lam
        eigenvectors.append(v)
        results.append({"lambda": lam, "iterations": done, "converged": converged})
    return results, first_loss


def check_positive(parser, name, value):
    if value <= 0:
        parser.error(f"--{name}: must be positive, got {value}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--checkpoint", required=True, help="a basin checkpoint (safetensors)")
    parser.add_argument("--model", help="resnet20, resnet32, ... (default: the checkpoint's)")
    parser.add_argument("--data-dir", required=True, help="directory with the CIFAR-10 binary files")
    parser.add_argument("--subset", type=int, default=256, help="the first N training records (default 256)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--bn", choices=("eval", "train"), default="eval")
    parser.add_argument("--iterations", type=int, default=100, help="most HVPs per eigenvalue (default 100)")
    parser.add_argument("--tol", type=float, default=1e-4, help="relative change that stops (default 1e-4)")
    parser.add_argument("--top-k", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="of the starting vectors")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch.get_num_threads())")
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--normalization", choices=("computed", "cifar10-constants"), default="cifar10-constants",
                        help="cifar10-constants: basin load_cifar10's constants, as basin normalizes (default); "
                        "computed: exact statistics of the 50,000 training images in --data-dir")
    parser.add_argument("--json", help="write the result to this file")
    args = parser.parse_args()
    for name in ("subset", "batch_size", "iterations", "top_k"):
        check_positive(parser, name.replace("_", "-"), getattr(args, name))
    if args.subset > len(TRAIN_FILES) * RECORDS_PER_FILE:
        parser.error(f"--subset: at most {len(TRAIN_FILES) * RECORDS_PER_FILE}, got {args.subset}")
    if not (args.tol > 0 and math.isfinite(args.tol)):
        parser.error(f"--tol: must be a positive number, got {args.tol}")
    if not 0.0 <= args.label_smoothing < 1.0:
        parser.error(f"--label-smoothing: must be in [0, 1), got {args.label_smoothing}")
    if args.threads is not None:
        check_positive(parser, "threads", args.threads)
        torch.set_num_threads(args.threads)
    if not os.path.isdir(args.data_dir):
        parser.error(f"--data-dir: {args.data_dir} is not a directory")

    def log(line):
        print(line, flush=True)

    mallopt = keep_freed_memory()

    model, model_name, _ = load_model(args.checkpoint, args.model)
    images, labels, mean, std = load_cifar10(args.data_dir, args.subset)
    if args.normalization == "cifar10-constants":
        mean, std = CIFAR10_CONSTANTS
    x = normalize(images, mean, std)
    parameters = sum(p.numel() for p in model.parameters())
    buffers_before = {n: b.clone() for n, b in model.named_buffers() if "running" in n}
    model.train(args.bn == "train")
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.0  # train mode: batch statistics, running statistics unchanged
    log(f"hessian.py: {model_name} ({parameters:,} parameters, float64, CPU, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}{', glibc mallopt' if mallopt else ''}) from {args.checkpoint}")
    log(f"  loss: mean cross-entropy (label smoothing {args.label_smoothing}) over the first {args.subset} "
        f"training records, batches of {args.batch_size}, BatchNorm {args.bn} mode")
    log(f"  normalization ({args.normalization}): mean " + ", ".join(f"{m:.6f}" for m in mean)
        + "  std " + ", ".join(f"{s:.6f}" for s in std))
    log(f"  power iteration: top {args.top_k}, at most {args.iterations} iterations, tol {args.tol:g}, "
        f"seed {args.seed}")

    load_average = os.getloadavg()[0]
    log(f"  load average {load_average:.2f} on {os.cpu_count()} CPUs")
    loss = Loss(model, x, labels, args.batch_size, args.label_smoothing)
    generator = torch.Generator().manual_seed(args.seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    results, loss_value = power_iteration(loss, args.top_k, args.iterations, args.tol, generator, log)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    for n, b in model.named_buffers():
        if n in buffers_before and not torch.equal(b, buffers_before[n]):
            fail(f"internal error: BatchNorm buffer {n} changed")

    for k, r in enumerate(results, start=1):
        log(f"lambda_{k} = {r['lambda']:.8g} after {r['iterations']} iterations"
            + ("" if r["converged"] else f" (NOT converged to tol {args.tol:g})"))
    log(f"loss {loss_value:.8g}; {loss.hvps} HVPs in {seconds:.1f} s ({seconds / loss.hvps:.2f} s each; "
        f"process CPU time {cpu_seconds:.1f} s)")
    if args.json:
        record = {
            "checkpoint": args.checkpoint, "model": model_name, "parameters": parameters,
            "subset": args.subset, "batch_size": args.batch_size, "bn": args.bn,
            "label_smoothing": args.label_smoothing, "normalization": args.normalization,
            "mean": mean, "std": std, "loss": loss_value,
            "lambda_max": results[0]["lambda"],
            "lambdas": [r["lambda"] for r in results],
            "iterations": [r["iterations"] for r in results],
            "converged": [r["converged"] for r in results],
            "tol": args.tol, "max_iterations": args.iterations, "top_k": args.top_k, "seed": args.seed,
            "hvp_count": loss.hvps, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "load_average_at_start": load_average, "dtype": "float64", "device": "cpu",
            "threads": torch.get_num_threads(), "torch": torch.__version__, "mallopt": mallopt,
        }
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
        log(f"wrote {args.json}")
    return 0 if all(r["converged"] for r in results) else 3


if __name__ == "__main__":
    sys.exit(main())
