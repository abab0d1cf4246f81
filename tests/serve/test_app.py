"""The service in process (its ASGI app through httpx's ASGITransport, the learner's worker started only
where a test needs it): bodies are parsed off the event loop, backpressure, the classes set by the first
batch, and a batch that breaks the learner."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lifelong.serve.config import read, resolve
from lifelong.serve.command import differences
from lifelong.serve.learner import Learner, replay
from lifelong.serve.log import Log
from lifelong.training import Trainer

from .test_learner import fill, run_until

pytest.importorskip("fastapi", reason="lifelong serve needs the extra `serve` (pip install 'lifelong[serve]')")
httpx = pytest.importorskip("httpx", reason="the serve tests talk HTTP with httpx (the extra `serve`)")

from lifelong.serve import app as app_module  # noqa: E402 - needs fastapi
from lifelong.serve.app import Service, create_app  # noqa: E402
from lifelong.serve.inputs import Refused  # noqa: E402

TOKEN = "t" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BATCH = {"x": [[0.5, -1.0, 2.0, 0.0], [1.0, 0.0, 0.0, 1.0]], "y": [0, 2]}


def service(folder: Path, max_pending: int = 1000, **given: Any) -> Service:
    config = resolve(folder, {"hidden": [8], **given})
    return Service(folder, Learner(folder, config, checkpoint_every=0), TOKEN, None, max_pending=max_pending)


def talk(service: Service, *requests: tuple[str, str, dict[str, Any] | None]) -> list[httpx.Response]:
    """Send the requests one after the other to the service's app (no lifespan: the worker is not started)."""

    async def send() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://serve", headers=AUTH) as c:
            return [await c.request(method, path, json=body) for method, path, body in requests]

    return asyncio.run(send())


def test_bodies_are_parsed_off_the_event_loop(tmp_path, monkeypatch):
    """While a /learn body is being parsed (held here until /health has answered), /health answers: the
    parsing runs in the thread pool, not on the event loop."""
    entered, release, waited = threading.Event(), threading.Event(), []

    def held_parse(*_: object) -> Any:
        entered.set()
        waited.append(release.wait(5))  # False if /health could not answer meanwhile
        raise Refused(400, "held")

    monkeypatch.setattr(app_module, "parse", held_parse)
    served = service(tmp_path, inputs=[4], classes=3)

    async def send() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=create_app(served))
        async with httpx.AsyncClient(transport=transport, base_url="http://serve", headers=AUTH) as c:
            learn = asyncio.create_task(c.post("/learn", json=BATCH))
            assert await asyncio.to_thread(entered.wait, 5)
            health = await c.get("/health")
            release.set()
            return health.status_code, (await learn).status_code

    try:
        assert asyncio.run(send()) == (200, 400)
    finally:
        release.set()
        served.log.close()
    assert waited == [True]


def test_learn_answers_503_while_the_learner_is_max_pending_behind(tmp_path):
    served = service(tmp_path, max_pending=2, inputs=[4], classes=3)
    try:
        first = talk(served, *[("POST", "/learn", BATCH)] * 3)  # the worker is not running: nothing is learnt
        assert [r.status_code for r in first] == [200, 200, 503]
        refused = first[2]
        assert refused.headers["retry-after"] == "1" and "\n" not in refused.json()["detail"]
        assert "2 batches behind" in refused.json()["detail"] and "--max-pending" in refused.json()["detail"]
        assert served.log.last == 2  # the refused batch was not logged
        served.worker.start()
        assert served.learner.wait(2, 60)
        assert [r.status_code for r in talk(served, ("POST", "/learn", BATCH))] == [200]
        assert served.log.last == 3
    finally:
        served.learner.stop()
        if served.worker.is_alive():
            served.worker.join()
        served.log.close()


