#!/usr/bin/env python3
"""Plots the loss landscapes that basin-sharpness writes.

    python3 scripts/plot_landscape.py runs/sgd/landscape1d.csv runs/sam/landscape1d.csv -o line.png
    python3 scripts/plot_landscape.py runs/sam/landscape2d.csv --log -o surface.png

landscape1d.csv ("t,loss,accuracy"): the loss along a line through the
weights, one curve per file, overlaid, with the accuracy on a second axis.
landscape2d.csv ("x,y,loss,accuracy"): the loss over a plane, one panel per
file, as filled contours with contour lines (--log spaces the levels
geometrically, which shows the basin's floor and its walls at once). A file
may also be given as the folder that holds it. Curves and panels are labelled
by their folder name (or --labels). Needs matplotlib (Debian:
python3-matplotlib). docs/sharpness.md explains how to read the plots.
"""
import argparse
import csv
import math
import os
import sys

HEADERS = {("t", "loss", "accuracy"): "1d", ("x", "y", "loss", "accuracy"): "2d"}


def fail(message):
    sys.exit(f"plot_landscape: {message}")


def resolve(path, kind_hint):
    """A CSV path, or a folder holding landscape1d.csv / landscape2d.csv."""
    if os.path.isdir(path):
        names = [f"landscape{kind_hint}.csv"] if kind_hint else ["landscape1d.csv", "landscape2d.csv"]
        found = [os.path.join(path, name) for name in names if os.path.isfile(os.path.join(path, name))]
        if not found:
            fail(f"{path} holds no {' or '.join(names)}")
        if len(found) > 1:
            fail(f"{path} holds both landscape1d.csv and landscape2d.csv: name the file, or pass --kind")
        return found[0]
    if not os.path.exists(path):
        fail(f"{path} not found")
    return path


