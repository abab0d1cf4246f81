import pytest
import torch

import lifelong as ll
from lifelong.strategies import EWC, STRATEGIES, Compose, Naive, Replay, Strategy, hyper_parameters, overrides

from ..conftest import small_mlp


class AddOne(Strategy):
    name = "add-one"

    def __init__(self, weight: float = 1.0):
        self.weight = weight
        self.memory = torch.zeros(3)

    def batch(self, x, y, t):
        return x + 1, y, t

    def loss(self, out, x, y, t):
        return torch.tensor(self.weight)

    def predict(self, x, t):
        return torch.full((len(x), 2), self.weight)

    def state_dict(self):
        return {"memory": self.memory, "weight": self.weight}

    def load_state_dict(self, state):
        self.memory, self.weight = state["memory"], state["weight"]


def test_overrides_detects_only_implemented_hooks():
    assert not any(overrides(Naive(), h) for h in ("batch", "loss", "after_step", "predict"))
    s = AddOne()
    assert overrides(s, "batch") and overrides(s, "loss") and not overrides(s, "after_step")
    assert overrides(Compose(Naive(), AddOne()), "loss")
    assert not overrides(Compose(Naive(), Naive()), "loss")


def test_compose_chains_batches_sums_losses_last_predict_wins():
    c = Compose(AddOne(1.0), AddOne(2.0))
    x, _, _ = c.batch(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2))
    assert torch.equal(x, torch.full((2, 3), 2.0))
    assert c.loss(None, None, None, None).item() == 3.0
    assert torch.equal(c.predict(torch.zeros(4, 3), None), torch.full((4, 2), 2.0))


def test_compose_state_dict_round_trip_and_memory():
    a = Compose(AddOne(1.0), AddOne(2.0))
    a.parts[1].memory = torch.arange(3.0)
    state = a.state_dict()
    assert set(state) == {"0.memory", "0.weight", "1.memory", "1.weight"}
    b = Compose(AddOne(), AddOne())
    b.load_state_dict(state)
    assert b.parts[1].weight == 2.0 and torch.equal(b.parts[1].memory, torch.arange(3.0))
    assert a.memory_bytes() == 2 * 3 * 4


def test_hyper_parameters_and_options():
    assert list(hyper_parameters(AddOne)) == ["weight"]
    assert hyper_parameters(Naive) == {}
    assert AddOne(0.5).options() == {"weight": 0.5}
    assert Compose(AddOne(0.5), Naive()).options() == {"add-one": {"weight": 0.5}, "naive": {}}


def test_compose_in_trainer_matches_single_strategy(digits_stream):
    from ..conftest import small_mlp

    a = ll.Trainer(small_mlp(digits_stream), Naive(), seed=0).fit(digits_stream)
    b = ll.Trainer(small_mlp(digits_stream), Compose(Naive(), Naive()), seed=0).fit(digits_stream)
    assert a.matrix == b.matrix


def test_penalty_gradients_reach_a_projection_listed_before_them(digits):
    """In a Compose, a projection (after_backward, as in A-GEM) listed before a penalty (add_grad, as in
    EWC) still sees the penalty's gradient, as if the penalty were part of the loss."""
    seen = []

    class Probe(Strategy):
        def after_backward(self):
            seen.append(self.model.head.bias.grad.clone())

    class Push(Strategy):
        def add_grad(self):
            self.model.head.bias.grad.add_(1000.0)

    stream = ll.data.split(digits, n_tasks=2, scenario="class", seed=0)
    model = ll.models.mlp(64, stream.n_outputs, hidden=(8,))
    ll.Trainer(model, Compose(Probe(), Push()), epochs=1, batch_size=64, seed=0).fit(stream)
    assert seen and all((g > 500).all() for g in seen)



@pytest.mark.parametrize("own", ["mer", "oml", "la-maml"])
def test_a_strategy_making_its_own_update_refuses_partners_whose_terms_it_would_drop(digits_stream, own):
    with pytest.raises(ll.ConfigError, match=f"{own} updates the weights from its own loss"):
        ll.Trainer(small_mlp(digits_stream), Compose(STRATEGIES.get(own).factory(), EWC())).fit(digits_stream)
    both = Compose(STRATEGIES.get(own).factory(), Replay(buffer_size=50))  # only changes batches: kept
    both.attach(ll.Trainer(small_mlp(digits_stream), both), digits_stream)
    assert both.parts[0].trainer is both.parts[1].trainer


class HalfLoss(Strategy):
    name = "half-loss"

    def task_loss(self, out, x, y, t, criterion):
        return criterion(out, y) / 2


def test_compose_takes_the_one_task_loss_that_is_replaced_and_refuses_two():
    out, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    ce = torch.nn.functional.cross_entropy
    assert torch.equal(Compose(Naive(), AddOne()).task_loss(out, out, y, y, ce), ce(out, y))
    assert torch.equal(Compose(AddOne(), HalfLoss()).task_loss(out, out, y, y, ce), ce(out, y) / 2)
    with pytest.raises(ll.ConfigError, match="half-loss and er-ace each replace the task loss"):
        Compose(HalfLoss(), Compose(Naive(), ll.strategies.ERACE()))


def test_every_strategy_declares_its_scenarios_and_compose_supports_their_intersection():
    known = {"task", "domain", "class", "task-free"}
    for entry in STRATEGIES:
        assert entry.factory.scenarios and entry.factory.scenarios <= known, entry.name
    assert ll.strategies.supported_scenarios(Compose(Replay(), ll.strategies.ERACE())) == {"class", "task-free"}
    assert ll.strategies.supported_scenarios(Compose(EWC(), Replay())) == {"task", "domain", "class"}
    assert "task-free" not in EWC.scenarios and ll.strategies.PNN.scenarios == {"task"}


def test_the_trainer_refuses_an_unsupported_scenario_in_one_line_naming_those_that_support_it(digits):
    stream = ll.data.split(digits, n_tasks=5, scenario="domain", seed=0)
    with pytest.raises(ll.ConfigError) as caught:
        ll.Trainer(small_mlp(stream), Compose(EWC(), ll.strategies.GDumb())).fit(stream)
    message = str(caught.value)
    assert message.startswith("`strategy` ewc+gdumb does not support domain streams: use `scenario` class or task")
    able = message.rpartition("one of ")[2].split(", ")
    assert "ewc" in able and "gdumb" not in able and "pnn" not in able and "\n" not in message
