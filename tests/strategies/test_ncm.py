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


def test_a_pooling_model_is_fitted_and_predicted_on_its_pre_logits():
    """resnet18's forward_features are unpooled maps: the means and the prediction both use the pooled
    pre-logits, the classifier's input."""
    torch.manual_seed(0)
    x, y = torch.randn(12, 1, 4, 4), torch.arange(12) % 3
    stream = ll.data.from_tasks([(ll.data.Split(x, y), ll.data.Split(x, y))], scenario="class")
    model = ll.models.resnet18(3, in_channels=1).eval()
    ncm = NCM()
    ncm.attach(ll.Trainer(model, ncm), stream)
    ncm.after_task(stream[0])
    with torch.no_grad():
        z = ll.models.pre_logits(model, x)
        assert torch.allclose(ncm.means, torch.stack([z[y == k].mean(0) for k in range(3)]), atol=1e-5)
        assert torch.equal(ncm.predict(x, None).argmax(1), torch.cdist(z, ncm.means).argmin(1))
