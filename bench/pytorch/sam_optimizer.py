#!/usr/bin/env python3
"""The optimizer side of a SAM step in PyTorch, measured as bench_sam_kernels
measures basin's, on the same parameter shapes.

Variants, each for SAM and for ASAM (T = |w| + eta on "weight" tensors, rho
0.5: basin's ASAM convention, so both sides compute the same thing):

  per-tensor  the davda54/sam implementation style, the one most SAM code
              copies: a norm per tensor, torch.norm of the stacked norms, per
              tensor a clone of the weights and p.add_(g * scale), the restore
              by pointing p.data back at the clone, then torch.optim.SGD with
              foreach=False (a Python loop of per-tensor ops).
  foreach     the same steps with the multi-tensor ops: torch._foreach_norm,
              _foreach_copy_ into persistent saved buffers, _foreach_mul and
              _foreach_add_, and torch.optim.SGD(fused=True) (foreach=True
              where fused is not available; the output says so).

Phases as on basin's side: norm (the norm and the scale), perturb, restore +
update, and the whole optimizer side of a step; SGD with momentum 0.9 and
weight decay 5e-4, lr 0.1, the momentum buffers already there (not a first
step).

Timing (the same definitions as bench/common.cu): CUDA events around each
repetition, the L2 cache evicted before each (a read of four times its size),
the median and 10th-90th percentiles of >= 100 repetitions after a warm-up.
"GPU us": before each repetition a torch.cuda._sleep kernel holds the stream
while Python queues the whole body, so the events bracket the device work
without the host's launch cost. "wall us": host enqueue plus device work,
from an idle stream. GB/s counts the minimum traffic (norm 4P bytes, ASAM
+4P for the weight tensors; perturb 16P; restore + update 20P).

Before timing, one step of every variant runs from the same inputs and its
norm, perturbed weights, saved copy, updated weights and momentum are
compared with a direct float64 formula; a variant that does not match is
reported as FAILED and not timed (exit status 1).

Shapes come from the JSON that `bench_sam_kernels --dump-shapes FILE` (or
`bench_sam_check --dump-shapes FILE`) writes, which guarantees basin's exact
shapes; without --shapes, from the PyTorch twins of basin's models in
tests/reference/gen_nn_fixtures.py.

  python3 bench/pytorch/sam_optimizer.py --shapes shapes.json --json torch.jsonl
  python3 bench/pytorch/sam_optimizer.py --dry-run   # CPU: checks the math, times nothing
"""

import argparse
import inspect
import json
import math
import os
import statistics
import sys
import time

try:
    import torch
except ImportError:
    sys.exit("sam_optimizer.py: needs PyTorch, which this Python ({}) cannot import".format(sys.executable))

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_MODELS = "resnet18,wrn16-8,wrn28-10"
DRY_RUN_MODELS = "resnet20,cnn-small"
RELATIVE_TOLERANCE = 1e-5


# ---------------------------------------------------------------- settings and shapes

class Settings:
    """basin-train's defaults, as bench/sam_reference.h sets them."""

    def __init__(self, asam):
        self.asam = asam
        self.rho = 0.5 if asam else 0.05
        self.eps = 1e-12
        self.eta = 0.01
        self.lr = 0.1
        self.momentum = 0.9
        self.weight_decay = 5e-4


class ParamSet:
    def __init__(self, model, names, shapes):
        self.model = model
        self.names = list(names)
        self.shapes = [tuple(s) for s in shapes]
        # optim::SAM's default ASAM scope: tensors whose name contains "weight".
        self.adaptive = ["weight" in n for n in self.names]
        self.numels = [math.prod(s) for s in self.shapes]
        self.params = sum(self.numels)
        self.adaptive_params = sum(n for n, a in zip(self.numels, self.adaptive) if a)


def twin_models():
    """The PyTorch copies of basin's models that the fixture generator defines."""
    sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
    import gen_nn_fixtures  # noqa: E402  (needs its own directory on the path)
    return gen_nn_fixtures.MODELS


