"""Channels-last convolution weights (`models.net.channels_last`, what `cnn`, `conv4` and `resnet18` build)
against PyTorch's default contiguous layout, same process, same initial weights.

Per model: training steps (forward, backward, Adam; batch 128) and evaluation of 5,000 inputs (no_grad,
batches of 1,024), on 28x28 Fashion-MNIST images (ResNet-18: 3x32x32 random inputs, 5 steps and 1,000
inputs).
The two layouts alternate `--repeats` times; medians and their ratio (contiguous / channels-last: the
speed-up), and the largest difference between the two layouts' logits on the same weights.

    .venv/bin/python benchmarks/memory_format.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

import lifelong as ll


def train_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    for i in range(steps):
        j = (i * 128) % (len(x) - 128)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[j:j + 128]), y[j:j + 128]).backward()
        opt.step()
    return time.perf_counter() - start


@torch.no_grad()
def eval_seconds(model: nn.Module, x: torch.Tensor) -> float:
    model.eval()
    start = time.perf_counter()
    for i in range(0, len(x), 1024):
        model(x[i:i + 1024])
    return time.perf_counter() - start


def compare(name: str, make: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor, steps: int, n_eval: int,
            repeats: int) -> None:
    torch.manual_seed(0)
    fast = make()
    plain = make()
    plain.load_state_dict(fast.state_dict())
    plain.to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        diff = (fast.eval()(x[:512]) - plain.eval()(x[:512])).abs().max().item()
    times: dict[str, list[float]] = {"train contiguous": [], "train channels-last": [], "eval contiguous": [],
                                     "eval channels-last": []}
    for _ in range(repeats + 1):  # the first round warms up
        for layout, model in (("contiguous", plain), ("channels-last", fast)):
            times[f"train {layout}"].append(train_seconds(model, x, y, steps))
            times[f"eval {layout}"].append(eval_seconds(model, x[:n_eval]))
    med = {k: statistics.median(v[1:]) for k, v in times.items()}
    print(f"{name:<9} train {steps} steps: {med['train contiguous']:.2f} s -> {med['train channels-last']:.2f} s "
          f"({med['train contiguous'] / med['train channels-last']:.2f}x); eval {n_eval:,}: {med['eval contiguous']:.2f} s "
          f"-> {med['eval channels-last']:.2f} s ({med['eval contiguous'] / med['eval channels-last']:.2f}x); "
          f"largest logit difference {diff:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    train = ll.data.dataset("fmnist").train
    x, y = train.x[:10000].float(), train.y[:10000]
    shape = (1, 28, 28)
    compare("cnn", lambda: ll.models.build("cnn", shape, 10), x, y, 50, 5000, args.repeats)
    compare("conv4", lambda: ll.models.build("conv4", shape, 10), x, y, 50, 5000, args.repeats)
    xr = torch.randn(5000, 3, 32, 32)
    compare("resnet18", lambda: ll.models.build("resnet18", (3, 32, 32), 10), xr, y[:5000], 5, 1000, args.repeats)


if __name__ == "__main__":
    main()
