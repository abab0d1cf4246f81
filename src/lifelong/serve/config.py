"""The served learner's options (`ServeConfig`), kept in its state folder (`serve.json`, sealed JSON written
atomically), so that a restart with just `--state DIR` resumes the same learner and a restart with other
options is refused: those options decide the result, bit for bit. The options of the service itself
(address, tokens, limits, checkpoint interval) are given at each start and never stored."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..configs import build, check_types, non_negative, option, whole_numbers
from ..errors import ConfigError
from ..files import atomic_write_json, seal, unsealed

FORMAT = "lifelong.serve/1"
CONFIG_FILE = "serve.json"


@dataclass
class ServeConfig:
    """What the learner is: field names are the `lifelong serve` options (`--buffer-size`)."""

    strategy: str = option("replay", "online strategy, one that needs no task boundaries (those of `lifelong list` "
                           "marked task-free); a+b composes")
    strategy_options: dict[str, dict[str, Any]] = option({}, "options per strategy", cli=False)
    buffer_size: int | None = option(None, "memory size of a memory-based strategy (default: the strategy's own)")
    replay_batch_size: int | None = option(None, "replayed samples per step (default: the strategy's own)")
    model: str = option("mlp", "model name; see `lifelong list`")
    hidden: list[int] = option([400, 400], "hidden layer sizes of the mlp")
    batch_size: int = option(10, "samples per learning step: a larger /learn batch is learnt in steps of this size")
    lr: float | None = option(None, "learning rate (default: the strategy's, else Adam's 1e-3)")
    optimizer: str | None = option(None, "optimiser: sgd, adam or adam-fused (default: the strategy's, else adam)")
    momentum: float = option(0.0, "SGD momentum")
    weight_decay: float = option(0.0, "L2 weight decay")
    seed: int = option(0, "random seed (the model's initialisation, the strategy's draws)")
    inputs: list[int] | None = option(None, "input shape, e.g. 784 or 1,28,28 (default: that of the first /learn "
                                      "batch)", metavar="N[,N...]")
    classes: int | None = option(None, "number of classes (default: the largest label of the first /learn batch "
                                 "+ 1; a later batch with a larger label is refused)", metavar="C")

    def validate(self) -> None:
        check_types(self)
        whole_numbers({"batch_size": self.batch_size})
        whole_numbers({k: v for k in ("buffer_size", "replay_batch_size", "classes") if (v := getattr(self, k))
                       is not None})
        for name, sizes in (("hidden", self.hidden), ("inputs", self.inputs or [])):
            for size in sizes:
                whole_numbers({name: size})
        non_negative({"momentum": self.momentum, "weight_decay": self.weight_decay})
        if self.lr is not None:
            non_negative({"lr": self.lr}, positive=True)
        if self.inputs == []:
            raise ConfigError("`inputs` must name at least one size, e.g. 784", "inputs")

    @property
    def shaped(self) -> bool:
        """Whether the input shape and the number of classes are known (given, or set by the first batch)."""
        return self.inputs is not None and self.classes is not None

    def shared(self) -> dict[str, Any]:
        """The options every part of the strategy takes where it has them (`make_strategy`'s `shared`)."""
        return {k: v for k in ("buffer_size", "replay_batch_size") if (v := getattr(self, k)) is not None}


def read(folder: Path) -> ServeConfig | None:
    """The learner's options stored in `folder`, or None if none are (a new learner)."""
    path = folder / CONFIG_FILE
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read {path}: {err}: give another `state` folder", "state") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a lifelong serve config ({FORMAT}): give another `state` folder", "state")
    if why := unsealed(info):
        raise ConfigError(f"{path} {why}: give another `state` folder, or put back the file as it was", "state")
    config = build(ServeConfig, info["config"])
    config.validate()
    return config


def write(folder: Path, config: ServeConfig) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / CONFIG_FILE, seal({"format": FORMAT, "config": dataclasses.asdict(config)}))


def resolve(folder: Path, given: dict[str, Any], check: Callable[[ServeConfig], None] = lambda c: None) -> ServeConfig:
    """The learner of `folder` with the options `given` (field: value, as set on the command line): a new
    one (stored at once, once `check` passed it), or the stored one, which the options given must agree with
    (an input shape or number of classes not yet known may be given). Raises a one-line ConfigError naming
    the first conflict."""
    stored = read(folder)
    if stored is None:
        config = build(ServeConfig, given)
        config.validate()
        check(config)
        write(folder, config)
        return config
    if "strategy_options" in given:  # per-strategy options given on top of the stored ones
        own = stored.strategy_options
        given = {**given, "strategy_options": {n: {**own.get(n, {}), **o} for n, o in given["strategy_options"].items()}
                 | {n: o for n, o in own.items() if n not in given["strategy_options"]}}
    updates = {}
    for key, value in build(ServeConfig, given, stored).__dict__.items():
        if key not in given or value == getattr(stored, key):
            continue
        if key in ("inputs", "classes") and getattr(stored, key) is None:
            updates[key] = value
            continue
        raise ConfigError(f"{folder} holds a learner with `{key}` {getattr(stored, key)!r}, not {value!r}: restart it "
                          "with just its `state` folder (its options are stored there), or start a new learner in "
                          "another folder", key)
    if updates:
        stored = dataclasses.replace(stored, **updates)
        stored.validate()
        write(folder, stored)
    return stored
