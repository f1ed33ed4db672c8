#!/usr/bin/env python3
"""Images per second of whole SGD and SAM training steps in PyTorch, the
twin of bench_train_step: the same models (the PyTorch copies of basin's
ResNet-18, CIFAR ResNet-20/32/..., WRN-d-k and cnn-small from
tests/reference/gen_nn_fixtures.py, same names, shapes and parameter counts),
the same batch sizes, the same step.

  sgd          zero_grad, forward, cross-entropy, backward, torch.optim.SGD
               (momentum 0.9, weight decay 5e-4; PyTorch's default
               implementation, foreach on CUDA)
  sam          the davda54/sam style (sam_optimizer.PerTensorSam) over that
               SGD: forward/backward, per-tensor norm and perturbation, a
               second forward/backward with BatchNorm momentum 0 (so the
               running statistics stay put, as basin freezes them), restore
               and SGD step
  sam-foreach  the same with foreach ops and SGD(fused=True) (sam_optimizer.ForeachSam)

Data is on the GPU before timing (random images and labels, one batch
reused), the model in train mode, cudnn.benchmark = True, NCHW float32. TF32
is off for convolutions and matmuls unless --tf32, as on basin's side.
Timing: warm-up steps, torch.cuda.synchronize, the timed steps, synchronize;
the host clock in between.

--device cpu runs the steps on the CPU (PyTorch's oneDNN convolutions, as
basin's CPU engine uses) with torch.set_num_threads(n) for each of the
--threads counts, and times as bench_train_step --device cpu does: each step
alone, the median step and its 10th-90th percentile spread (few steps are
timed there, and the median shrugs off one slow one). The JSON lines carry
the same fields as basin's (threads, median_ms, p10_ms, p90_ms, params), so
compare.py pairs them.

  python3 bench/pytorch/train_step.py --json torch.jsonl
  python3 bench/pytorch/train_step.py --device cpu --models resnet20 --batch-sizes 128 --threads 1,2
  python3 bench/pytorch/train_step.py --dry-run   # CPU, tiny: checks the SAM step against the formula
"""

import argparse
import copy
import json
import math
import os
import re
import statistics
import sys
import time

try:
    import torch
except ImportError:
    sys.exit("train_step.py: needs PyTorch, which this Python ({}) cannot import".format(sys.executable))
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sam_optimizer  # noqa: E402

DEFAULT_MODELS = "resnet18,wrn16-8,wrn28-10"
OPTIMIZERS = ("sgd", "sam", "sam-foreach")
# On the CPU the foreach variant runs too (with its fallbacks), but the CPU comparison is per-tensor SAM.
DEFAULT_CPU_OPTIMIZERS = "sgd,sam"


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def percentile(sorted_ms, q):
    """Nearest rank, as bench/common.cpp summarize(): the smallest sample with
    at least q of the samples at or below it."""
    k = math.ceil(q * len(sorted_ms))
    return sorted_ms[min(len(sorted_ms) - 1, max(k, 1) - 1)]


def cpu_model_name():
    """/proc/cpuinfo's "model name", as bench_train_step prints it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() or "unknown CPU"
    except OSError:
        pass
    return "unknown CPU"


def onednn_version():
    """The oneDNN (MKL-DNN) version PyTorch was built with, from torch.__config__.show()."""
    match = re.search(r"(?:MKL-DNN|oneDNN)\s+v?([0-9][0-9.]*)", torch.__config__.show())
    return match.group(1) if match else "none"


def set_bn_momentum(model, value):
    """Sets every BatchNorm's momentum; returns what to restore."""
    previous = []
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            previous.append((m, m.momentum))
            m.momentum = value
    return previous


class Trainer:
    """One training step of one kind on one model."""

    def __init__(self, model, optimizer, images, labels):
        self.model, self.images, self.labels = model, images, labels
        params = list(model.parameters())
        names = [n for n, _ in model.named_parameters()]
        s = sam_optimizer.Settings(asam=False)
        self.sam = None
        if optimizer == "sgd":
            self.sgd = torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
        else:
            adaptive = ["weight" in n for n in names]
            if optimizer == "sam":
                self.sam = sam_optimizer.PerTensorSam(params, adaptive, s, images.device, sgd_kind="default")
            else:
                self.sam = sam_optimizer.ForeachSam(params, adaptive, s, images.device, sgd_kind="fused")
            self.sgd = self.sam.sgd

    def loss(self):
        return F.cross_entropy(self.model(self.images), self.labels)

    def step(self):
        self.sgd.zero_grad(set_to_none=True)
        loss = self.loss()
        loss.backward()
        if self.sam is None:
            self.sgd.step()
            return loss
        self.sam.norm()
        self.sam.perturb()
        self.sgd.zero_grad(set_to_none=True)
        frozen = set_bn_momentum(self.model, 0.0)
        try:
            self.loss().backward()
        finally:
            for m, momentum in frozen:
                m.momentum = momentum
        self.sam.restore_update()
        return loss


