"""The HTTP service of a served learner (FastAPI on uvicorn; the optional extra `serve`).

Every request but `GET /health` passes `Guard` first, which looks at nothing but the path and the
`Authorization: Bearer <token>` header (compared in constant time, never logged): without a valid token,
401; with the read-only token, only `/predict` and `/status` (403 elsewhere); a declared body over the
limit, 413. Then `/learn` reads the body (at most `max_bytes`, even without a Content-Length), checks it
(`inputs.check`: any fault is a 4xx with a one-line reason, and nothing is logged) and commits the batch
to the log before it answers; the learner's worker learns it in sequence order. While the log is
`max_pending` batches ahead of the learner, `/learn` answers 503 with Retry-After and logs nothing.
`/predict` answers from the copy of the model the worker published after its last batch. Bodies are
parsed and checked in the thread pool, never on the event loop (which keeps `/health` answering).
"""

from __future__ import annotations

import contextlib
import hmac
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ..errors import LifelongError
from .config import ServeConfig, resolve
from .inputs import Refused, check, parse
from .learner import Learner
from .log import Log
from .metrics import CONTENT_TYPE, Counter, Histogram, Reading, render

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

READ_ONLY = ("/predict", "/status")  # what the read-only token may ask
ROUTES = ("/learn", "/predict", "/status", "/metrics", "/health", "/docs", "/openapi.json")
WAIT_SECONDS = 60.0  # the longest a `/learn?wait=true` waits for its batch to be learnt
RETRY_SECONDS = 1  # the Retry-After of a /learn refused while the learner is behind


class Service:
    """What the routes share: the folder, the learner and its worker, the log they append to, the tokens and
    limits, and the metrics."""

    def __init__(self, folder: Path, learner: Learner, token: str, read_token: str | None,
                 max_rows: int = 1024, max_bytes: int = 16 * 2**20, max_pending: int = 1000) -> None:
        self.folder, self.learner, self.max_rows, self.max_bytes = folder, learner, max_rows, max_bytes
        self.max_pending = max_pending
        self.tokens = [(token.encode(), "write")] + ([(read_token.encode(), "read")] if read_token else [])
        self.log = Log(folder)
        self.accepting = threading.Lock()  # a batch's checks against the shape, and its append, as one
        self.worker = threading.Thread(target=learner.run, name="lifelong-learner", daemon=True)
        self.requests = Counter("lifelong_requests_total", "HTTP requests by route and status code")
        self.latency = Histogram("lifelong_request_seconds", "HTTP request latency by route, in seconds")
        self.steps = Histogram("lifelong_learn_batch_seconds", "seconds the learner took to learn a logged batch")
        learner.on_batch = lambda rows, seconds: self.steps.observe(seconds)
        self.metrics: list[Counter | Histogram | Reading] = [
            Reading("lifelong_samples_learned_total", "samples learnt", lambda: self.samples_learned, "counter"),
            Reading("lifelong_batches_learned_total", "batches learnt (the last sequence number applied)",
                    lambda: learner.seq, "counter"),
            Reading("lifelong_samples_logged_total", "samples accepted into the log", lambda: self.log.samples,
                    "counter"),
            Reading("lifelong_batches_logged_total", "batches accepted into the log", lambda: self.log.last,
                    "counter"),
            Reading("lifelong_batches_pending", "batches logged, not yet learnt", lambda: self.log.last - learner.seq),
            Reading("lifelong_learn_loss", "loss of the last learning step", lambda: learner.loss),
            self.requests, self.latency, self.steps]

    @property
    def samples_learned(self) -> int:
        trainer = self.learner.trainer
        return trainer.samples_seen if trainer is not None else 0

    def role(self, scope: Scope) -> str | None:
        """"write", "read" or None: whose token the request bears (each token compared, in constant time)."""
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, given = header.partition(b" ")
        found = None
        for token, role in self.tokens:
            if hmac.compare_digest(given.strip(), token) and scheme.lower() == b"bearer":
                found = role
        return found

    def accept(self, body: bytes, content_type: str) -> tuple[int, int]:
        """Parse and check a batch and commit it to the log; its sequence number and rows. The first batch of
        a learner whose shape is not given sets it (stored in the folder before the batch is logged)."""
        self.refuse_if_stopped()
        x, y = parse(body, content_type, True, self.max_bytes)
        config = self.learner.config
        xs, ys = check(x, y, shape(config), config.classes, self.max_rows)
        assert ys is not None
        with self.accepting:
            self.refuse_if_stopped()
            pending = self.log.last - self.learner.seq
            if pending >= self.max_pending:
                raise Refused(503, f"the learner is {pending} batches behind the log (the limit, --max-pending): "
                                   f"send again in {RETRY_SECONDS} s", {"Retry-After": str(RETRY_SECONDS)})
            if self.learner.config is not config:  # its shape was set meanwhile
                config = self.learner.config
                xs, ys = check(xs, ys, shape(config), config.classes, self.max_rows)
                assert ys is not None
            if not config.shaped:
                given = {"inputs": list(xs.shape[1:]), "classes": int(ys.max()) + 1}
                unset: dict[str, Any] = {k: v for k, v in given.items() if getattr(config, k) is None}
                config = resolve(self.folder, unset)
                if "classes" in unset:
                    print(f"lifelong serve: classes taken from the first batch: {config.classes}; give --classes to "
                          "allow more", file=sys.stderr, flush=True)
                self.learner.reshape(config)
            seq = self.log.append(xs, ys)
        self.learner.wake.set()
        return seq, len(ys)

    def refuse_if_stopped(self) -> None:
        if self.learner.failure is not None:
            raise Refused(503, f"learning stopped ({self.learner.failure}): see docs/serve.md, 'A batch that breaks "
                               "the learner'")

    def predict(self, body: bytes, content_type: str) -> tuple[list[int], list[list[float]], int]:
        """Parse and check the rows of a /predict body and predict them: labels, probabilities, and the last
        batch the model that answered had learnt."""
        x, _ = parse(body, content_type, False, self.max_bytes)
        config = self.learner.config
        xs, _ = check(x, None, shape(config), None, self.max_rows)
        if self.learner.shadow is None and not config.shaped:
            raise Refused(409, "the learner has no model yet: it is built on its first /learn batch (or at the start "
                               "with --inputs and --classes)")
        if self.learner.shadow is None:
            raise Refused(503, "the learner is starting (building its model, loading its state): ask again in seconds")
        return self.learner.predict(xs)


