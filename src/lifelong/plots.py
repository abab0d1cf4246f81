"""Plots of results (matplotlib, PNG). Every figure comes from `metrics`."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .files import atomic_write_bytes
from .metrics import mean_std


def figure():  # matplotlib is imported only when a plot is drawn, with a file backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path) -> None:
    """Write `fig` to `path` as a PNG, atomically, and free it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    fig.clf()
    figure().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _finish(fig, ax, path: Path, title: str) -> Path:
    """The common end of the line plots: a 0-100 % axis, the title, the legend, the file."""
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_png(fig, path)
    return path


def plot_matrix(matrix: Sequence[Sequence[float]], path: Path, title: str = "") -> Path:
    """Heat map of R[i, j] (rows: after training task i; columns: tested on task j), in %."""
    plt = figure()
    m = np.asarray(matrix, dtype=float) * 100
    t = len(m)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * t, 0.8 + 0.6 * t))
    im = ax.imshow(m, vmin=0, vmax=100, cmap="viridis")
    for i in range(t):
        for j in range(t):
            ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if m[i, j] < 60 else "black")
    ax.set_xlabel("tested on task j")
    ax.set_ylabel("after training task i")
    ax.set_xticks(range(t))
    ax.set_yticks(range(t))
    ax.set_title(f"accuracy (%) {title}".strip(), fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_png(fig, path)
    return path


def plot_curves(matrix: Sequence[Sequence[float]], path: Path, title: str = "") -> Path:
    """Accuracy on each task (one line per task) as training moves through the stream."""
    plt = figure()
    m = np.asarray(matrix, dtype=float) * 100
    t = len(m)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for j in range(t):
        ax.plot(range(j, t), m[j:, j], marker="o", label=f"task {j}")
    ax.plot(range(t), [m[i, : i + 1].mean() for i in range(t)], "k--", label="mean (seen)")
    ax.set_xlabel("after training task")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(range(t))
    return _finish(fig, ax, path, title)


def plot_scatter(points: Sequence[tuple[str, float, float, float, float]], path: Path, title: str = "") -> Path:
    """ACC (%) against training time (s), one point per strategy with its seed std as error bars;
    `points` holds (label, mean time, std time, mean ACC, std ACC)."""
    plt = figure()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, t, t_std, acc, acc_std in points:
        ax.errorbar([t], [acc * 100], xerr=[t_std], yerr=[acc_std * 100], fmt="o", capsize=3, label=label)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("ACC (%)")
    return _finish(fig, ax, path, title)


def plot_learning_curve(records: Sequence[dict], path: Path, title: str = "") -> Path:
    """Target test accuracy (%) against labelled samples per class, one line per method, seed std as
    error bars; "all" is drawn at the mean number of training samples per class."""
    plt = figure()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    per_class = {r["shots"]: r["n_train"] / r["n_classes"] for r in records}
    for method in dict.fromkeys(r["method"] for r in records):
        points = []
        for k in per_class:
            accs = [r["acc"] * 100 for r in records if r["method"] == method and r["shots"] == k]
            points.append((per_class[k], *mean_std(accs)))
        x, y, err = zip(*sorted(points))
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    ax.set_xlabel("labelled target samples per class")
    ax.set_ylabel("target test accuracy (%)")
    return _finish(fig, ax, path, title)
