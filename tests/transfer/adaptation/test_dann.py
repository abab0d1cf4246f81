import torch
import torch.nn.functional as F

from lifelong.transfer.adaptation import DANN, DomainAdversarialLoss, GradientReversal, grad_reverse


def test_gradient_reversal_flips_the_gradient_sign_exactly():
    x = torch.randn(8, 5, requires_grad=True)
    w = torch.randn(8, 5)
    y = grad_reverse(x, 0.37)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.equal(x.grad, -0.37 * w)
    x.grad = None
    (GradientReversal.apply(x, 1.0) * w).sum().backward()
    assert torch.equal(x.grad, -w)


def test_features_get_minus_lambda_times_the_domain_gradient_discriminator_the_plain_one():
    torch.manual_seed(0)
    loss = DomainAdversarialLoss(4, hidden=(6,))
    fs, ft = torch.randn(5, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    loss(fs, ft, 0.5).backward()
    reversed_grads = [fs.grad.clone(), ft.grad.clone()] + [p.grad.clone() for p in loss.parameters()]
    fs.grad = ft.grad = None
    loss.zero_grad()
    logits = loss.discriminator(torch.cat([fs, ft])).squeeze(1)
    F.binary_cross_entropy_with_logits(logits, torch.tensor([1.0] * 5 + [0.0] * 3)).backward()
    assert torch.allclose(reversed_grads[0], -0.5 * fs.grad)
    assert torch.allclose(reversed_grads[1], -0.5 * ft.grad)
    for got, p in zip(reversed_grads[2:], loss.parameters()):
        assert torch.equal(got, p.grad)


def test_state_round_trip():
    torch.manual_seed(0)
    a = DANN(hidden=(7,))
    a._build(4)
    b = DANN(hidden=(7,))
    b.load_state_dict(a.state_dict())
    assert b.adversary is not None and b.adversary.in_features == 4
    x = torch.randn(3, 4)
    assert torch.equal(a.adversary.discriminator(x), b.adversary.discriminator(x))
    assert a.memory_bytes() == sum(p.numel() * 4 for p in a.adversary.parameters())
