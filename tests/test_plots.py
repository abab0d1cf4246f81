"""Plots for notebooks: each returns a Figure, draws into a given `ax`, and leaves the user's backend alone."""

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from lifelong import Result, plots

MATRIX = [[0.9, 0.1, 0.05], [0.7, 0.85, 0.1], [0.5, 0.6, 0.95]]
PLOTS = {
    "matrix": lambda ax=None: plots.plot_matrix(MATRIX, "t", ax=ax),
    "curves": lambda ax=None: plots.plot_curves(MATRIX, "t", ax=ax),
    "scatter": lambda ax=None: plots.plot_scatter([("naive", 1.0, 0.1, 0.5, 0.02), ("ewc", 2.0, 0.2, 0.6, 0.03)],
                                                  "t", ax=ax),
    "learning curve": lambda ax=None: plots.plot_learning_curve(
        [dict(method=m, shots=k, n_train=100 * k, n_classes=5, acc=0.3 + 0.01 * k) for m in "ab" for k in (1, 5)],
        "t", ax=ax),
}


@pytest.fixture
def svg_backend():
    """A backend other than the Agg that plotting used to switch to; restored afterwards."""
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    yield "svg"
    matplotlib.use(before)


@pytest.mark.parametrize("name", PLOTS)
def test_a_plot_returns_a_figure_and_keeps_the_users_backend(svg_backend, name, tmp_path):
    fig = PLOTS[name]()
    assert isinstance(fig, Figure) and fig.axes and fig.axes[0].has_data()
    assert matplotlib.get_backend() == svg_backend
    path = plots.save_png(fig, tmp_path / "x.png")
    assert path == tmp_path / "x.png" and path.read_bytes().startswith(b"\x89PNG")
    assert matplotlib.get_backend() == svg_backend


@pytest.mark.parametrize("name", PLOTS)
def test_a_plot_draws_into_the_given_axes(name):
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert PLOTS[name](ax=right) is fig
    assert right.has_data() and not left.has_data()


def test_a_subfigure_axes_gives_back_the_whole_figure():
    fig = Figure()
    ax = fig.subfigures(1, 2)[1].subplots()
    assert plots.plot_curves(MATRIX, ax=ax) is fig


def test_result_plot_still_writes_both_pngs(svg_backend, tmp_path):
    result = Result(matrix=MATRIX, reference=[0.1] * 3, losses=[], task_seconds=[], train_seconds=1.0, eval_seconds=0.1,
                    samples_seen=10, peak_rss_mb=1.0, strategy_memory_bytes=0)
    paths = result.plot(tmp_path / "out", "naive")
    assert [p.name for p in paths] == ["matrix-naive.png", "curves-naive.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
    assert matplotlib.get_backend() == svg_backend


def test_a_long_stream_keeps_the_matrix_figure_small_and_unlabelled():
    long = np.random.default_rng(0).random((50, 50))
    fig = plots.plot_matrix(long)
    w, h = fig.get_size_inches()
    assert w <= 1.0 + 0.6 * plots.MAX_LABELLED and h <= 0.8 + 0.6 * plots.MAX_LABELLED
    assert not fig.axes[0].texts  # no per-cell values
    assert len(fig.axes[0].get_xticks()) <= plots.MAX_LABELLED + 1
    short = plots.plot_matrix(long[:3, :3])
    assert len(short.axes[0].texts) == 9
    curves = plots.plot_curves(long)
    assert [t.get_text() for t in curves.axes[0].get_legend().get_texts()] == ["mean (seen)"]