def shape(config: ServeConfig) -> tuple[int, ...] | None:
    return tuple(config.inputs) if config.inputs is not None else None


class Guard:
    """ASGI middleware: the token check (and the declared size) before anything else, and the request
    metrics of every request."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], service: Service) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in ROUTES else "other"
        t0, status = time.perf_counter(), [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            refusal = self.refusal(scope)
            if refusal is None:
                await self.app(scope, receive, sending)
            else:
                code, reason = refusal
                headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
                await JSONResponse({"detail": reason}, code, headers)(scope, receive, sending)
        finally:
            self.service.requests.inc(route=route, code=str(status[0]))
            self.service.latency.observe(time.perf_counter() - t0, route=route)

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        if scope["path"] == "/health":
            return None
        role = self.service.role(scope)
        if role is None:
            return 401, "a valid bearer token is needed: send the header Authorization: Bearer <token>"
        if role == "read" and scope["path"] not in READ_ONLY:
            return 403, "the read-only token may ask /predict and /status only"
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.service.max_bytes:
            return 413, f"the body is over the limit of {self.service.max_bytes} bytes: send smaller batches"
        return None


async def body(request: Request, limit: int) -> bytes:
    """The request's body, refused (413) as soon as it passes `limit` bytes."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"the body is over the limit of {limit} bytes: send smaller batches")
        chunks.append(chunk)
    return b"".join(chunks)


class Learned(BaseModel):
    seq: int
    rows: int
    learned: bool


class Predicted(BaseModel):
    labels: list[int]
    probabilities: list[list[float]]
    seq: int


class Status(BaseModel):
    strategy: str
    model: str
    inputs: list[int] | None
    classes: int | None
    samples_learned: int
    batches_learned: int
    samples_logged: int
    batches_logged: int
    classes_seen: list[int]
    checkpoint: dict[str, int]
    anytime_accuracy: float | None
    holdout_samples: int
    loss: float | None
    learner: str


