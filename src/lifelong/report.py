"""Tables (terminal, Markdown, HTML) and plots (PNG) of results. Every figure comes from `metrics`."""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .files import atomic_write_bytes
from .metrics import mean_std

# (key in a run's metrics, column title, scale, decimals)
COLUMNS = [
    ("acc", "ACC", 100, 2),
    ("bwt", "BWT", 100, 2),
    ("fwt", "FWT", 100, 2),
    ("forgetting", "Forgetting", 100, 2),
    ("learning_accuracy", "LA", 100, 2),
    ("train_seconds", "Time (s)", 1, 1),
    ("samples_per_second", "Samples/s", 1, 0),
    ("peak_rss_mb", "Peak RSS (MB)", 1, 0),
    ("strategy_memory_bytes", "Strategy mem (MB)", 2**-20, 2),
]


def summary_rows(runs: Sequence[dict]) -> list[list[str]]:
    """One row per strategy (in order of first appearance): mean +- std over its seeds."""
    by_strategy: dict[str, list[dict]] = {}
    for run in runs:
        by_strategy.setdefault(run["strategy"], []).append(run["metrics"])
    rows = []
    for name, ms in by_strategy.items():
        row = [name, str(len(ms))]
        for key, _, scale, dec in COLUMNS:
            mean, std = mean_std([m[key] * scale for m in ms])
            row.append(f"{mean:.{dec}f} ± {std:.{dec}f}" if len(ms) > 1 else f"{mean:.{dec}f}")
        rows.append(row)
    return rows


def table(runs: Sequence[dict], markdown: bool = False) -> str:
    """The strategy x metrics table (accuracies in %), aligned for a terminal or as Markdown."""
    header = ["Strategy", "Seeds"] + [title for _, title, _, _ in COLUMNS]
    rows = summary_rows(runs)
    return markdown_table(header, rows) if markdown else text_table(header, rows)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned for a terminal: the first to the left, the others to the right."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    fmt = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cell = lambda tag, c: f"<{tag}>{html.escape(str(c))}</{tag}>"  # noqa: E731
    head = "<tr>" + "".join(cell("th", c) for c in header) + "</tr>"
    body = "".join("<tr>" + "".join(cell("td", c) for c in r) + "</tr>" for r in rows)
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


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


def curve_rows(records: Sequence[dict]) -> tuple[list[str], list[list[str]]]:
    """Transfer learning curves as a table: one row per method, one column per number of shots,
    cells the mean ± std test accuracy (%) over seeds."""
    shots = list(dict.fromkeys(r["shots"] for r in records))
    methods = list(dict.fromkeys(r["method"] for r in records))
    rows = []
    for method in methods:
        row = [method]
        for k in shots:
            accs = [r["acc"] * 100 for r in records if r["method"] == method and r["shots"] == k]
            mean, std = mean_std(accs)
            row.append(f"{mean:.2f} ± {std:.2f}" if len(accs) > 1 else f"{mean:.2f}")
        rows.append(row)
    return ["Method"] + [f"{k} shot{'s' * (k != 1)}" if k != "all" else "all" for k in shots], rows


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
