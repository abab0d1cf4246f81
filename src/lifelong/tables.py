"""Tables of results (terminal, Markdown, HTML). Every figure comes from `metrics`."""

from __future__ import annotations

import html
from collections.abc import Sequence

from .metrics import mean_std

# (key in a run's metrics, column title, scale, decimals)
COLUMNS: list[tuple[str, str, float, int]] = [
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
Column = tuple[str, str, float, int]  # key, title, scale, decimals
ONLINE_COLUMNS: list[Column] = [  # task-free online runs (`metrics.online_summary`)
    ("aaa", "AAA", 100, 2),
    ("online_forgetting", "Online forgetting", 100, 2),
    ("stability_gap", "Stability gap", 100, 2),
    ("wc_acc", "WC-ACC", 100, 2),
]


def columns(runs: Sequence[dict]) -> list[Column]:
    """COLUMNS, and ONLINE_COLUMNS when every run is an online one."""
    return COLUMNS + ONLINE_COLUMNS if runs and all("aaa" in r["metrics"] for r in runs) else COLUMNS


def header(runs: Sequence[dict]) -> list[str]:
    """The summary table's header for `runs`."""
    return ["Strategy", "Seeds"] + [title for _, title, _, _ in columns(runs)]


def summary_rows(runs: Sequence[dict]) -> list[list[str]]:
    """One row per strategy (in order of first appearance): mean +- std over its seeds."""
    by_strategy: dict[str, list[dict]] = {}
    for run in runs:
        by_strategy.setdefault(run["strategy"], []).append(run["metrics"])
    rows = []
    for name, ms in by_strategy.items():
        row = [name, str(len(ms))]
        for key, _, scale, dec in columns(runs):
            mean, std = mean_std([m[key] * scale for m in ms])
            row.append(f"{mean:.{dec}f} ± {std:.{dec}f}" if len(ms) > 1 else f"{mean:.{dec}f}")
        rows.append(row)
    return rows


def table(runs: Sequence[dict], markdown: bool = False) -> str:
    """The strategy x metrics table (accuracies in %), aligned for a terminal or as Markdown."""
    rows = summary_rows(runs)
    return markdown_table(header(runs), rows) if markdown else text_table(header(runs), rows)


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
