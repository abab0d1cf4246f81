"""Calling a strategy's hooks by hand, outside `Trainer.fit`."""

import torch
from torch import Tensor

from lifelong import Trainer
from lifelong.data import Split


def in_step(trainer: Trainer, x: Tensor, y: Tensor, t: Tensor) -> None:
    """Put `trainer` in the state of a training step on the batch (x, y, t) in one process, so that hooks
    that read the step's global batch (`Trainer.global_batch`: replay memories) can be called by hand."""
    trainer.train_data, trainer.train_task_ids = Split(x, y), t
    trainer.batch_index = trainer.global_index = torch.arange(len(y))
    trainer.local_batch = (x, y, t)
