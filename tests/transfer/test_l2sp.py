"""L2-SP (Li et al. 2018): the penalty and its gradient against hand-derived values."""

import torch

import lifelong as ll
from lifelong.transfer import L2SP, finetune


def test_penalty_and_gradient_match_the_equation(digits):
    torch.manual_seed(0)
    model = ll.models.mlp(64, 3, hidden=(8,)).double()
    stream = ll.data.from_tasks([ll.data.select_classes(digits, [0, 1, 2])])
    l2sp = L2SP(alpha=0.3, beta=0.05)
    l2sp.attach(ll.Trainer(model, l2sp), stream)
    start = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():  # move away from the starting point, as training would
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    head = {id(p) for p in model.head.parameters()}
    out = model(digits.train.x[:4].double())
    penalty = l2sp.loss(out, None, None, None)
    expected = sum(0.05 / 2 * p.pow(2).sum() if id(p) in head else 0.3 / 2 * (p - p0).pow(2).sum()
                   for p, p0 in zip(model.parameters(), start))
    assert torch.allclose(penalty, expected)
    grads = torch.autograd.grad(penalty, list(model.parameters()))
    for p, g, p0 in zip(model.parameters(), grads, start):
        want = 0.05 * p.detach() if id(p) in head else 0.3 * (p.detach() - p0)
        assert torch.allclose(g, want)


def test_strong_pull_keeps_the_backbone_at_the_pretrained_weights(digits):
    target = ll.data.select_classes(digits, [3, 4, 5])
    moved = []
    for alpha in (0.0, 100.0):
        torch.manual_seed(0)
        model = ll.models.mlp(64, 5, hidden=(16,))
        start = [p.detach().clone() for p in model.features.parameters()]
        finetune(model, target, strategy=L2SP(alpha=alpha, beta=0.0), epochs=3, batch_size=32, lr=1e-2)
        moved.append(sum((p - p0).norm() for p, p0 in zip(model.features.parameters(), start)).item())
    assert moved[1] < moved[0] / 5
