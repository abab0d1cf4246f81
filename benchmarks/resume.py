"""Cost of crash-safe checkpoints: a fit without states against the same fit saving its whole state
after every task and every N steps, same process (interleaved, medians).

Split Fashion-MNIST (5 tasks, 60,000 training images), MLP 784-400-400-10, EWC (its Fisher and
anchor are part of every state), Adam lr 1e-3, batch 128, 1 epoch per task. Each state holds the
model, the optimiser's moments, the strategy, the random states and the results so far; it is
written to a temporary file, fsynced and renamed (twice: tensors, then JSON).

    .venv/bin/python benchmarks/resume.py [--repeats 3] [--every 50,200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import lifelong as ll


def fit(stream: ll.data.Stream, folder: Path | None, every: int) -> tuple[float, int, float]:
    """Seconds of one fit, states written, MB of the newest state."""
    torch.manual_seed(0)
    model = ll.models.mlp(784, stream.n_outputs)
    trainer = ll.Trainer(model, ll.strategies.EWC(), seed=0, checkpoint=folder / "ck" if folder else None,
                         checkpoint_every=every)
    start = time.perf_counter()
    trainer.fit(stream)
    seconds = time.perf_counter() - start
    if trainer.states is None:
        return seconds, 0, 0.0
    newest = trainer.states.folder / f"state-{trainer.states.numbers()[-1]:08d}.safetensors"
    return seconds, trainer.states.numbers()[-1], newest.stat().st_size / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--every", default="50,200", help="step intervals to measure, comma-separated")
    args = ap.parse_args()
    stream = ll.data.benchmark("split-fmnist", seed=0)
    variants = [("no checkpoint", None), ("after every task", 0)] + [
        (f"every {n} steps", int(n)) for n in args.every.split(",")]
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    info: dict[str, tuple[int, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fit(stream, Path(tmp) / "warm-up", 0)  # first-use costs (imports, allocator) out of the timings
        for r in range(args.repeats):
            for name, every in variants:
                folder = Path(tmp) / f"{r}-{every}" if every is not None else None
                seconds, written, mb = fit(stream, folder, every or 0)
                times[name].append(seconds)
                info[name] = (written, mb)
    base = statistics.median(times["no checkpoint"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.repeats}")
    print("| checkpoints | fit (s) | x no checkpoint | states written | MB per state | ms per state |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, _ in variants:
        t = statistics.median(times[name])
        written, mb = info[name]
        per_state = (t - base) / written * 1000 if written else 0.0
        print(f"| {name} | {t:.2f} | {t / base:.3f} | {written} | {mb:.1f} | {per_state:.0f} |")


if __name__ == "__main__":
    main()
