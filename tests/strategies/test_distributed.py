"""Every strategy under data-parallel training: 2 gloo ranks with half the global batch each step as one
process with the whole batch (parameters and strategy state equal within float tolerance), and every
rank holds the same state. One torchrun launch for the whole registry (`tests/ranks.py`)."""

import torch

import lifelong as ll
from lifelong import distributed
from lifelong.strategies import STRATEGIES
from lifelong.strategies.importance import fisher_diagonal, fisher_sums

from ..ranks import run_ranks

# Split digits, 2 tasks of 679 and 668 samples, global batch 113: the ranks' shares differ by a row at
# every step (57 + 56), and the last batch of the first task has 1 row, so rank 1's share is empty there.
FIT = """
import torch
import lifelong as ll
from lifelong.strategies import STRATEGIES

SMALL = {"buffer_size": 60, "replay_batch_size": 20}
OPTIONS = {name: SMALL for name in ("replay", "der", "derpp", "er-ace", "agem", "la-maml", "mer", "oml")}
OPTIONS |= {"gem": {"buffer_size": 60}, "icarl": {"buffer_size": 60}, "gdumb": {"buffer_size": 60, "epochs": 2},
            "ewc": {"fisher": "expected"}, "mas": {"samples": 301}}
TASK_IL = {"hat", "packnet", "pnn"}
COMPOSED = ["ewc+replay", "lwf+replay"]  # the usual compositions: a penalty or distillation with replayed rows


def fit(name, batch_size=113):
    stream = ll.data.split(ll.data.digits(), n_tasks=2, scenario="task" if name in TASK_IL else "class", seed=0)
    torch.manual_seed(0)
    strategy = ll.Compose(*(STRATEGIES.get(part).factory(**OPTIONS.get(part, {})) for part in name.split("+")))
    trainer = ll.Trainer(ll.models.mlp(64, stream.n_outputs, hidden=(32,)), strategy, epochs=1,
                         batch_size=batch_size, lr=0.05, optimizer="sgd", momentum=0.9)
    result = trainer.fit(stream)
    state = [v.double().flatten() for v in strategy.state_dict().values() if isinstance(v, torch.Tensor)]
    return {"params": torch.cat([p.detach().flatten() for p in trainer.model.parameters()]).tolist(),
            "state": torch.cat(state).tolist() if state else [], "matrix": result.matrix}
"""

CHECKS = """
from lifelong.strategies import EWC, MAS, Replay
from lifelong.strategies.base import gathered_outputs
from lifelong.strategies.importance import grad_stats


def checks():
    # end-of-task statistics and gathered outputs, each rank computing its share of 679 rows (or of 201)
    stream = ll.data.split(ll.data.digits(), n_tasks=2, scenario="class", seed=0)
    torch.manual_seed(1)
    model = ll.models.mlp(64, stream.n_outputs, hidden=(32,))
    out = {}
    for key, strategy in (("empirical", EWC()), ("expected", EWC(fisher="expected", samples=201)), ("mas", MAS())):
        strategy.attach(ll.Trainer(model, strategy), stream)
        omega = strategy.estimate(stream[0]) if key != "mas" else strategy.task_mean(
            stream[0], 201, lambda x, y, t: grad_stats(model, x, y, t, strategy._squared_norm, "abs"))
        out[key] = torch.cat([v.flatten() for v in omega.values()]).tolist()
    out["outputs"] = gathered_outputs(model, stream[0].train, torch.device("cpu"), 100).tolist()
    # the gradient of the loss on replayed samples: each rank its share, all-reduced
    replay = Replay(buffer_size=50)
    replay.attach(ll.Trainer(model, replay), stream)
    x, y = stream[0].train.batch(torch.arange(50))
    replay.memory.add(x, y, torch.zeros_like(y))
    gradient = replay.replay_gradient(replay.memory.sample(31), list(model.parameters()))
    out["replay_gradient"] = torch.cat([g.flatten() for g in gradient]).tolist()
    return out
"""


def close(a, b) -> bool:
    return torch.allclose(torch.tensor(a), torch.tensor(b), rtol=1e-4, atol=1e-5, equal_nan=True)


def test_every_strategy_steps_on_two_ranks_as_one_process_with_the_whole_batch(tmp_path):
    ranks = run_ranks(FIT + CHECKS + """
def main():
    return {"fits": {name: fit(name) for name in STRATEGIES.names() + COMPOSED}, "checks": checks()}
""", tmp_path)
    scope: dict = {}
    exec(FIT + CHECKS, scope)
    assert not distributed.active()
    names = STRATEGIES.names() + scope["COMPOSED"]
    single = {name: scope["fit"](name) for name in names}
    for name in names:
        one, (r0, r1) = single[name], (r["fits"][name] for r in ranks)
        # every rank holds the same model and strategy state (memories, Fisher, masks, columns...)
        assert r0["params"] == r1["params"], name
        assert close(r0["state"], r1["state"]) and len(r0["state"]) == len(r1["state"]), name
        assert r0["matrix"] == r1["matrix"], name
        # ... and it is the state one process reaches with the whole batch
        assert close(r0["params"], one["params"]), name
        assert len(r0["state"]) == len(one["state"]) and close(r0["state"], one["state"]), name
        worst = max(abs(a - b) for ra, rb in zip(r0["matrix"], one["matrix"]) for a, b in zip(ra, rb))
        assert worst <= 0.01, (name, r0["matrix"], one["matrix"])  # a prediction or two may flip at a tie
    one = scope["checks"]()
    for key, value in one.items():
        for r in ranks:
            assert close(r["checks"][key], value), key


def test_sums_over_shards_add_up_to_the_whole_fisher():
    torch.manual_seed(0)
    model = ll.models.mlp(8, 4, hidden=(6,))
    x, y = torch.randn(21, 8), torch.randint(0, 4, (21,))
    t = torch.zeros_like(y)
    for kind in ("empirical", "expected"):
        whole = fisher_diagonal(model, x, y, t, lambda out, t: out, kind)
        parts = [fisher_sums(model, x[s], y[s], t[s], lambda out, t: out, kind) for s in (slice(0, 11), slice(11, 21))]
        for name, value in whole.items():
            assert torch.allclose((parts[0][name] + parts[1][name]) / 21, value, atol=1e-7)
    empty = fisher_sums(model, x[:0], y[:0], t[:0], lambda out, t: out, "expected")  # a rank with no samples
    assert empty.keys() == whole.keys() and all(not v.any() for v in empty.values())
