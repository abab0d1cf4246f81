"""`lifelong pretrain`: train a source model on a named data set and save it in the run folder for
transfer (`transfer.pretrain`)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import distributed
from ..configs import check_types, option, whole
from ..data import dataset
from ..errors import ConfigError
from ..models import MODELS
from ..models.saved import model_path
from ..transfer.pretrain import pretrain, save_pretrained
from .base import Experiment, Record, Unit


@dataclass
class PretrainConfig:
    """Everything a `lifelong pretrain` needs; field names are the CLI options and YAML config keys."""

    benchmark: str = option("fmnist:0-4", "data set, whole or some classes: fmnist, digits, mnist1d, e.g. fmnist:0-4")
    model: str = option("cnn", "model name; see `lifelong list`")
    hidden: list[int] = option([400, 400], "hidden layer sizes of the mlp")
    epochs: int = option(1, "epochs")
    lr: float = option(1e-3, "learning rate")
    batch_size: int = option(128, "mini-batch size")
    seed: int = option(0, "random seed")
    device: str = option("cpu", "cpu or cuda")

    def validate(self) -> None:
        check_types(self)
        dataset(self.benchmark), MODELS.get(self.model)  # bad names fail before an output folder is touched
        whole(self, "epochs", "batch_size")
        if any(h < 1 for h in self.hidden):
            raise ConfigError(f"`hidden` takes positive layer sizes like 400,400, got {self.hidden!r}", "hidden")


class PretrainExperiment(Experiment):
    """`lifelong pretrain`: one model, trained and saved in the run folder (model.safetensors, model.json)."""

    command = "pretrain"
    help = "train a source model on a data set and save it for transfer"
    config_class = PretrainConfig
    schema = "lifelong.pretrain/1"
    record_keys = ("benchmark", "model", "seed", "acc", "train_seconds", "saved")
    marker = "model.json"  # also the mark of a model saved before run folders had results.json

    def units(self, out: Path | None, progress: bool) -> Iterator[Unit]:
        if out is None:
            raise ConfigError("pretrain saves its model in a folder: give one (`out`)", "out")
        yield "model", functools.partial(self._train, out, progress)

    def _train(self, out: Path, progress: bool) -> Iterator[Record]:
        c = self.config
        model, rec = pretrain(c.benchmark, c.model, hidden=c.hidden, seed=c.seed, epochs=c.epochs, lr=c.lr,
                              batch_size=c.batch_size, device=c.device, progress=progress)
        saved = save_pretrained(out, model, rec) if distributed.is_main() else model_path(out)  # rank 0 writes
        yield {"benchmark": c.benchmark, "model": c.model, **rec, "saved": str(saved)}

    def title(self, records: list[Record]) -> str:
        r, c = records[0], self.config
        return (f"{c.benchmark}: {c.model}, {c.epochs} epoch(s), test accuracy {r['acc'] * 100:.2f}%, "
                f"{r['train_seconds']:.1f} s; saved to {r['saved']}.safetensors and {r['saved']}.json")

    def table(self, records: list[Record]) -> tuple[list[str], list[list[str]]]:
        return [], []  # the title line says it all
