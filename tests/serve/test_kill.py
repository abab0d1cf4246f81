"""Nothing acknowledged is lost, and a killed learner comes back as if it had never stopped: the real service
under concurrent load is SIGKILLed at random moments and started again with just its folder, and its final
state equals, bit for bit, that of a learner that took the same logged batches in order without a stop."""

from __future__ import annotations

import random
import secrets
import threading
import time

import numpy as np
import pytest
import torch

from lifelong import checkpoint, models
from lifelong.serve.command import differences
from lifelong.serve.config import read
from lifelong.serve.learner import Learner, replay
from lifelong.serve.log import Log

from .conftest import Server

pytest.importorskip("fastapi", reason="lifelong serve needs the extra `serve` (pip install 'lifelong[serve]')")
httpx = pytest.importorskip("httpx", reason="the serve tests talk HTTP with httpx (the extra `serve`)")

KILLS = 2
CLIENTS = 4
OPTIONS = ("--strategy", "der", "--optimizer", "adam", "--hidden", "8", "--buffer-size", "16", "--replay-batch-size",
           "4", "--batch-size", "4", "--checkpoint-every", "24", "--classes", "3")  # the input shape: the first batch's


def load(server: Server, seed: int, acked: dict[int, tuple[list, list]], failures: list[str], stop: threading.Event,
         most: int | None = None) -> None:
    """One client: post batches of 1-8 samples (4 features, 3 classes) until `stop` or the server is gone,
    recording each acknowledged batch by its sequence number, and any other answer than 200 in `failures`
    (an assert in a client thread would only be a warning: the test asserts `failures` is empty)."""
    rng = np.random.default_rng(seed)
    sent = 0
    with server.client() as c:
        while not stop.is_set() and (most is None or sent < most):
            n = int(rng.integers(1, 9))
            x = rng.normal(size=(n, 4)).round(4).tolist()
            y = rng.integers(0, 3, n).tolist()
            try:
                r = c.post("/learn", json={"x": x, "y": y})
            except httpx.TransportError:
                return  # killed
            if r.status_code == 503 and "retry-after" in r.headers:  # the learner is behind (--max-pending)
                time.sleep(0.05)
                continue
            if r.status_code != 200:
                failures.append(f"{r.status_code}: {r.text}")
                return
            acked[r.json()["seq"]] = (x, y)
            sent += 1


def test_kills_under_load_lose_nothing_and_change_nothing(tmp_path):
    seed = secrets.randbits(32)
    pick = random.Random(seed)
    folder = tmp_path / "state"
    server = Server(folder, *OPTIONS, token=secrets.token_urlsafe(32))
    acked: dict[int, tuple[list, list]] = {}
    failures: list[str] = []
    for round_ in range(KILLS + 1):
        server.start(*(OPTIONS if round_ == 0 else ()))  # a restart with just --state
        stop = threading.Event()
        last = round_ == KILLS
        most = 15 if last else None  # batches per client in the last round; else until the kill
        clients = [threading.Thread(target=load, args=(server, pick.randrange(2**32), acked, failures, stop, most))
                   for _ in range(CLIENTS)]
        for client in clients:
            client.start()
        if last:
            for client in clients:
                client.join()
        else:
            time.sleep(pick.uniform(0.1, 2.0))  # while it builds, replays the log, learns
            server.kill()
            stop.set()
            for client in clients:
                client.join()
    with server.client() as c:
        deadline = time.monotonic() + 60
        while (status := c.get("/status").json())["batches_learned"] < status["batches_logged"]:
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        probe = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
        served = c.post("/predict", json={"x": probe.tolist()}).json()["probabilities"]
    assert server.stop() in (0, -15), server.log()
    assert failures == [], f"answers other than 200 (seed {seed}): {failures[:3]}"

    log = Log(folder)
    kept = {b.seq: b for b in log.read(0, (4,), 10**6)}
    log.close()
    why = f"(seed {seed}; the server's output: {server.log()})"
    assert len(acked) > 4 * CLIENTS and set(acked) <= set(kept), why
    for seq, (x, y) in acked.items():  # what was acknowledged is what was logged
        assert np.array_equal(kept[seq].x, np.array(x, np.float32)) and kept[seq].y.tolist() == y, why
    assert list(kept) == list(range(1, len(kept) + 1)), why

    config = read(folder)
    saved = Learner(folder, config, serving=False).states.latest()[-1]  # saved at the clean stop
    assert saved[2]["seq"] == len(kept), why
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the service ran (OMP_NUM_THREADS=1): sums round alike
    try:
        whole = replay(folder, config)  # the same batches in order, without a stop
    finally:
        torch.set_num_threads(threads)
    assert differences(whole, saved[1], saved[2]) == [], why
    model = whole.trainer.model
    with torch.no_grad():
        expected = torch.softmax(model.eval()(torch.from_numpy(probe)), 1)
    assert torch.equal(torch.tensor(served, dtype=torch.float64), expected.double()), why  # the last published
    exported = models.build("mlp", (4,), 3, (8,))
    assert checkpoint.load(folder / "model", exported)["seq"] == len(kept)  # written at the clean stop
    assert all(torch.equal(a, b) for a, b in zip(exported.state_dict().values(), model.state_dict().values()))
