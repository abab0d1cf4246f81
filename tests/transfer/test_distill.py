import torch

import lifelong as ll
from lifelong.losses import soft_cross_entropy
from lifelong.transfer import distill


def test_soft_cross_entropy_gradient():
    s = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 4, dtype=torch.float64)
    soft_cross_entropy(s, t, 3.0).backward()
    expected = (torch.softmax(s.detach() / 3, 1) - torch.softmax(t / 3, 1)) / (3 * 5)
    assert torch.allclose(s.grad, expected)


def test_alpha_zero_is_plain_training(digits):
    torch.manual_seed(0)
    teacher = ll.models.mlp(64, 10, hidden=(32,))
    opts = dict(epochs=2, batch_size=32, seed=0)
    torch.manual_seed(1)
    a = distill(teacher, ll.models.mlp(64, 10, hidden=(8,)), digits, alpha=0.0, **opts)
    torch.manual_seed(1)
    b = ll.Trainer(ll.models.mlp(64, 10, hidden=(8,)), **opts).fit(ll.data.from_tasks([digits]))
    assert a.matrix == b.matrix


def test_small_student_learns_from_large_teacher(digits):
    torch.manual_seed(0)
    teacher = ll.models.mlp(64, 10, hidden=(256, 256))
    ll.Trainer(teacher, epochs=10, batch_size=32, seed=0).fit(ll.data.from_tasks([digits]))
    torch.manual_seed(0)
    student = ll.models.mlp(64, 10, hidden=(16,))
    r = distill(teacher, student, digits, temperature=4.0, alpha=1.0, epochs=10, batch_size=32, seed=0)
    assert r.metrics["acc"] > 0.85
    with torch.no_grad():
        agree = (student(digits.test.x).argmax(1) == teacher(digits.test.x).argmax(1)).float().mean()
    assert agree > 0.85
