"""Load on a real `lifelong serve`: N concurrent clients, each posting a batch to /learn then one sample to
/predict, in a loop, for `--seconds`; for N in `--clients`. Measured: samples acknowledged per second
(each committed to the SQLite log, fsynced, before its answer), samples learnt per second (the learner's
progress over the window, from /status), the latency of /learn (the commit) and of /predict (p50/p99).

The service runs in a subprocess (`python -m lifelong serve`, OMP_NUM_THREADS=1), the clients as threads
of this process (httpx, one connection each), so on a small machine they share its cores: the figures
are those of the whole, client included. Data: the digits of sklearn (64 features, 10 classes), met in a
fixed random order. One service for all N; between two N the learner drains what is left in its log.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve.py [--clients 1,4,16] [--seconds 10] [--batch 10]
        [--strategy replay] [--hidden 400,400]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from sklearn.datasets import load_digits


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(folder: Path, token: str, options: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "LIFELONG_TOKEN": token, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lifelong", "serve", "--state", str(folder), "--port", str(port),
                             *options], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        while True:
            try:
                if c.get("/status").json()["learner"] == "learning":
                    return proc, url
            except httpx.TransportError:
                if proc.poll() is not None:
                    raise SystemExit(f"the service exited with {proc.returncode}") from None
            time.sleep(0.1)


def client(url: str, token: str, x: np.ndarray, y: np.ndarray, batch: int, until: float, seed: int,
           learn: list[float], predict: list[float], refused: list[int], errors: list[str]) -> None:
    """One client's loop; a /learn refused while the learner is behind (503 with Retry-After: --max-pending)
    waits as told and counts in `refused`, any other failure ends the client and is kept in `errors` (the
    main thread raises it: an exception in a thread would only be printed)."""
    rng = np.random.default_rng(seed)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        while time.perf_counter() < until:
            idx = rng.integers(0, len(y), batch)
            t0 = time.perf_counter()
            r = c.post("/learn", json={"x": x[idx].tolist(), "y": y[idx].tolist()})
            t1 = time.perf_counter()
            if r.status_code == 503 and "retry-after" in r.headers:
                refused.append(1)
                time.sleep(float(r.headers["retry-after"]))
                continue
            p = c.post("/predict", json={"x": x[idx[:1]].tolist()})
            t2 = time.perf_counter()
            if r.status_code != 200 or p.status_code != 200:
                errors.append(f"/learn {r.status_code} {r.text[:200]}; /predict {p.status_code} {p.text[:200]}")
                return
            learn.append(t1 - t0)
            predict.append(t2 - t1)


def status(url: str, token: str) -> dict[str, int]:
    return httpx.get(f"{url}/status", headers={"Authorization": f"Bearer {token}"}).json()


def phase(url: str, token: str, n: int, seconds: float, batch: int, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    while (s := status(url, token))["batches_learned"] < s["batches_logged"]:  # drain the previous phase
        time.sleep(0.1)
    learn: list[float] = []
    predict: list[float] = []
    refused: list[int] = []
    errors: list[str] = []
    until = time.perf_counter() + seconds
    threads = [threading.Thread(target=client, args=(url, token, x, y, batch, until, i, learn, predict, refused,
                                                     errors)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"a client failed: {errors[0]}")
    after = status(url, token)
    ms = 1000 * np.array(predict)
    lms = 1000 * np.array(learn)
    return {"clients": n, "acked_per_s": len(learn) * batch / wall,
            "learned_per_s": (after["samples_learned"] - s["samples_learned"]) / wall,
            "pending": after["batches_logged"] - after["batches_learned"],
            "learn_p50": float(np.percentile(lms, 50)), "learn_p99": float(np.percentile(lms, 99)),
            "predict_p50": float(np.percentile(ms, 50)), "predict_p99": float(np.percentile(ms, 99)),
            "requests": 2 * len(learn), "refused": len(refused)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--strategy", default="replay")
    parser.add_argument("--hidden", default="400,400")
    args = parser.parse_args()
    digits = load_digits()
    x, y = (digits.data / 16).astype(np.float32).round(4), digits.target.astype(np.int64)
    token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start(Path(tmp) / "state", token, ["--strategy", args.strategy, "--hidden", args.hidden,
                                                       "--inputs", "64", "--classes", "10", "--batch-size",
                                                       str(args.batch), "--checkpoint-every", "1000"])
        try:
            print(f"load average {os.getloadavg()[0]:.1f}; {args.strategy}, MLP 64-{args.hidden.replace(',', '-')}-10, "
                  f"batches of {args.batch}, {args.seconds:g} s per row")
            print("| clients | acknowledged samples/s | learnt samples/s | batches pending at the end | /learn p50 / "
                  "p99 ms | /predict p50 / p99 ms |")
            print("| --- | --- | --- | --- | --- | --- |")
            for n in map(int, args.clients.split(",")):
                r = phase(url, token, n, args.seconds, args.batch, x, y)
                print(f"| {n} | {r['acked_per_s']:.0f} | {r['learned_per_s']:.0f} | {r['pending']:.0f} | "
                      f"{r['learn_p50']:.1f} / {r['learn_p99']:.1f} | "
                      f"{r['predict_p50']:.1f} / {r['predict_p99']:.1f} |", flush=True)
                if r["refused"]:
                    print(f"  ({r['refused']:.0f} /learn refused with 503: the learner was --max-pending behind)")
            print(f"load average {os.getloadavg()[0]:.1f}")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


if __name__ == "__main__":
    main()
