"""Each memory strategy against its compute limit (issue 21): the library's time over a bare PyTorch loop.

For ER, A-GEM, GEM, DER, DER++, ER-ACE and iCaRL, a bare loop (a plain nn.Sequential MLP, torch.optim.SGD,
plain tensors, the memory as preallocated tensors updated with tensor ops, no `lifelong` code) does the
arithmetic the strategy does per step: the same forward and backward passes on the same batch shapes,
and its end-of-task work (A-GEM's and GEM's per-task memory fill, iCaRL's herding and class means). On
the standard protocol (class-incremental Split Fashion-MNIST, classes (0,1)..(8,9), MLP 784-400-400-10,
SGD lr 0.01 momentum 0.9, batch 128, 1 epoch; ER buffer 500, A-GEM and GEM 1280, the others the library's
defaults) each bare run and a library run (`lifelong.experiment.run`'s `train_seconds`: training plus the
strategy's end-of-task work, not evaluation) alternate in one process `--repeats` times; the bare loop is
timed over the same span. Per strategy: the medians of both, the median and range of the paired ratios
(library / bare; target <= 1.15), and both final ACCs (different random draws, so close but not equal).
Fashion-MNIST is loaded once through `lifelong.data` (loading is not timed). `--clock cpu` times both with
the main thread's CPU time instead of the wall clock (`time.thread_time` in place of `time.perf_counter`,
the library's clock too): steadier on a shared, loaded machine; with `--threads 1` all the work is on it.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/limits.py [--repeats 3] [--strategies replay,agem,...] [--threads 1]
        [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.optimize
import torch
import torch.nn.functional as F
from speed import PROTOCOL, SETTINGS
from torch import Tensor, nn

from lifelong.data import benchmark
from lifelong.experiment import RunConfig, run

DEFAULT = "replay,agem,gem,der,derpp,er-ace,icarl"
BATCH, REPLAY, EVAL_BATCH, CLASSES = 128, 128, 1024, 10
Tasks = list[tuple[Tensor, Tensor, Tensor, Tensor]]  # per task: train x (uint8), train y, test x (scaled), test y


def load() -> tuple[Tasks, Callable[[Tensor], Tensor]]:
    """The protocol's five tasks (training inputs as stored, uint8) and their scaling to the model's inputs,
    as the library's `Scale` transform does it: the bare loop applies it to each batch, as the library does."""
    stream = benchmark("split-fmnist", scenario="class", class_order=list(range(CLASSES)))
    transform = stream[0].train.transform
    mean, std = transform.mean, transform.std  # type: ignore[union-attr]

    def scale(x: Tensor) -> Tensor:
        return x.float().div_(255.0).sub_(mean).div_(std)

    return [(t.train.x, t.train.y, scale(t.test.x), t.test.y) for t in stream], scale


def sample(size: int, g: torch.Generator) -> Tensor:
    """REPLAY of `size` stored rows, uniformly without replacement (repeating when fewer are stored)."""
    perm = torch.randperm(size, generator=g)
    return perm[:REPLAY] if size >= REPLAY else perm[torch.arange(REPLAY) % size]