def read_csv(path):
    """(kind, rows): kind "1d" or "2d", rows as tuples of floats in file order."""
    try:
        with open(path, newline="") as f:
            lines = list(csv.reader(f))
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    except (csv.Error, UnicodeDecodeError) as e:
        fail(f"{path} is not a CSV file ({e})")
    if not lines:
        fail(f"{path} is empty")
    header = tuple(cell.strip() for cell in lines[0])
    kind = HEADERS.get(header)
    if kind is None:
        fail(f"{path}:1: expected the header 't,loss,accuracy' or 'x,y,loss,accuracy' "
             f"(as basin-sharpness writes), got '{','.join(header)}'")
    rows = []
    for number, cells in enumerate(lines[1:], 2):
        if not cells or all(not cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            fail(f"{path}:{number}: expected {len(header)} values, got {len(cells)}")
        try:
            values = tuple(float(cell) for cell in cells)  # "nan" and "inf" parse too
        except ValueError:
            fail(f"{path}:{number}: not a number in '{','.join(cells)}'")
        if not all(math.isfinite(v) for v in values[:len(header) - 2]):
            fail(f"{path}:{number}: the coordinates must be finite numbers")
        rows.append(values)
    if len(rows) < 2:
        fail(f"{path} holds {len(rows)} point(s); a landscape needs at least 2")
    return kind, rows


def grid_of(path, rows):
    """The x values, the y values and loss[y][x], accuracy[y][x] of a complete grid."""
    xs = sorted({row[0] for row in rows})
    ys = sorted({row[1] for row in rows})
    if len(xs) < 2 or len(ys) < 2:
        fail(f"{path}: a 2-D landscape needs at least 2 distinct x and 2 distinct y values, "
             f"got {len(xs)} x {len(ys)}")
    if len(rows) != len(xs) * len(ys):
        fail(f"{path}: {len(rows)} points do not fill the {len(xs)} x {len(ys)} grid of their coordinates")
    x_index = {x: i for i, x in enumerate(xs)}
    y_index = {y: j for j, y in enumerate(ys)}
    loss = [[None] * len(xs) for _ in ys]
    accuracy = [[None] * len(xs) for _ in ys]
    for x, y, l, a in rows:
        j, i = y_index[y], x_index[x]
        if loss[j][i] is not None:
            fail(f"{path}: the point x={x:g}, y={y:g} appears twice")
        loss[j][i], accuracy[j][i] = l, a
    return xs, ys, loss, accuracy


def label_of(path):
    return os.path.basename(os.path.dirname(os.path.abspath(path))) or path


def plot_lines(plt, runs, labels, args):
    figure, loss_axes = plt.subplots(figsize=(7.5, 4.8))
    accuracy_axes = None
    if not args.no_accuracy and any(any(math.isfinite(row[2]) for row in rows) for _, rows in runs):
        accuracy_axes = loss_axes.twinx()
        accuracy_axes.set_ylabel("accuracy (%), dashed")
    for index, ((path, rows), label) in enumerate(zip(runs, labels)):
        rows = sorted(rows)
        ts = [row[0] for row in rows]
        losses = [row[1] if math.isfinite(row[1]) else float("nan") for row in rows]
        if args.max_loss is not None:
            losses = [min(value, args.max_loss) for value in losses]
        loss_axes.plot(ts, losses, color=f"C{index}", marker="o", markersize=2.5, label=label)
        if accuracy_axes is not None:
            accuracy_axes.plot(ts, [100 * row[2] for row in rows], color=f"C{index}", linestyle="--", alpha=0.7)
    if args.log:
        loss_axes.set_yscale("log")
    loss_axes.axvline(0.0, color="grey", linewidth=0.8, alpha=0.5)
    loss_axes.set(xlabel="t", ylabel="loss (solid)", title=args.title or "loss along a line through the weights")
    loss_axes.grid(alpha=0.3)
    loss_axes.legend(fontsize="small", loc="best")
    return figure


def plot_surfaces(plt, runs, labels, args):
    import numpy as np
    from matplotlib import colors

    grids = [grid_of(path, rows) for path, rows in runs]
    finite = [v for _, _, loss, _ in grids for row in loss for v in row if math.isfinite(v)]
    if not finite:
        fail("no finite loss in " + ", ".join(path for path, _ in runs))
    low = min(finite)
    high = max(finite) if args.max_loss is None else min(max(finite), args.max_loss)
    if high <= low:
        high = low + max(abs(low), 1.0) * 1e-6
    if args.log:
        if low <= 0:
            fail(f"--log needs positive losses; the lowest is {low:g}")
        levels = np.geomspace(low, high, args.levels)
        norm = colors.LogNorm(vmin=low, vmax=high)
    else:
        levels = np.linspace(low, high, args.levels)
        norm = None

    columns = len(grids)
    figure, axes = plt.subplots(1, columns, figsize=(5.2 * columns + 1.2, 4.6), squeeze=False)
    filled = None
    for panel, ((xs, ys, loss, _), label) in zip(axes[0], zip(grids, labels)):
        values = np.ma.masked_invalid(np.array(loss, dtype=float))
        values = np.ma.clip(values, low, high)  # so that the top level holds everything above it
        filled = panel.contourf(xs, ys, values, levels=levels, norm=norm, cmap="viridis", extend="neither")
        lines = panel.contour(xs, ys, values, levels=levels, colors="white", linewidths=0.5, alpha=0.6)
        if args.line_labels:
            panel.clabel(lines, fmt="%.3g", fontsize=6)
        panel.plot([0], [0], marker="x", color="red", markersize=8)  # the checkpoint itself
        panel.set(xlabel="x (direction 1)", title=f"{label} (x: the checkpoint)", aspect="equal")
    axes[0][0].set_ylabel("y (direction 2)")
    ticks = levels[::max(1, len(levels) // 8)]
    figure.colorbar(filled, ax=axes[0].tolist(), ticks=ticks, format="%.3g",
                    label="loss" + (" (log scale)" if args.log else ""))
    if args.title:
        figure.suptitle(args.title)
    return figure


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="landscape1d.csv or landscape2d.csv files (or their folders)")
    parser.add_argument("-o", "--output", default=None,
                        help="PNG to write (default: landscape1d.png or landscape2d.png)")
    parser.add_argument("--labels", nargs="*", help="one label per file (default: the folder names)")
    parser.add_argument("--kind", choices=["1d", "2d"], help="which CSV to take from a folder that holds both")
    parser.add_argument("--log", action="store_true",
                        help="2-D: geometrically spaced contour levels; 1-D: a log loss axis")
    parser.add_argument("--levels", type=int, default=30, help="2-D: number of contour levels (default: 30)")
    parser.add_argument("--max-loss", type=float, default=None,
                        help="clip the loss at this value (the far edges of a plane can dwarf the basin)")
    parser.add_argument("--line-labels", action="store_true", help="2-D: write the loss on the contour lines")
    parser.add_argument("--no-accuracy", action="store_true", help="1-D: leave out the accuracy axis")
    parser.add_argument("--title", default=None, help="the figure's title")
    args = parser.parse_args()
    if args.labels is not None and len(args.labels) != len(args.files):
        fail("give one --labels entry per file")
    if args.levels < 2:
        fail(f"--levels must be at least 2, got {args.levels}")
    if args.max_loss is not None and not (math.isfinite(args.max_loss) and args.max_loss > 0):
        fail(f"--max-loss must be a positive number, got {args.max_loss}")

    runs, kinds = [], set()
    for name in args.files:
        path = resolve(name, args.kind)
        kind, rows = read_csv(path)
        runs.append((path, rows))
        kinds.add(kind)
    if len(kinds) > 1:
        fail("give either landscape1d.csv files (overlaid) or landscape2d.csv files (side by side), not both")
    kind = kinds.pop()
    labels = args.labels or [label_of(path) for path, _ in runs]
    output = args.output or f"landscape{kind}.png"

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("matplotlib is missing (apt-get install python3-matplotlib)")

    figure = plot_lines(plt, runs, labels, args) if kind == "1d" else plot_surfaces(plt, runs, labels, args)
    if kind == "1d":
        figure.tight_layout()
    try:
        figure.savefig(output, dpi=120)
    except OSError as e:
        fail(f"cannot write {output}: {e.strerror or e}")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
