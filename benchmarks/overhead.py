"""Framework overhead: samples/s of `Trainer` + `naive` against a bare PyTorch loop, same process.

Same model (MLP 784-400-400-10), optimiser (Adam, lr 1e-3), batch size (128) and data (the 60,000
Fashion-MNIST training images, in memory). The two are interleaved `--repeats` times and the
medians compared, since this machine's speed drifts. Target: ratio >= 0.90. Then the Trainer with
`--optimizer adam-fused` (PyTorch's fused Adam kernel) against the Trainer with the default Adam.

    .venv/bin/python benchmarks/overhead.py [--repeats 5] [--epochs 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import lifelong as ll


def bare_loop(x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, device: str) -> float:
    torch.manual_seed(0)
    model = ll.models.mlp(784, 10).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g).to(device)
        for i in range(0, len(y), batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return epochs * len(y) / (time.perf_counter() - start)


def trainer_loop(stream: ll.data.Stream, epochs: int, batch_size: int, device: str,
                 optimizer: str = "adam") -> float:
    torch.manual_seed(0)
    model = ll.models.mlp(784, 10)
    result = ll.Trainer(model, ll.strategies.Naive(), epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                        device=device).fit(stream)
    return result.metrics["samples_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    data = ll.data.fashion_mnist()
    small_test = data.test.subset(torch.arange(1000))  # evaluation is not part of the timing
    stream = ll.data.from_tasks([(data.train, small_test)], scenario="class", name="fmnist")
    x, y = data.train.x.to(args.device), data.train.y.to(args.device)
    bare_loop(x, y, 1, args.batch_size, args.device)  # warm-up (allocator, thread pool)
    bare, ours, fused = [], [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(x, y, args.epochs, args.batch_size, args.device))
        ours.append(trainer_loop(stream, args.epochs, args.batch_size, args.device))
        fused.append(trainer_loop(stream, args.epochs, args.batch_size, args.device, "adam-fused"))
    b, o, f = statistics.median(bare), statistics.median(ours), statistics.median(fused)
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"batch {args.batch_size}, {args.epochs} epoch(s) x {args.repeats} repeats")
    print(f"bare PyTorch loop : {b:9.0f} samples/s (median; runs: {', '.join(f'{v:.0f}' for v in bare)})")
    print(f"Trainer + naive   : {o:9.0f} samples/s (median; runs: {', '.join(f'{v:.0f}' for v in ours)})")
    print(f"ratio             : {o / b:.3f} (target >= 0.90)")
    print(f"Trainer, adam-fused: {f:8.0f} samples/s (median; runs: {', '.join(f'{v:.0f}' for v in fused)}); "
          f"{f / o:.3f}x Trainer + naive with the default Adam")


if __name__ == "__main__":
    main()
