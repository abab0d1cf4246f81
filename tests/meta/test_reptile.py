import torch
import torch.nn.functional as F

from lifelong.data.episodes import Episodes
from lifelong.meta import Reptile

from .conftest import regression_tasks, tiny_net


def test_update_is_epsilon_times_the_mean_displacement(toy_episodes):
    learner = Reptile(tiny_net(), regression_tasks(), inner_lr=0.1, inner_steps=3, meta_lr=0.5)
    learner.progress = 0.2  # annealed: epsilon = 0.5 * (1 - 0.2)
    model = learner.model
    phi = {k: v.detach().clone() for k, v in model.named_parameters()}
    adapted = []
    for xs, ys, xq, yq in zip(*toy_episodes):  # by hand: 3 SGD steps on support + query, from phi
        w = {k: v.clone() for k, v in phi.items()}
        x, y = torch.cat([xs, xq]), torch.cat([ys, yq])
        for _ in range(3):
            p = {k: v.requires_grad_() for k, v in w.items()}
            g = torch.autograd.grad(F.mse_loss(torch.func.functional_call(model, p, (x,)), y), list(p.values()))
            w = {k: (v - 0.1 * gi).detach() for (k, v), gi in zip(p.items(), g)}
        adapted.append(w)
    learner.meta_step(Episodes(*toy_episodes))
    for k, p in model.named_parameters():
        mean_w = torch.stack([w[k] for w in adapted]).mean(0)
        assert torch.allclose(p, phi[k] + 0.4 * (mean_w - phi[k]), rtol=1e-10, atol=1e-12)


def test_meta_lr_one_and_one_task_jumps_to_the_adapted_weights(toy_episodes):
    learner = Reptile(tiny_net(), regression_tasks(), inner_lr=0.1, inner_steps=2, meta_lr=1.0, meta_batch=1)
    one = Episodes(*(t[:1] for t in toy_episodes))
    x, y = torch.cat([one.xs[0], one.xq[0]]), torch.cat([one.ys[0], one.yq[0]])
    before = F.mse_loss(learner.model(x), y)
    learner.meta_step(one)
    assert F.mse_loss(learner.model(x), y) < before