def load_param_sets(models, shapes_path):
    sets = []
    if shapes_path:
        with open(shapes_path) as f:
            doc = json.load(f)["models"]
        for model in models:
            if model not in doc:
                raise SystemExit(f"sam_optimizer.py: {shapes_path} has no model '{model}' "
                                 f"(it has {', '.join(doc)})")
            tensors = doc[model]["tensors"]
            param_set = ParamSet(model, [t["name"] for t in tensors], [t["shape"] for t in tensors])
            if param_set.params != doc[model]["params"]:
                raise SystemExit(f"sam_optimizer.py: {shapes_path}: {model} shapes add up to "
                                 f"{param_set.params}, not {doc[model]['params']}")
            sets.append(param_set)
        return sets
    makers = twin_models()
    for model in models:
        if model not in makers:
            raise SystemExit(f"sam_optimizer.py: unknown model '{model}' (known: {', '.join(makers)})")
        net = makers[model](10)
        named = list(net.named_parameters())
        sets.append(ParamSet(model, [n for n, _ in named], [p.shape for _, p in named]))
    return sets


# ---------------------------------------------------------------- inputs and the reference

def make_inputs(param_set, device, seed):
    """w ~ 0.05 N(0, 1); g, g', momentum ~ N(0, 1) / sqrt(P): the scales basin's side uses."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    grad_scale = 1.0 / math.sqrt(param_set.params)
    inputs = {"w": [], "g": [], "g2": [], "m": []}
    for shape in param_set.shapes:
        inputs["w"].append((0.05 * torch.randn(shape, generator=gen)).to(device))
        for key in ("g", "g2", "m"):
            inputs[key].append((grad_scale * torch.randn(shape, generator=gen)).to(device))
    return inputs


def reference_step(param_set, inputs, s):
    """One step by the formulas, in float64 on the CPU."""
    w = [x.detach().cpu().double() for x in inputs["w"]]
    g = [x.detach().cpu().double() for x in inputs["g"]]
    g2 = [x.detach().cpu().double() for x in inputs["g2"]]
    m = [x.detach().cpu().double() for x in inputs["m"]]
    t = [(wi.abs() + s.eta) if (s.asam and a) else torch.ones_like(wi) for wi, a in zip(w, param_set.adaptive)]
    norm = math.sqrt(sum(float(((ti * gi) ** 2).sum()) for ti, gi in zip(t, g)))
    scale = s.rho / (norm + s.eps)
    perturbed = [wi + scale * ti * ti * gi for wi, ti, gi in zip(w, t, g)]
    momentum = [s.momentum * mi + (g2i + s.weight_decay * wi) for mi, g2i, wi in zip(m, g2, w)]
    updated = [wi - s.lr * bi for wi, bi in zip(w, momentum)]
    return {"norm": norm, "perturbed": perturbed, "saved": [x.float() for x in w],
            "updated": updated, "momentum": momentum}


def compare(param_set, got, ref):
    """The check of bench/sam_reference.cpp: |x - r| / (|r| + the RMS of r), NaN fails;
    the saved copy must be exact. Returns (ok, summary)."""
    failures, worst_all = [], 0.0
    rel = abs(got["norm"] - ref["norm"]) / abs(ref["norm"])
    if not rel <= RELATIVE_TOLERANCE:
        failures.append(f"gradient norm: {got['norm']!r} vs {ref['norm']!r}")
    worst_all = max(worst_all, rel if math.isfinite(rel) else math.inf)
    for key in ("perturbed", "saved", "updated", "momentum"):
        refs = [r.double() for r in ref[key]]
        gots = [x.detach().cpu().double() for x in got[key]]
        if key == "saved":
            bad = [n for n, x, r in zip(param_set.names, gots, refs) if not torch.equal(x, r)]
            if bad:
                failures.append(f"saved copy: differs in {len(bad)} tensors, first {bad[0]}")
            continue
        squares = sum(float((r * r).sum()) for r in refs)
        floor = math.sqrt(squares / param_set.params)
        worst, where = 0.0, ""
        for name, x, r in zip(param_set.names, gots, refs):
            err = ((x - r).abs() / (r.abs() + floor)).nan_to_num(nan=math.inf)
            value = float(err.max()) if err.numel() else 0.0
            if value > worst:
                worst, where = value, name
        worst_all = max(worst_all, worst)
        if not worst <= RELATIVE_TOLERANCE:
            failures.append(f"{key}: relative error {worst:.2e} in {where}")
    if failures:
        return False, "FAILED: " + "; ".join(failures)
    return True, f"ok (worst relative error {worst_all:.2e})"


# ---------------------------------------------------------------- capabilities

TORCH_VERSION = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2] if p.isdigit())
SGD_PARAMS = inspect.signature(torch.optim.SGD.__init__).parameters
# A 0-dim tensor as the scalar of a foreach op without a host synchronization: torch >= 2.1.
FOREACH_TENSOR_SCALAR = TORCH_VERSION >= (2, 1)


def foreach_copy(dst, src):
    if hasattr(torch, "_foreach_copy_"):
        torch._foreach_copy_(dst, src)
    else:  # older PyTorch: one copy per tensor
        for d, s in zip(dst, src):
            d.copy_(s)


def make_sgd(params, s, kind, device):
    """kind: "loop" (foreach=False), "foreach", "fused" (falls back to foreach), or "default"
    (PyTorch's own choice: foreach on CUDA). Returns (sgd, label)."""
    kwargs = dict(lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    if kind == "default":
        return torch.optim.SGD(params, **kwargs), "SGD()"
    if kind == "fused" and "fused" in SGD_PARAMS:
        try:
            return torch.optim.SGD(params, fused=True, **kwargs), "SGD(fused=True)"
        except (RuntimeError, ValueError, TypeError):
            pass  # no fused SGD for this device or dtype: fall through to foreach
    if kind in ("fused", "foreach") and "foreach" in SGD_PARAMS:
        return torch.optim.SGD(params, foreach=True, **kwargs), "SGD(foreach=True)"
    if "foreach" in SGD_PARAMS:
        return torch.optim.SGD(params, foreach=False, **kwargs), "SGD(foreach=False)"
    return torch.optim.SGD(params, **kwargs), "SGD()"


# ---------------------------------------------------------------- the two implementations

class PerTensorSam:
    """davda54/sam's structure, written out: per-tensor ops in Python loops."""

    label = "per-tensor"

    def __init__(self, params, adaptive, s, device, sgd_kind="loop"):
        self.params, self.s = params, s
        self.scaled = [s.asam and a for a in adaptive]
        self.sgd, self.sgd_label = make_sgd(params, s, sgd_kind, device)
        self.old = [None] * len(params)
        self.scale = self.grad_norm = None

    @torch.no_grad()
    def norm(self):
        norms = []
        for p, scaled in zip(self.params, self.scaled):
            tg = (p.abs() + self.s.eta) * p.grad if scaled else p.grad
            norms.append(tg.norm(p=2))
        self.grad_norm = torch.norm(torch.stack(norms), p=2)
        self.scale = self.s.rho / (self.grad_norm + self.s.eps)

    @torch.no_grad()
    def perturb(self):
        for i, (p, scaled) in enumerate(zip(self.params, self.scaled)):
            self.old[i] = p.data.clone()
            e = p.grad * self.scale.to(p)
            if scaled:
                e = e * (p.abs() + self.s.eta).pow(2)
            p.add_(e)

    @torch.no_grad()
    def restore_update(self):
        for p, old in zip(self.params, self.old):
            p.data = old  # davda54 restores by pointer, not by copy
        self.sgd.step()

    def saved(self):
        return self.old


class ForeachSam:
    """The same steps with multi-tensor (foreach) ops and a fused SGD."""

    label = "foreach"

    def __init__(self, params, adaptive, s, device, sgd_kind="fused"):
        self.params, self.s = params, s
        scaled = [s.asam and a for a in adaptive]
        self.weights = [p for p, a in zip(params, scaled) if a]
        self.others = [p for p, a in zip(params, scaled) if not a]
        self.saved_buffers = [torch.empty_like(p) for p in params]
        self.sgd, self.sgd_label = make_sgd(params, s, sgd_kind, device)
        self.scale = self.grad_norm = None

    def _t(self):
        t = torch._foreach_abs(self.weights)
        torch._foreach_add_(t, self.s.eta)
        return t

    def _mul_scale(self, tensors):
        if FOREACH_TENSOR_SCALAR:
            return torch._foreach_mul(tensors, self.scale)
        return torch._foreach_mul(tensors, float(self.scale))  # old PyTorch: a host synchronization

    @torch.no_grad()
    def norm(self):
        if self.weights:
            tg = torch._foreach_mul(self._t(), [p.grad for p in self.weights])
            norms = torch._foreach_norm(list(tg) + [p.grad for p in self.others])
        else:
            norms = torch._foreach_norm([p.grad for p in self.params])
        self.grad_norm = torch.linalg.vector_norm(torch.stack(norms))
        self.scale = self.s.rho / (self.grad_norm + self.s.eps)

    @torch.no_grad()
    def perturb(self):
        foreach_copy(self.saved_buffers, self.params)
        if self.weights:
            t = self._t()
            t2 = torch._foreach_mul(t, t)
            torch._foreach_add_(self.weights, self._mul_scale(torch._foreach_mul(t2, [p.grad for p in self.weights])))
        if self.others:
            torch._foreach_add_(self.others, self._mul_scale([p.grad for p in self.others]))

    @torch.no_grad()
    def restore_update(self):
        foreach_copy(self.params, self.saved_buffers)
        self.sgd.step()

    def saved(self):
        return self.saved_buffers


IMPLEMENTATIONS = {"per-tensor": PerTensorSam, "foreach": ForeachSam}


def build(kind, param_set, inputs, s, device):
    """Leaf parameters holding w with .grad = g and momentum buffers holding m."""
    params = []
    for w, g in zip(inputs["w"], inputs["g"]):
        p = w.detach().clone().requires_grad_(True)
        p.grad = g.detach().clone()
        params.append(p)
    sam = IMPLEMENTATIONS[kind](params, param_set.adaptive, s, device)
    for p, m in zip(params, inputs["m"]):
        sam.sgd.state[p]["momentum_buffer"] = m.detach().clone()
    return sam


def run_step(sam, inputs):
    sam.norm()
    got = {"norm": float(sam.grad_norm)}
    sam.perturb()
    got["perturbed"] = [p.detach().clone() for p in sam.params]
    got["saved"] = [x.detach().clone() for x in sam.saved()]
    with torch.no_grad():
        for p, g2 in zip(sam.params, inputs["g2"]):
            p.grad.copy_(g2)
    sam.restore_update()
    got["updated"] = [p.detach().clone() for p in sam.params]
    got["momentum"] = [sam.sgd.state[p]["momentum_buffer"].detach().clone() for p in sam.params]
    return got


# ---------------------------------------------------------------- timing

class CudaTimer:
    """CUDA events with an L2 flush and a sleep kernel that holds the stream while Python queues the body."""

    def __init__(self, warmup, repeats, flush):
        self.warmup, self.repeats, self.flush = warmup, repeats, flush
        props = torch.cuda.get_device_properties(0)
        l2 = getattr(props, "L2_cache_size", 0) or (64 << 20)
        self.flush_buffer = torch.zeros(max(4 * l2, 64 << 20) // 4, dtype=torch.float32, device="cuda")
        self.cycles_per_ms = self._calibrate_sleep()
        self.gate_overrun = False

    def _calibrate_sleep(self):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        cycles = 10_000_000
        torch.cuda._sleep(cycles)  # once untimed: the first launch loads the module
        start.record()
        torch.cuda._sleep(cycles)
        stop.record()
        stop.synchronize()
        return cycles / max(start.elapsed_time(stop), 1e-3)

    def _evict(self):
        if self.flush:
            self.flush_buffer.sum()

    def gpu(self, body):
        """Median device time of body in ms, with the launches queued ahead."""
        enqueue = []
        for _ in range(self.warmup):
            t0 = time.perf_counter()
            body()
            enqueue.append(time.perf_counter() - t0)
        torch.cuda.synchronize()
        # Hold the stream for twice the slowest warm-up enqueue (and at least 1 ms).
        hold_ms = max(1.0, 2e3 * max(enqueue, default=0.0))
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(self.repeats)]
        for start, stop in events:
            self._evict()
            torch.cuda._sleep(int(hold_ms * self.cycles_per_ms))
            t0 = time.perf_counter()
            start.record()
            body()
            stop.record()
            if (time.perf_counter() - t0) * 1e3 > hold_ms:
                self.gate_overrun = True
            torch.cuda.synchronize()  # the next repetition starts from an empty queue
        return [start.elapsed_time(stop) for start, stop in events]

    def wall(self, body):
        """Host wall time in ms from an idle stream: enqueue plus device work."""
        samples = []
        for _ in range(self.repeats):
            self._evict()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            body()
            torch.cuda.synchronize()
            samples.append((time.perf_counter() - t0) * 1e3)
        return samples


def summarize(samples_ms):
    ordered = sorted(samples_ms)
    n = len(ordered)

    def rank(q):
        return ordered[min(n - 1, max(0, math.ceil(q * n) - 1))]

    return {"median_ms": statistics.median(ordered), "p10_ms": rank(0.10), "p90_ms": rank(0.90),
            "min_ms": ordered[0], "repeats": n}


PHASES = (("norm", "norm"), ("perturb", "perturb"), ("restore+update", "restore_update"), ("whole step", "step"))


def phase_body(sam, phase):
    def body():
        if phase in ("norm", "step"):
            sam.norm()
        if phase in ("perturb", "step"):
            sam.perturb()
        if phase in ("restore_update", "step"):
            sam.restore_update()
    return body


def phase_bytes(param_set, asam, phase):
    p = 4.0 * param_set.params
    norm = p + (4.0 * param_set.adaptive_params if asam else 0.0)
    return {"norm": norm, "perturb": 4 * p, "restore_update": 5 * p, "step": norm + 9 * p}[phase]


def torch_copy_gbps(timer, mib=1024):
    """dst.copy_(src) at 1 GiB: PyTorch's own copy ceiling on this GPU."""
    n = (mib << 20) // 4
    src = torch.randn(n, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)
    if not torch.equal(dst, src):
        raise SystemExit("sam_optimizer.py: copy_ check failed")
    ms = statistics.median(timer.gpu(lambda: dst.copy_(src)))
    return 2.0 * (mib << 20) / (ms * 1e-3) / 1e9


# ---------------------------------------------------------------- main

def environment():
    env = {"bench": "environment", "side": "pytorch", "torch": torch.__version__,
           "cuda": torch.version.cuda or "none",
           "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "none"}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    # What the foreach variant could use; without them it falls back (see the notes it prints).
    env["foreach_copy"] = hasattr(torch, "_foreach_copy_")
    env["foreach_tensor_scalar"] = FOREACH_TENSOR_SCALAR
    env["fused_sgd"] = "fused" in SGD_PARAMS
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", help="JSON from bench_sam_kernels --dump-shapes (else the PyTorch twins)")
    parser.add_argument("--models", help=f"comma-separated (default {DEFAULT_MODELS}; dry run {DRY_RUN_MODELS})")
    parser.add_argument("--variants", default="per-tensor,foreach")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--no-flush", action="store_true", help="do not evict the L2 cache before each repetition")
    parser.add_argument("--json", help="append one JSON line per result to this file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dry-run", action="store_true",
                        help="on the CPU: check every variant against the formula, time nothing")
    args = parser.parse_args()
    if args.repeats < 100:
        parser.error("--repeats must be >= 100 (the median of fewer is not worth printing)")
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in IMPLEMENTATIONS:
            parser.error(f"--variants: unknown '{v}' (known: {', '.join(IMPLEMENTATIONS)})")
    models = [m for m in (args.models or (DRY_RUN_MODELS if args.dry_run else DEFAULT_MODELS)).split(",") if m]

    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return 0
    device = torch.device("cpu" if args.dry_run else "cuda")
    out = open(args.json, "a") if args.json else None

    def emit(record):
        if out:
            out.write(json.dumps(record) + "\n")
            out.flush()

    env = environment()
    emit(env)
    print(f"sam_optimizer.py: the optimizer side of a SAM step in PyTorch {torch.__version__}, float32, "
          f"on {env.get('gpu', 'cpu')}" + (" (dry run: checks only)" if args.dry_run else ""))
    if not FOREACH_TENSOR_SCALAR:
        print(f"note: PyTorch {torch.__version__} has no tensor scalar for foreach ops; "
              "the foreach variant reads the scale on the host")
    if not hasattr(torch, "_foreach_copy_"):
        print("note: no torch._foreach_copy_; the foreach variant copies tensor by tensor")

    timer = copy_gbps = None
    if not args.dry_run:
        timer = CudaTimer(args.warmup, args.repeats, not args.no_flush)
        copy_gbps = torch_copy_gbps(timer)
        print(f"copy bandwidth (torch copy_, 1024 MiB): {copy_gbps:.0f} GB/s")
        emit({"bench": "copy_bandwidth", "side": "pytorch", "method": "torch copy_", "gbps": copy_gbps})
        print(f"timing: median of {args.repeats} after {args.warmup} warm-up runs, "
              f"{'L2 flushed before each' if not args.no_flush else 'L2 not flushed'}; GPU us = device time "
              "with the launches queued ahead, wall us = host enqueue + device from an idle stream")
    print()

    all_ok = True
    for param_set in load_param_sets(models, args.shapes):
        print(f"{param_set.model}: {len(param_set.names)} tensors, {param_set.params:,} parameters")
        inputs = make_inputs(param_set, device, args.seed)
        rows = []
        for asam in (False, True):
            s = Settings(asam)
            ref = reference_step(param_set, inputs, s)
            method = "asam" if asam else "sam"
            for kind in variants:
                sam = build(kind, param_set, inputs, s, device)
                label = f"{kind} {method.upper()} [{sam.sgd_label}]"
                ok, summary = compare(param_set, run_step(sam, inputs), ref)
                print(f"  check {label}: {summary}")
                if not ok:
                    all_ok = False
                    emit({"bench": "sam_optimizer", "side": "pytorch", "model": param_set.model, "variant": kind,
                          "method": method, "status": "failed", "detail": summary})
                    continue
                for phase_label, phase in PHASES:
                    body = phase_body(sam, phase)
                    if args.dry_run:
                        body()  # runs again from the state the check left: the code path, not a figure
                        continue
                    gpu = summarize(timer.gpu(body))
                    wall = summarize(timer.wall(body))
                    nbytes = phase_bytes(param_set, asam, phase)
                    gbps = nbytes / (gpu["median_ms"] * 1e-3) / 1e9
                    rows.append((label if phase == "norm" else "", phase_label, gpu, wall, nbytes, gbps))
                    emit({"bench": "sam_optimizer", "side": "pytorch", "model": param_set.model, "variant": kind,
                          "method": method, "phase": phase, "status": "ok", "sgd": sam.sgd_label,
                          "params": param_set.params, "tensors": len(param_set.names),
                          "median_us": gpu["median_ms"] * 1e3, "p10_us": gpu["p10_ms"] * 1e3,
                          "p90_us": gpu["p90_ms"] * 1e3, "wall_us": wall["median_ms"] * 1e3,
                          "repeats": gpu["repeats"], "bytes": nbytes, "gbps": gbps,
                          "copy_gbps": copy_gbps, "copy_fraction": gbps / copy_gbps})
                del sam
        if rows:
            header = f"{'variant':40s} {'phase':>15s} {'GPU us':>10s} {'p10-p90 us':>16s} {'wall us':>10s} " \
                     f"{'GB/s':>7s} {'% copy':>7s}"
            print(header)
            print("-" * len(header))
            for label, phase_label, gpu, wall, nbytes, gbps in rows:
                spread = f"{gpu['p10_ms'] * 1e3:.1f}-{gpu['p90_ms'] * 1e3:.1f}"
                print(f"{label:40s} {phase_label:>15s} {gpu['median_ms'] * 1e3:10.1f} {spread:>16s} "
                      f"{wall['median_ms'] * 1e3:10.1f} {gbps:7.0f} {100 * gbps / copy_gbps:7.1f}")
            print("-" * len(header))
            steps = {r[0].split(" [")[0]: r[2]["median_ms"] * 1e3 for r in rows if r[1] == "whole step"}
            best = min(steps.items(), key=lambda kv: kv[1])
            print(f"{param_set.model} SAM step, optimizer side: fastest PyTorch variant {best[0]} "
                  f"{best[1]:.1f} us\n")
    if timer is not None and timer.gate_overrun:
        print("note: some bodies took longer to queue than the sleep that held the stream; "
              "their GPU us include host time")
    if out:
        out.close()
    if not all_ok:
        print("some variants FAILED their check (see above)")
        return 1
    if args.dry_run:
        print("dry run: every variant matches the float64 formula")
    return 0


if __name__ == "__main__":
    sys.exit(main())
