"""`lifelong bench` then `lifelong report` through the CLI; the shipped suites are valid; the HTML
report renders in headless Chromium where one is installed."""

import shutil
import subprocess
from pathlib import Path

import pytest

from lifelong.cli import main
from lifelong.experiment import load_results
from lifelong.files import exclusive
from lifelong.strategies import STRATEGIES
from lifelong.suite import load

SUITES = Path(__file__).parents[2] / "suites"
TINY_SUITE = """
settings: {n_tasks: 2, hidden: [16], epochs: 1, batch_size: 64}
benchmarks: [split-digits]
strategies: [naive, {replay: {buffer_size: 50}}]
seeds: 2
"""


@pytest.mark.parametrize("name", ["smoke", "standard"])
def test_shipped_suites_are_valid(name, tmp_path):
    suite = load(SUITES / f"{name}.yaml", out=tmp_path)
    assert suite.points and not any(tmp_path.iterdir())
    if name == "standard":  # every strategy of the library, 3 seeds, Split and Permuted Fashion-MNIST
        assert {p.config.strategy[0] for p in suite.points} == set(STRATEGIES.names())
        assert {p.config.seed for p in suite.points} == {0, 1, 2}
        assert {(p.config.benchmark, p.path.parts[-3]) for p in suite.points} >= {
            ("split-fmnist", "class"), ("split-fmnist", "task"), ("split-fmnist", "domain"),
            ("permuted-fmnist", "domain")}
    else:
        assert {p.config.benchmark for p in suite.points} == {"split-digits"}


def test_bench_then_report(capsys, tmp_path):
    (tmp_path / "s.yaml").write_text(TINY_SUITE)
    out = tmp_path / "runs"
    assert main(["bench", str(tmp_path / "s.yaml"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "4 runs into" in text and "[4/4] split-digits/class/replay-buffer_size=50/seed1: ACC" in text
    assert "4 run(s) done, 0 skipped" in text
    assert main(["bench", str(tmp_path / "s.yaml"), "--out", str(out)]) == 0
    assert "0 run(s) done, 4 skipped" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0
    assert "report written to" in capsys.readouterr().out
    page = (out / "report" / "report.html").read_text()
    acc = load_results(out / "split-digits/class/naive/seed0/results.json")["runs"][0]["acc"]
    assert f"<td>{acc * 100:.2f}</td>" in page


@pytest.mark.parametrize("argv, message", [
    (["bench", "missing.yaml"], "cannot read suite file"),
    (["report", "no/such/folder"], "not a folder"),
    (["bench"], "the following arguments are required"),
])
def test_bench_and_report_bad_input(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (apt-get install chromium)")
def test_report_renders_in_headless_chromium(capsys, tmp_path):
    (tmp_path / "s.yaml").write_text(TINY_SUITE)
    assert main(["bench", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "runs")]) == 0
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")]) == 0
    page = tmp_path / "rep" / "report.html"
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    acc = load_results(tmp_path / "runs/split-digits/class/naive/seed1/results.json")["runs"][0]["acc"]
    assert "<table>" in dom and f"<td>{acc * 100:.2f}</td>" in dom and "lifelong report" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,900", page.as_uri()], capture_output=True, timeout=120)
    assert shot.read_bytes()[:4] == b"\x89PNG"


def test_bench_passes_over_points_another_bench_is_running(capsys, tmp_path):
    (tmp_path / "s.yaml").write_text(TINY_SUITE.replace("seeds: 2", "seeds: 1"))
    held = tmp_path / "runs" / "split-digits" / "class" / "naive" / "seed0"
    held.mkdir(parents=True)
    with exclusive(held):
        assert main(["bench", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "runs")]) == 0
    text = capsys.readouterr().out
    assert "[1/2] split-digits/class/naive/seed0: another process is running it, passed over" in text
    assert "1 run(s) done, 0 skipped, 1 left to the other process(es)" in text
