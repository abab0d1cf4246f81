import math

import torch
from torch import nn

from lifelong.data.episodes import Episodes
from lifelong.meta import MAML, Scratch, TaskSet, evaluate
from lifelong.models import Net

from .conftest import regression_tasks


class Fixed:
    """A sampler whose query targets make the per-task MSE of a zero predictor 1, 4, 9, ..."""

    def __init__(self) -> None:
        self.i = 0

    def sample(self, n: int) -> Episodes:
        k = torch.arange(self.i + 1, self.i + n + 1, dtype=torch.float32)
        self.i += n
        z = torch.zeros(n, 2, 1)
        return Episodes(z, z, z, k.view(n, 1, 1).expand(n, 2, 1))


def test_evaluate_mean_and_ci95_over_tasks():
    model = nn.Linear(1, 1)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    learner = Scratch(model, TaskSet("fixed", "regression", Fixed(), Fixed(), (1,), 1))
    r = evaluate(learner, steps=0, n_tasks=10, batch=3)  # batches of 3, 3, 3, 1
    mse = torch.arange(1, 11, dtype=torch.float64) ** 2
    assert r["tasks"] == 10 and math.isclose(r["mean"], float(mse.mean()))
    assert math.isclose(r["ci95"], 1.96 * float(mse.std()) / math.sqrt(10))


def test_batchnorm_uses_each_episodes_own_statistics():
    torch.manual_seed(0)
    model = Net(nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU()), nn.Linear(4, 1))
    learner = MAML(model, regression_tasks(), inner_steps=1)
    bn = model.features[1]
    assert bn.running_mean is None and not bn.track_running_stats
    ep = Episodes(torch.randn(2, 5, 2), torch.randn(2, 5, 1), torch.randn(2, 6, 2), torch.randn(2, 6, 1))
    learner.meta_step(ep)  # vmapped over episodes: needs batch-statistics BatchNorm
    out = learner.predict(ep, steps=0)
    alone = learner.predict(Episodes(*(t[1:] for t in ep)), steps=0)
    assert torch.allclose(out[1], alone[0], atol=1e-6)  # episode 1's outputs do not depend on episode 0
    shifted = Episodes(ep.xs, ep.ys, ep.xq + 3.0, ep.yq)  # a shift of the whole query set is normalised away
    assert torch.allclose(learner.predict(shifted, steps=0), out, atol=1e-4)
