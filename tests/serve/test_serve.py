"""`lifelong serve` over real HTTP (a subprocess and httpx): tokens first, then the checks of every input
(a refused request logs nothing), then learning, predictions, status and metrics."""

from __future__ import annotations

import io
import json
import secrets
import time
import zipfile

import numpy as np
import pytest

from .conftest import Server

pytest.importorskip("fastapi", reason="lifelong serve needs the extra `serve` (pip install 'lifelong[serve]')")
httpx = pytest.importorskip("httpx", reason="the serve tests talk HTTP with httpx (the extra `serve`)")

MAX_BYTES = 8192


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    np.savez(folder / "holdout.npz", x=x, y=(x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1))
    running = Server(folder / "state", "--strategy", "replay", "--hidden", "8", "--inputs", "4", "--classes", "3",
                     "--buffer-size", "20", "--max-batch", "50", "--max-bytes", str(MAX_BYTES), "--holdout",
                     str(folder / "holdout.npz"), token=secrets.token_urlsafe(32),
                     read_token=secrets.token_urlsafe(32)).start()
    with running.client() as c:
        while (state := c.get("/status").json()["learner"]) == "starting":
            assert c.post("/predict", json={"x": [[0, 0, 0, 0]]}).status_code in (200, 503)
            time.sleep(0.05)
    assert state == "learning", running.log()
    yield running
    assert running.stop() in (0, -15), running.log()
    assert running.token not in running.log() and running.read_token not in running.log()


def logged(server: Server) -> int:
    with server.client() as c:
        return c.get("/status").json()["batches_logged"]


ENDPOINTS = [("post", "/learn"), ("post", "/predict"), ("get", "/status"), ("get", "/metrics"), ("get", "/docs"),
             ("get", "/openapi.json"), ("get", "/nowhere")]


def test_every_endpoint_but_health_needs_a_token(server):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    before = logged(server)
    with server.client(None) as c:
        for header in (None, "Bearer wrong-token-of-some-length", f"Basic {server.token}", server.token, "Bearer"):
            for method, path in ENDPOINTS:
                # a body that would be refused (bad JSON, far over the limit): the token is looked at first
                r = c.request(method, path, content=b"{not json" * 2000,
                              headers={"Authorization": header} if header else {})
                assert r.status_code == 401, (header, path, r.text)
                assert r.headers["www-authenticate"] == "Bearer" and "\n" not in r.json()["detail"]
    with server.client("read") as c:
        assert c.post("/learn", json={"x": [[0, 0, 0, 0]], "y": [0]}).status_code == 403
        assert c.get("/metrics").status_code == 403
        assert c.get("/status").status_code == 200
        assert c.post("/predict", json={"x": [[0, 0, 0, 0]]}).status_code == 200
    assert logged(server) == before


ROW = [0.5, -1.0, 2.0, 0.0]
BAD_JSON = [  # (body, status, words of the reason)
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 422, "JSON object"),
    (b'{"x": [[0.5, -1, 2, 0]]}', 422, "no 'y'"),
    (b'{"x": [[0.5, -1, 2, 0]], "y": [0], "z": 1}', 422, "unknown field 'z'"),
    (b'{"x": [[0.5, -1, 2, 0], [1, 2]], "y": [0, 1]}', 422, "ragged"),
    (b'{"x": [[0.5, -1, 2]], "y": [0]}', 422, "rows of shape [3]"),
    (b'{"x": [0.5, -1, 2, 0], "y": [0]}', 422, "shape [4]"),
    (b'{"x": [], "y": []}', 422, "non-empty"),
    (b'{"x": [[NaN, 0, 0, 0]], "y": [0]}', 422, "NaN"),
    (b'{"x": [[Infinity, 0, 0, 0]], "y": [0]}', 422, "Infinity"),
    (b'{"x": [[1e999, 0, 0, 0]], "y": [0]}', 422, "finite"),
    (b'{"x": [[1e300, 0, 0, 0]], "y": [0]}', 422, "float32"),
    (b'{"x": [[true, 0, 0, 0]], "y": [0]}', 422, "bool"),
    (b'{"x": [["1", 0, 0, 0]], "y": [0]}', 422, "str"),
    (b'{"x": [[null, 0, 0, 0]], "y": [0]}', 422, "null"),
    (b'{"x": [[0.5, -1, 2, 0]], "y": [1.0]}', 422, "float"),
    (b'{"x": [[0.5, -1, 2, 0]], "y": ["1"]}', 422, "str"),
    (b'{"x": [[0.5, -1, 2, 0]], "y": [-1]}', 422, "label -1 is out of range"),
    (b'{"x": [[0.5, -1, 2, 0]], "y": [3]}', 422, "label 3 is out of range"),
    (b'{"x": [[0.5, -1, 2, 0]], "y": [99999999999999999999999]}', 422, "too large"),
    (b'{"x": [[0.5, -1, 2, 0]], "y": [0, 1]}', 422, "one label per row"),
    (json.dumps({"x": [ROW] * 51, "y": [0] * 51}).encode(), 413, "more than the limit of 50"),
    (json.dumps({"x": [ROW] * 400, "y": [0] * 400}).encode(), 413, f"limit of {MAX_BYTES} bytes"),
]
BAD_NUMPY = [
    (npz(x=np.zeros((2, 4), np.float32), y=np.array([0.0, 1.0])), 422, "y has dtype float64"),
    (npz(x=np.zeros((2, 4), bool), y=np.array([0, 1])), 422, "x has dtype bool"),
    (npz(x=np.zeros((2, 4), complex), y=np.array([0, 1])), 422, "x has dtype complex128"),
    (npz(x=np.array([["a"] * 4]), y=np.array([0])), 422, "x has dtype <U1"),
    (npz(x=np.full((1, 4), np.nan, np.float32), y=np.array([0])), 422, "NaN"),
    (npz(x=np.zeros((1, 4), np.float32), y=np.array([5], np.uint64)), 422, "label 5 is out of range"),
    (npz(x=np.zeros((1, 4), np.float32)), 422, "no array 'y'"),
    (npz(x=np.zeros((1, 4), np.float32), y=np.array([0]), w=np.zeros(1)), 422, "unknown array 'w'"),
    (npy(np.zeros((1, 4), np.float32)), 422, "bare .npy holds x only"),
    (npz(x=np.array([[{}] * 4], dtype=object), y=np.array([0])), 400, "not a readable"),
    (npy(np.array([[None] * 4], dtype=object)), 400, "not a readable"),
    (b"PK\x03\x04 not a zip", 400, "not a readable"),
    (b"plain bytes", 400, "neither an .npz"),
]


