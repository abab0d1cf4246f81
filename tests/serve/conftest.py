"""The real service in a subprocess (`python -m lifelong serve`) on a free port, and httpx clients for it."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

START_SECONDS = 120  # the longest a start may take (importing PyTorch on a busy machine takes seconds)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`lifelong serve --state FOLDER OPTIONS...` with the token in LIFELONG_TOKEN (and a read-only one),
    its output in FOLDER/../serve-<n>.log."""

    def __init__(self, folder: Path, *options: str, token: str, read_token: str | None = None) -> None:
        self.folder, self.options, self.token, self.read_token = folder, options, token, read_token
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *options: str) -> Server:
        """Start (or start again, with `options` instead of the first ones if given) and wait until /health
        answers."""
        import httpx

        self.port, self.starts = free_port(), self.starts + 1
        env = {**os.environ, "LIFELONG_TOKEN": self.token, "OMP_NUM_THREADS": "1"}
        if self.read_token:
            env["LIFELONG_READ_TOKEN"] = self.read_token
        self.output = self.folder.parent / f"serve-{self.folder.name}-{self.starts}.log"
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "lifelong", "serve", "--state", str(self.folder),
                                          "--port", str(self.port), *(options or self.options)],
                                         env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"the server did not answer in {START_SECONDS} s: {self.log()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str | None = "write"):  # noqa: ANN201 - httpx is imported lazily
        import httpx

        bearer = {"write": self.token, "read": self.read_token}.get(token or "", token)
        return httpx.Client(base_url=self.url, timeout=60,
                            headers={"Authorization": f"Bearer {bearer}"} if bearer else {})

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no chance to save anything."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        """SIGTERM: a clean stop (the learner saves its state); the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


@pytest.fixture
def tokens() -> tuple[str, str]:
    return secrets.token_urlsafe(32), secrets.token_urlsafe(32)
