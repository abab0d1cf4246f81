"""A run folder's results.json as `lifelong report` reads it: the schema of `lifelong run`'s, the
checked reader, and the label of a run. Imports no PyTorch, so that reports start at once."""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from .errors import LifelongError

RESULTS_SCHEMA = "lifelong.results/1"  # `lifelong run`'s results.json


def load_results(path: Path, schemas: Collection[str] = (RESULTS_SCHEMA,)) -> dict[str, Any]:
    """Read a results.json written by `write_run_dir` (or, with other `schemas`, by another command's
    `Experiment.write`), checking its schema."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LifelongError(f"cannot read results file {path}: {err}") from None
    if not isinstance(data, dict) or data.get("schema") not in schemas:
        raise LifelongError(f"{path} is not a lifelong results file of schema {' or '.join(schemas)}")
    return data


def run_label(spec: str, options: dict[str, dict[str, Any]]) -> str:
    """`ewc` or `ewc-lam=100` or `ewc_replay-ewc.lam=100-replay.buffer_size=200`: a folder name."""
    single = "+" not in spec
    parts = [spec.replace("+", "_")] + [f"{k}={v}" if single else f"{n}.{k}={v}"
                                         for n, o in options.items() for k, v in o.items()]
    return re.sub(r"[^A-Za-z0-9._=-]", "_", "-".join(parts))
