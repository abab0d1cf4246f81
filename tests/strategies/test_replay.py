import pytest
import torch

import lifelong as ll
from lifelong.checkpoint import load as load_checkpoint
from lifelong.checkpoint import save as save_checkpoint
from lifelong.cli import main
from lifelong.strategies import Compose, Naive, Replay

from ..conftest import small_mlp


def fit(stream, strategy, epochs=3):
    return ll.Trainer(small_mlp(stream), strategy, epochs=epochs, batch_size=16, seed=0).fit(stream)


def test_batches_are_joined_by_memory_samples_with_their_own_task_ids(digits):
    stream = ll.data.split(digits, n_tasks=5, scenario="task", seed=0)
    er = Replay(buffer_size=40, replay_batch_size=8)
    seen = []
    batch = er.batch

    def spy(x, y, t):
        out = batch(x, y, t)
        seen.append((len(x), out))
        return out

    er.batch = spy
    fit(stream, er, epochs=1)
    n, (x, y, t) = seen[-1]
    assert len(x) == n + 8 and len(seen[0][1][0]) == seen[0][0]  # nothing to replay at the very start
    masks = stream.masks[t]
    assert masks[torch.arange(len(y)), y].all()  # every label is one of its own task's units
    assert (t[n:] < 4).any() and len(er.memory) == 40


def test_replay_beats_naive_in_class_incremental(digits_stream):
    naive = fit(digits_stream, Naive(), epochs=2)
    er = fit(digits_stream, Replay(buffer_size=200, replay_batch_size=32), epochs=2)
    assert er.metrics["acc"] > naive.metrics["acc"] + 0.15
    assert er.strategy_memory_bytes >= 200 * (64 * 4 + 16)


def test_state_survives_a_checkpoint_and_composes(digits_stream, tmp_path):
    model, er = small_mlp(digits_stream), Replay(buffer_size=50, replay_batch_size=8)
    ll.Trainer(model, Compose(Naive(), er), epochs=1, batch_size=16, seed=0).fit(digits_stream)
    save_checkpoint(tmp_path / "ck", model, Compose(Naive(), er))
    assert all(k.startswith("1.buffer.") for k in Compose(Naive(), er).state_dict())
    again = Replay(buffer_size=50)
    load_checkpoint(tmp_path / "ck", small_mlp(digits_stream), Compose(Naive(), again))
    assert torch.equal(again.memory.stored().x, er.memory.stored().x)
    assert again.memory_bytes() == er.memory_bytes() > 50 * 64 * 4


def test_cli_options_and_bad_values(capsys):
    common = ["run", "--benchmark", "split-digits", "--hidden", "32", "--epochs", "1", "--strategy", "replay"]
    assert main([*common, "--replay-buffer-size", "30", "--replay-batch-size", "8", "--replay-policy",
                 "class_balanced", "--json"]) == 0
    assert '"strategy": "replay"' in capsys.readouterr().out
    for flag, value in (("--replay-buffer-size", "0"), ("--replay-batch-size", "-1"), ("--replay-policy", "fifo")):
        assert main([*common, flag, value]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--replay-" in err


@pytest.mark.parametrize("kwargs", [{"buffer_size": 0}, {"replay_batch_size": 0}, {"buffer_size": 1.5}])
def test_bad_sizes_are_config_errors(kwargs):
    with pytest.raises(ll.ConfigError):
        Replay(**kwargs)
