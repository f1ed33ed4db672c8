#!/usr/bin/env python3
"""Merges the JSON lines of basin's benchmarks (bench_copy, bench_sam_kernels,
bench_train_step --json) and of the PyTorch scripts (sam_optimizer.py,
train_step.py --json) into one Markdown report: the environment, the copy
ceiling, the SAM optimizer side and the training step, with basin/PyTorch
ratios. On the GPU every ratio is a speedup of basin over PyTorch: PyTorch's
time over basin's (equivalently basin's images/s over PyTorch's), so > 1
means basin is faster. A figure that is missing or failed its check shows
as "-".

Training steps on the CPU (bench_train_step --device cpu, train_step.py
--device cpu) get their own table, one row per model, batch, optimizer and
thread count, paired on all four, with the time ratio the CPU comparison
asks for: basin's median step time over PyTorch's (< 1: basin is faster).
Both sides report each model's parameter count; where they differ the two
were not the same network, the report says so and the exit status is 1.

  python3 bench/pytorch/compare.py [--env env.json] basin.jsonl torch.jsonl > report.md
"""

import argparse
import json
import re
import sys

BASIN_VARIANTS = (("v1-per-tensor", "basin v1 per-tensor"), ("v2-multi-tensor", "basin v2 multi-tensor"),
                  ("v3-fused", "basin v3 fused"))
TORCH_VARIANTS = (("per-tensor", "PyTorch per-tensor"), ("foreach", "PyTorch foreach"))
PHASES = (("norm", "norm"), ("perturb", "perturb"), ("restore_update", "restore+update"), ("step", "whole step"))
ENV_FIELDS = (("date", "date"), ("commit", "git commit"), ("gpu", "GPU"), ("driver", "driver"),
              ("cuda", "CUDA (nvcc)"), ("basin_cuda_runtime", "CUDA runtime (basin)"), ("basin_cudnn", "cuDNN (basin)"),
              ("cpu", "CPU"), ("basin_cpu_engine", "basin CPU engine"),
              ("torch", "PyTorch"), ("torch_cuda", "CUDA (PyTorch)"), ("torch_cudnn", "cuDNN (PyTorch)"),
              ("torch_onednn", "oneDNN (PyTorch)"), ("tf32", "TF32"),
              ("load", "load average at the start (1, 5, 15 min)"))


def read_records(paths):
    records = []
    for path in paths:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"compare.py: {path}:{number}: not JSON ({e})")
    return records


def fmt(value, decimals=1):
    return "-" if value is None else f"{value:,.{decimals}f}"


