"""Checkpoints: tensors in safetensors, everything else in JSON, both written atomically.

A checkpoint `NAME` is two files: `NAME.safetensors` (the model's state_dict under `model.` and the
strategy's tensors under `strategy.`) and `NAME.json` (the strategy's other values, metadata, the
SHA-256 of the tensor file, and a digest over the whole JSON with it: `files.seal`), so that a truncated,
damaged or edited checkpoint is refused. Nothing is pickled.

`States` keeps what a fit needs to resume after a crash: numbered generations of such pairs in a
folder, so that a crash while one is written (or a damaged file) leaves an older intact one to use.
The digests detect accidents and careless edits, not a deliberate forgery (docs/resume.md).
"""

from __future__ import annotations

import hashlib
import json
import random
import shlex
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from .errors import LifelongError
from .files import atomic_write_bytes, atomic_write_json, seal, unsealed


class Stateful(Protocol):
    """What a checkpoint stores besides the model: a strategy (`strategies.Strategy`) or anything with
    its state methods."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


FORMAT = "lifelong.checkpoint/1"
STATE_FORMAT = "lifelong.state/1"
PAUSE_ENV = "LIFELONG_PAUSE_AT"  # the kill point of the resume tests (`checkpointing.PauseAt`)
V = TypeVar("V")


def split_state(state: dict[str, Any], prefix: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """A state_dict's tensors (keys given `prefix`) and its other, JSON-ready values."""
    tensors = {f"{prefix}{k}": v for k, v in state.items() if isinstance(v, Tensor)}
    return tensors, {k: v for k, v in state.items() if not isinstance(v, Tensor)}


def strip_prefix(state: Mapping[str, V], prefix: str) -> dict[str, V]:
    """The entries of `state` whose keys start with `prefix`, with the prefix taken off (the inverse of
    the prefixing in `split_state`)."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _serialise(tensors: dict[str, Tensor]) -> bytes:
    return st_save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()})


def save(path: str | Path, model: nn.Module, strategy: Stateful | None = None,
         meta: dict[str, Any] | None = None) -> None:
    """Write `path`.safetensors then `path`.json (the JSON, written last and sealed, vouches for the
    tensors); without `strategy`, the model alone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors, values = split_state(strategy.state_dict() if strategy is not None else {}, "strategy.")
    blob = _serialise({**{f"model.{k}": v for k, v in model.state_dict().items()}, **tensors})
    atomic_write_bytes(path.with_suffix(".safetensors"), blob)
    atomic_write_json(path.with_suffix(".json"), seal({
        "format": FORMAT, "sha256": hashlib.sha256(blob).hexdigest(), "strategy_values": values,
        "meta": meta or {},
    }))


def load(path: str | Path, model: nn.Module, strategy: Stateful | None = None,
         device: str | torch.device = "cpu") -> dict[str, Any]:
    """Restore `model` (and `strategy`) from a checkpoint written by `save`; returns its metadata. A
    checkpoint whose JSON has no digest (saved before lifelong wrote one) is checked by its tensors' alone."""
    path = Path(path)
    try:
        info = json.loads(path.with_suffix(".json").read_text())
        blob = path.with_suffix(".safetensors").read_bytes()
    except (OSError, json.JSONDecodeError) as err:
        raise LifelongError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise LifelongError(f"{path}.json is not a lifelong checkpoint ({FORMAT})")
    if "digest" in info and (why := unsealed(info)):
        raise LifelongError(f"checkpoint {path}.json {why}: use an earlier checkpoint or start the run again")
    if hashlib.sha256(blob).hexdigest() != info.get("sha256"):
        raise LifelongError(f"checkpoint {path}.safetensors is truncated or altered (checksum mismatch): "
                            "use an earlier checkpoint or start the run again")
    tensors = st_load(blob)
    model.load_state_dict({k: v.to(device) for k, v in strip_prefix(tensors, "model.").items()})
    if strategy is not None:
        state: dict[str, Any] = {k: v.to(device) for k, v in strip_prefix(tensors, "strategy.").items()}
        state.update(info.get("strategy_values", {}))
        strategy.load_state_dict(state)
    return info.get("meta", {})


