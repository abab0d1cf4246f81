"""PackNet: old outputs are bit-identical, masks are disjoint and prune the set fraction."""

import pytest
import torch

import lifelong as ll
from lifelong.strategies import PackNet

from ..conftest import small_mlp
from .test_pnn import (assert_earlier_outputs_kept, assert_refuses_bad_setups, assert_same_predictions, first_tasks,
                       fit_and_restore, fit_recording)
from .test_pnn import task_stream  # noqa: F401 (a fixture)


def test_earlier_outputs_are_bit_identical(task_stream):
    strategy = PackNet()
    _, result, record = fit_recording(strategy, task_stream, epochs=2)
    assert_earlier_outputs_kept(record)
    assert result.metrics["bwt"] == 0.0 and result.metrics["acc"] > 0.9
    assert len(set(record.params)) == 1  # the model does not grow


def test_masks_are_disjoint_and_prune_the_set_fraction(task_stream):
    prune = 0.6
    strategy = PackNet(prune=prune, retrain_epochs=1)
    trainer, _, _ = fit_recording(strategy, task_stream, epochs=1)
    masks = strategy.masks()
    assert len(masks) == 5
    for name, weight in strategy.weights.items():
        owned = torch.stack([m[name] for m in masks]).long()
        assert owned.sum(0).max() <= 1  # no weight belongs to two tasks
        free = weight.numel()
        for k in range(5):  # task k keeps what it does not release of the weights free before it
            released = round(prune * free)
            assert int(owned[k].sum()) == free - released, (name, k)
            free = released
        assert torch.all(weight[owned.sum(0) == 0] == 0)  # released weights hold 0 for later tasks
    biases = [p for p in trainer.model.parameters() if p.dim() == 1]
    assert not any(p.requires_grad for p in biases[:-1])  # shared biases: first task only; head bias stays


def test_checkpoint_restores_the_masks(task_stream, tmp_path):
    stream = first_tasks(task_stream, 3)
    trainer, again = fit_and_restore(PackNet, stream, tmp_path / "ck", epochs=1)
    strategy, state = trainer.strategy, trainer.strategy.state_dict()
    assert state["tasks"] == 3 and all(v.dtype == torch.uint8 for k, v in state.items() if k != "tasks")
    assert strategy.memory_bytes() == 2 * sum(p.numel() for p in strategy.weights.values())  # owner + mask
    for task in stream:
        assert_same_predictions(trainer, again, task)
    x, t = stream[1].test.x, torch.ones(len(stream[1].test.y), dtype=torch.long)
    mixed = torch.arange(len(x)) % 3  # samples of several tasks in one batch
    assert torch.equal(again.predict(x, mixed)[mixed == 1], strategy.predict(x, t)[mixed == 1])
    other = PackNet()
    other.load_state_dict(state)
    with pytest.raises(ll.ConfigError, match="other layers"):
        ll.Trainer(small_mlp(task_stream, hidden=(32,)), other).fit(task_stream)


def test_refuses_bad_setups(digits):
    assert_refuses_bad_setups(PackNet, digits)
    with pytest.raises(ll.ConfigError, match="`prune`"):
        PackNet(prune=1.0)


def test_pruning_channels_last_conv_weights_releases_the_smallest(task_stream):
    """The image CNN stores its conv weights channels-last (they have no flat view): pruning still
    releases exactly the smallest half of each layer's free weights, and only those."""
    model = ll.models.build("cnn", (1, 8, 8), task_stream.n_outputs)
    name, conv = [(f"{n}.weight", m.weight) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)][1]
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    strategy = PackNet(prune=0.5)
    strategy.attach(ll.Trainer(model, strategy), task_stream)
    before = conv.detach().clone(memory_format=torch.contiguous_format)
    strategy.prune_weights(owner=1)
    released = strategy.owner[name] == 0
    assert int(released.sum()) == round(0.5 * conv.numel())
    assert before.abs()[released].max() <= before.abs()[~released].min()
    assert torch.all(conv[released] == 0) and torch.equal(conv[~released], before[~released])
