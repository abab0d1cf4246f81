"""Saved models: a lifelong checkpoint (safetensors + JSON, see `lifelong.checkpoint`) whose metadata
says how to rebuild the network: architecture, class names and input normalisation.

`save(path, model, ...)` writes `path/model.safetensors` and `path/model.json` into the folder `path`
(which may also name either file); `load(path)` rebuilds the model from the registry and loads its
tensors (checksum verified, strict names). Nothing is unpickled. A model that feature extraction cut
and gave a new head (`transfer.feature_extraction`, LP-FT) is saved with that layout in its
architecture, "features_cut" (modules dropped from the top of its backbone) and "head" (`heads.head_spec`),
and rebuilt the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import load as load_checkpoint
from ..checkpoint import save as save_checkpoint
from ..errors import ConfigError, LifelongError
from .net import Contract, HasClassifier, contract_error, no_classifier

FORMAT = "lifelong.model/1"


def model_path(path: str | Path) -> Path:
    """The checkpoint stem `FOLDER/model` of a saved model, from the folder or either of its files."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".json", ".safetensors") else path / "model"


def save(path: str | Path, model: nn.Module, *, architecture: dict[str, Any], classes: Sequence[str],
         normalisation: dict[str, Any], meta: dict[str, Any] | None = None) -> Path:
    """Save `model`; `architecture` is {"model": registry name, "input_shape", "num_classes", "hidden"}.
    Returns the checkpoint stem."""
    from .heads import head_spec

    architecture = {k: v for k, v in architecture.items() if k not in ("features_cut", "head")}
    if not isinstance(model, HasClassifier):
        raise no_classifier(model)
    head = model.get_classifier()
    if getattr(model, "features_cut", 0) or type(head) is not nn.Linear:
        architecture |= {"features_cut": int(getattr(model, "features_cut", 0)), "head": head_spec(head)}
    stem = model_path(path)
    save_checkpoint(stem, model, meta={
        "format": FORMAT, "architecture": architecture, "classes": list(classes),
        "normalisation": normalisation, **(meta or {}),
    })
    return stem


def info(path: str | Path) -> dict[str, Any]:
    """The metadata of a saved model (architecture, classes, normalisation, what it was trained on)."""
    stem = model_path(path)
    try:
        data = json.loads(stem.with_suffix(".json").read_text())
    except FileNotFoundError:
        raise LifelongError(f"no saved model at {path} (expected {stem}.json): make one with `lifelong pretrain`") \
            from None
    except (OSError, json.JSONDecodeError) as err:
        raise LifelongError(f"cannot read saved model {stem}.json: {err}") from None
    meta = data.get("meta") if isinstance(data, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LifelongError(f"{stem}.json is not a saved lifelong model ({FORMAT}): save one with lifelong.models.save")
    return meta


def load(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild and load a model written by `save` (in eval mode, on `device`)."""
    from . import build

    meta = info(path)
    arch = meta["architecture"]
    try:
        model = build(arch["model"], tuple(arch["input_shape"]), int(arch["num_classes"]), tuple(arch["hidden"]))
        if "head" in arch:
            _transferred_layout(model, int(arch.get("features_cut", 0)), arch["head"], int(arch["num_classes"]),
                                tuple(arch["input_shape"]))
    except (KeyError, TypeError, ValueError) as err:
        raise LifelongError(f"{model_path(path)}.json: invalid architecture {arch!r} ({err})") from None
    try:
        load_checkpoint(model_path(path), model, device=device)
    except RuntimeError as err:
        raise LifelongError(f"{model_path(path)}.safetensors does not fit the architecture {arch}: "
                            f"{str(err).splitlines()[0]}") from None
    return model.to(device).eval()


def _transferred_layout(model: nn.Module, cut: int, head: dict[str, Any], num_classes: int,
                        input_shape: tuple[int, ...]) -> None:
    """Give a freshly built `model` the layout feature extraction left: `cut` top modules of its backbone
    dropped, and a head of `head`'s kind on the features below."""
    from .heads import build_head
    from .net import Backbone, Net, truncated

    if not isinstance(model, Backbone):
        raise ValueError(f"a {type(model).__name__} cannot take a transferred head")
    if cut:
        if not (isinstance(model, Net) and isinstance(model.features, nn.Sequential)):
            raise ValueError(f"a {type(model).__name__} has no sequential backbone to cut")
        with torch.no_grad():
            width = truncated(model.features, cut).eval()(torch.zeros(1, *input_shape)).shape[1]
        model.truncate(cut, width)
    model.set_head(build_head(head, model.num_features, num_classes))


def load_backbone(path: str | Path, input_shape: Sequence[int], n_outputs: int,
                  device: str | torch.device = "cpu") -> nn.Module:
    """A saved model as the start of a new one: its backbone, and a fresh head of `n_outputs` units
    (initialised from torch's global generator). Refuses inputs of another shape than it was trained on."""
    shape = tuple(info(path)["architecture"].get("input_shape", ()))
    if shape != tuple(input_shape):
        raise ConfigError(f"the saved model {path} takes inputs of shape {shape}, the data has {tuple(input_shape)}: "
                          "use a backbone trained on data of the same shape")
    model = load(path, device)
    if not isinstance(model, Contract):
        raise contract_error(model)
    model.reset_classifier(n_outputs)
    return model.train()