def ratio(numerator, denominator):
    if numerator is None or denominator is None or denominator == 0:
        return "-"
    return f"{numerator / denominator:.2f}x"


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ordered(values):
    seen = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def cpu_engine_line(lines):
    """basin's describe_cpu_engine() lines, one per run, differ only in the
    thread count: "fast kernels (oneDNN 2.6.3, OpenMP, 1 thread)" and "...,
    2 threads)" become "fast kernels (oneDNN 2.6.3, OpenMP, 1 or 2 threads)"."""
    lines = ordered(line for line in lines if line)
    if len(lines) <= 1:
        return lines[0] if lines else None
    pattern = re.compile(r"^(.*\b)(\d+) threads?\)$")
    matches = [pattern.match(line) for line in lines]
    if all(matches) and len({m.group(1) for m in matches}) == 1:
        counts = ordered(m.group(2) for m in matches)
        return f"{matches[0].group(1)}{', '.join(counts[:-1])} or {counts[-1]} threads)"
    return "; ".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", help="JSON-lines files from both sides")
    parser.add_argument("--env", help="JSON object with date, commit, gpu, driver, ... (run_side_by_side.sh writes it)")
    args = parser.parse_args()
    records = read_records(args.files)
    out = []

    # ---- environment
    env = {}
    if args.env:
        with open(args.env) as f:
            env.update(json.load(f))
    for r in records:
        if r.get("bench") == "environment" and r.get("side") == "basin":
            env.setdefault("gpu", r.get("gpu"))
            env.setdefault("basin_cuda_runtime", r.get("cuda_runtime"))
            env.setdefault("basin_cudnn", r.get("cudnn"))
            env.setdefault("driver", r.get("driver"))
            env.setdefault("cpu", r.get("cpu"))
        if r.get("bench") == "environment" and r.get("side") == "pytorch":
            env.setdefault("torch", r.get("torch"))
            if r.get("device") != "cpu":  # a CPU run's "CUDA: none" says nothing
                env.setdefault("torch_cuda", r.get("cuda"))
                env.setdefault("torch_cudnn", r.get("cudnn"))
                env.setdefault("gpu", r.get("gpu"))
            env.setdefault("cpu", r.get("cpu"))
            env.setdefault("torch_onednn", r.get("onednn"))
    engine = cpu_engine_line(r.get("cpu_engine") for r in records
                             if r.get("bench") == "environment" and r.get("side") == "basin")
    if engine:
        env.setdefault("basin_cpu_engine", engine)
    out.append("# basin vs PyTorch, side by side\n")
    out.extend(f"- {label}: {env[key]}" for key, label in ENV_FIELDS if env.get(key) is not None)
    gpu_figures = any(r.get("bench") in ("copy_bandwidth", "sam_optimizer") or
                      (r.get("bench") == "train_step" and r.get("device") != "cpu") for r in records)
    if gpu_figures:
        out.append("\nRatios are speedups of basin over PyTorch (PyTorch time / basin time); > 1: basin is faster.\n")
    else:
        out.append("")

    # ---- copy ceiling
    copy = {}
    for r in records:
        if r.get("bench") == "copy_bandwidth":
            copy[r.get("side")] = r
    if copy:
        out.append("## Copy bandwidth (the ceiling of memory-bound kernels)\n")
        rows = [[side, r.get("method", "-"), fmt(r.get("gbps"), 0)] for side, r in sorted(copy.items())]
        out.append(table(["side", "method", "GB/s"], rows) + "\n")

    # ---- SAM optimizer side
    sam = {}
    for r in records:
        if r.get("bench") == "sam_optimizer" and r.get("status") == "ok":
            sam[(r["side"], r["model"], r["method"], r["variant"], r["phase"])] = r
    failed = [r for r in records if r.get("bench") == "sam_optimizer" and r.get("status") == "failed"]
    sam_conclusion = train_conclusion = None
    if sam or failed:
        out.append("## SAM optimizer side of one step (no forward/backward), float32\n")
        out.append("GPU us: median device time with the launches queued ahead; wall us: host enqueue + device "
                   "from an idle stream.\n")
        models = ordered(k[1] for k in sam)
        headers = ["model", "method"] + [label + " GPU / wall us" for _, label in BASIN_VARIANTS + TORCH_VARIANTS] \
            + ["v3 vs per-tensor (GPU / wall)", "v3 vs foreach (GPU / wall)"]
        rows = []
        for model in models:
            for method in ("sam", "asam"):
                def get(side, variant, phase="step", field="median_us"):
                    r = sam.get((side, model, method, variant, phase))
                    return None if r is None else r.get(field)
                cells = []
                for variant, _ in BASIN_VARIANTS:
                    cells.append(f"{fmt(get('basin', variant))} / {fmt(get('basin', variant, field='wall_us'))}")
                for variant, _ in TORCH_VARIANTS:
                    cells.append(f"{fmt(get('pytorch', variant))} / {fmt(get('pytorch', variant, field='wall_us'))}")
                if all(c == "- / -" for c in cells):
                    continue
                v3, v3_wall = get("basin", "v3-fused"), get("basin", "v3-fused", field="wall_us")
                speedups = []
                for variant, _ in TORCH_VARIANTS:
                    speedups.append(f"{ratio(get('pytorch', variant), v3)} / "
                                    f"{ratio(get('pytorch', variant, field='wall_us'), v3_wall)}")
                rows.append([model, method.upper()] + cells + speedups)
                if method == "sam" and v3 is not None:
                    best = min((get("pytorch", v) for v, _ in TORCH_VARIANTS if get("pytorch", v) is not None),
                               default=None)
                    sam_conclusion = (f"{model} SAM optimizer side: basin v3 {v3:.1f} us"
                                      + (f" vs the fastest PyTorch variant {best:.1f} us ({ratio(best, v3)})"
                                         if best is not None else ""))
        out.append(table(headers, rows) + "\n")

        out.append("### By phase (GPU us, % of the copy bandwidth measured by the same side)\n")
        rows = []
        for model in models:
            for method in ("sam", "asam"):
                for phase, phase_label in PHASES:
                    cells = []
                    for side, variants in (("basin", BASIN_VARIANTS), ("pytorch", TORCH_VARIANTS)):
                        for variant, _ in variants:
                            r = sam.get((side, model, method, variant, phase))
                            cells.append("-" if r is None else
                                         f"{fmt(r.get('median_us'))} ({fmt(100 * (r.get('copy_fraction') or 0), 0)}%)")
                    if all(c == "-" for c in cells):
                        continue
                    rows.append([model, method.upper(), phase_label] + cells)
        out.append(table(["model", "method", "phase"] + [label for _, label in BASIN_VARIANTS + TORCH_VARIANTS],
                         rows) + "\n")
        for r in failed:
            out.append(f"- FAILED its check: {r['side']} {r.get('variant')} {r.get('method')} on {r.get('model')}: "
                       f"{r.get('detail', '')}")
        if failed:
            out.append("")

    # ---- training step on the GPU
    train = {}
    for r in records:
        if r.get("bench") == "train_step" and r.get("device") != "cpu":
            train[(r["side"], r["model"], r["batch"], r["optimizer"])] = r
    if train:
        out.append("## Training step (forward, backward, optimizer), images/s\n")
        tf32 = ordered({True: "on", False: "off"}.get(r.get("tf32"), "?") for r in train.values())
        devices = ordered(r.get("device", "?") for r in train.values())
        out.append(f"TF32: {', '.join(tf32)}; device: {', '.join(devices)}\n")
        keys = ordered((k[1], k[2]) for k in train)
        rows = []
        for model, batch in keys:
            def ips(side, optimizer):
                r = train.get((side, model, batch, optimizer))
                return None if r is None else r.get("images_per_s")
            b_sgd, t_sgd = ips("basin", "sgd"), ips("pytorch", "sgd")
            b_sam, t_sam, t_foreach = ips("basin", "sam"), ips("pytorch", "sam"), ips("pytorch", "sam-foreach")
            rows.append([model, batch, fmt(b_sgd, 0), fmt(t_sgd, 0), ratio(b_sgd, t_sgd), fmt(b_sam, 0),
                         fmt(t_sam, 0), ratio(b_sam, t_sam), fmt(t_foreach, 0), ratio(b_sam, t_foreach),
                         ratio(b_sgd, b_sam), ratio(t_sgd, t_sam)])
            if b_sam is not None and (t_sam is not None or t_foreach is not None):
                best = max(v for v in (t_sam, t_foreach) if v is not None)
                train_conclusion = (f"{model} batch {batch} SAM training: basin {b_sam:,.0f} images/s vs "
                                    f"PyTorch's best {best:,.0f} ({ratio(b_sam, best)})")
        out.append(table(["model", "batch", "basin SGD", "PyTorch SGD", "SGD ratio", "basin SAM", "PyTorch SAM",
                          "SAM ratio", "PyTorch SAM foreach", "ratio vs foreach", "basin SAM/SGD time",
                          "PyTorch SAM/SGD time"], rows) + "\n")

    # ---- training step on the CPU
    cpu_conclusion, params_differ = cpu_train_section(records, out)

    conclusion = [c for c in (sam_conclusion, train_conclusion, cpu_conclusion) if c]
    if conclusion:
        # The last line is the figure that matters: the last (largest) model's SAM figures.
        out.append("; ".join(conclusion))
    else:
        out.append("no comparable figures: run both sides on a GPU (bench/run_side_by_side.sh) "
                   "or on the CPU (DEVICE=cpu bench/run_side_by_side.sh)")
    print("\n".join(out))
    return 1 if params_differ else 0