def rng_state(generator: torch.Generator) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The random states a fit draws from: torch's (CPU, CUDA), `generator`'s, NumPy's and Python's."""
    tensors = {"rng.torch": torch.get_rng_state(), "rng.generator": generator.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors |= {f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    state = np.random.get_state()
    assert isinstance(state, tuple)  # the legacy form, the default
    kind, keys, pos, has_gauss, gauss = state
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    version, words, py_gauss = random.getstate()
    return tensors, {"numpy": [kind, int(pos), int(has_gauss), float(gauss)],
                     "python": [version, list(words), py_gauss]}


def set_rng_state(generator: torch.Generator, tensors: dict[str, Tensor], values: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.generator"])
    cuda = sorted((int(k.rsplit(".", 1)[1]), v) for k, v in tensors.items() if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([v for _, v in cuda])
    kind, pos, has_gauss, gauss = values["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, words, py_gauss = values["python"]
    random.setstate((version, tuple(words), py_gauss))


class States:
    """A fit's resumable states, numbered, in `folder`: `state-<n>.safetensors` and `state-<n>.json`
    (the format, the tensors' SHA-256, an optional `base` and the values, sealed by a digest over all of
    it: `files.seal`), each file written atomically, the JSON last. A state saved inside a task names as
    `base` the state saved at the task's start, which a resume needs too. Saving deletes states no longer
    needed: all but the two newest, the two newest without a base, and the bases of those kept. `on_write`,
    if given, is called with `<name>:write:<n>` between state n's tensors and its JSON (a test's kill point)."""

    def __init__(self, folder: str | Path, name: str, on_write: Callable[[str], None] | None = None) -> None:
        self.folder, self.name, self.on_write = Path(folder), name, on_write

    def numbers(self) -> list[int]:
        """The states saved (those whose JSON exists), oldest first."""
        found = (p.stem.removeprefix("state-") for p in self.folder.glob("state-*.json"))
        return sorted(int(n) for n in found if n.isdigit())

    def _paths(self, n: int) -> tuple[Path, Path]:
        stem = self.folder / f"state-{n:08d}"
        return stem.with_suffix(".safetensors"), stem.with_suffix(".json")

    def save(self, tensors: dict[str, Tensor], values: dict[str, Any], base: int | None = None) -> int:
        """Write the next state; returns its number."""
        self.folder.mkdir(parents=True, exist_ok=True)
        numbers = self.numbers()
        n = numbers[-1] + 1 if numbers else 1
        blob = _serialise(tensors)
        tensor_path, json_path = self._paths(n)
        atomic_write_bytes(tensor_path, blob)
        if self.on_write is not None:
            self.on_write(f"{self.name}:write:{n}")
        atomic_write_json(json_path, seal({"format": STATE_FORMAT, "sha256": hashlib.sha256(blob).hexdigest(),
                                           "base": base, "values": values}))
        self._prune([*numbers, n])
        return n

    def _base(self, n: int) -> int | None:
        try:
            base = json.loads(self._paths(n)[1].read_text()).get("base")
        except (OSError, ValueError, AttributeError):
            return None
        return base if isinstance(base, int) else None

    def _prune(self, numbers: list[int]) -> None:
        bases = {n: self._base(n) for n in numbers}
        keep = set(numbers[-2:]) | set([n for n in numbers if bases[n] is None][-2:])
        keep |= {b for n in list(keep) if (b := bases[n]) is not None}
        for n in numbers:
            if n not in keep:
                tensor_path, json_path = self._paths(n)
                json_path.unlink(missing_ok=True)
                tensor_path.unlink(missing_ok=True)
        for path in self.folder.glob("state-*.safetensors"):  # tensors whose JSON was never written
            number = path.stem.removeprefix("state-")
            if not number.isdigit() or int(number) not in keep:
                path.unlink(missing_ok=True)
        for path in self.folder.glob(".state-*.tmp"):  # left by a crash in the middle of a write
            path.unlink(missing_ok=True)

    def read(self, n: int) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """State n's tensors and JSON; LifelongError if either is unreadable, truncated or altered (the
        JSON's digest covers its values and the tensors' SHA-256)."""
        tensor_path, json_path = self._paths(n)
        try:
            info = json.loads(json_path.read_text())
            blob = tensor_path.read_bytes()
        except (OSError, ValueError) as err:
            raise LifelongError(f"cannot read state {json_path}: {err}") from None
        if not isinstance(info, dict) or info.get("format") != STATE_FORMAT:
            raise LifelongError(f"{json_path} is not a lifelong state ({STATE_FORMAT})")
        if why := unsealed(info):
            raise LifelongError(f"state {json_path} {why}")
        if hashlib.sha256(blob).hexdigest() != info.get("sha256"):
            raise LifelongError(f"state {tensor_path} is truncated or altered (checksum mismatch)")
        return st_load(blob), info

    def latest(self) -> list[tuple[int, dict[str, Tensor], dict[str, Any]]]:
        """The newest intact state's (number, tensors, values), preceded by its base's if it has one;
        [] if no state was saved. A damaged or altered state (or one whose base is) is passed over with a
        warning; when every state is, a LifelongError names the newest and says how to start over."""
        numbers, failed = self.numbers(), None
        for n in reversed(numbers):
            try:
                tensors, info = self.read(n)
                chain = [(n, tensors, info["values"])]
                if info.get("base") is not None:
                    base = int(info["base"])
                    base_tensors, base_info = self.read(base)
                    chain.insert(0, (base, base_tensors, base_info["values"]))
            except (LifelongError, KeyError, TypeError, ValueError) as err:
                failed = failed or err
                if n != numbers[0]:
                    warnings.warn(f"{err}: resuming from an older state", stacklevel=2)
                continue
            return chain
        if numbers:
            raise LifelongError(f"none of the {len(numbers)} saved states in {self.folder} is intact ({failed}): "
                                f"start the run over from this fit's start by deleting that folder (`rm -r "
                                f"{shlex.quote(str(self.folder))}`) and resuming again")
        return []

    def clear(self) -> None:
        """Delete every state (the folder too, once empty)."""
        if not self.folder.is_dir():
            return
        for pattern in ("state-*.json", "state-*.safetensors", ".state-*.tmp"):
            for path in self.folder.glob(pattern):
                path.unlink(missing_ok=True)
        if not any(self.folder.iterdir()):
            self.folder.rmdir()
