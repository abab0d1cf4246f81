"""`lifelong report DIR...`: a Markdown and a self-contained HTML report built only from run folders.

Every results.json under the given folders is read (schema-checked); its runs are grouped by
(benchmark, scenario) into sections and by strategy label (the strategy and the options its config
set, e.g. `ewc-lam=100`) within a section. Each section has the mean ± std table of `report.COLUMNS`
over seeds (ACC, BWT, FWT, forgetting, LA, time, samples/s, memory), the mean accuracy matrix of
each strategy as a table and a heat map, per-task accuracy curves, an accuracy-vs-time scatter, and
a table of every single run. A first table lists the environments the runs were made in (versions,
platform, CPUs, PyTorch threads, GPU), with a warning when there are several. The run folders of the
other commands (pretrain, transfer, meta, adapt) get a section each: the title and summary table their
command prints. The HTML inlines its PNG figures, so the one file can be mailed.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, LifelongError
from .files import atomic_write_bytes
from .metrics import mean_std
from .plots import plot_curves, plot_matrix, plot_online, plot_scatter, save_png
from .results import load_results, run_label
from . import tables
from .tables import COLUMNS, html_table, markdown_table, summary_rows

RUN_HEADER = ["Run", "Strategy", "Seed"] + [title for _, title, _, _ in COLUMNS]


@dataclass
class Section:
    """The runs of one (benchmark, scenario), by strategy label in order of first appearance."""

    benchmark: str
    scenario: str
    groups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.benchmark}, {self.scenario}-incremental"

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]", "_", f"{self.benchmark}-{self.scenario}")


def find_results(dirs: list[Path]) -> list[Path]:
    """results.json of each folder, or of every run folder below it."""
    found: list[Path] = []
    for d in dirs:
        if not d.is_dir():
            raise ConfigError(f"{d} is not a folder: give run folders (written by `lifelong run --out` or "
                              "`lifelong bench`)")
        files = [d / "results.json"] if (d / "results.json").is_file() else sorted(d.rglob("results.json"))
        if not files:
            raise ConfigError(f"{d} holds no finished run (no results.json): run `lifelong bench` or "
                              "`lifelong run --out` first")
        found += [f for f in files if f.resolve() not in {g.resolve() for g in found}]
    return found


Summary = tuple[str, list[str], list[list[str]]]  # title, header, rows


def collect(dirs: list[Path]) -> tuple[list[Section], list[Summary]]:
    """Every run of every `lifelong run` results.json under `dirs`, grouped into sections, and the
    summary of each other command's run folder (`experiment.commands.summary`, which imports the
    experiments, and so PyTorch, only when there is such a folder)."""
    sections: dict[tuple[str, str], Section] = {}
    others: list[Path] = []
    for path in find_results(dirs):
        try:
            data = load_results(path)
        except LifelongError:
            others.append(path)  # another command's, or no results file at all: its summary says which
            continue
        options = data.get("config", {}).get("strategy_options", {})
        try:
            for rec in data["runs"]:
                parts = rec["strategy"].split("+")
                label = run_label(rec["strategy"], {n: options[n] for n in parts if options.get(n)})
                key = (rec["benchmark"], rec["scenario"])
                section = sections.setdefault(key, Section(*key))
                section.groups.setdefault(label, []).append({**rec, "strategy": label, "dir": str(path.parent),
                                                             "environment": data.get("environment") or {}})
        except (KeyError, TypeError, AttributeError) as err:
            raise LifelongError(f"{path} is damaged (missing or malformed field {err}): run it again") from None
    if not others:
        return list(sections.values()), []
    from .experiment.commands import summary
    return list(sections.values()), list(filter(None, map(summary, others)))


def mean_matrix(runs: list[dict[str, Any]]) -> np.ndarray:
    shapes = {len(r["matrix"]) for r in runs}
    if len(shapes) != 1:
        raise LifelongError(f"runs of {runs[0]['strategy']} have different numbers of tasks {sorted(shapes)}: "
                            "report them separately")
    return np.asarray([r["matrix"] for r in runs], dtype=np.float64).mean(0)


def _matrix_rows(m: np.ndarray) -> tuple[list[str], list[list[str]]]:
    header = ["after task / on task"] + [str(j) for j in range(len(m))]
    return header, [[str(i)] + [f"{v * 100:.2f}" for v in row] for i, row in enumerate(m)]


def _run_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["dir"], r["strategy"], str(r["seed"])] +
            [f"{r['metrics'][k] * scale:.{dec}f}" for k, _, scale, dec in COLUMNS] for r in runs]


ENVIRONMENT = [("lifelong", "lifelong"), ("torch", "PyTorch"), ("python", "Python"), ("platform", "Platform"),
               ("cpus", "CPUs"), ("threads", "Threads"), ("cuda", "GPU")]


def environment_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    """One row per distinct environment the runs were made in (`experiment.environment`), with its
    number of runs; "-" where a results file predates a field."""
    counts: dict[tuple[str, ...], int] = {}
    for r in runs:
        env = r["environment"]
        key = tuple("-" if env.get(k) is None else str(env[k]) for k, _ in ENVIRONMENT)
        counts[key] = counts.get(key, 0) + 1
    return [[*key, str(n)] for key, n in counts.items()]


def write_report(dirs: list[Path], out: Path) -> tuple[Path, Path]:
    """Write `out`/report.md (figures in `out`/figures/) and the self-contained `out`/report.html;
    each file is replaced atomically, so an earlier report survives a failed write whole."""
    sections, summaries = collect(dirs)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"report folder {out} is a file: choose another `out`", "out")
    try:
        (out / "figures").mkdir(parents=True, exist_ok=True)
        return _render(sections, summaries, dirs, out)
    except OSError as err:
        raise ConfigError(f"cannot write the report to {out}: {err.strerror or err}: choose another `out` "
                          "or free some space", "out") from None


def _render(sections: list[Section], summaries: list[Summary], dirs: list[Path], out: Path) -> tuple[Path, Path]:
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    n_runs = sum(len(g) for s in sections for g in s.groups.values())
    intro = (f"{n_runs} runs from {', '.join(str(d) for d in dirs)}, {now}. Accuracies in %, mean ± std over "
             "seeds; time is training time in seconds.")
    md = ["# lifelong report", "", intro, ""]
    body = [f"<h1>lifelong report</h1><p>{html.escape(intro)}</p>"]
    envs = environment_rows([r for s in sections for g in s.groups.values() for r in g])
    env_header = [title for _, title in ENVIRONMENT] + ["Runs"]
    env_note = ("Runs made in different environments: their times (and, with another thread count or "
                "library version, the last digits of their accuracies) are not comparable." if len(envs) > 1 else "")
    md += ["## Environment", "", markdown_table(env_header, envs), "", *([env_note, ""] if env_note else [])]
    body += ["<h2>Environment</h2>", html_table(env_header, envs)] + ([f"<p>{html.escape(env_note)}</p>"]
                                                                      if env_note else [])
    for s in sections:
        runs = [r for g in s.groups.values() for r in g]
        figures: list[tuple[str, Path]] = []
        matrices = []
        for label, group in s.groups.items():
            m = mean_matrix(group)
            title = f"{label} ({len(group)} seed{'s' * (len(group) > 1)})"
            matrices.append((title, m))
            png = out / "figures" / f"{s.slug}-{label}"
            figures.append((f"{label}: accuracy matrix", save_png(plot_matrix(m, title), f"{png}-matrix.png")))
            figures.append((f"{label}: per-task accuracy", save_png(plot_curves(m, title), f"{png}-curves.png")))
            if all(r.get("online") for r in group):
                figures.append((f"{label}: over the stream", save_png(plot_online([r["online"] for r in group], title),
                                                                      f"{png}-online.png")))
        points = []
        for label, group in s.groups.items():
            t = mean_std([r["metrics"]["train_seconds"] for r in group])
            a = mean_std([r["metrics"]["acc"] for r in group])
            points.append((label, t[0], t[1], a[0], a[1]))
        scatter = save_png(plot_scatter(points, s.title), out / "figures" / f"{s.slug}-scatter.png")
        figures.append(("ACC vs training time", scatter))
        summary = summary_rows(runs)
        top = tables.header(runs)
        md += [f"## {s.title}", "", markdown_table(top, summary), ""]
        body += [f"<h2>{html.escape(s.title)}</h2>", html_table(top, summary)]
        md += ["### Mean accuracy matrices", ""]
        body.append("<h3>Mean accuracy matrices</h3>")
        for title, m in matrices:
            header, rows = _matrix_rows(m)
            md += [f"{title}:", "", markdown_table(header, rows), ""]
            body += [f"<p>{html.escape(title)}:</p>", html_table(header, rows)]
        md += ["### Figures", ""]
        body.append("<h3>Figures</h3><div class='figs'>")
        for caption, path in figures:
            md += [f"![{caption}](figures/{path.name})", ""]
            data = base64.b64encode(path.read_bytes()).decode()
            body.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        body.append("</div>")
        md += ["### Runs", "", markdown_table(RUN_HEADER, _run_rows(runs)), ""]
        body += ["<h3>Runs</h3>", html_table(RUN_HEADER, _run_rows(runs))]
    for title, header, rows in summaries:
        md += [f"## {title}", "", markdown_table(header, rows) if rows else "", ""]
        body += [f"<h2>{html.escape(title)}</h2>", html_table(header, rows) if rows else ""]
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0;"
             "font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#eee}"
             "td:first-child,th:first-child{text-align:left}.figs{display:flex;flex-wrap:wrap;gap:1em}"
             "figure{margin:0}figcaption{font-size:12px;text-align:center}")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>lifelong report</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
    atomic_write_bytes(out / "report.md", "\n".join(md).encode())
    atomic_write_bytes(out / "report.html", page.encode())
    return out / "report.md", out / "report.html"