ARRAYS = {"x": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}, "description": "rows"},
          "y": {"type": "array", "items": {"type": "integer"}, "description": "a label per row, 0 to classes - 1"}}


def body_doc(labelled: bool) -> dict[str, Any]:
    """The OpenAPI description of a body read by hand (so that the token is checked before it is read)."""
    wanted = ["x", "y"] if labelled else ["x"]
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "required": wanted, "additionalProperties": False,
                                        "properties": {k: ARRAYS[k] for k in wanted}}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}, "description": "an .npz of "
                                     + " and ".join(wanted) + ("" if labelled else ", or an .npy of x")}}}}


def create_app(service: Service) -> FastAPI:
    learner = service.learner

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.worker.start()
        try:
            yield
        finally:
            learner.stop()
            await run_in_threadpool(service.worker.join)
            service.log.close()
            if learner.failure is not None:
                print(f"lifelong: error: learning stopped: {learner.failure}", file=sys.stderr, flush=True)
            else:
                print(f"lifelong serve: stopped after batch {learner.seq} ({learner.saved[1]} samples learnt; state "
                      "saved)", flush=True)

    app = FastAPI(title="lifelong serve", summary="a continually-learning model: learn, predict, status, metrics",
                  lifespan=lifespan)

    @app.exception_handler(Refused)
    async def refused(_: Request, err: Refused) -> JSONResponse:
        return JSONResponse({"detail": err.reason}, err.status, err.headers)

    @app.exception_handler(LifelongError)
    async def failed(_: Request, err: LifelongError) -> JSONResponse:  # the log cannot be written (disk full...)
        return JSONResponse({"detail": str(err).splitlines()[0]}, 503)

    @app.get("/health", summary="liveness (no token)")
    async def health() -> JSONResponse:
        if learner.failure is not None:
            return JSONResponse({"status": "learning stopped", "reason": learner.failure}, 503)
        return JSONResponse({"status": "ok"})

    @app.post("/learn", response_model=Learned, openapi_extra=body_doc(True),
              summary="log a batch of labelled samples (committed before the answer), learnt in order")
    async def learn(request: Request, wait: bool = False) -> Learned:
        raw = await body(request, service.max_bytes)
        seq, rows = await run_in_threadpool(service.accept, raw, request.headers.get("content-type", ""))
        learned = await run_in_threadpool(learner.wait, seq, WAIT_SECONDS) if wait else learner.seq >= seq
        return Learned(seq=seq, rows=rows, learned=learned)

    @app.post("/predict", response_model=Predicted, openapi_extra=body_doc(False),
              summary="labels and class probabilities from the last published model")
    async def predict(request: Request) -> Predicted:
        raw = await body(request, service.max_bytes)
        labels, probabilities, seq = await run_in_threadpool(service.predict, raw,
                                                             request.headers.get("content-type", ""))
        return Predicted(labels=labels, probabilities=probabilities, seq=seq)

    @app.get("/status", response_model=Status, summary="counts, classes seen, strategy, anytime accuracy")
    async def status() -> Status:
        config = learner.config
        accuracy = await run_in_threadpool(learner.anytime_accuracy)
        state = "failed: " + learner.failure if learner.failure is not None else "learning" \
            if learner.shadow is not None else "starting" if config.shaped else "waiting for its first batch"
        return Status(
            strategy=config.strategy, model=config.model, inputs=config.inputs, classes=config.classes,
            samples_learned=service.samples_learned, batches_learned=learner.seq, samples_logged=service.log.samples,
            batches_logged=service.log.last, classes_seen=learner.classes_seen(),
            checkpoint={"seq": learner.saved[0], "samples": learner.saved[1]}, anytime_accuracy=accuracy,
            holdout_samples=0 if learner.holdout is None else len(learner.holdout[1]),
            loss=learner.loss if learner.loss == learner.loss else None, learner=state)

    @app.get("/metrics", summary="Prometheus text format")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(render(service.metrics), media_type=CONTENT_TYPE)

    app.add_middleware(Guard, service=service)
    return app
