"""Meta-learning: task distributions, MAML, FOMAML, ANIL, Reptile, ProtoNets, and three baselines.

    import lifelong as ll
    tasks = ll.meta.meta_benchmark("sinusoid", shots=10)
    learner = ll.meta.MAML(ll.models.mlp(1, 1, (40, 40)), tasks, inner_lr=0.01)
    learner.meta_train(2000)
    print(ll.meta.evaluate(learner, steps=10))   # mean MSE and its 95% CI over 600 meta-test tasks

MAML in a loop of your own, with your optimiser and data (learn2learn's `clone` / `adapt` shape):

    import torch, torch.nn.functional as F
    maml = ll.meta.MAMLModule(ll.models.mlp(1, 1, (40, 40)), lr=0.01)   # or learner.clone() above
    opt = torch.optim.Adam(maml.parameters(), lr=1e-3)
    opt.zero_grad()
    for xs, ys, xq, yq in zip(*tasks.train.sample(25)):    # one meta-batch: support and query of each task
        fast = maml.clone()
        fast.adapt(F.mse_loss(fast(xs), ys))                # inner step, differentiable (second order)
        (F.mse_loss(fast(xq), yq) / 25).backward()          # the query loss reaches the meta-parameters
    opt.step()
"""

from __future__ import annotations

from ..registry import Registry
from .anil import ANIL
from .base import MetaLearner, evaluate, inner_loop, meta_test_episodes
from .maml import FOMAML, MAML, MAMLModule
from .pretrain import Baseline, Finetune, Scratch
from .protonet import ProtoNet
from .reptile import Reptile
from .tasks import META_BENCHMARKS, Sinusoid, TaskSet, fewshot, meta_benchmark, sinusoid

META_LEARNERS = Registry("meta-learning method")
for _cls in (MAML, FOMAML, ANIL, Reptile, ProtoNet, Baseline, Finetune, Scratch):
    META_LEARNERS.register(_cls.name, _cls.summary)(_cls)

__all__ = ["ANIL", "FOMAML", "MAML", "META_BENCHMARKS", "META_LEARNERS", "Baseline", "Finetune", "MAMLModule",
           "MetaLearner", "ProtoNet", "Reptile", "Scratch", "Sinusoid", "TaskSet", "evaluate", "fewshot", "inner_loop",
           "meta_benchmark", "meta_test_episodes", "sinusoid"]
