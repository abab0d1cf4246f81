"""The experiment model of every command: a config dataclass -> units of work -> records -> a summary
table and a run folder.

`Experiment`: the config's fields, with their help texts, are the command's options and config keys
(`configs`); `execute` runs its units (resumable per unit), `write` writes the run folder (config.json,
results.json of a versioned schema, plots). Here too: claiming and checking run folders, the
`checkpoints/run.json` of a resumable run (`begin_run`, `resumable`), the sealed records of its finished
units (`write_records`, `read_records`). results.json is read by `lifelong.results.load_results`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import shlex
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import torch

from .. import __version__, distributed
from ..checkpoint import States
from ..errors import ConfigError, LifelongError
from ..files import atomic_write_json, exclusive, json_digest, seal, unsealed
from ..registry import Registry

RUN_FORMAT = "lifelong.run/1"
RECORDS_FORMAT = "lifelong.records/1"


def environment() -> dict[str, Any]:
    return {
        "lifelong": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "platform": platform.platform(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
        "world_size": distributed.world_size(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def begin_run(checkpoints: Path, config: Any, resume: bool, command: str, neutral: tuple[str, ...] = ()) -> str:
    """Write run.json (sealed: `files.seal`) and config.json (the configuration, for `--config`) for a new
    run, deleting an earlier run's states and records; or, resuming, check that the `command` run started
    in `checkpoints` has this configuration (the `neutral` keys, which change no result, aside) and warn if
    PyTorch now uses another number of CPU threads, which can change the last bits of the results. Returns
    the run's digest (`run_digest`), which its records carry. Under data-parallel training rank 0 alone
    writes, and every rank waits for it here, so that none reads a file that rank 0 is deleting."""
    digest = _begin_run(checkpoints, config, resume, command, neutral)
    distributed.barrier()
    return digest


def run_digest(config: dict[str, Any], command: str, neutral: tuple[str, ...]) -> str:
    """The digest of what produces a run's results: the command, the lifelong version and the
    configuration (as JSON, the `neutral` keys aside)."""
    return json_digest({"command": command, "lifelong": __version__,
                        "config": {k: v for k, v in config.items() if k not in neutral}})


def _begin_run(checkpoints: Path, config: Any, resume: bool, command: str, neutral: tuple[str, ...]) -> str:
    info = _run_file(checkpoints, command) if resume else None
    if info is not None:
        theirs = dataclasses.asdict(_stored(info, checkpoints, type(config), command))
        for key, value in json.loads(json.dumps(dataclasses.asdict(config))).items():
            if key not in neutral and json.loads(json.dumps(theirs.get(key))) != value:
                raise ConfigError(f"{checkpoints.parent} holds a run of another configuration ({key}: "
                                  f"{theirs.get(key)!r} there, {value!r} here): resume it with its own options "
                                  f"(`lifelong {command} --resume {checkpoints.parent}`), or choose another `out`",
                                  "out")
        if info.get("threads", torch.get_num_threads()) != torch.get_num_threads():
            warnings.warn(f"{checkpoints.parent} was started with {info['threads']} CPU thread(s) and continues "
                          f"with {torch.get_num_threads()}: sums may round differently from an uninterrupted run; "
                          f"pass --threads {info['threads']} for identical results", stacklevel=2)
        if info.get("world_size", 1) != distributed.world_size():
            warnings.warn(f"{checkpoints.parent} was started in {info['world_size']} data-parallel process(es) and "
                          f"continues in {distributed.world_size()}: sums may round differently from an "
                          f"uninterrupted run; resume with --nproc {info['world_size']} for identical results",
                          stacklevel=2)
        return run_digest(info["config"], command, neutral)
    mine = dataclasses.asdict(config)
    if not distributed.is_main():
        return run_digest(mine, command, neutral)
    for pattern in ("*.record.json", "*.records.json"):
        for path in checkpoints.glob(pattern):
            path.unlink()
    for path in checkpoints.glob("*.resume"):
        States(path, path.stem).clear()
    checkpoints.mkdir(parents=True, exist_ok=True)
    atomic_write_json(checkpoints / "config.json", mine)
    atomic_write_json(checkpoints / "run.json", seal({
        "format": RUN_FORMAT, "lifelong": __version__, "command": command, "threads": torch.get_num_threads(),
        "world_size": distributed.world_size(), "config": mine}))
    return run_digest(mine, command, neutral)


def start_over(checkpoints: Path, command: str) -> str:
    """How to start the run in `checkpoints` over, as a command that works: with the configuration its
    config.json keeps (written when it started), or, where there is none, with its options."""
    out, config = shlex.quote(str(checkpoints.parent)), checkpoints / "config.json"
    if config.is_file():
        return f"start it over with `lifelong {command} --config {shlex.quote(str(config))} --out {out} --overwrite`"
    return f"start it over with its options and `--out {out} --overwrite`"


def _run_file(checkpoints: Path, command: str) -> dict[str, Any] | None:
    """The checked contents of `checkpoints`/run.json (None if there is none); ConfigError if it is
    unreadable, was written by another version of lifelong, or was altered (its digest fails)."""
    path = checkpoints / "run.json"
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
        ok = isinstance(info, dict) and info.get("format") == RUN_FORMAT
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read {path} ({err}): {start_over(checkpoints, command)}") from None
    if not ok:
        raise ConfigError(f"{path} is not a lifelong run file ({RUN_FORMAT}): {start_over(checkpoints, command)}")
    if info.get("lifelong") != __version__:
        raise ConfigError(f"{checkpoints.parent} was started by lifelong {info.get('lifelong')} and this is "
                          f"{__version__}: finish it with that version, or {start_over(checkpoints, command)}")
    if why := unsealed(info):
        raise ConfigError(f"{path} {why}: {start_over(checkpoints, command)}")
    return info


def write_records(path: Path, records: list[Record], run: str) -> None:
    """Keep a finished unit's `records` at `path`, sealed, with the digest of the `run` that produced them
    and the unit's file name (a record copied over another unit's is refused)."""
    atomic_write_json(path, seal({"format": RECORDS_FORMAT, "run": run, "unit": path.name, "records": records}))


def read_records(path: Path, run: str) -> list[Record]:
    """The records `write_records` kept at `path`; LifelongError, saying how to redo that unit, if the file is
    unreadable, altered (its digest fails), was written by another run (another configuration or version)
    or for another unit."""
    redo = f"delete it (`rm {shlex.quote(str(path))}`) and resume again to redo that part of the run"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise LifelongError(f"cannot read {path} ({err}): {redo}") from None
    if why := unsealed(info):
        raise LifelongError(f"{path} {why}: {redo}")
    if info.get("format") != RECORDS_FORMAT or not isinstance(info.get("records"), list):
        raise LifelongError(f"{path} is not a lifelong records file ({RECORDS_FORMAT}): {redo}")
    if info.get("run") != run:
        raise LifelongError(f"{path} was written by a run of another configuration or lifelong version: {redo}")
    if info.get("unit") != path.name:
        raise LifelongError(f"{path} holds the records of {info.get('unit')}, another part of the run: {redo}")
    return info["records"]


def _stored(info: dict[str, Any], checkpoints: Path, cls: type, command: str) -> Any:
    theirs = info.get("command", "run")  # run.json files written before other commands had them are runs
    if theirs != command:
        raise ConfigError(f"{checkpoints.parent} holds a `lifelong {theirs}` run: continue it with "
                          f"`lifelong {theirs} --resume {checkpoints.parent}`", "resume")
    try:
        return cls(**info["config"])
    except (TypeError, KeyError) as err:
        raise ConfigError(f"{checkpoints / 'run.json'} holds a configuration this version cannot read ({err}): "
                          f"{start_over(checkpoints, command)}") from None


def stored_config(checkpoints: Path, cls: type, command: str) -> Any:
    """The configuration of the `command` run started in `checkpoints` (None if none was); ConfigError
    if its run.json is unreadable or was written by another version of lifelong or another command."""
    info = _run_file(checkpoints, command)
    return None if info is None else _stored(info, checkpoints, cls, command)


def resumable(out: Path, cls: type, command: str) -> Any:
    """The configuration of the unfinished `command` run in `out` (`lifelong COMMAND --resume`);
    ConfigError if there is none to resume."""
    if (out / "results.json").exists():
        raise ConfigError(f"{out} holds a finished run (results.json): there is nothing to resume", "resume")
    config = stored_config(out / "checkpoints", cls, command)
    if config is None:
        raise ConfigError(f"{out} holds no run to resume (no checkpoints/run.json): start one with `out` {out}",
                          "out")
    return config


def check_unfinished(out: Path, overwrite: bool, command: str = "run") -> None:
    """Refuse to start a new run over an unfinished one in `out`, unless overwriting."""
    if not overwrite and not (out / "results.json").exists() and (out / "checkpoints" / "run.json").exists():
        raise ConfigError(f"`out` {out} holds an unfinished run: continue it with `lifelong {command} --resume "
                          f"{out}`, or pass `overwrite` to start over", "out")


def check_out_dir(out: Path, overwrite: bool, marker: str = "results.json") -> None:
    """Refuse, before any training, an output folder we could not or should not write."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"`out` {out} is a file, not a folder: choose another `out`", "out")
    if (out / marker).exists() and not overwrite:
        raise ConfigError(f"`out` {out} already holds a finished run: pass `overwrite` to replace it or "
                          "choose another `out`", "out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create `out` {out}: {err.strerror}", "out") from None
    if not os.access(out, os.W_OK):
        raise ConfigError(f"`out` {out} is not writable: choose another `out`", "out")


