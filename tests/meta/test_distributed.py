"""Meta-learning under data-parallel training: 2 gloo ranks, each with its share of every meta-batch,
step as 1 process with the whole meta-batch, and score the same (`lifelong.distributed`)."""

import torch

from ..ranks import run_ranks

META = """
import lifelong as ll
from torch import nn
from lifelong.models import Net
from lifelong.meta import FOMAML, MAML, Finetune, ProtoNet, Reptile, evaluate, meta_benchmark, sinusoid


def meta_fits():
    out = {}
    runs = [("maml", MAML, sinusoid, {"meta_batch": 4, "inner_steps": 2}),
            ("fomaml", FOMAML, sinusoid, {"meta_batch": 3}),  # 3 episodes: 2 on rank 0, 1 on rank 1
            ("reptile", Reptile, sinusoid, {"meta_batch": 4, "inner_steps": 3}),
            ("protonet", ProtoNet, None, {"meta_batch": 4}),
            ("finetune", Finetune, None, {"batch_size": 9})]  # pretraining on samples: 5 + 4 rows
    for name, cls, kind, options in runs:
        tasks = (sinusoid(shots=5, queries=5, seed=0) if kind else
                 meta_benchmark("digits-fewshot", ways=3, shots=2, queries=3, classes="0-4//5-9"))
        torch.manual_seed(0)
        model = ll.models.mlp(1, 1, (16,)) if kind else ll.models.mlp(64, 3, (16,))
        if cls is ProtoNet:  # no bias: a bias shifts every embedding alike, its true gradient 0, Adam's steps noise
            model = Net(nn.Sequential(nn.Flatten(), nn.Linear(64, 16, bias=False), nn.Tanh()), nn.Linear(16, 3))
        learner = cls(model, tasks, meta_lr=0.01, **options)
        valid, test = tasks.valid.sample(5), tasks.test.sample(7)  # 5 and 7 episodes: uneven shares
        losses = learner.meta_train(4, valid=valid, every=2, steps=2)
        out[name] = {"params": torch.cat([p.detach().flatten() for p in model.parameters()]).tolist(),
                     "losses": losses, "selection": learner.selection, "eval": evaluate(learner, 2, episodes=test)}
    return out
"""


def close(a, b, tol=1e-5):
    return torch.allclose(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64),
                          atol=tol, rtol=1e-4)


def test_two_ranks_meta_train_and_score_as_one_process_with_the_whole_meta_batch(tmp_path):
    ranks = run_ranks(META + "\ndef main():\n    return meta_fits()\n", tmp_path)
    scope: dict = {"torch": torch}
    exec(META, scope)
    single = scope["meta_fits"]()
    assert ranks[0] == ranks[1]  # every rank holds the same model and scores the same
    for name, one in single.items():
        two = ranks[0][name]
        assert close(two["params"], one["params"]), name
        assert close(two["losses"], one["losses"]), name
        s2, s1 = dict(two["selection"]), dict(one["selection"])
        c2, c1 = s2.pop("curve"), s1.pop("curve")
        assert s2 == s1, name  # the same iteration kept
        assert close([c[1:] for c in c2], [c[1:] for c in c1]), name
        assert two["eval"]["tasks"] == one["eval"]["tasks"] == 7
        assert close([two["eval"][k] for k in ("mean", "std")], [one["eval"][k] for k in ("mean", "std")]), name