def zip_bomb() -> bytes:
    """An .npz of 8 bytes of labels and 1 MB of zeros, compressed far below the body limit."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", npy(np.zeros((2**15, 4), np.float64)))
        archive.writestr("y.npy", npy(np.zeros(2**15, np.int64)))
    assert len(buffer.getvalue()) < MAX_BYTES
    return buffer.getvalue()


def test_each_bad_input_is_refused_with_one_line_and_logs_nothing(server):
    before = logged(server)
    cases = [(b, s, w, "application/json") for b, s, w in BAD_JSON]
    cases += [(b, s, w, "application/octet-stream") for b, s, w in BAD_NUMPY]
    cases += [(zip_bomb(), 413, "unpacks to more than", "application/octet-stream"),
              (b'{"x": [[0, 0, 0, 0]], "y": [0]}', 415, "unsupported Content-Type 'text/plain'", "text/plain")]
    with server.client() as c:
        for body, status, words, kind in cases:
            r = c.post("/learn", content=body, headers={"Content-Type": kind})
            assert r.status_code == status, (body[:60], r.text)
            assert words in r.json()["detail"] and "\n" not in r.json()["detail"], (body[:60], r.text)
        chunks = (b'{"x": [' + b"[0, 0, 0, 0]," * 1000 + b'[0, 0, 0, 0]], "y": []}' for _ in range(1))
        r = c.post("/learn", content=chunks, headers={"Content-Type": "application/json"})  # no Content-Length
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        r = c.post("/predict", json={"x": [[0.5, 0, 0]]})
        assert r.status_code == 422 and "rows of shape [3]" in r.json()["detail"]
        assert c.post("/predict", json={"x": [[0.5, 0, 0, 0]], "y": [0]}).status_code == 422
    assert logged(server) == before


def test_learn_predict_status_and_metrics(server):
    rng = np.random.default_rng(1)
    with server.client() as c:
        before = c.get("/status").json()
        x = rng.normal(size=(12, 4)).round(3)
        y = (x[:, 0] > 0).astype(int)  # classes 0 and 1 only
        r = c.post("/learn", params={"wait": True}, json={"x": x.tolist(), "y": y.tolist()})
        assert r.status_code == 200 and r.json()["learned"] and r.json()["rows"] == 12, r.text
        r = c.post("/learn", params={"wait": True}, content=npz(x=x.astype(np.float32), y=y),
                   headers={"Content-Type": "application/octet-stream"})
        assert r.json()["seq"] == before["batches_logged"] + 2 and r.json()["learned"], r.text
        status = c.get("/status").json()
        assert status["samples_learned"] == status["samples_logged"] == before["samples_logged"] + 24
        assert status["batches_learned"] == status["batches_logged"] and status["learner"] == "learning"
        assert set(status["classes_seen"]) >= {0, 1} and status["strategy"] == "replay" and status["inputs"] == [4]
        assert status["holdout_samples"] == 30 and 0 <= status["anytime_accuracy"] <= 1
        for body, kind in ((json.dumps({"x": x[:3].tolist()}).encode(), "application/json"),
                           (npy(x[:3].astype(np.float32)), "application/octet-stream")):
            r = c.post("/predict", content=body, headers={"Content-Type": kind})
            assert r.status_code == 200, r.text
            out = r.json()
            assert len(out["labels"]) == 3 and out["seq"] == status["batches_logged"]
            probs = np.array(out["probabilities"])
            assert probs.shape == (3, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
            assert out["labels"] == probs.argmax(1).tolist()
        text = c.get("/metrics")
        assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
        lines = dict(line.rsplit(" ", 1) for line in text.text.splitlines() if not line.startswith("#"))
        assert float(lines["lifelong_samples_learned_total"]) == status["samples_learned"]
        assert float(lines['lifelong_requests_total{code="401",route="/learn"}']) >= 5
        assert float(lines['lifelong_request_seconds_count{route="/predict"}']) >= 2
        assert float(lines["lifelong_batches_pending"]) == 0
        assert "/learn" in c.get("/openapi.json").json()["paths"] and "swagger" in c.get("/docs").text.lower()
