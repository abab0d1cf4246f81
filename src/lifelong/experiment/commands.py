"""The experiment of each command that computes (`lifelong run`, `pretrain`, `transfer`, `meta`, `adapt`, `rl`),
by command name: the CLI and suites look them up here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import LifelongError
from .adapt import AdaptExperiment
from ..results import load_results
from .base import Experiment
from .continual import RunExperiment
from .meta import MetaExperiment
from .pretrain import PretrainExperiment
from .rl import RLExperiment
from .transfer import TransferExperiment

EXPERIMENTS: dict[str, type[Experiment]] = {e.command: e for e in (
    RunExperiment, PretrainExperiment, TransferExperiment, MetaExperiment, AdaptExperiment, RLExperiment)}
SCHEMAS = {e.schema: e for e in EXPERIMENTS.values()}


def summary(path: Path) -> tuple[str, list[str], list[list[str]]] | None:
    """The title line and summary table (header, rows) of the run folder whose results.json is `path`,
    as its command shows them; None for a `lifelong run` folder (`report` has its own sections for those)."""
    data = load_results(path, SCHEMAS)
    experiment = SCHEMAS[data["schema"]]
    if experiment is RunExperiment:
        return None
    try:
        shown = experiment(experiment.config_class(**data["config"]))
        records: list[dict[str, Any]] = data[experiment.records_key]
        return f"{experiment.command}: {shown.title(records)}", *shown.table(records)
    except (KeyError, TypeError, IndexError) as err:
        raise LifelongError(f"{path} is damaged (missing or malformed field {err}): run it again") from None