@contextmanager
def claim_out_dir(out: Path | None, overwrite: bool, marker: str = "results.json") -> Iterator[None]:
    """`check_out_dir`, then hold `out` for this process (`files.exclusive`) while the block writes
    there, checking it again under the hold (another process may have finished a run there meanwhile).
    Without `out`, nothing to check or hold."""
    if out is None:
        yield
        return
    check_out_dir(out, overwrite, marker)
    with exclusive(out):
        check_out_dir(out, overwrite, marker)
        yield


Record = dict[str, Any]
Unit = tuple[str, Callable[[], Iterator[Record]]]


class Experiment:
    """One command's experiment: a config dataclass (its fields are the command's options and config
    keys) -> units of work (a seed, a (method, seed), ...) -> records -> a table and a run folder.

    A run folder holds config.json and results.json (`schema`, `config`, `environment`, and the
    records under `records_key`), written last, plus the experiment's plots. While it runs, each
    finished unit's records are kept in `checkpoints/<unit>.records.json`, so that `resume=True`
    continues an interrupted run at record granularity: finished units are read back, the others run
    again (`run` goes further: an interrupted fit continues from its newest checkpoint).
    Subclasses set the class variables and define `units`, `title` and `table`."""

    command: ClassVar[str]
    help: ClassVar[str]
    config_class: ClassVar[type]
    schema: ClassVar[str]
    record_keys: ClassVar[tuple[str, ...]]  # what --json prints of each record
    records_key: ClassVar[str] = "records"
    marker: ClassVar[str] = "results.json"  # its presence marks a finished run
    neutral: ClassVar[tuple[str, ...]] = ()  # config keys that change no result (a resumed run may change them)
    options_field: ClassVar[str | None] = None  # the {name: {argument: value}} field of per-method options
    options_registry: ClassVar[Registry | None] = None  # ... whose classes' hyper-parameters are CLI options

    def __init__(self, config: Any) -> None:
        self.config = config

    def units(self, out: Path | None, progress: bool) -> Iterator[Unit]:
        """(key, make) per unit of work, in order; `make()` yields the unit's records."""
        raise NotImplementedError

    def title(self, records: list[Record]) -> str:
        """The line above the summary table."""
        raise NotImplementedError

    def table(self, records: list[Record]) -> tuple[list[str], list[list[str]]]:
        """The summary table: (header, rows)."""
        raise NotImplementedError

    def headline(self, records: list[Record]) -> str:
        """A few words on the first record for one line of `lifelong bench`: "ACC 93.10%" (or "mse 0.0123")."""
        first = records[0]
        metric = first.get("metric", "acc")
        return f"{metric.upper()} {first[metric] * 100:.2f}%" if metric == "acc" else f"{metric} {first[metric]:.4f}"

    def json_record(self, rec: Record) -> Record:
        return {k: rec[k] for k in self.record_keys}

    def preflight(self) -> None:
        """Checks that need the data, before an earlier run's files are touched (default: none)."""

    def plots(self, out: Path, records: list[Record]) -> None:
        """The run folder's figures (default: none)."""

    def execute(self, out: Path | None = None, resume: bool = False, on_record: Callable[[Record], None] | None = None,
                progress: bool = False) -> list[Record]:
        """Every unit's records, in order; with `out`, finished units are kept under `out`/checkpoints and,
        with `resume`, read back instead of run again. Under torchrun, every rank runs this (after joining
        the process group) and rank 0 alone writes."""
        self.config.validate()
        distributed.init(torch.device(self.config.device))
        self.preflight()
        store = out / "checkpoints" if out is not None else None
        run = begin_run(store, self.config, resume, self.command, self.neutral) if store is not None else ""
        emit = on_record or (lambda rec: None)
        records: list[Record] = []
        for key, make in self.units(out, progress):
            path = store / f"{key}.records.json" if store is not None else None
            if resume and path is not None and path.exists():
                done = read_records(path, run)
                for rec in done:
                    emit(rec)
            else:
                done = []
                for rec in make():
                    done.append(rec)
                    emit(rec)
                if path is not None and distributed.is_main():
                    write_records(path, done, run)
            records += done
        return records

    def write(self, out: Path, records: list[Record], plots: bool = True) -> None:
        """The plots, config.json, then results.json last (its presence marks the run as finished); on
        rank 0 only under data-parallel training."""
        if not distributed.is_main():
            return
        if plots:
            self.plots(out, records)
        self.write_results(out, records)

    def write_results(self, out: Path, records: list[Record]) -> None:
        """config.json, then results.json (atomic writes)."""
        config = dataclasses.asdict(self.config)
        atomic_write_json(out / "config.json", config)
        atomic_write_json(out / "results.json", {
            "schema": self.schema,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "command": sys.argv,
            "config": config,
            "environment": environment(),
            self.records_key: records,
        })


