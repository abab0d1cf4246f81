"""The served learner in process (no HTTP): a learner stopped at any batch and started again from its
saved state and the log reaches the very state of one that never stopped, for every online strategy;
`replay` learns a log again, with its own options or another strategy's."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from lifelong.errors import ConfigError
from lifelong.serve.command import differences
from lifelong.serve.config import ServeConfig, read, resolve
from lifelong.serve.learner import Learner, replay
from lifelong.serve.log import Log


def fill(folder, n_batches: int, seed: int = 0, classes: int = 3) -> None:
    """Log `n_batches` batches of 1-9 random samples (4 features, labels drawn from `classes`)."""
    rng = np.random.default_rng(seed)
    log = Log(folder)
    for _ in range(n_batches):
        n = int(rng.integers(1, 10))
        log.append(rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, classes, n))
    log.close()


def run_until(learner: Learner, seq: int) -> None:
    """Apply the log's batches up to `seq` (the worker's loop, without its thread)."""
    log = Log(learner.folder)
    learner.start()
    while learner.seq < seq and (batches := learner.log_after(log, 1)):
        learner.apply(batches[0])
    log.close()


STRATEGIES = [("replay", "sgd"), ("replay", "adam"), ("der", "adam"), ("derpp", "sgd"), ("agem", "sgd"),
              ("mir", "sgd"), ("er-ace", "adam"), ("slda", "sgd"), ("ncm", "sgd"), ("naive", "adam")]


@pytest.mark.parametrize(("strategy", "optimizer"), STRATEGIES)
def test_restart_from_a_state_reaches_the_uninterrupted_state(tmp_path, strategy, optimizer):
    resolve(tmp_path, {"strategy": strategy, "optimizer": optimizer, "hidden": [8], "inputs": [4], "classes": 3,
                       "buffer_size": 12, "replay_batch_size": 4, "batch_size": 3})
    fill(tmp_path, 14)
    config = read(tmp_path)
    first = Learner(tmp_path, config, checkpoint_every=0, serving=False)
    run_until(first, 6)
    first.save()  # a state at batch 6, as a checkpoint (or a clean stop) leaves it
    again = Learner(tmp_path, config, checkpoint_every=0)  # a restart: loads it, replays batches 7-14
    run_until(again, 14)
    assert again.seq == 14 and again.saved[0] == 6
    whole = replay(tmp_path, config)  # never stopped
    assert whole.seq == 14
    assert differences(again, *whole.snapshot()) == []
    assert torch.equal(again.counts, whole.counts) and again.counts.sum() == whole.trainer.samples_seen
    probs = again.predict(np.ones((2, 4), np.float32))[1]  # the published copy is the learner's model
    with torch.no_grad():
        whole.trainer.model.eval()
        expected = torch.softmax(whole.trainer.predict(torch.ones(2, 4), torch.zeros(2, dtype=torch.long)), 1)
    assert torch.equal(torch.tensor(probs), expected)


def test_replay_with_another_strategy_and_a_changed_state_is_told(tmp_path):
    resolve(tmp_path, {"hidden": [8], "inputs": [4], "classes": 3, "buffer_size": 12})
    fill(tmp_path, 5)
    config = read(tmp_path)
    own = replay(tmp_path, config)
    other = replay(tmp_path, ServeConfig(**{**config.__dict__, "strategy": "naive"}))
    assert own.trainer.samples_seen == other.trainer.samples_seen > 0
    flat = [torch.cat([p.flatten() for p in learner.trainer.model.parameters()]) for learner in (own, other)]
    assert not torch.equal(*flat)
    tensors, values = own.snapshot()
    tensors = {**tensors, "model.bump": torch.zeros(1)}
    assert differences(replay(tmp_path, config), tensors, values) == ["model.bump"]


def test_stored_options_are_kept_and_conflicts_refused(tmp_path):
    config = resolve(tmp_path, {"strategy": "der", "hidden": [8], "strategy_options": {"der": {"alpha": 0.5}}})
    assert read(tmp_path) == config and config.inputs is None
    assert resolve(tmp_path, {}) == config  # a restart with just the folder
    assert resolve(tmp_path, {"strategy": "der", "strategy_options": {"der": {"alpha": 0.5}}}) == config
    assert resolve(tmp_path, {"inputs": [4], "classes": 3}).inputs == [4]  # not known yet: may be given
    for given, name in (({"strategy": "replay"}, "strategy"), ({"inputs": [5]}, "inputs"), ({"lr": 0.5}, "lr"),
                        ({"strategy_options": {"der": {"alpha": 0.1}}}, "strategy_options")):
        with pytest.raises(ConfigError, match=f"holds a learner with `{name}`") as err:
            resolve(tmp_path, given)
        assert err.value.argument == name and "\n" not in str(err.value)
    (tmp_path / "serve.json").write_text((tmp_path / "serve.json").read_text().replace('"der"', '"mir"', 1))
    with pytest.raises(ConfigError, match="altered"):
        read(tmp_path)


def test_predictions_while_learning_come_from_whole_published_models(tmp_path):
    """A prediction made while the worker learns and publishes (each publication slowed down, before it
    takes the lock and parameter by parameter) equals the output of the model after the whole batch it
    names (never of a mix of two), and that batch is at least the one `seq` said was learnt before it was
    asked (so a /learn?wait=true that answered "learnt" is followed by predictions with that batch)."""
    resolve(tmp_path, {"strategy": "replay", "hidden": [8], "inputs": [4], "classes": 3, "optimizer": "sgd",
                       "lr": 0.5})
    fill(tmp_path, 12)
    learner = Learner(tmp_path, read(tmp_path), checkpoint_every=0)
    probe = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    whole: list[list[list[float]]] = []

    def record(*_: object) -> None:  # after each batch, in the worker: what its model gives now
        with torch.no_grad():
            whole.append(torch.softmax(learner.trainer.model(torch.from_numpy(probe)), 1).tolist())

    learner.start()
    record()
    learner.on_batch = record
    copy_in = learner.shadow.model.load_state_dict

    def slow_copy(state, *args, **kwargs):  # noqa: ANN001, ANN202
        for key, value in state.items():
            copy_in({**learner.shadow.model.state_dict(), key: value}, *args, **kwargs)
            time.sleep(0.002)

    learner.shadow.model.load_state_dict = slow_copy
    write = learner.gate.write

    def slow_write():  # noqa: ANN202 - a publication also waits a moment before it takes the lock
        time.sleep(0.005)
        return write()

    learner.gate.write = slow_write
    seen = []
    worker = threading.Thread(target=learner.run)
    worker.start()
    while learner.seq < 12 and learner.failure is None:
        learnt = learner.seq
        _, probs, seq = learner.predict(probe)
        seen.append((learnt, seq, probs))
    learner.stop()
    worker.join()
    assert learner.failure is None and len(whole) == 13 and len(seen) > 12
    assert all(seq >= learnt and probs == whole[seq] for learnt, seq, probs in seen), [s[:2] for s in seen]
    assert seen[-1][1] >= 11 and learner.predict(probe)[1:] == (whole[12], 12)