class Bare:
    """The plain loop's state: the MLP, its optimiser (fresh each task) and a generator."""

    opt: torch.optim.Optimizer
    scale: Callable[[Tensor], Tensor]  # stored inputs (uint8) to the model's

    def __init__(self, g: torch.Generator) -> None:
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(),
                                   nn.Linear(400, CLASSES))
        self.params = list(self.model.parameters())
        self.g = g

    def begin(self, task: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """At a task's start: the training data, as stored (iCaRL adds its exemplars)."""
        return x, y

    def step(self, x: Tensor, y: Tensor) -> None:
        raise NotImplementedError

    def end(self, task: int, x: Tensor, y: Tensor) -> None:
        """At a task's end, with its training data as stored (memory fills, herding)."""

    def update(self, loss: Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        return self.model(x).argmax(1)


class Reservoir(Bare):
    """A reservoir memory of `capacity` samples (with logits for DER), as tensors."""

    def __init__(self, g: torch.Generator, capacity: int = 500, logits: bool = False) -> None:
        super().__init__(g)
        self.mx, self.my = torch.zeros(capacity, 1, 28, 28), torch.zeros(capacity, dtype=torch.long)
        self.mz = torch.zeros(capacity, CLASSES) if logits else None
        self.seen = 0

    def replay(self) -> Tensor | None:
        return sample(min(self.seen, len(self.my)), self.g) if self.seen else None

    def add(self, x: Tensor, y: Tensor, z: Tensor | None = None) -> None:
        cap, n = len(self.my), self.seen + torch.arange(1, len(y) + 1)
        slot = torch.where(n <= cap, n - 1, (torch.rand(len(y), dtype=torch.float64, generator=self.g) * n).long())
        keep = slot < cap
        slot = slot[keep]
        self.mx[slot], self.my[slot] = x[keep], y[keep]
        if self.mz is not None and z is not None:
            self.mz[slot] = z[keep]
        self.seen += len(y)


class ER(Reservoir):
    def step(self, x: Tensor, y: Tensor) -> None:
        idx = self.replay()
        mix = (x, y) if idx is None else (torch.cat([x, self.mx[idx]]), torch.cat([y, self.my[idx]]))
        self.add(x, y)
        self.update(F.cross_entropy(self.model(mix[0]), mix[1]))


class DER(Reservoir):
    def __init__(self, g: torch.Generator, alpha: float = 1.0, beta: float = 0.0) -> None:
        super().__init__(g, logits=True)
        self.alpha, self.beta = alpha, beta

    def step(self, x: Tensor, y: Tensor) -> None:
        idx = self.replay()
        out = self.model(x)
        loss = F.cross_entropy(out, y)
        if idx is not None:
            h = self.model(self.mx[idx])
            loss = loss + self.alpha * F.mse_loss(h, self.mz[idx])
            if self.beta:  # DER++: the label term on the same memory batch, as the library does
                loss = loss + self.beta * F.cross_entropy(h, self.my[idx])
        self.update(loss)
        self.add(x, y, out.detach())


class ERACE(Reservoir):
    def __init__(self, g: torch.Generator) -> None:
        super().__init__(g)
        self.classes_seen = torch.zeros(CLASSES, dtype=torch.bool)

    def begin(self, task: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        self.first = task == 0
        return x, y

    def step(self, x: Tensor, y: Tensor) -> None:
        present = torch.zeros(CLASSES, dtype=torch.bool).index_fill_(0, y, True)
        self.classes_seen |= present
        idx = None if self.first else self.replay()
        replayed = None if idx is None else (self.mx[idx], self.my[idx])
        self.add(x, y)
        out = self.model(x)
        if replayed is None:
            self.update(F.cross_entropy(out, y))
            return
        masked = out.masked_fill(~(present | ~self.classes_seen), torch.finfo(out.dtype).min)
        self.update(F.cross_entropy(masked, y) + F.cross_entropy(self.model(replayed[0]), replayed[1]))


class Episodic(Bare):
    """A-GEM's and GEM's memory: an equal share of `capacity` per past task, a random sample of its data."""

    def __init__(self, g: torch.Generator, capacity: int = 1280) -> None:
        super().__init__(g)
        self.capacity, self.parts = capacity, []

    def end(self, task: int, x: Tensor, y: Tensor) -> None:
        t = len(self.parts) + 1
        keep = torch.randperm(len(y), generator=self.g)[: -(-self.capacity // t)]
        self.parts.append((self.scale(x[keep]), y[keep]))
        sizes = [self.capacity // t + (k < self.capacity % t) for k in range(t)]
        self.parts = [(px[:s], py[:s]) for (px, py), s in zip(self.parts, sizes)]
        self.mx, self.my = torch.cat([p[0] for p in self.parts]), torch.cat([p[1] for p in self.parts])


class AGEM(Episodic):
    def step(self, x: Tensor, y: Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(x), y).backward()
        if self.parts:
            idx = sample(len(self.my), self.g)
            ref = torch.autograd.grad(F.cross_entropy(self.model(self.mx[idx]), self.my[idx]), self.params)
            dot = sum((p.grad * r).sum() for p, r in zip(self.params, ref))
            norm = sum(r.pow(2).sum() for r in ref)
            coef = dot.clamp(max=0) / norm
            for p, r in zip(self.params, ref):
                p.grad.sub_(coef * r)
        self.opt.step()


def nonnegative_qp(gram: np.ndarray, lin: np.ndarray) -> np.ndarray:
    """argmin_{u >= 0} 1/2 u' gram u + lin' u, as NNLS: |L'u + L^-1 lin|^2 with gram = L L'."""
    lower = scipy.linalg.cholesky(gram, lower=True)
    return scipy.optimize.nnls(lower.T, -scipy.linalg.solve_triangular(lower, lin, lower=True))[0]


class GEM(Episodic):
    margin = 0.5

    def end(self, task: int, x: Tensor, y: Tensor) -> None:
        super().end(task, x, y)
        sizes = torch.tensor([len(p[1]) for p in self.parts])
        self.slices = list(zip((sizes.cumsum(0) - sizes).tolist(), sizes.tolist()))
        self.counts = sizes.repeat_interleave(sizes).float()  # each sample's loss is divided by its task's count

    def memory_rows(self) -> Tensor:
        """(t, p): each past task's memory-loss gradient, from one forward and one backward pass over the
        memory (to the layers' outputs) and per task its samples' output gradients times inputs."""
        w1, b1, w2, b2, w3, b3 = self.params
        a0 = self.mx.flatten(1)
        z1 = F.linear(a0, w1, b1)
        a1 = z1.relu()
        z2 = F.linear(a1, w2, b2)
        a2 = z2.relu()
        z3 = F.linear(a2, w3, b3)
        loss = (F.cross_entropy(z3, self.my, reduction="none") / self.counts).sum()
        grads = torch.autograd.grad(loss, [z1, z2, z3])
        G = torch.empty(len(self.slices), sum(p.numel() for p in self.params))
        cols = G.split([p.numel() for p in self.params], 1)
        with torch.no_grad():
            for k, (start, n) in enumerate(self.slices):
                for j, (a, gz) in enumerate(zip((a0, a1, a2), grads)):
                    a, gz = a[start : start + n], gz[start : start + n]
                    torch.mm(gz.T, a, out=cols[2 * j][k].view(gz.shape[1], a.shape[1]))
                    torch.sum(gz, 0, out=cols[2 * j + 1][k])
        return G

    def step(self, x: Tensor, y: Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(x), y).backward()
        if self.parts:
            g = torch.cat([p.grad.flatten() for p in self.params])
            G = self.memory_rows()
            gram, dots = (G @ G.T).double().numpy(), (G @ g).double().numpy()
            if (dots < 0).any():
                gamma = np.full_like(dots, self.margin)
                v = nonnegative_qp(gram, dots + gram @ gamma) + gamma
                g = g + G.T @ torch.from_numpy(v).float()
                for p, piece in zip(self.params, g.split([p.numel() for p in self.params])):
                    p.grad.copy_(piece.view_as(p))
        self.opt.step()


class ICaRL(Bare):
    """Sigmoid BCE with distillation, herded exemplars (class-balanced, 500) and nearest-mean prediction."""

    def __init__(self, g: torch.Generator, capacity: int = 500) -> None:
        super().__init__(g)
        self.capacity, self.exemplars = capacity, {}
        self.seen = torch.zeros(CLASSES, dtype=torch.bool)
        self.old: nn.Module | None = None

    def features(self, x: Tensor) -> Tensor:
        return F.normalize(self.model[:-1](x), dim=1)

    def begin(self, task: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.exemplars:
            self.old = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.old_units = self.seen.clone()
        self.seen[y.unique()] = True
        if not self.exemplars:
            return x, y
        return torch.cat([x, *self.exemplars.values()]), torch.cat([y, *(torch.full((len(v),), c) for c, v in
                                                                         self.exemplars.items())])

    def step(self, x: Tensor, y: Tensor) -> None:
        out = self.model(x)
        target = F.one_hot(y, CLASSES).to(out.dtype)
        if self.old is not None:
            with torch.no_grad():
                target = torch.where(self.old_units, torch.sigmoid(self.old(x)), target)
        bce = F.binary_cross_entropy_with_logits(out.masked_fill(~self.seen, 0.0), target, reduction="none")
        self.update((bce * self.seen).sum(1).mean())

    @torch.no_grad()
    def end(self, task: int, x: Tensor, y: Tensor) -> None:
        self.model.eval()
        phi = torch.cat([self.features(self.scale(b)) for b in x.split(EVAL_BATCH)])
        m = -(-self.capacity // int(self.seen.sum()))
        for c in y.unique().tolist():
            self.exemplars[c] = x[y == c][herd(phi[y == c], m)]
        n = len(self.exemplars)  # class-balanced: counts within one of each other, the first ones kept
        sizes = [self.capacity // n + (k < self.capacity % n) for k in range(n)]
        self.exemplars = {c: v[:s] for (c, v), s in zip(self.exemplars.items(), sizes)}
        self.means = torch.zeros(CLASSES, 400)
        for c, v in self.exemplars.items():
            self.means[c] = self.features(self.scale(v)).sum(0)
        self.means = F.normalize(self.means, dim=1)
        self.model.train()

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        score = -torch.cdist(self.features(x), self.means)
        return score.masked_fill(~self.seen, torch.finfo(score.dtype).min).argmax(1)


def herd(phi: Tensor, m: int) -> Tensor:
    """iCaRL's herding of one class: p_k = argmin_x |mu - (phi(x) + sum_{j<k} phi(p_j)) / k|, expanded as
    |phi|^2 / k^2 - 2 phi.(mu - S / k) / k (the constant |w|^2 left out)."""
    mu, norms = phi.mean(0), phi.pow(2).sum(1)
    total, taken, picks = torch.zeros_like(mu), torch.zeros(len(phi), dtype=torch.bool), []
    for k in range(1, min(m, len(phi)) + 1):
        cost = norms / k**2 - 2 / k * (phi @ (mu - total / k))
        pick = cost.masked_fill(taken, torch.inf).argmin()
        picks.append(pick)
        taken[pick] = True
        total += phi[pick]
    return torch.stack(picks)


LEARNERS: dict[str, Callable[[torch.Generator], Bare]] = {
    "replay": ER, "agem": AGEM, "gem": GEM, "der": DER, "derpp": lambda g: DER(g, beta=0.5), "er-ace": ERACE,
    "icarl": ICaRL,
}


def bare(name: str, tasks: Tasks, scale: Callable[[Tensor], Tensor], seed: int) -> tuple[float, float]:
    """The bare loop's seconds (each task's training and end-of-task work) and final ACC."""
    torch.manual_seed(seed)
    learner = LEARNERS[name](torch.Generator().manual_seed(seed))
    learner.scale = scale
    seconds = 0.0
    for k, (x_task, y_task, _, _) in enumerate(tasks):
        start = time.perf_counter()
        x, y = learner.begin(k, x_task, y_task)
        learner.opt = torch.optim.SGD(learner.params, lr=PROTOCOL["lr"], momentum=PROTOCOL["momentum"])
        for idx in torch.randperm(len(y), generator=learner.g).split(BATCH):
            learner.step(scale(x[idx]), y[idx])
        learner.end(k, x_task, y_task)
        seconds += time.perf_counter() - start
    learner.model.eval()
    acc = statistics.mean(float((learner.predict(tx) == ty).float().mean()) for _, _, tx, ty in tasks)
    return seconds, acc


def library(name: str, seed: int, data: str = "split-fmnist") -> tuple[float, float]:
    """The library's train_seconds and final ACC (`lifelong run` on the protocol)."""
    config = RunConfig(strategy=[name], seeds=1, seed=seed, **PROTOCOL | SETTINGS.get(name, {}) | {"benchmark": data})
    (record,) = run(config)
    return float(record["train_seconds"]), float(record["acc"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--strategies", default=DEFAULT)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        time.perf_counter = time.thread_time  # the clock of the library's train_seconds, and of `bare`
    tasks, scale = load()
    names = args.strategies.split(",")
    # warm-up, not timed: a process's first runs pay one-off costs (torch._dynamo's import at the first optimiser
    # step, the allocator, kernels' first use), which the first strategy's first pair would otherwise carry
    bare(names[0], tasks[:1], scale, 0)
    library(names[0], 0, "split-digits")
    rows = []
    for name in names:
        times: dict[str, list[float]] = {"bare": [], "library": []}
        accs: dict[str, list[float]] = {"bare": [], "library": []}
        for r in range(args.repeats):
            for what, result in (("bare", bare(name, tasks, scale, r)), ("library", library(name, r))):
                times[what].append(result[0])
                accs[what].append(result[1])
            print(f"repeat {r}: {name} bare {times['bare'][-1]:.2f} s (ACC {accs['bare'][-1]:.3f}), library "
                  f"{times['library'][-1]:.2f} s (ACC {accs['library'][-1]:.3f}), ratio "
                  f"{times['library'][-1] / times['bare'][-1]:.3f}", flush=True)
        ratios = [lib / b for b, lib in zip(times["bare"], times["library"])]
        rows.append(f"| {name} | {statistics.median(times['bare']):.2f} | {statistics.median(times['library']):.2f} | "
                    f"**{statistics.median(ratios):.2f}** | {min(ratios):.2f}-{max(ratios):.2f} | "
                    f"{statistics.mean(accs['bare']):.3f} | {statistics.mean(accs['library']):.3f} |")
    print(f"\n{args.repeats} pairs, {args.threads} thread(s), {args.clock} clock; seconds: medians; ratio: library / "
          "bare, median of the pairs (target <= 1.15); ACC: mean over the repeats")
    print("| strategy | bare s | library s | ratio | range | bare ACC | library ACC |\n| --- | --- | --- | --- | --- | "
          "--- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
