"""Target-number regression: each row of targets.csv is a fast protocol whose ACC (seed 0) must stay
within `tolerance` of `expected_acc`. The expected values are the mean over training seeds 0-4 and
the tolerance is 3 standard deviations of those seeds (at least 1.5 points), measured by
`python -m tests.targets.measure`. A strategy that silently breaks (a penalty that became zero, a
buffer never filled) lands on the naive number and fails its row: the last two tests show it."""

import csv
import dataclasses
import functools
from pathlib import Path

import pytest
import torch

from lifelong.data import BENCHMARKS, Dataset
from lifelong.experiment import make_strategy
from lifelong.memory import Buffer
from lifelong.models import build
from lifelong.strategies import EWC
from lifelong.training import Trainer

TARGETS = Path(__file__).with_name("targets.csv")
# name -> settings; `subset` = (training, test) samples drawn once from the data set (seed 0)
PROTOCOLS = {
    "digits": {"hidden": (64,), "epochs": 4, "batch_size": 16},
    "mnist1d": {"hidden": (128, 128), "epochs": 5, "batch_size": 32},
    "fmnist-10k": {"hidden": (256,), "epochs": 1, "batch_size": 32, "subset": (10000, 2000)},
}


@functools.cache
def small(name: str, n_train: int, n_test: int) -> Dataset:
    """The first of a seed-0 shuffle of the benchmark's data set: `n_train` training and `n_test` test samples."""
    data = BENCHMARKS.get(name).factory.load()
    g = torch.Generator().manual_seed(0)
    pick = lambda split, n: split.subset(torch.randperm(len(split), generator=g)[:n])  # noqa: E731
    return dataclasses.replace(data, train=pick(data.train, n_train), test=pick(data.test, n_test))


def parse_options(text: str) -> dict:
    """`lam=100;buffer_size=200` -> {"lam": 100.0, "buffer_size": 200} for a single strategy."""
    out = {}
    for item in filter(None, text.split(";")):
        key, value = item.split("=")
        out[key] = float(value) if "." in value or "e" in value else int(value)
    return out


def fit(row: dict, seed: int = 0) -> float:
    """ACC of one targets.csv row with one training seed (initialisation and batch order); the stream
    (class order, permutations) is always that of seed 0, so that the tolerance measures training noise."""
    p = PROTOCOLS[row["protocol"]]
    bench = BENCHMARKS.get(row["benchmark"]).factory
    if "subset" in p:
        bench = dataclasses.replace(bench, load=functools.partial(small, row["benchmark"], *p["subset"]))
    stream = bench.make(n_tasks=p.get("n_tasks"), scenario=row["scenario"], seed=0)
    torch.manual_seed(seed)
    model = build("mlp", stream.input_shape, stream.n_outputs, p["hidden"])
    options = parse_options(row["options"])
    strategy = make_strategy(row["strategy"], {row["strategy"]: options} if options else {})
    trainer = Trainer(model, strategy, epochs=p["epochs"], batch_size=p["batch_size"], optimizer="adam", lr=1e-3,
                      seed=seed)  # Adam for every row (HAT's default is SGD): the targets' measured protocol
    return trainer.fit(stream).metrics["acc"]


def rows() -> list[dict]:
    with TARGETS.open() as f:
        return list(csv.DictReader(f))


def row_id(row: dict) -> str:
    return f"{row['benchmark']}-{row['scenario']}-{row['strategy']}-{row['protocol']}"


def off_target(row: dict, acc: float) -> float:
    """How far outside its tolerance `acc` (0..1) is, in points (<= 0: within)."""
    return abs(acc * 100 - float(row["expected_acc"])) - float(row["tolerance"])


@pytest.mark.targets
@pytest.mark.parametrize("row", [pytest.param(r, marks=[pytest.mark.fmnist] * ("fmnist" in r["benchmark"]))
                                 for r in rows()], ids=row_id)
def test_target(row):
    acc = fit(row)
    assert off_target(row, acc) <= 0, (
        f"{row_id(row)}: ACC {acc * 100:.2f} is outside {row['expected_acc']} ± {row['tolerance']}")


def find(strategy: str, benchmark_name: str) -> dict:
    return next(r for r in rows() if r["strategy"] == strategy and r["benchmark"] == benchmark_name)


@pytest.mark.targets
def test_a_zeroed_ewc_penalty_fails_its_target(monkeypatch):
    monkeypatch.setattr(EWC, "scale", property(lambda self: 0.0))
    assert off_target(find("ewc", "permuted-digits"), fit(find("ewc", "permuted-digits"))) > 0


@pytest.mark.targets
def test_a_replay_buffer_never_filled_fails_its_target(monkeypatch):
    monkeypatch.setattr(Buffer, "add", lambda self, *args, **kwargs: None)
    assert off_target(find("replay", "split-digits"), fit(find("replay", "split-digits"))) > 0
