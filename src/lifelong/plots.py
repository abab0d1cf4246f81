"""Plots of results (matplotlib, optional extra `plots`). Every figure comes from `metrics`.

Each `plot_*` function builds and returns a `matplotlib.figure.Figure` (shown inline by a notebook), or
draws into the axes given as `ax` and returns their figure. No pyplot and no backend switch: the
figures are plain `Figure` objects, so the user's backend stays as it was. `save_png(fig, path)` writes
one to a file.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from .extras import need
from .files import atomic_write_bytes
from .metrics import mean_std

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def new_figure(figsize: tuple[float, float], ax: Axes | None = None) -> tuple[Figure, Axes]:
    """A new figure of `figsize` inches with one axes, or, given `ax`, the figure `ax` belongs to and `ax`."""
    if ax is not None:
        return ax.get_figure(root=True), ax  # type: ignore[return-value]
    fig = need("matplotlib.figure", "plots").Figure(figsize=figsize)
    return fig, fig.subplots()


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write `fig` to `path` as a PNG (100 dpi), atomically; returns the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def _finish(fig: Figure, ax: Axes, own: bool, title: str) -> Figure:
    """The common end of the line plots: a 0-100 % axis, the title, the legend; the layout is tightened
    only on a figure made here (`own`), never on the user's."""
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    if own:
        fig.tight_layout()
    return fig


MAX_LABELLED = 12  # tasks up to which a matrix shows each cell's value and the curves a legend entry per task


def _task_ticks(ax: Axes, t: int, x: bool = True, y: bool = False) -> None:
    """At most about MAX_LABELLED task ticks per axis."""
    ticks = range(0, t, max(1, -(-t // MAX_LABELLED)))
    if x:
        ax.set_xticks(ticks)
    if y:
        ax.set_yticks(ticks)


def plot_matrix(matrix: ArrayLike, title: str = "", ax: Axes | None = None) -> Figure:
    """Heat map of R[i, j] (rows: after training task i; columns: tested on task j), in %. Each cell
    shows its value up to MAX_LABELLED tasks; longer streams keep the figure at that size, colours only."""
    m = np.asarray(matrix, dtype=float) * 100
    t = len(m)
    side = 0.6 * min(t, MAX_LABELLED)
    fig, ax_ = new_figure((1.0 + side, 0.8 + side), ax)
    im = ax_.imshow(m, vmin=0, vmax=100, cmap="viridis")
    if t <= MAX_LABELLED:
        for i in range(t):
            for j in range(t):
                ax_.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=8,
                         color="white" if m[i, j] < 60 else "black")
    ax_.set_xlabel("tested on task j")
    ax_.set_ylabel("after training task i")
    _task_ticks(ax_, t, x=True, y=True)
    ax_.set_title(f"accuracy (%) {title}".strip(), fontsize=9)
    fig.colorbar(im, ax=ax_, fraction=0.046)
    if ax is None:
        fig.tight_layout()
    return fig


def plot_curves(matrix: ArrayLike, title: str = "", ax: Axes | None = None) -> Figure:
    """Accuracy on each task (one line per task) as training moves through the stream; the legend names
    each task up to MAX_LABELLED tasks, and only the mean beyond."""
    m = np.asarray(matrix, dtype=float) * 100
    t = len(m)
    fig, ax_ = new_figure((5, 3.2), ax)
    for j in range(t):
        ax_.plot(range(j, t), m[j:, j], marker="o" if t <= MAX_LABELLED else None,
                 label=f"task {j}" if t <= MAX_LABELLED else None)
    ax_.plot(range(t), [m[i, : i + 1].mean() for i in range(t)], "k--", label="mean (seen)")
    ax_.set_xlabel("after training task")
    ax_.set_ylabel("test accuracy (%)")
    _task_ticks(ax_, t)
    return _finish(fig, ax_, ax is None, title)


def plot_online(curves: Sequence[dict[str, Any]], title: str = "", ax: Axes | None = None) -> Figure:
    """A task-free online fit over its stream (`Trainer.fit_online`'s curves, one per seed): the anytime
    accuracy of each seed (black), the per-task accuracy of the first seed (one thin line per task up to
    MAX_LABELLED tasks) and its hidden task boundaries (dotted), against the samples met."""
    fig, ax_ = new_figure((6, 3.2), ax)
    first = curves[0]
    tasks = np.asarray(first["tasks"], dtype=float) * 100
    if tasks.shape[1] <= MAX_LABELLED:
        for j in range(tasks.shape[1]):
            ax_.plot(first["samples"], tasks[:, j], lw=0.8, label=f"task {j}")
    for k, c in enumerate(curves):
        ax_.plot(c["samples"], np.asarray(c["anytime"]) * 100, "k-", lw=1.5, label="anytime" if k == 0 else None)
    for end in first["ends"][:-1]:
        ax_.axvline(end, color="grey", ls=":", lw=0.8)
    ax_.set_xlabel("samples met")
    ax_.set_ylabel("held-out accuracy (%)")
    return _finish(fig, ax_, ax is None, title)


def plot_scatter(points: Sequence[tuple[str, float, float, float, float]], title: str = "",
                 ax: Axes | None = None) -> Figure:
    """ACC (%) against training time (s), one point per strategy with its seed std as error bars;
    `points` holds (label, mean time, std time, mean ACC, std ACC)."""
    fig, ax_ = new_figure((5, 3.2), ax)
    for label, t, t_std, acc, acc_std in points:
        ax_.errorbar([t], [acc * 100], xerr=[t_std], yerr=[acc_std * 100], fmt="o", capsize=3, label=label)
    ax_.set_xlabel("training time (s)")
    ax_.set_ylabel("ACC (%)")
    return _finish(fig, ax_, ax is None, title)


def plot_learning_curve(records: Sequence[dict[str, Any]], title: str = "", ax: Axes | None = None) -> Figure:
    """Target test accuracy (%) against labelled samples per class, one line per method, seed std as
    error bars; "all" is drawn at the mean number of training samples per class."""
    fig, ax_ = new_figure((5, 3.2), ax)
    per_class = {r["shots"]: r["n_train"] / r["n_classes"] for r in records}
    for method in dict.fromkeys(r["method"] for r in records):
        points = []
        for k in per_class:
            accs = [r["acc"] * 100 for r in records if r["method"] == method and r["shots"] == k]
            points.append((per_class[k], *mean_std(accs)))
        x, y, err = zip(*sorted(points))
        ax_.errorbar(x, y, yerr=err, marker="o", capsize=3, label=method)
    ax_.set_xscale("log")
    ax_.set_xlabel("labelled target samples per class")
    ax_.set_ylabel("target test accuracy (%)")
    return _finish(fig, ax_, ax is None, title)
