#!/usr/bin/env python3
"""Plots the loss and accuracy curves of one or more basin-train runs.

    python3 scripts/plot_metrics.py runs/sam/metrics.jsonl runs/sgd/metrics.jsonl -o curves.png

Each run is a metrics.jsonl (one JSON object per epoch, as basin-train writes
it) or a run folder holding one. Runs are overlaid, labelled by their folder
name (or --labels). Needs matplotlib (Debian: python3-matplotlib).
"""
import argparse
import json
import os
import sys


def read_run(path):
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    if not os.path.exists(path):
        sys.exit(f"plot_metrics: {path} not found")
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"plot_metrics: {path}:{number}: not JSON ({e})")
    if not rows:
        sys.exit(f"plot_metrics: {path} holds no epochs yet")
    return path, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="metrics.jsonl files or run folders")
    parser.add_argument("-o", "--output", default="curves.png", help="PNG to write (default: curves.png)")
    parser.add_argument("--labels", nargs="*", help="one label per run (default: the folder names)")
    args = parser.parse_args()
    if args.labels and len(args.labels) != len(args.runs):
        sys.exit("plot_metrics: give one --labels entry per run")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_metrics: matplotlib is missing (apt-get install python3-matplotlib)")

    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(12, 4.5))
    for index, run in enumerate(args.runs):
        path, rows = read_run(run)
        label = args.labels[index] if args.labels else os.path.basename(os.path.dirname(os.path.abspath(path)))
        epochs = [row["epoch"] for row in rows]
        style = {"color": f"C{index}", "marker": "o", "markersize": 3}  # markers: a one-epoch run still shows
        loss_axes.plot(epochs, [row["train_loss"] for row in rows], linestyle="--", label=f"{label} train", **style)
        loss_axes.plot(epochs, [row["test_loss"] for row in rows], label=f"{label} test", **style)
        accuracy_axes.plot(epochs, [100 * row["train_accuracy"] for row in rows], linestyle="--",
                           label=f"{label} train", **style)
        accuracy_axes.plot(epochs, [100 * row["test_accuracy"] for row in rows], label=f"{label} test", **style)

    loss_axes.set(xlabel="epoch", ylabel="loss", title="loss")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