def time_steps(make_model, optimizer, batch, args, device):
    torch.manual_seed(0)
    model = make_model(10).to(device).train()
    images = torch.randn(batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    trainer = Trainer(model, optimizer, images, labels)
    for _ in range(args.warmup):
        trainer.step()
    label = "SGD()" if trainer.sam is None else trainer.sam.sgd_label
    if device.type == "cpu":
        # Each step alone, the median of them: bench_train_step --device cpu's timing.
        samples = []
        for _ in range(args.steps):
            begin = time.perf_counter()
            trainer.step()
            samples.append(1e3 * (time.perf_counter() - begin))
        ordered_ms = sorted(samples)
        median = statistics.median(ordered_ms)
        return {"seconds": sum(samples) / 1e3, "ms_per_step": median, "images_per_s": 1e3 * batch / median,
                "peak_bytes": 0, "sgd": label, "timing": "median", "median_ms": median,
                "p10_ms": percentile(ordered_ms, 0.10), "p90_ms": percentile(ordered_ms, 0.90)}
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else 0
    return {"seconds": seconds, "ms_per_step": 1e3 * seconds / args.steps,
            "images_per_s": batch * args.steps / seconds, "peak_bytes": peak, "sgd": label}


def check_sam_step(make_model):
    """On the CPU in float64: one SAM step of the Trainer against the formula
    w' = w - lr (g' + wd w), g' the gradient at w + rho g / (||g|| + eps), the
    first SGD step (momentum buffer = d). Also checks the plain SGD step."""
    torch.manual_seed(0)
    base = make_model(10).double().train()
    images = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    labels = torch.randint(0, 10, (4,))
    s = sam_optimizer.Settings(asam=False)

    # The formula, by hand.
    model = copy.deepcopy(base)
    params = list(model.parameters())
    w0 = [p.detach().clone() for p in params]
    F.cross_entropy(model(images), labels).backward()
    g = [p.grad.detach().clone() for p in params]
    norm = torch.sqrt(sum((x * x).sum() for x in g))
    with torch.no_grad():
        for p, x in zip(params, g):
            p.add_(s.rho / (norm + s.eps) * x)
            p.grad = None
    frozen = set_bn_momentum(model, 0.0)
    F.cross_entropy(model(images), labels).backward()
    for m, momentum in frozen:
        m.momentum = momentum
    expected_sam = [w - s.lr * (p.grad + s.weight_decay * w) for w, p in zip(w0, params)]
    expected_sgd = [w - s.lr * (x + s.weight_decay * w) for w, x in zip(w0, g)]

    worst = 0.0
    for kind, expected in (("sam", expected_sam), ("sam-foreach", expected_sam), ("sgd", expected_sgd)):
        model = copy.deepcopy(base)
        Trainer(model, kind, images, labels).step()
        for (name, p), e in zip(model.named_parameters(), expected):
            err = float(((p.detach() - e).abs() / (e.abs() + 1e-3)).max())
            worst = max(worst, err)
            if not err <= 1e-10:
                raise SystemExit(f"train_step.py: dry run: the {kind} step differs from the formula in {name} "
                                 f"(relative error {err:.2e})")
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--batch-sizes", default="128,256")
    parser.add_argument("--optimizers",
                        help=f"default {','.join(OPTIMIZERS)} (--device cpu: {DEFAULT_CPU_OPTIMIZERS})")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--threads", help="CPU only: comma-separated thread counts, torch.set_num_threads "
                        "before each figure (default: torch.get_num_threads())")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--tf32", action="store_true", help="let convolutions and matmuls use TF32")
    parser.add_argument("--json", help="append one JSON line per result to this file")
    parser.add_argument("--dry-run", action="store_true",
                        help="on the CPU: check the steps against the formula, then run one tiny step of each")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    if args.optimizers is None:
        args.optimizers = DEFAULT_CPU_OPTIMIZERS if args.device == "cpu" else ",".join(OPTIMIZERS)
    optimizers = [o for o in args.optimizers.split(",") if o]
    if args.threads is not None and args.device != "cpu" and not args.dry_run:
        parser.error("--threads: applies to --device cpu only")
    try:
        threads = [int(t) for t in (args.threads or str(torch.get_num_threads())).split(",") if t]
    except ValueError:
        parser.error(f"--threads: '{args.threads}' is not a list of integers")
    if not threads or min(threads) < 1:
        parser.error("--threads: give positive thread counts")
    try:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    except ValueError:
        parser.error(f"--batch-sizes: '{args.batch_sizes}' is not a list of integers")
    if not batch_sizes or min(batch_sizes) < 1:
        parser.error("--batch-sizes: give positive batch sizes")
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    for o in optimizers:
        if o not in OPTIMIZERS:
            parser.error(f"--optimizers: unknown '{o}' (known: {', '.join(OPTIMIZERS)})")
    makers = sam_optimizer.twin_models()
    for m in models:
        if m not in makers:
            parser.error(f"--models: unknown '{m}' (known: {', '.join(makers)})")

    if args.dry_run:
        worst = check_sam_step(makers["resnet20"])
        print(f"dry run: the sgd, sam and sam-foreach steps match the formula (worst relative error {worst:.1e})")
        device = torch.device("cpu")
        args.steps, args.warmup = 1, 1
        batch_sizes = [2]
        models = [m for m in models if m in ("resnet20", "cnn-small")] or ["cnn-small"]
    elif args.device == "cpu":
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return 0
    else:
        device = torch.device("cuda")

    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    out = open(args.json, "a") if args.json else None

    def emit(record):
        if out:
            out.write(json.dumps(record) + "\n")
            out.flush()

    cpu = device.type == "cpu"
    env = sam_optimizer.environment()
    if cpu:
        env.update({"device": "cpu", "cpu": cpu_model_name(), "onednn": onednn_version(),
                    "mkldnn_enabled": torch.backends.mkldnn.is_available()})
    emit(env)
    tf32 = "TF32 on" if args.tf32 else "TF32 off"
    where = f"on the CPU ({env['cpu']}, oneDNN {env['onednn']})" if cpu else f"on {env.get('gpu', 'cpu')}"
    print(f"train_step.py: images/s of whole SGD and SAM steps in PyTorch {torch.__version__}, float32, "
          + ("" if cpu else f"{tf32}, ") + where + (" (dry run: the figures mean nothing)" if args.dry_run else ""))
    if cpu:
        print(f"timing: {args.warmup} warm-up steps, then {args.steps} timed steps, each alone: the median step "
              f"(p10-p90 beside it); threads per figure: {' '.join(str(t) for t in threads)}")
    else:
        print(f"timing: {args.warmup} warm-up steps, then {args.steps} timed steps between two synchronizations")
    params = {m: parameter_count(makers[m](10)) for m in models}
    print("parameters: " + ", ".join(f"{m} {n:,d}" for m, n in params.items()) + "\n")
    if cpu:
        header = f"{'model':10s} {'batch':>6s} {'optimizer':>12s} {'threads':>7s} {'ms/step':>9s} " \
                 f"{'p10-p90 ms':>15s} {'images/s':>9s} {'/ SGD time':>10s}"
    else:
        header = f"{'model':10s} {'batch':>6s} {'optimizer':>12s} {'ms/step':>9s} {'images/s':>9s} " \
                 f"{'peak MiB':>9s} {'/ SGD time':>10s}"
    print(header)
    print("-" * len(header))
    conclusion = ""
    for model in models:
        for batch in batch_sizes:
            parts = []
            # A GPU figure has no thread count: one pass with None.
            for n in (threads if cpu else [None]):
                if n is not None:
                    torch.set_num_threads(n)
                results = {}
                for optimizer in optimizers:
                    r = time_steps(makers[model], optimizer, batch, args, device)
                    results[optimizer] = r
                    ratio = (f"{r['ms_per_step'] / results['sgd']['ms_per_step']:.2f}x"
                             if "sgd" in results and optimizer != "sgd" else "")
                    if cpu:
                        spread = f"{r['p10_ms']:.1f}-{r['p90_ms']:.1f}"
                        print(f"{model:10s} {batch:6d} {optimizer:>12s} {n:7d} {r['ms_per_step']:9.1f} "
                              f"{spread:>15s} {r['images_per_s']:9.1f} {ratio:>10s}", flush=True)
                    else:
                        print(f"{model:10s} {batch:6d} {optimizer:>12s} {r['ms_per_step']:9.2f} "
                              f"{r['images_per_s']:9.0f} {r['peak_bytes'] / 2**20:9.0f} {ratio:>10s}", flush=True)
                    record = {"bench": "train_step", "side": "pytorch", "model": model, "batch": batch,
                              "optimizer": optimizer, "device": device.type, "tf32": args.tf32,
                              "warmup": args.warmup, "steps": args.steps, "params": params[model], **r}
                    if n is not None:
                        record["threads"] = n
                    emit(record)
                figures = ", ".join(f"{o} {results[o]['images_per_s']:.{1 if cpu else 0}f} images/s"
                                    for o in optimizers)
                parts.append(f"{n} thread{'' if n == 1 else 's'} {figures}" if cpu else figures)
            conclusion = f"{model}, batch {batch}: " + "; ".join(parts) + ("" if cpu else f", {tf32}")
    print("-" * len(header))
    print(conclusion)
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
