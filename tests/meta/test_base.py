import math

import torch
from torch import nn

from lifelong.data.episodes import Episodes
from lifelong.meta import MAML, MetaLearner, ProtoNet, Scratch, TaskSet, evaluate
from lifelong.models import Net, conv4

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


class Climber(Scratch):
    """A learner whose meta-step adds 1 to its weight w; it predicts class 1 for query inputs x < w.
    With queries x = 0..5 labelled 1, 1, 1, 0, 0, 0, its accuracy for w = 0..6 is 1 - |w - 3| / 6: best at 3."""

    def meta_train(self, *args, **kwargs):
        return MetaLearner.meta_train(self, *args, **kwargs)

    def meta_step(self, batch):
        with torch.no_grad():
            self.model.weight += 1
        return torch.tensor(0.0)

    def draw(self):
        return None

    def predict(self, episodes, steps):
        one = (episodes.xq[..., 0] < self.model.weight[0, 0]).float()
        return torch.stack([1 - one, one], -1)


def _climber() -> tuple[Climber, Episodes]:
    model = nn.Linear(1, 1)
    nn.init.zeros_(model.weight)
    xq = torch.arange(6.0).view(1, 6, 1).expand(4, 6, 1)
    episodes = Episodes(xq, torch.zeros(4, 6, dtype=torch.long), xq, torch.tensor([1, 1, 1, 0, 0, 0]).expand(4, 6))
    return Climber(model, TaskSet("toy", "classification", None, None, (1,), 2)), episodes


def test_model_selection_keeps_the_best_validated_meta_parameters():
    learner, valid = _climber()
    learner.meta_train(6, valid=valid, every=1)
    assert float(learner.model.weight.detach()) == 3.0 and learner.selection["kept"] == 3
    assert [round(v, 4) for _, v, _ in learner.selection["curve"]] == [round(1 - abs(w - 3) / 6, 4) for w in range(7)]
    learner, valid = _climber()
    learner.meta_train(5, valid=valid, every=2)  # scored at 0, 2, 4 and the end, 5; 2 and 4 tie: the later
    assert [i for i, *_ in learner.selection["curve"]] == [0, 2, 4, 5] and float(learner.model.weight.detach()) == 4.0
    learner, _ = _climber()
    learner.meta_train(5)  # no validation episodes: the last meta-parameters
    assert float(learner.model.weight.detach()) == 5.0 and learner.selection is None


class Saturated(Climber):
    """Right on every validation query from w = 1 on, ever more confident: logits w * one-hot of the truth."""

    def predict(self, episodes, steps):
        return self.model.weight[0, 0] * torch.nn.functional.one_hot(episodes.yq, 2).float()


def test_model_selection_on_a_saturated_accuracy_keeps_the_lowest_loss_not_the_first_maximum():
    model = nn.Linear(1, 1)
    nn.init.zeros_(model.weight)
    learner = Saturated(model, TaskSet("toy", "classification", None, None, (1,), 2))
    valid = _climber()[1]
    learner.meta_train(10, valid=valid, every=1)
    accuracy = [v for _, v, _ in learner.selection["curve"]]
    assert accuracy[0] == 0.5 and accuracy[1:] == [1.0] * 10  # saturated from iteration 1
    assert learner.selection["kept"] == 10 and float(learner.model.weight.detach()) == 10.0  # not iteration 1


def test_score_is_minus_the_mse_for_regression():
    model = nn.Linear(1, 1)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    learner = Scratch(model, TaskSet("fixed", "regression", Fixed(), Fixed(), (1,), 1))
    score, loss = learner.score(Fixed().sample(3), steps=0)
    assert math.isclose(score, -(1 + 4 + 9) / 3, rel_tol=1e-6) and math.isclose(loss, (1 + 4 + 9) / 3, rel_tol=1e-6)


def test_conv4_batchnorm_is_per_episode_under_vmap_and_in_the_baselines():
    torch.manual_seed(0)
    ep = Episodes(torch.randn(3, 4, 1, 8, 8), torch.tensor([[0, 0, 1, 1]] * 3), torch.randn(3, 6, 1, 8, 8),
                  torch.tensor([[0, 0, 0, 1, 1, 1]] * 3))
    tasks = TaskSet("toy", "classification", None, None, (1, 8, 8), 2)
    for learner in (MAML(conv4((1, 8, 8), 2, channels=4), tasks, inner_lr=0.1),
                    ProtoNet(conv4((1, 8, 8), 2, channels=4), tasks), Scratch(conv4((1, 8, 8), 2, channels=4), tasks)):
        bns = [m for m in learner.model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert len(bns) == 4 and all(m.running_mean is None and not m.track_running_stats for m in bns)
        out = learner.predict(ep, steps=2)
        alone = learner.predict(Episodes(*(t[2:] for t in ep)), steps=2)
        assert torch.allclose(out[2], alone[0], atol=1e-5)  # episode 2 does not see episodes 0 and 1