def cpu_train_section(records, out):
    """The CPU training-step table: one row per (model, batch, optimizer,
    threads), basin's and PyTorch's images/s and basin's time over PyTorch's.
    A configuration measured in several rounds (run_side_by_side.sh ROUNDS,
    basin and PyTorch alternating) gets each side's median over the rounds of
    its median step, and the range of the per-round ratios. Returns the
    conclusion line and whether a model's parameter count differs between the
    sides."""
    cpu = {}
    for r in records:
        if r.get("bench") == "train_step" and r.get("device") == "cpu":
            cpu.setdefault((r["side"], r["model"], r["batch"], r["optimizer"], r.get("threads")), []).append(r)
    if not cpu:
        return None, False
    rounds = max(len(v) for v in cpu.values())
    out.append("## Training step on the CPU (forward, backward, optimizer), float32\n")
    steps = ordered(f"{r.get('side')} {r.get('warmup')}+{r.get('steps')}" for v in cpu.values() for r in v)
    out.append("Each side times every step alone and takes the median step; "
               f"{rounds} round{'s' if rounds != 1 else ''} per configuration, basin and PyTorch alternating, "
               "and each side's figure is the median of its rounds (images/s = batch / that step time). "
               "The time ratio is basin's step time over PyTorch's: **< 1 means basin is faster**; "
               "beside it, the lowest and highest ratio of a single round. "
               f"Warm-up + timed steps: {', '.join(steps)}.\n")

    params = {}
    for (side, model, *_), v in cpu.items():
        for r in v:
            if r.get("params") is not None:
                params.setdefault(model, {})[side] = r["params"]
    params_differ = False
    notes = []
    for model, sides in params.items():
        b, t = sides.get("basin"), sides.get("pytorch")
        if b is not None and t is not None and b != t:
            params_differ = True
            notes.append(f"- **{model}: the parameter counts differ (basin {b:,d}, PyTorch {t:,d}): "
                         "not the same network, the ratios compare nothing**")
        else:
            known = b if b is not None else t
            notes.append(f"- {model}: {known:,d} parameters" + (" on both sides" if b is not None and t is not None
                                                                else " (one side only)"))

    def median(values):
        values = sorted(values)
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

    def step_ms(runs):
        return None if not runs else median([r["ms_per_step"] for r in runs])

    def per_round(runs):
        return "-" if not runs else ", ".join(f"{r['ms_per_step']:,.0f}" for r in runs)

    rows = []
    conclusion = None
    keys = ordered(k[1:] for k in cpu)
    for model, batch, optimizer, threads in keys:
        b = cpu.get(("basin", model, batch, optimizer, threads), [])
        t = cpu.get(("pytorch", model, batch, optimizer, threads), [])
        b_ms, t_ms = step_ms(b), step_ms(t)
        b_ips, t_ips = (None if ms is None else 1e3 * batch / ms for ms in (b_ms, t_ms))
        round_ratios = [x["ms_per_step"] / y["ms_per_step"] for x, y in zip(b, t)]
        ratio_range = "-" if not round_ratios else f"{min(round_ratios):.2f}-{max(round_ratios):.2f}"
        rows.append([model, batch, optimizer, "-" if threads is None else threads, fmt(b_ips, 1), fmt(t_ips, 1),
                     ratio(b_ms, t_ms), ratio_range, per_round(b), per_round(t)])
        if b_ms is not None and t_ms is not None:
            conclusion = (f"{model} batch {batch} {optimizer.upper()} on the CPU, {threads} thread"
                          f"{'' if threads == 1 else 's'}: basin {b_ips:,.1f} images/s vs PyTorch {t_ips:,.1f} "
                          f"(basin/PyTorch time {ratio(b_ms, t_ms)})")
    out.append(table(["model", "batch", "optimizer", "threads", "basin images/s", "PyTorch images/s",
                      "basin/PyTorch time", "one round's ratio", "basin ms/step by round",
                      "PyTorch ms/step by round"], rows) + "\n")
    out.extend(notes)
    out.append("")
    return conclusion, params_differ


if __name__ == "__main__":
    sys.exit(main())
