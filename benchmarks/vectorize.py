"""Several seeds at once (issue 21): N seeds' models trained as one batched model against N sequential runs.

The issue's protocol: class-incremental Split Fashion-MNIST classes (0,1)..(8,9), the library's MLP
784-400-400-10 (`lifelong.models.mlp`), SGD lr 0.01 momentum 0.9, batch 128, 1 epoch per task, 5 tasks;
naive training. For each N of `--seeds`, each seed k with its own initialisation (`torch.manual_seed(k)`)
and its own shuffling (a generator seeded k):
- (a) sequential: N runs of a plain PyTorch training loop, one after the other;
- (b) vmap: one model whose parameters are the N models' stacked (`torch.func.stack_module_state`), the
  forward `torch.func.functional_call` under `torch.vmap` over the stacked parameters and an (N, B, ...)
  batch, the N losses summed, one backward, one `torch.optim.SGD` step over the stacked leaves (SGD with
  momentum is elementwise, so this is N independent SGDs);
- (c) bmm: the same with the MLP written as batched matmuls (`torch.baddbmm`), no vmap.
Samples/s is N x the samples of one run over the training seconds (the per-batch input transform
included, as the library pays it). The three train in lockstep, step i of each in turn (the order
rotating), so that the load of a shared machine hits them alike; `--repeats` times, medians and range.
Before timing, (b) and (c) are checked against (a): the largest absolute difference of any parameter of
any seed after `--check-steps` steps (float rounding only), and after the whole run.
`--penalty` adds an EWC-like diagonal quadratic penalty to every step (grad += lam F (theta - theta*),
F and theta* fixed per seed), state that vectorises the same way.

`--library`: the library's own, `lifelong run --seeds N --vectorize` (`lifelong.vectorized`) against
`lifelong run --seeds N` on that protocol (`experiment.continual.run` in this process, the two alternating,
their order swapped every repeat): training samples/s (N x a run's samples over the training seconds, which
the vectorized seeds share), the whole run's wall time (data, evaluation and all), and the largest
difference of any accuracy in the seeds' matrices.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/vectorize.py [--threads 1] [--seeds 1,3,5,10] [--repeats 3]
        [--tasks 5] [--penalty] [--device cpu]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/vectorize.py --library [--seeds 3,5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

from lifelong.data import Split, benchmark
from lifelong.models import mlp

LR, MOMENTUM, BATCH, LAM = 0.01, 0.9, 128, 100.0

Step = Callable[[Tensor, Tensor], None]  # one training step on an (N, B, ...) batch and (N, B) labels


def model(seed: int, device: torch.device) -> nn.Module:
    torch.manual_seed(seed)
    return mlp(784, 10, (400, 400)).to(device)


def penalty_state(params: list[Tensor], seed: int) -> tuple[list[Tensor], list[Tensor]]:
    """A fixed 'Fisher' F >= 0 and anchor theta* per parameter of seed `seed` (drawn, not computed: only the
    arithmetic of the penalty matters here)."""
    g = torch.Generator().manual_seed(1000 + seed)
    fisher = [torch.rand(p.shape, generator=g).mul_(0.01).to(p.device) for p in params]
    star = [p.detach() + 0.01 * torch.randn(p.shape, generator=g).to(p.device) for p in params]
    return fisher, star


def descend(opt: torch.optim.Optimizer, loss: Tensor, params: list[Tensor], fisher: list[Tensor],
            star: list[Tensor]) -> None:
    """One optimiser step on `loss`, with grad += LAM * F * (theta - theta*) for every parameter where `fisher`
    is given (elementwise: the same arithmetic on one seed's tensors or on the stacked ones)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    for p, f, s in zip(params, fisher, star):
        assert p.grad is not None
        p.grad.addcmul_(f, p.detach() - s, value=LAM)
    opt.step()


def batches(tasks: list[Split], seeds: list[int], device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    """Each task's samples in each seed's own order, B at a time: inputs (N, B, ...) and labels (N, B)."""
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    for split in tasks:
        perms = torch.stack([torch.randperm(len(split), generator=g) for g in gens]).to(device)
        for idx in perms.split(BATCH, dim=1):
            x, y = split.batch(idx.flatten())
            yield x.view(*idx.shape, *x.shape[1:]), y.view(idx.shape)


def sequential(seed: int, device: torch.device, penalty: bool) -> tuple[list[Tensor], Step]:
    """(a): one seed's model and its plain training step."""
    net = model(seed, device)
    params = list(net.parameters())
    opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM)
    fisher, star = penalty_state(params, seed) if penalty else ([], [])

    def step(x: Tensor, y: Tensor) -> None:
        descend(opt, F.cross_entropy(net(x[0]), y[0]), params, fisher, star)

    return params, step


def transposed(t: Tensor) -> Tensor:
    """A stacked weight (N, out, in) as (N, in, out), contiguous (and back); biases (N, out) as they are."""
    return t.transpose(1, 2).contiguous() if t.dim() == 3 else t


def stacked(kind: str, seeds: list[int], device: torch.device, penalty: bool) -> tuple[list[Tensor], Step]:
    """The seeds' models stacked for (b) `kind="vmap"` or (c) `"bmm"`: the stacked leaves and the step. (c)
    keeps each weight as (N, in, out), so that `baddbmm` takes it and its gradient as they are stored (a
    transposed view would cost a copy of every gradient); its leaves come back as (N, out, in)."""
    models = [model(s, device) for s in seeds]
    params, _ = stack_module_state(models)  # type: ignore[arg-type]  # leaves (N, ...) requiring grad
    template = copy.deepcopy(models[0]).to("meta")
    layout = transposed if kind == "bmm" else (lambda t: t)
    leaves = [layout(p.detach()).requires_grad_() for p in params.values()]
    opt = torch.optim.SGD(leaves, lr=LR, momentum=MOMENTUM)
    per_seed = [penalty_state(list(m.parameters()), s) for m, s in zip(models, seeds)] if penalty else []
    fisher = [layout(torch.stack(f)) for f in zip(*(fs for fs, _ in per_seed))]
    star = [layout(torch.stack(s)) for s in zip(*(ss for _, ss in per_seed))]

    def vmapped(x: Tensor) -> Tensor:
        return torch.vmap(lambda p, xk: functional_call(template, p, (xk,)))(dict(zip(params, leaves)), x)

    def bmm(x: Tensor) -> Tensor:  # the MLP as batched matmuls: weights (N, in, out), biases (N, out)
        h = x.flatten(2)
        for i in range(0, len(leaves), 2):
            h = torch.baddbmm(leaves[i + 1].unsqueeze(1), h, leaves[i])
            h = h.relu() if i + 2 < len(leaves) else h
        return h

    forward = vmapped if kind == "vmap" else bmm

    def step(x: Tensor, y: Tensor) -> None:
        logits = forward(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1).sum()
        descend(opt, loss, leaves, fisher, star)

    return leaves, step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def prepare(kind: str, tasks: list[Split], seeds: list[int], device: torch.device, penalty: bool
            ) -> tuple[list[tuple[Iterator[tuple[Tensor, Tensor]], Step]], Callable[[], list[Tensor]]]:
    """Method `kind`'s batch streams and steps (one per seed for "sequential", one for all seeds else) and a
    function that gives the seeds' parameters stacked, (N, out, in) weights."""
    if kind == "sequential":
        made = [sequential(s, device, penalty) for s in seeds]
        return ([(batches(tasks, [s], device), step) for s, (_, step) in zip(seeds, made)],
                lambda: [torch.stack(ps).detach() for ps in zip(*(params for params, _ in made))])
    leaves, step = stacked(kind, seeds, device, penalty)
    layout = transposed if kind == "bmm" else (lambda t: t)
    return [(batches(tasks, seeds, device), step)], lambda: [layout(p.detach()) for p in leaves]


def measure(kinds: list[str], tasks: list[Split], seeds: list[int], device: torch.device, penalty: bool,
            steps: int | None = None) -> dict[str, tuple[float, list[Tensor]]]:
    """Train the seeds with every method of `kinds` in lockstep, step i of each method in turn (the order
    rotating every step), so that changes of the machine's load hit them alike; each method's training
    seconds (the batches' loading included) and its final parameters. `steps`: stop after this many."""
    runs = {k: prepare(k, tasks, seeds, device, penalty) for k in kinds}
    seconds = dict.fromkeys(kinds, 0.0)
    total = sum(-(-len(t) // BATCH) for t in tasks)
    for i in range(total if steps is None else min(steps, total)):
        for k in kinds[i % len(kinds):] + kinds[: i % len(kinds)]:
            sync(device)
            start = time.perf_counter()
            for stream, step in runs[k][0]:
                step(*next(stream))
            sync(device)
            seconds[k] += time.perf_counter() - start
    return {k: (seconds[k], runs[k][1]()) for k in kinds}


def max_diff(a: list[Tensor], b: list[Tensor]) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a, b))


def med(values: list[float], fmt: str) -> str:
    """The median of `values` and their range, as "median (min-max)"."""
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def library(ns: list[int], repeats: int, device: str) -> None:
    """`--library` (see the module)."""
    from lifelong.experiment.continual import RunConfig, run

    base = {"benchmark": "split-fmnist", "class_order": list(range(10)), "strategy": ["naive"], "optimizer": "sgd",
            "lr": LR, "momentum": MOMENTUM, "batch_size": BATCH, "hidden": [400, 400], "device": device}
    rates: dict[tuple[int, bool], list[float]] = {(n, v): [] for n in ns for v in (False, True)}
    walls: dict[tuple[int, bool], list[float]] = {(n, v): [] for n in ns for v in (False, True)}
    diff = 0.0
    for r in range(repeats):
        for n in ns:
            matrices = {}
            for vectorize in (False, True) if r % 2 == 0 else (True, False):
                start = time.perf_counter()
                records = run(RunConfig(**base, seeds=n, vectorize=vectorize))
                walls[n, vectorize].append(time.perf_counter() - start)
                seconds = records[0]["train_seconds"] if vectorize else sum(x["train_seconds"] for x in records)
                rates[n, vectorize].append(sum(x["samples_seen"] for x in records) / seconds)
                matrices[vectorize] = torch.tensor([x["matrix"] for x in records])
            diff = max(diff, float((matrices[True] - matrices[False]).abs().max()))
            print(f"repeat {r} N={n}: sequential {rates[n, False][-1]:.0f}/s {walls[n, False][-1]:.1f} s, "
                  f"vectorized {rates[n, True][-1]:.0f}/s {walls[n, True][-1]:.1f} s", flush=True)

    print("\n| N | `run --seeds N` samples/s | `--vectorize` samples/s | ratio | whole run s | `--vectorize` whole "
          "run s | whole-run ratio |")
    print("| --- " * 7 + "|")
    for n in ns:
        ratio = [v / s for s, v in zip(rates[n, False], rates[n, True])]
        whole = [s / v for s, v in zip(walls[n, False], walls[n, True])]
        print(f"| {n} | {med(rates[n, False], '.0f')} | {med(rates[n, True], '.0f')} | {med(ratio, '.2f')} | "
              f"{med(walls[n, False], '.1f')} | {med(walls[n, True], '.1f')} | {med(whole, '.2f')} |")
    print(f"largest |accuracy difference| of any seed's matrix, vectorized vs sequential: {diff:.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seeds", default="1,3,5,10", help="the values of N, comma-separated")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tasks", type=int, default=5, help="train on the first this many tasks")
    p.add_argument("--check-steps", type=int, default=5)
    p.add_argument("--kinds", default="sequential,vmap,bmm")
    p.add_argument("--penalty", action="store_true", help="add an EWC-like diagonal quadratic penalty")
    p.add_argument("--device", default="cpu")
    p.add_argument("--library", action="store_true", help="lifelong run --vectorize against lifelong run")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.library:
        library([int(n) for n in args.seeds.split(",")], args.repeats, args.device)
        return
    device = torch.device(args.device)
    stream = benchmark("split-fmnist", class_order=list(range(10)))
    tasks = [t.train.to(device) for t in stream][: args.tasks]
    samples = sum(len(t) for t in tasks)
    ns, kinds = [int(n) for n in args.seeds.split(",")], args.kinds.split(",")
    others = [k for k in kinds if k != "sequential"]
    print(f"{samples} samples per run, threads {args.threads}, device {device}, penalty {args.penalty}")

    check: dict[int, dict[str, float]] = {}  # N -> method -> max |difference| from sequential after a few steps
    for n in ns:
        out = measure(kinds, tasks, list(range(n)), device, args.penalty, args.check_steps)
        check[n] = {k: max_diff(out["sequential"][1], out[k][1]) for k in others}
        print(f"N={n}: max |param difference| after {args.check_steps} steps: {check[n]}", flush=True)

    rates: dict[tuple[int, str], list[float]] = {(n, k): [] for n in ns for k in kinds}
    ratios: dict[tuple[int, str], list[float]] = {(n, k): [] for n in ns for k in others}
    full: dict[tuple[int, str], float] = {}
    for r in range(args.repeats):
        for n in ns:
            out = measure(kinds, tasks, list(range(n)), device, args.penalty)
            for k in kinds:
                rates[n, k].append(n * samples / out[k][0])
            for k in others:
                ratios[n, k].append(rates[n, k][-1] / rates[n, "sequential"][-1])
                full[n, k] = max(full.get((n, k), 0.0), max_diff(out["sequential"][1], out[k][1]))
            print(f"repeat {r} N={n}: " + ", ".join(f"{k} {rates[n, k][-1]:.0f}/s" for k in kinds), flush=True)

    print(f"\n| N | threads | {' | '.join(f'{k} samples/s' for k in kinds)} | "
          f"{' | '.join(f'{k}/sequential' for k in others)} | max param diff after {args.check_steps} steps / run |")
    print("| --- " * (3 + len(kinds) + len(others)) + "|")
    for n in ns:
        diffs = ", ".join(f"{k} {check[n][k]:.1e} / {full.get((n, k), float('nan')):.1e}" for k in others)
        print(f"| {n} | {args.threads} | {' | '.join(med(rates[n, k], '.0f') for k in kinds)} | "
              f"{' | '.join(med(ratios[n, k], '.2f') for k in others)} | {diffs} |")


if __name__ == "__main__":
    main()
