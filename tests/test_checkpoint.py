import json

import pytest
import torch

import lifelong as ll
from lifelong import checkpoint
from lifelong.strategies import EWC, SI, LwF

from .conftest import small_mlp


@pytest.mark.parametrize("make", [lambda: EWC(lam=10.0), lambda: SI(c=1.0), lambda: LwF()])
def test_trainer_checkpoint_round_trip(digits, tmp_path, make):
    stream = ll.data.split(digits, n_tasks=2, seed=0)
    model, strategy = small_mlp(stream), make()
    ll.Trainer(model, strategy, epochs=2, batch_size=16, seed=0, checkpoint=tmp_path / "ck").fit(stream)
    meta = json.loads((tmp_path / "ck.json").read_text())["meta"]
    assert meta["task"] == 1 and len(meta["matrix"]) == 2
    model2, strategy2 = small_mlp(stream, seed=5), make()
    strategy2.attach(ll.Trainer(model2), stream)
    assert checkpoint.load(tmp_path / "ck", model2, strategy2)["task"] == 1
    x = stream[0].test.x
    assert torch.equal(model(x), model2(x))
    state, state2 = strategy.state_dict(), strategy2.state_dict()
    assert state.keys() == state2.keys() and len(state) > 0
    for k in state:
        assert torch.equal(state[k], state2[k]) if isinstance(state[k], torch.Tensor) else state[k] == state2[k]


def test_tampered_or_truncated_checkpoint_is_refused(digits_stream, tmp_path):
    model = small_mlp(digits_stream)
    checkpoint.save(tmp_path / "ck", model, EWC())
    blob = (tmp_path / "ck.safetensors").read_bytes()
    (tmp_path / "ck.safetensors").write_bytes(blob[:-10])
    with pytest.raises(ll.LifelongError, match="truncated or altered"):
        checkpoint.load(tmp_path / "ck", model)
    tampered = bytearray(blob)
    tampered[-1] ^= 0xFF
    (tmp_path / "ck.safetensors").write_bytes(bytes(tampered))
    with pytest.raises(ll.LifelongError, match="checksum"):
        checkpoint.load(tmp_path / "ck", model)
    (tmp_path / "ck.json").write_text("{not json")
    with pytest.raises(ll.LifelongError, match="cannot read checkpoint"):
        checkpoint.load(tmp_path / "ck", model)


def test_cli_run_directory_holds_checkpoints(tmp_path, capsys):
    from lifelong.cli import main

    out = tmp_path / "run"
    assert main(["run", "--benchmark", "split-digits", "--strategy", "ewc", "--hidden", "16", "--out", str(out)]) == 0
    assert (out / "checkpoints" / "ewc-seed0.safetensors").exists()
    info = json.loads((out / "checkpoints" / "ewc-seed0.json").read_text())
    assert info["meta"]["task"] == 4 and "const" in info["strategy_values"]
