"""Imports point one way, as ARCHITECTURE.md's "Layout" draws them: cli -> experiment -> training ->
strategies -> models/data. Every top-level module and package of src/lifelong has a rank in `RANKS`, and
imports only from its own rank or below; an import under `if TYPE_CHECKING:` (a type hint) is the one
exception. A new module fails `test_every_module_is_ranked` until it is given its place here."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

import lifelong

ROOT = Path(lifelong.__file__).parent

RANKS = {
    # helpers that know nothing of the layers above
    "errors": 0, "files": 0, "registry": 0, "extras": 0, "metrics": 0, "checkpoint": 0, "tables": 0, "plots": 0,
    "losses": 0, "configs": 0, "distributed": 0, "results": 0, "catalog": 0,
    "data": 1,
    "models": 2, "memory": 2,
    "strategies": 3, "evaluation": 3, "checkpointing": 3,
    "training": 4, "vectorized": 4,
    "transfer": 5, "meta": 5, "rl": 5,
    "experiment": 6, "serve": 6, "suite": 6, "runlog": 6, "report": 6,
    "cli": 7, "__main__": 7,
    "__init__": 8,  # `ll.models` and the like load the public subpackages on first use
}
ROOT_NAMES = {"__version__"}  # set by lifelong/__init__.py before it imports anything: any module may read it


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(nodes: Iterable[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports among `nodes` and below them, those in the body of an `if TYPE_CHECKING:` aside."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _type_checking(node.test):
            yield from _runtime_imports(node.orelse)
        else:
            yield from _runtime_imports(ast.iter_child_nodes(node))


def targets(rel: Path, node: ast.Import | ast.ImportFrom) -> Iterator[list[str]]:
    """What `node`, in the module at `rel` (relative to src/lifelong), imports of lifelong: dotted paths
    below the package, split ([] for `lifelong` itself; ["x"] for `from lifelong import x`)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] == "lifelong":
                yield parts[1:]
        return
    module = [m for m in (node.module or "").split(".") if m]
    if node.level:
        package = list(rel.parent.parts)
        base = package[:len(package) - (node.level - 1)]
    elif module[:1] == ["lifelong"]:
        base, module = [], module[1:]
    else:
        return
    if module:
        yield base + module
    else:  # from . import a, b: each name may be a module of its own
        for alias in node.names:
            yield base + [alias.name]


def _top(rel: Path) -> str:
    return rel.with_suffix("").parts[0]


def _rank(name: str) -> int | None:
    """The rank of the module or package `name` of lifelong, or, for a name lifelong/__init__.py defines,
    the rank of that file; None for a module without one."""
    if (ROOT / name).is_dir() or (ROOT / f"{name}.py").exists():
        return RANKS.get(name)
    return RANKS["__init__"]


def upward(rel: Path, source: str) -> list[str]:
    """The imports of the module at `rel` (its text: `source`) that go to a higher rank, or to a module
    without one, as "file:line imports what (why)"."""
    me, out = _top(rel), []
    if me not in RANKS:
        return [f"{rel} (unranked: {me})"]
    for node in _runtime_imports([ast.parse(source)]):
        for target in targets(rel, node):
            if not target or target[0] == me or target[0] in ROOT_NAMES:
                continue
            where, rank = f"{rel}:{node.lineno} imports lifelong.{'.'.join(target)}", _rank(target[0])
            if rank is None:
                out.append(f"{where} (unranked: {target[0]})")
            elif rank > RANKS[me]:
                out.append(f"{where} (rank {rank} above {me}'s {RANKS[me]})")
    return out


def modules() -> list[Path]:
    return sorted(p.relative_to(ROOT) for p in ROOT.rglob("*.py"))


def test_every_module_is_ranked() -> None:
    tops = {_top(rel) for rel in modules()}
    assert tops - set(RANKS) == set(), "give each new module its rank in RANKS"
    assert set(RANKS) - tops == set(), "a ranked module is gone: take it out of RANKS"


def test_no_import_points_upwards() -> None:
    found = [line for rel in modules() for line in upward(rel, (ROOT / rel).read_text())]
    assert found == []


@pytest.mark.parametrize("rel, source, found", [
    ("strategies/x.py", "from ..experiment import run", ["(rank 6 above strategies's 3)"]),
    ("strategies/x.py", "from .. import experiment", ["(rank 6 above strategies's 3)"]),
    ("strategies/x.py", "import lifelong.cli", ["(rank 7 above strategies's 3)"]),
    ("strategies/x.py", "def f():\n    from lifelong.training import Trainer", ["(rank 4 above strategies's 3)"]),
    ("strategies/x.py", "from lifelong import Trainer", ["(rank 8 above strategies's 3)"]),
    ("strategies/x.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..training import Trainer", []),
    ("strategies/x.py", "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    from ..training import T",
     ["(rank 4 above strategies's 3)"]),
    ("experiment/x.py", "from ..training import Trainer\nfrom .base import Experiment\nfrom .. import __version__", []),
    ("transfer/adaptation/x.py", "from ...models import build\nfrom ..features import cache\nfrom . import base", []),
])
def test_the_check_finds_upward_imports_and_spares_type_hints(rel: str, source: str, found: list[str]) -> None:
    lines = upward(Path(rel), source)
    assert [line[line.index(" ("):].strip() for line in lines] == found


def test_a_module_without_a_rank_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(RANKS, "training")
    assert upward(Path("cli.py"), "from .training import Trainer") == [
        "cli.py:1 imports lifelong.training (unranked: training)"]
    assert upward(Path("training.py"), "from .data import Stream") == ["training.py (unranked: training)"]