def test_classes_set_by_the_first_batch_are_said_once(tmp_path, capsys):
    served = service(tmp_path)
    try:
        answers = talk(served, ("POST", "/learn", {"x": [[0.0, 1.0]], "y": [4]}), ("POST", "/learn", BATCH | {
            "x": [[0.0, 1.0], [1.0, 0.0]]}), ("POST", "/learn", {"x": [[0.0, 1.0]], "y": [5]}))
    finally:
        served.log.close()
    assert [r.status_code for r in answers] == [200, 200, 422]
    assert "label 5 is out of range" in answers[2].json()["detail"]
    err = capsys.readouterr().err
    assert err.count("classes taken from the first batch: 5; give --classes to allow more") == 1, err
    assert read(tmp_path).classes == 5 and read(tmp_path).inputs == [2]


@pytest.mark.parametrize(("big", "steps", "words"), [(3e38, 2, "made the loss non-finite"),
                                                     (1e20, 1, "made parameter features.1.weight non-finite")])
def test_a_batch_that_breaks_the_learner_stops_it_at_the_last_good_batch(tmp_path, capsys, monkeypatch, big, steps,
                                                                          words):
    """A batch whose learning gives a non-finite loss (inputs near float32's largest), or a finite loss but a
    non-finite parameter (an optimiser step that overflows, made here by hand), stops the learner before
    anything of it is published or saved, with one line in /health, /status and the server's output; /learn
    is refused, and predictions go on from the last good batch."""
    original = Trainer.learn

    def overflowing(self: Trainer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = original(self, x, y)
        if steps == 1 and x.abs().max() > 1e10:
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("inf"))
        return loss

    monkeypatch.setattr(Trainer, "learn", overflowing)
    folder = tmp_path / "state"
    given = {"inputs": [4], "classes": 3, "optimizer": "sgd", "lr": 1.0, "batch_size": 4 // steps}
    resolve(folder, {"hidden": [8], **given})
    fill(folder, 3)
    log = Log(folder)
    log.append(np.full((4, 4), big, np.float32), np.array([0, 1, 2, 0]))
    log.close()
    served = service(folder, **given)
    served.learner.every = 1  # a state after every batch: none may hold the broken one
    served.worker.start()
    served.worker.join(120)
    learner = served.learner
    try:
        assert not served.worker.is_alive() and learner.failure is not None
        assert learner.failure.startswith(f"TrainingError: batch 4 {words}") and "after batch 3" in learner.failure
        assert learner.seq == learner.published_seq == learner.saved[0] == 3
        assert all(torch.isfinite(p).all() for p in learner.shadow.model.parameters())
        assert learner.states.latest()[-1][2]["seq"] == 3 and not (folder / "model.safetensors").exists()
        assert f"lifelong: error: batch 4 {words}" in capsys.readouterr().err
        good = Learner(folder, read(folder), checkpoint_every=0, serving=False)
        run_until(good, 3)
        _, probs, seq = learner.predict(np.ones((2, 4), np.float32))
        with torch.no_grad():
            expected = torch.softmax(good.trainer.model.eval()(torch.ones(2, 4)), 1)
        assert seq == 3 and torch.equal(torch.tensor(probs), expected)  # predictions go on from batch 3
        health, status, learn = talk(served, ("GET", "/health", None), ("GET", "/status", None),
                                     ("POST", "/learn", BATCH))
        assert health.status_code == 503 and health.json() == {"status": "learning stopped",
                                                               "reason": learner.failure}
        assert status.json()["learner"] == f"failed: {learner.failure}" and status.json()["batches_learned"] == 3
        assert learn.status_code == 503 and "learning stopped" in learn.json()["detail"]
        assert served.log.last == 4
    finally:
        served.log.close()
    with sqlite3.connect(folder / "log.sqlite") as db:  # the way on of docs/serve.md: the batch taken out
        db.execute("DELETE FROM batches WHERE seq = 4")
    fill(folder, 2, seed=1)  # batches 5 and 6
    again = Learner(folder, read(folder), checkpoint_every=0, serving=False)
    run_until(again, 6)
    assert again.seq == 6 and again.failure is None and again.saved[0] == 3  # from the state at batch 3
    assert differences(again, *replay(folder, read(folder)).snapshot()) == []
