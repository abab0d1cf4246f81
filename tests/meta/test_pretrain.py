import math

import torch
import torch.nn.functional as F

from lifelong.meta import Baseline, Finetune, Scratch, evaluate, fewshot, sinusoid
from lifelong.models import conv4, mlp


def test_pretrain_classifies_meta_train_classes_then_gets_a_fresh_head(tagged_ds):
    torch.manual_seed(0)
    tasks = fewshot(tagged_ds, ways=2, shots=2, queries=3, classes="0-5//6-9", seed=0)
    learner = Finetune(mlp(2, 2, (16,)), tasks, inner_lr=0.5, meta_lr=1e-2, batch_size=32)
    assert learner.model.head.out_features == 6  # a classifier over the 6 meta-train classes
    losses = learner.meta_train(200)
    assert sum(losses[-20:]) < 0.5 * sum(losses[:20])
    ep = tasks.test.sample(4)
    assert learner.predict(ep, steps=0).abs().max() == 0  # a zero N-way head before fine-tuning
    assert learner.predict(ep, steps=3).shape == (4, 6, 2)


def test_scratch_does_not_meta_train_and_pretrain_regresses_the_mean():
    torch.manual_seed(0)
    tasks = sinusoid(shots=10, seed=0)
    scratch = Scratch(mlp(1, 1, (40, 40)), tasks)
    before = {k: v.clone() for k, v in scratch.model.state_dict().items()}
    assert scratch.meta_train(50) == []
    assert all(torch.equal(before[k], v) for k, v in scratch.model.state_dict().items())
    pre = Finetune(mlp(1, 1, (40, 40)), tasks, meta_lr=1e-2, meta_batch=25)
    pre.meta_train(300)
    # it learns the mean task: E[A sin(x - phi)] = E[A] E[sin(x - phi)] = 2.55 * (-2 cos(x) / pi)
    x = torch.linspace(-5, 5, 50).unsqueeze(1)
    assert (pre.model(x) + 2.55 * 2 / math.pi * torch.cos(x)).abs().mean() < 0.5  # the zero function: 1.03
    assert evaluate(pre, steps=0, n_tasks=100)["mean"] < evaluate(scratch, steps=0, n_tasks=100)["mean"]


def test_pretrain_on_rotated_classes_labels_each_turn_as_a_class(tagged_images):
    tasks = fewshot(tagged_images, ways=2, shots=1, queries=2, classes="0-2//3-5", seed=0, rotations=4)
    learner = Finetune(conv4((1, 3, 3), 2, channels=4), tasks, batch_size=64)
    assert learner.model.head.out_features == 12  # 3 classes x 4 turns
    x, y = learner.draw()
    cls = x[:, 0, 1, 1].long() // 20  # the centre stays put; the corner marker tells the turn
    turn = x.flatten(1)[:, [0, 6, 8, 2]].argmax(1)
    assert torch.equal(y, cls + 3 * turn) and len(turn.unique()) == 4


def test_baseline_trains_a_new_head_on_the_frozen_backbone_finetune_every_weight(tagged_ds):
    """Chen et al. 2019's Baseline adapts the new linear head only: its query outputs are those of a
    linear classifier on the pretrained features, trained by hand here; `finetune` moves the features too."""
    tasks = fewshot(tagged_ds, ways=2, shots=2, queries=3, classes="0-5//6-9", seed=0)
    torch.manual_seed(0)
    baseline = Baseline(mlp(2, 2, (8,)), tasks, inner_lr=0.3)
    torch.manual_seed(0)
    finetune = Finetune(mlp(2, 2, (8,)), tasks, inner_lr=0.3)
    ep = tasks.test.sample(3)
    features = baseline.model.forward_features
    w, b = torch.zeros(2, 8, requires_grad=True), torch.zeros(2, requires_grad=True)
    for _ in range(3):  # the head only, by hand: full-batch gradient descent on the support set
        loss = F.cross_entropy(features(ep.xs[0]) @ w.T + b, ep.ys[0])
        gw, gb = torch.autograd.grad(loss, (w, b))
        w, b = w - 0.3 * gw, b - 0.3 * gb
    expected = features(ep.xq[0]) @ w.T + b
    assert torch.allclose(baseline.predict(ep, steps=3)[0], expected.detach(), atol=1e-5)
    assert not torch.allclose(finetune.predict(ep, steps=3)[0], expected.detach(), atol=1e-3)
