"""Checkpoints: tensors in safetensors, everything else in JSON, both written atomically.

A checkpoint `NAME` is two files: `NAME.safetensors` (the model's state_dict under `model.` and the
strategy's tensors under `strategy.`) and `NAME.json` (the strategy's other values, metadata, and the
SHA-256 of the tensor file, so that a truncated or altered checkpoint is refused). Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from .errors import LifelongError
from .files import atomic_write_bytes, atomic_write_json
from .strategies import Strategy

FORMAT = "lifelong.checkpoint/1"


def save(path: str | Path, model: nn.Module, strategy: Strategy, meta: dict[str, Any] | None = None) -> None:
    """Write `path`.safetensors then `path`.json (the JSON, written last, vouches for the tensors)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {f"model.{k}": v for k, v in model.state_dict().items()}
    values: dict[str, Any] = {}
    for k, v in strategy.state_dict().items():
        if isinstance(v, Tensor):
            tensors[f"strategy.{k}"] = v
        else:
            values[k] = v
    blob = st_save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()})
    atomic_write_bytes(path.with_suffix(".safetensors"), blob)
    atomic_write_json(path.with_suffix(".json"), {
        "format": FORMAT, "sha256": hashlib.sha256(blob).hexdigest(), "strategy_values": values,
        "meta": meta or {},
    })


def load(path: str | Path, model: nn.Module, strategy: Strategy | None = None,
         device: str | torch.device = "cpu") -> dict[str, Any]:
    """Restore `model` (and `strategy`) from a checkpoint written by `save`; returns its metadata."""
    path = Path(path)
    try:
        info = json.loads(path.with_suffix(".json").read_text())
        blob = path.with_suffix(".safetensors").read_bytes()
    except (OSError, json.JSONDecodeError) as err:
        raise LifelongError(f"cannot read checkpoint {path}: {err}") from None
    if info.get("format") != FORMAT:
        raise LifelongError(f"{path}.json is not a lifelong checkpoint ({FORMAT})")
    if hashlib.sha256(blob).hexdigest() != info.get("sha256"):
        raise LifelongError(f"checkpoint {path}.safetensors is truncated or altered (checksum mismatch): "
                            "use an earlier checkpoint or start the run again")
    tensors = st_load(blob)
    model.load_state_dict({k[6:]: v.to(device) for k, v in tensors.items() if k.startswith("model.")})
    if strategy is not None:
        state: dict[str, Any] = {k[9:]: v.to(device) for k, v in tensors.items() if k.startswith("strategy.")}
        state.update(info.get("strategy_values", {}))
        strategy.load_state_dict(state)
    return info.get("meta", {})
