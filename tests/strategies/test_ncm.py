"""Nearest class mean on frozen features (Mensink et al. 2013)."""

import torch

import lifelong as ll
from lifelong.strategies import NCM


def test_means_and_nearest_mean_prediction(digits_stream):
    torch.manual_seed(0)
    model = ll.models.mlp(64, 10, hidden=(128,))
    ncm = NCM()
    result = ll.Trainer(model, ncm, seed=0).fit(digits_stream)
    with torch.no_grad():
        feats = model.forward_features(torch.cat([t.train.x for t in digits_stream]))
    labels = torch.cat([t.train.y for t in digits_stream])
    for k in range(10):
        assert torch.allclose(ncm.means[k], feats[labels == k].mean(0), atol=1e-5)
    x = digits_stream[0].test.x[:20]
    with torch.no_grad():
        want = torch.cdist(model.forward_features(x), ncm.means).argmin(1)
        assert torch.equal(ncm.predict(x, None).argmax(1), want)
    assert result.metrics["acc"] > 0.8


def test_unseen_classes_are_never_predicted(digits_stream):
    torch.manual_seed(0)
    ncm = NCM()
    trainer = ll.Trainer(ll.models.mlp(64, 10, hidden=(32,)), ncm)
    ncm.attach(trainer, digits_stream)
    ncm.after_task(digits_stream[0])
    seen = digits_stream[0].units
    with torch.no_grad():
        pred = ncm.predict(torch.cat([t.test.x for t in digits_stream]), None).argmax(1)
    assert set(pred.tolist()) <= set(seen)
    state = ncm.state_dict()
    again = NCM()
    again.load_state_dict(state)
    assert torch.equal(again.means, ncm.means)
