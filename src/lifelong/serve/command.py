"""`lifelong serve`: start (or restart) the service of a state folder, or learn a folder's log again offline
(`--replay-log DIR`). Called by `cli` with its parsed options; imports PyTorch (and FastAPI) only here."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import save as save_checkpoint
from ..configs import build, whole_numbers
from ..errors import ConfigError
from ..extras import need
from ..files import exclusive
from .config import ServeConfig, read, resolve
from .inputs import Refused, check
from .learner import STATES, Learner, check_strategy, replay
from .log import LOG_FILE

TOKEN_ENV, READ_TOKEN_ENV = "LIFELONG_TOKEN", "LIFELONG_READ_TOKEN"
MIN_TOKEN = 16  # characters: `python -c "import secrets; print(secrets.token_urlsafe(32))"` gives 43


def token(path: Path | None, env: str, argument: str, required: bool) -> str | None:
    """The token in `path` (its first line), else in the variable `env`; a ConfigError naming `argument`
    (token_file or read_token_file) if a required one is missing or any is too short. Never printed."""
    if path is not None:
        try:
            text = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read the `{argument}` {path}: {err}", argument) from None
    else:
        text = os.environ.get(env, "").strip()
    if not text:
        if required:
            raise ConfigError(f"lifelong serve needs a bearer token: give `{argument}` (a file holding it) or set "
                              f"{env}", argument)
        return None
    if len(text) < MIN_TOKEN or any(c.isspace() for c in text):
        raise ConfigError(f"the token of `{argument}` (or {env}) must be at least {MIN_TOKEN} characters without "
                          "spaces: make one with python -c \"import secrets; print(secrets.token_urlsafe(32))\"",
                          argument)
    return text


def holdout(path: Path, config: ServeConfig) -> tuple[np.ndarray, np.ndarray]:
    """The held-out set of --holdout FILE.npz (arrays x and y, read without pickle)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as err:
        raise ConfigError(f"`holdout` {path}: not an .npz file with arrays x and y ({str(err).splitlines()[0]})",
                          "holdout") from None
    try:
        xs, ys = check(x, y, tuple(config.inputs) if config.inputs else None, None, len(x))
    except Refused as err:
        raise ConfigError(f"`holdout` {path}: {err.reason}", "holdout") from None
    assert ys is not None
    return xs, ys


def main(args: argparse.Namespace, given: dict[str, Any]) -> int:
    """`given`: the learner's options set on the command line (ServeConfig fields)."""
    if args.replay_log is not None:
        return replay_log(args, given)
    if args.state is None:
        raise ConfigError("lifelong serve needs `state`: the folder of the learner's log, states and options", "state")
    whole_numbers({"max_batch": args.max_batch, "max_bytes": args.max_bytes, "max_pending": args.max_pending})
    whole_numbers({"checkpoint_every": args.checkpoint_every}, least=0)
    if not 0 <= args.port < 2**16:
        raise ConfigError(f"`port` must be a port number from 0 to 65535, got {args.port}", "port")
    need("fastapi", "serve")
    uvicorn = need("uvicorn", "serve")
    from .app import Service, create_app
    write_token = token(args.token_file, TOKEN_ENV, "token_file", True)
    read_token = token(args.read_token_file, READ_TOKEN_ENV, "read_token_file", False)
    assert write_token is not None
    if read_token == write_token:
        raise ConfigError("the read-only token (`read_token_file`) must differ from the token", "read_token_file")
    folder: Path = args.state
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive(folder):
        config = resolve(folder, given, check_strategy)
        held_out = holdout(args.holdout, config) if args.holdout is not None else None
        if held_out is not None and config.inputs is None:  # the held-out set gives the input shape
            config = resolve(folder, {"inputs": list(held_out[0].shape[1:])})
        learner = Learner(folder, config, args.checkpoint_every, holdout=held_out)
        service = Service(folder, learner, write_token, read_token, args.max_batch, args.max_bytes, args.max_pending)
        shape = "x".join(map(str, config.inputs)) if config.inputs else "set by the first batch"
        print(f"lifelong serve: {config.strategy} learner in {folder} (inputs {shape}, classes "
              f"{config.classes or 'set by the first batch'}; {service.log.last} batches logged), on "
              f"http://{args.host}:{args.port} (API docs at /docs)", flush=True)
        uvicorn.run(create_app(service), host=args.host, port=args.port, log_level="warning")
    return 1 if learner.failure is not None else 0


def replay_log(args: argparse.Namespace, given: dict[str, Any]) -> int:
    """--replay-log DIR: learn DIR's log again with its options, or others given (another strategy on the same
    history). With its own options, check the result against DIR's newest state (an audit); with --out
    PATH, write the model and strategy there (`checkpoint.save`)."""
    folder: Path = args.replay_log
    stored = read(folder)
    if stored is None:
        raise ConfigError(f"{folder} holds no served learner (no serve.json): give the `state` folder of a "
                          "lifelong serve", "state")
    if not stored.shaped or not (folder / LOG_FILE).exists():
        raise ConfigError(f"{folder}'s learner has learnt nothing yet: its log is empty")
    fixed = [k for k in ("inputs", "classes") if k in given and given[k] != getattr(stored, k)]
    if fixed:
        raise ConfigError(f"the log of {folder} holds batches of `{fixed[0]}` {getattr(stored, fixed[0])}: replay "
                          "it with those", fixed[0])
    config = build(ServeConfig, given, stored)
    config.validate()
    check_strategy(config)
    audit = config == stored
    target = Learner(folder, stored, serving=False).states.latest() if audit else []
    saved = target[-1] if target else None
    found: list[str] = []

    def compare(learner: Learner) -> None:
        if saved is not None and learner.seq == saved[2]["seq"]:
            found.extend(differences(learner, saved[1], saved[2]))

    learner = replay(folder, config, compare)
    assert learner.trainer is not None
    print(f"replayed {learner.seq} batches ({learner.trainer.samples_seen} samples) of {folder} with {config.strategy}")
    if args.out is not None:
        save_checkpoint(args.out, learner.trainer.model, learner.trainer.strategy,
                        {"seq": learner.seq, "samples_seen": learner.trainer.samples_seen,
                         "config": dataclasses.asdict(config)})
        print(f"model and strategy written to {args.out}.safetensors and .json")
    if saved is None:
        return 0
    where = f"the state {folder / STATES} saved at batch {saved[2]['seq']}"
    if found:
        print(f"audit: the replayed learner DIFFERS from {where}: {', '.join(found[:5])}")
        return 1
    print(f"audit: the replayed learner equals {where}, every tensor bit for bit")
    return 0


def differences(learner: Learner, tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> list[str]:
    """The names of the state's tensors and counters that `learner`'s snapshot does not equal exactly."""
    ours, our_values = learner.snapshot()
    our_values = json.loads(json.dumps(our_values))  # as the state's JSON reads back (tuples as lists)
    out = [k for k in sorted(set(ours) | set(tensors))
           if k not in ours or k not in tensors or not same_bits(ours[k].cpu(), tensors[k])]
    return out + [k for k in ("seq", "samples_seen", "step", "strategy_values", "optimizer", "rng")
                  if our_values[k] != values[k]]


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors are equal bit for bit (dtype, shape and bytes: NaNs included)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))
