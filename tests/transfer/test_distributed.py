"""Transfer and domain adaptation under data-parallel training: 2 gloo ranks, each with its share of every
batch, train as 1 process with the whole batch (`lifelong.distributed`)."""

import torch

from ..ranks import run_ranks

TRANSFER = """
import lifelong as ll
from lifelong.data import Dataset, Split
from lifelong.transfer import finetune
from lifelong.transfer.adaptation import CORAL, DAN, DANN, TCA, adapt, tca_accuracy
from lifelong.transfer.features import cache, fit_head


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()


def shifted(data):
    g = torch.Generator().manual_seed(1)
    move = lambda s: Split(0.6 * s.x + 0.4 * torch.rand(s.x.shape, generator=g), s.y)  # noqa: E731
    return Dataset("digits-shifted", move(data.train), move(data.test), data.class_names, data.input_shape)


def fits():
    digits = ll.data.digits()
    source = Dataset("digits", digits.train.subset(torch.arange(600)), digits.test, digits.class_names,
                     digits.input_shape)
    target = shifted(source)
    out = {}
    # layer-wise rates and gradual unfreezing (a parameter group joins the optimiser each epoch); batch 31:
    # uneven shares (16 + 15), a last batch of 11 (6 + 5). SGD: Adam turns the rounding noise of near-zero
    # gradients into whole steps
    torch.manual_seed(0)
    model = ll.models.mlp(64, 10, (32, 16))
    res = finetune(model, source, lr_decay=2.6, gradual=True, epochs=3, batch_size=31, lr=0.05, optimizer="sgd")
    out["finetune"] = {"params": flat(model), "acc": res.matrix[0][0]}
    for name, method in (("dann", DANN(hidden=(8,))), ("coral", CORAL(lam=1000.0)), ("dan", DAN(lam=0.1))):
        torch.manual_seed(0)
        model = ll.models.mlp(64, 10, (16,))
        acc, source_acc, _ = adapt(model, source, target, method, epochs=1, batch_size=31, lr=0.01, seed=0)
        out[name] = {"params": flat(model), "acc": [acc, source_acc]}
        if name == "dann":
            out[name]["params"] += flat(method.adversary)
    train, test, _ = cache(model, target)  # each rank extracts its share, all gather
    out["features"] = train.x[::50].flatten().tolist()
    out["probe"] = fit_head(train, test, 10, head="logistic")[1]
    out["tca"] = tca_accuracy(model, source, target, TCA(n_components=8), n_fit=100)[0]
    return out
"""


def test_two_ranks_fine_tune_and_adapt_as_one_process_with_the_whole_batch(tmp_path):
    ranks = run_ranks(TRANSFER + "\ndef main():\n    return fits()\n", tmp_path)
    scope: dict = {"torch": torch}
    exec(TRANSFER, scope)
    single = scope["fits"]()
    assert ranks[0] == ranks[1]  # every rank holds the same models, features and probes
    two = ranks[0]
    for name in ("finetune", "dann", "coral", "dan"):
        assert torch.allclose(torch.tensor(two[name]["params"]), torch.tensor(single[name]["params"]),
                              atol=1e-5, rtol=1e-4), name
        assert two[name]["acc"] == single[name]["acc"], name  # evaluation shards the test set, sums the counts
    assert torch.allclose(torch.tensor(two["features"]), torch.tensor(single["features"]), atol=1e-5)
    assert abs(two["probe"] - single["probe"]) <= 1 / 450 and abs(two["tca"] - single["tca"]) <= 1 / 450
