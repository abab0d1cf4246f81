import json

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

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


def test_states_keep_what_a_resume_may_need(tmp_path):
    """Numbered states; pruning keeps the two newest, the two newest without a base and the bases of
    those kept; the newest intact state comes with its base."""
    states = checkpoint.States(tmp_path / "s", "fit")
    bases = [None, 1, 1, None, 4, 4, 4]  # a start, two states inside task 0, the end of task 0, ...
    for i, base in enumerate(bases):
        assert states.save({"x": torch.full((3,), float(i))}, {"i": i}, base=base) == i + 1
    assert states.numbers() == [1, 4, 6, 7]  # 1 and 4: newest without a base; 6, 7 newest; 4: their base
    chain = states.latest()
    assert [n for n, _, _ in chain] == [4, 7] and chain[1][2] == {"i": 6}
    assert torch.equal(chain[1][1]["x"], torch.full((3,), 6.0))


def test_states_survive_a_crash_while_writing(tmp_path):
    """Killed after a state's tensors were written but before its JSON: that state does not exist;
    the next save reuses its number and removes the leftovers (and any half-written temp file)."""
    def crash(where):
        raise KeyboardInterrupt(where)

    crashing = checkpoint.States(tmp_path / "s", "fit", on_write=crash)
    states = checkpoint.States(tmp_path / "s", "fit")
    states.save({"x": torch.zeros(2)}, {"i": 0})
    with pytest.raises(KeyboardInterrupt, match="fit:write:2"):
        crashing.save({"x": torch.ones(2)}, {"i": 1})
    (tmp_path / "s" / ".state-00000002.safetensors.abc.tmp").write_bytes(b"half")
    assert states.numbers() == [1] and [v for _, _, v in states.latest()] == [{"i": 0}]
    assert states.save({"x": torch.ones(2)}, {"i": 2}) == 2
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "state-00000001.json", "state-00000001.safetensors", "state-00000002.json", "state-00000002.safetensors"]


def test_damaged_states_are_passed_over_then_refused(tmp_path):
    states = checkpoint.States(tmp_path / "s", "fit")
    for i in range(3):
        states.save({"x": torch.full((4,), float(i))}, {"i": i}, base=1 if i == 2 else None)
    path = tmp_path / "s" / "state-00000001.safetensors"
    path.write_bytes(path.read_bytes()[:-3])  # the base of state 3: state 3 is unusable too
    with pytest.warns(UserWarning, match="state-00000001.safetensors is truncated or altered"):
        assert [v for _, _, v in states.latest()] == [{"i": 1}]
    (tmp_path / "s" / "state-00000002.json").write_text("{not json")
    with pytest.warns(UserWarning), pytest.raises(ll.LifelongError, match="none of the 3 saved states"):
        states.latest()
    states.clear()
    assert not (tmp_path / "s").exists() and states.latest() == []


def test_random_states_round_trip():
    import random

    import numpy as np

    gen = torch.Generator().manual_seed(3)
    tensors, values = checkpoint.rng_state(gen)
    tensors, values = st_load(st_save({k: v.contiguous() for k, v in tensors.items()})), json.loads(json.dumps(values))
    draws = (torch.rand(3), torch.rand(3, generator=gen), np.random.rand(3), random.random())
    checkpoint.set_rng_state(gen, tensors, values)
    again = (torch.rand(3), torch.rand(3, generator=gen), np.random.rand(3), random.random())
    assert torch.equal(draws[0], again[0]) and torch.equal(draws[1], again[1])
    assert (draws[2] == again[2]).all() and draws[3] == again[3]


def test_strip_prefix_inverts_split_state() -> None:
    from lifelong.checkpoint import split_state, strip_prefix

    state = {"w": torch.ones(2), "b": torch.zeros(1), "n": 3}
    tensors, values = split_state(state, "model.")
    assert set(tensors) == {"model.w", "model.b"} and values == {"n": 3}
    back = strip_prefix({**tensors, "other.w": torch.ones(1)}, "model.")
    assert set(back) == {"w", "b"} and torch.equal(back["w"], state["w"])


def test_a_state_whose_json_was_edited_is_passed_over_then_refused(tmp_path):
    """The digest covers the JSON (and through it the tensors' checksum): an edited value, a removed key or
    a removed digest is caught, the state passed over for an older one, and, none left, refused."""
    states = checkpoint.States(tmp_path / "s", "fit")
    for i in range(3):
        states.save({"x": torch.full((2,), float(i))}, {"i": i, "matrix": [[0.5]]}, base=1 if i == 2 else None)
    paths = [tmp_path / "s" / f"state-0000000{n}.json" for n in (1, 2, 3)]
    for path, change in zip(paths, [lambda v: v.pop("digest"), lambda v: v["values"].pop("matrix"),
                                    lambda v: v["values"]["matrix"][0].__setitem__(0, 0.6)]):
        info = json.loads(path.read_text())
        change(info)
        path.write_text(json.dumps(info, indent=1))
    with pytest.warns(UserWarning) as caught, pytest.raises(ll.LifelongError) as refused:
        states.latest()
    altered, folder = "was altered (its digest does not match its contents)", tmp_path / "s"
    assert [str(w.message) for w in caught] == [f"state {p} {altered}: resuming from an older state"
                                                for p in paths[:0:-1]]  # none for the oldest: nothing older
    assert str(refused.value) == (f"none of the 3 saved states in {folder} is intact (state {paths[2]} {altered}): "
                                  f"start the run over from this fit's start by deleting that folder (`rm -r "
                                  f"{folder}`) and resuming again")


def test_a_checkpoint_json_is_sealed(digits_stream, tmp_path):
    model = small_mlp(digits_stream)
    checkpoint.save(tmp_path / "ck", model, EWC(), meta={"matrix": [[0.5]]})
    path = tmp_path / "ck.json"
    info = json.loads(path.read_text())
    path.write_text(json.dumps({**info, "meta": {"matrix": [[0.6]]}}))
    with pytest.raises(ll.LifelongError, match="ck.json was altered"):
        checkpoint.load(tmp_path / "ck", model)
    path.write_text(json.dumps({k: v for k, v in info.items() if k != "digest"}))  # as saved before digests
    assert checkpoint.load(tmp_path / "ck", model) == {"matrix": [[0.5]]}


def test_the_digest_is_that_of_the_canonical_json():
    from lifelong.files import json_digest, seal, unsealed

    value = {"b": (1, 2.5, float("nan")), "a": {3: "x"}}
    assert json_digest(value) == json_digest(json.loads(json.dumps(value, indent=1)))
    assert json_digest(value) != json_digest({**value, "b": [1, 2.25, float("nan")]})
    assert unsealed(json.loads(json.dumps(seal(value)))) is None and unsealed(value).startswith("has no digest")
    assert unsealed({**seal(value), "c": 1}) == "was altered (its digest does not match its contents)"
