"""Fine-tuning: layer-wise learning rates (ULMFiT, section 3.2) and gradual unfreezing."""

import pytest
import torch

import lifelong as ll
from lifelong.errors import ConfigError
from lifelong.transfer import FineTuner, finetune
from lifelong.transfer.simpleshot import nearest_mean_head


def small_model():
    torch.manual_seed(0)
    return ll.models.mlp(64, 10, hidden=(32, 16))


def test_layer_wise_learning_rates_are_applied(digits):
    model = small_model()
    tuner = FineTuner(model, lr=0.01, lr_decay=2.6)
    groups = tuner.make_optimizer().param_groups
    names = list(model.param_groups())
    assert names == ["features.1", "features.3", "head"]
    assert [g["lr"] for g in groups] == pytest.approx([0.01 / 2.6**2, 0.01 / 2.6, 0.01])
    for g, params in zip(groups, model.param_groups().values()):
        assert [id(p) for p in g["params"]] == [id(p) for p in params]


def test_one_adam_step_moves_each_group_by_its_learning_rate(digits):
    """Adam's first step moves every weight by lr (sign of the gradient), so the step per group is its lr."""
    model = small_model()
    before = {n: [p.clone() for p in ps] for n, ps in model.param_groups().items()}
    part = digits.train.subset(torch.arange(32))
    FineTuner(model, lr=0.01, lr_decay=3.0, batch_size=32).fit(ll.data.from_tasks([(part, digits.test)]))
    for depth, name in enumerate(reversed(list(before))):
        moved = torch.cat([(p - p0).abs().flatten() for p, p0 in zip(model.param_groups()[name], before[name])])
        assert moved.max().item() == pytest.approx(0.01 / 3.0**depth, rel=1e-3)


def test_gradual_unfreezing_trains_one_more_group_per_epoch(digits):
    part = digits.train.subset(torch.arange(64))
    changed = []
    for epochs in (1, 2, 3):
        model = small_model()
        start = {n: [p.clone() for p in ps] for n, ps in model.param_groups().items()}
        FineTuner(model, gradual=True, epochs=epochs, batch_size=32).fit(ll.data.from_tasks([(part, digits.test)]))
        changed.append([name for name, ps in model.param_groups().items()
                        if any(not torch.equal(p, p0) for p, p0 in zip(ps, start[name]))])
        assert all(p.requires_grad for p in model.parameters())  # flags restored
    assert changed == [["head"], ["features.3", "head"], ["features.1", "features.3", "head"]]


class OptimiserLog(ll.strategies.Strategy):
    """Records the optimiser that made each step."""

    def after_step(self) -> None:
        self.__dict__.setdefault("seen", []).append(self.trainer.optimizer)


def test_gradual_unfreezing_keeps_one_optimiser_and_each_groups_adam_state(digits):
    """ULMFiT: a group joins the one optimiser when it unfreezes; those already training keep their Adam
    moments, so after 4 epochs of 2 steps the head has made 8 Adam steps, the group below it 6, the lowest 4."""
    model, log = small_model(), OptimiserLog()
    part = digits.train.subset(torch.arange(64))
    tuner = FineTuner(model, log, gradual=True, lr=0.01, lr_decay=2.6, epochs=4, batch_size=32)
    tuner.fit(ll.data.from_tasks([(part, digits.test)]))
    assert len(log.seen) == 8 and all(opt is tuner.optimizer for opt in log.seen)
    groups = tuner.optimizer.param_groups
    assert [g["lr"] for g in groups] == pytest.approx([0.01, 0.01 / 2.6, 0.01 / 2.6**2])  # in the order they joined
    steps = {name: {int(tuner.optimizer.state[p]["step"]) for p in params}
             for name, params in model.param_groups().items()}
    assert steps == {"head": {8}, "features.3": {6}, "features.1": {4}}


def test_an_optimiser_factory_gets_the_layer_wise_rates_as_scales_of_its_own(digits):
    """With `optimizer=factory`, each group's rate is the factory's times its "lr_scale": the same fit as the
    named optimiser at that rate (lr_decay 2: the scales are exact), with gradual unfreezing too."""
    part = digits.train.subset(torch.arange(64))
    factory = lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.5)  # noqa: E731
    for gradual in (False, True):
        named, made = small_model(), small_model()
        a = FineTuner(named, optimizer="sgd", lr=0.1, momentum=0.5, lr_decay=2.0, gradual=gradual, epochs=3,
                      batch_size=32)
        b = FineTuner(made, optimizer=factory, lr_decay=2.0, gradual=gradual, epochs=3, batch_size=32)
        a.fit(ll.data.from_tasks([(part, digits.test)]))
        b.fit(ll.data.from_tasks([(part, digits.test)]))
        assert [g["lr"] for g in b.optimizer.param_groups] == [g["lr"] for g in a.optimizer.param_groups]
        assert sorted(g["lr"] for g in b.optimizer.param_groups) == [0.025, 0.05, 0.1]
        assert all(torch.equal(p, q) for p, q in zip(named.parameters(), made.parameters()))


def test_finetune_puts_a_fresh_head_for_the_target(digits):
    model = small_model()
    target = ll.data.select_classes(digits, [0, 1, 2])
    result = finetune(model, target, epochs=5, batch_size=32, lr=1e-2, seed=0)
    assert model.head.out_features == 3
    assert result.matrix[0][0] > 0.9


def test_finetune_from_an_imprinted_head_keeps_and_trains_it(digits):
    model = small_model()
    target = ll.data.select_classes(digits, [0, 1, 2])
    head = nearest_mean_head(ll.models.extract(model, target.train), 3)
    start = head[1].weight.clone()
    result = finetune(model, target, head=head, epochs=3, batch_size=32, lr=1e-2, seed=0)
    assert model.head is head and not torch.equal(head[1].weight, start)
    assert result.matrix[0][0] > 0.9


def test_bad_options():
    with pytest.raises(ConfigError, match="lr_decay"):
        FineTuner(small_model(), lr_decay=0.5)
    with pytest.raises(ConfigError, match="param_groups"):
        FineTuner(torch.nn.Linear(3, 2))
