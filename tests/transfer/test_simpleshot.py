"""SimpleShot's nearest-class-mean head (Wang et al. 2019): CL2N and the linear form of the nearest mean."""

import pytest
import torch

from lifelong.data import Split
from lifelong.errors import DataError
from lifelong.transfer.simpleshot import CL2N, nearest_mean_head


def test_cl2n_centres_then_normalises():
    g = torch.Generator().manual_seed(0)
    f, centre = torch.randn(6, 4, generator=g) + 3, torch.randn(4, generator=g)
    z = CL2N(centre)(f)
    assert torch.allclose(z.norm(dim=1), torch.ones(6))
    assert torch.allclose(z * (f - centre).norm(dim=1, keepdim=True), f - centre, atol=1e-6)
    assert torch.allclose(CL2N(None)(f), f / f.norm(dim=1, keepdim=True))


def test_head_predicts_the_nearest_class_mean_of_normalised_features():
    g = torch.Generator().manual_seed(1)
    train = Split(torch.randn(30, 5, generator=g), torch.arange(3).repeat(10))
    test, centre = torch.randn(200, 5, generator=g), torch.randn(5, generator=g)
    head = nearest_mean_head(train, 3, centre)
    z = (train.x - centre) / (train.x - centre).norm(dim=1, keepdim=True)
    means = torch.stack([z[train.y == c].mean(0) for c in range(3)])
    zt = (test - centre) / (test - centre).norm(dim=1, keepdim=True)
    with torch.no_grad():
        logits = head(test)
    # logits = -||z - mu_c||^2 + ||z||^2 = -||z - mu_c||^2 + 1, exactly the negative squared distance plus one
    assert torch.allclose(logits, 1 - torch.cdist(zt, means).pow(2), atol=1e-5)
    assert torch.equal(logits.argmax(1), torch.cdist(zt, means).argmin(1))


def test_one_shot_support_classifies_itself_and_missing_classes_fail():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])
    head = nearest_mean_head(Split(x, torch.tensor([2, 0, 1])), 3)
    assert head(x).argmax(1).tolist() == [2, 0, 1]
    with pytest.raises(DataError, match=r"classes \[1\]"):
        nearest_mean_head(Split(x[:2], torch.tensor([0, 2])), 3)
