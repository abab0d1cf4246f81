"""`write_report`: the tables of the HTML and Markdown reports hold exactly the numbers of results.json."""

import json
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest

from lifelong.errors import ConfigError, LifelongError
from lifelong.experiment import RunConfig, load_results, run, write_run_dir
from lifelong.report import ENVIRONMENT, collect, write_report
from lifelong.suite import parse, run_suite

TINY = {"n_tasks": 3, "hidden": [16], "epochs": 1, "batch_size": 64}


class Tables(HTMLParser):
    """Every <table> of a page as lists of cell strings, plus every <img> src."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    run_suite(parse({"settings": TINY, "benchmarks": ["split-digits"], "scenarios": ["class", "task"],
                     "strategies": ["naive", {"ewc": {"lam": 10}}], "seeds": 2}, "s", root))
    return root


def test_html_tables_hold_the_numbers_of_results_json(suite_dir, tmp_path):
    md_path, html_path = write_report([suite_dir], tmp_path / "rep")
    page = Tables()
    page.feed(html_path.read_text())
    summaries = [t for t in page.tables if t[0][:3] == ["Strategy", "Seeds", "ACC"]]
    runs_tables = [t for t in page.tables if t[0][:3] == ["Run", "Strategy", "Seed"]]
    assert len(summaries) == 2 and len(runs_tables) == 2  # one section per scenario
    results = [load_results(p) for p in sorted(suite_dir.rglob("results.json"))]
    assert len(results) == 8
    by_group: dict[tuple[str, str], list[dict]] = {}
    for data in results:
        rec = data["runs"][0]
        label = "naive" if rec["strategy"] == "naive" else "ewc-lam=10"
        by_group.setdefault((rec["scenario"], label), []).append(rec)
    cells = {}
    for scenario, table in zip(["class", "task"], summaries):
        header = table[0]
        for row in table[1:]:
            cells[(scenario, row[0])] = dict(zip(header, row))
    assert set(cells) == set(by_group)
    for key, recs in by_group.items():
        for col, metric, scale, dec in [("ACC", "acc", 100, 2), ("BWT", "bwt", 100, 2), ("FWT", "fwt", 100, 2),
                                        ("Forgetting", "forgetting", 100, 2), ("Time (s)", "train_seconds", 1, 1)]:
            v = np.array([r["metrics"][metric] for r in recs]) * scale
            assert cells[key][col] == f"{v.mean():.{dec}f} ± {v.std(ddof=1):.{dec}f}"
        assert cells[key]["Seeds"] == "2"
    all_rows = [row for t in runs_tables for row in t[1:]]
    assert len(all_rows) == 8
    for data in results:
        rec = data["runs"][0]
        row = next(r for r in all_rows if r[2] == str(rec["seed"]) and f"/{rec['scenario']}/" in r[0]
                   and r[1].startswith(rec["strategy"]))
        assert row[3] == f"{rec['acc'] * 100:.2f}" and row[4] == f"{rec['bwt'] * 100:.2f}"
    # self-contained: every image is inline, nothing is fetched
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert not re.search(r"(src|href)=['\"](?!data:)", html_path.read_text())
    # the Markdown carries the same summary rows and links figures that exist
    md = md_path.read_text()
    for key in by_group:
        assert "| " + " | ".join(cells[key][h] for h in summaries[0][0]) + " |" in md
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (md_path.parent / link).read_bytes()[:4] == b"\x89PNG"


def test_mean_matrix_table_is_the_mean_over_seeds(suite_dir, tmp_path):
    _, html_path = write_report([suite_dir / "split-digits" / "task"], tmp_path / "rep")
    page = Tables()
    page.feed(html_path.read_text())
    matrices = [t for t in page.tables if t[0][0] == "after task / on task"]
    recs = [load_results(p)["runs"][0] for p in sorted((suite_dir / "split-digits/task/naive").rglob("results.json"))]
    mean = np.mean([r["matrix"] for r in recs], axis=0) * 100
    labels = list(collect([suite_dir / "split-digits" / "task"])[0][0].groups)
    naive = matrices[labels.index("naive")]
    assert [[float(c) for c in row[1:]] for row in naive[1:]] == [[round(v, 2) for v in row] for row in mean]


def test_a_multi_strategy_run_folder_and_composed_options(tmp_path):
    config = RunConfig(benchmark="split-digits", strategy=["naive", "ewc+l2"], seeds=2,
                       strategy_options={"ewc": {"lam": 3}}, **TINY)
    (tmp_path / "run").mkdir()
    write_run_dir(tmp_path / "run", config, run(config))
    sections, summaries = collect([tmp_path / "run"])
    assert summaries == []
    assert [list(s.groups) for s in sections] == [["naive", "ewc_l2-ewc.lam=3"]]
    assert all(len(g) == 2 for g in sections[0].groups.values())


def test_bad_report_input(tmp_path, suite_dir):
    with pytest.raises(ConfigError, match="not a folder"):
        write_report([tmp_path / "nowhere"], tmp_path / "rep")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no finished run"):
        write_report([tmp_path / "empty"], tmp_path / "rep")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text('{"schema": "lifelong.results/1", "runs": [{"strategy": "naive"}]}')
    with pytest.raises(LifelongError, match="damaged"):
        write_report([bad], tmp_path / "rep")
    (bad / "results.json").write_text(json.dumps({"schema": "other"}))
    with pytest.raises(LifelongError, match="not a lifelong results file"):
        write_report([bad], tmp_path / "rep")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        write_report([suite_dir], tmp_path / "file")
    assert not (tmp_path / "rep").exists()


def test_environment_table_and_a_warning_when_runs_differ(suite_dir, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(suite_dir / "split-digits" / "task", copy)
    md = write_report([copy], tmp_path / "rep")[0].read_text()
    env = load_results(next(copy.rglob("results.json")))["environment"]
    row = "| " + " | ".join(str(env[k]) if env[k] is not None else "-" for k, _ in ENVIRONMENT) + " | 4 |"
    assert "## Environment" in md and row in md and "not comparable" not in md
    other = sorted(copy.rglob("results.json"))[0]
    data = json.loads(other.read_text())
    data["environment"] = {k: v for k, v in data["environment"].items() if k != "threads"} | {"torch": "2.0.0"}
    other.write_text(json.dumps(data))  # an older run, from another PyTorch, before threads were recorded
    md = write_report([copy], tmp_path / "rep")[0].read_text()
    assert row.replace("| 4 |", "| 3 |") in md and "| 2.0.0 |" in md and " | - | " in md
    assert "Runs made in different environments" in md
