"""Several seeds at once (`lifelong run --seeds N --vectorize`): the N seeds' fits of one MLP trained as one
batched model, `fit_together(trainers, streams)`.

Each seed keeps its own `Trainer`: its model's initialisation, its stream, its shuffling generator, its
reference row, its evaluation after every task and its `Result`. Only the training steps are shared: the N
models' Linear layers are stacked (`BatchedMLP`: weights (N, in, out), biases (N, out)), an (N, B, ...) batch
of each seed's own samples goes through `torch.baddbmm`, the N mean losses are summed, and one backward pass
gives each seed its own gradient; `StackedOptimizer` is SGD or Adam elementwise over the stacked tensors, so N
independent optimisers, a fresh one per task. Each seed's batches, in its order, and its optimiser's
arithmetic are those of its sequential fit (`Trainer.fit`), but sums are taken in another order: results
equal the sequential ones up to float rounding, not bit for bit. Seeds whose tasks differ in size (class
orders drawn per seed) are padded with ignored rows; a seed whose task has run out of batches is left as it
is by the steps that remain. On Split Fashion-MNIST's MLP with one CPU thread, N=3 and N=5 seeds train
1.21x and 1.29x faster than one after the other (BENCHMARKS.md, "Several seeds at once").

Supported (`check`): naive fine-tuning of `models.mlp` with its linear head, on class-, domain- or
task-incremental streams, with sgd, adam or adam-fused, no checkpoints or step callbacks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import OnlineStream, Split, Stream
from .errors import ConfigError, TrainingError
from .evaluation import Result
from .strategies import Naive
from .training import Trainer

STRATEGIES = ("naive",)  # the strategies that train vectorized
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, which `training.resolve_optimizer` keeps
IGNORE = -1  # the label of a padding row: no loss, no gradient, never a correct prediction


def linears(model: nn.Module) -> list[nn.Linear]:
    """The Linear layers of a `models.mlp` network (Flatten, (Linear, ReLU) per hidden layer, Linear), in
    order; ConfigError for any other model."""
    leaves = [m for m in model.modules() if not list(m.children())]
    kinds = [type(m) for m in leaves]
    expected = [nn.Flatten, *[nn.Linear, nn.ReLU] * ((len(leaves) - 2) // 2), nn.Linear]
    if kinds != expected or not all(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"`vectorize` stacks models.mlp networks, not a {type(model).__name__} of "
                          f"{', '.join(k.__name__ for k in kinds)} (or a frozen one)", "vectorize")
    return [m for m in leaves if isinstance(m, nn.Linear)]


class BatchedMLP:
    """N `models.mlp` networks of the same sizes as one: weight (N, in, out) and bias (N, out) per layer,
    leaf tensors that require gradients (`params`, input to output; the output layer's are `head`)."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        layers = [linears(m) for m in models]
        if len({tuple(tuple(lin.weight.shape) for lin in ls) for ls in layers}) > 1:
            raise ConfigError("`vectorize` stacks networks of one shape: the seeds' models differ", "vectorize")
        self.layers = layers
        self.params: list[Tensor] = []
        for depth in zip(*layers):
            self.params += [torch.stack([lin.weight.detach().t() for lin in depth]).contiguous().requires_grad_(),
                            torch.stack([lin.bias.detach() for lin in depth]).requires_grad_()]
        self.head = self.params[-2:]

    def __call__(self, x: Tensor) -> Tensor:
        """Logits (N, B, outputs) of inputs (N, B, ...): model k's of x[k]."""
        h = x.flatten(2)
        for i in range(0, len(self.params), 2):
            h = torch.baddbmm(self.params[i + 1].unsqueeze(1), h, self.params[i])
            h = h.relu() if i + 2 < len(self.params) else h
        return h

    @torch.no_grad()
    def copy_back(self) -> None:
        """Each model's own Linear layers set to its slice of the stacked parameters."""
        for k, layers in enumerate(self.layers):
            for i, lin in enumerate(layers):
                lin.weight.copy_(self.params[2 * i][k].t())
                lin.bias.copy_(self.params[2 * i + 1][k])


class StackedOptimizer:
    """N independent optimisers over tensors whose first dimension is the seed: SGD (momentum, weight
    decay) or Adam (L2 weight decay), elementwise as `torch.optim` computes them. The `head` tensors (the
    output layer's weight (N, in, out) and bias (N, out)) are decayed only in the units that the step's loss
    reaches, as `Trainer._decay_reached_rows` does. `step(active)` leaves the seeds where `active` is False
    as they are, their parameters, moments and step counts."""

    def __init__(self, params: list[Tensor], head: list[Tensor], name: str, lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        if name not in ("sgd", "adam", "adam-fused"):
            raise ConfigError(f"`vectorize` trains with sgd, adam or adam-fused, got {name!r}", "optimizer")
        self.params, self.head, self.adam = params, {id(p) for p in head}, name != "sgd"
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.state: list[list[Tensor]] = [[] for _ in params]  # SGD: [momentum buffer]; Adam: [exp_avg, exp_avg_sq]
        self.steps = torch.zeros(len(params[0]), dtype=torch.float64)  # Adam's step count of each seed

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: Tensor | None = None) -> None:
        """One step of every seed, or only of those where `active` (a bool tensor (N,)) is True."""
        kept = [t.clone() for t in self._tensors()] if active is not None else []
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        if self.weight_decay:
            head = [g for p, g in zip(self.params, grads) if id(p) in self.head]
            reached = head[0].ne(0).any(1) | head[1].ne(0)  # (N, out): units whose weights or bias took a gradient
            grads = [g.add(p * (reached.unsqueeze(1) if p.dim() == 3 else reached), alpha=self.weight_decay)
                     if id(p) in self.head else g.add(p, alpha=self.weight_decay) for p, g in zip(self.params, grads)]
        if self.adam:
            self._adam(grads, active)
        else:
            self._sgd(grads)
        if active is not None:
            for t, old in zip(self._tensors(), kept):
                t.copy_(torch.where(active.view(-1, *[1] * (t.dim() - 1)), t, old))

    def _tensors(self) -> list[Tensor]:
        return [*self.params, *(t for s in self.state for t in s)]

    def _sgd(self, grads: list[Tensor]) -> None:
        for p, g, state in zip(self.params, grads, self.state):
            if self.momentum:
                if state:
                    state[0].mul_(self.momentum).add_(g)
                else:
                    state.append(g.clone())
                g = state[0]
            p.add_(g, alpha=-self.lr)

    def _adam(self, grads: list[Tensor], active: Tensor | None) -> None:
        (beta1, beta2), eps = ADAM_BETAS, ADAM_EPS
        self.steps += 1 if active is None else active.cpu().double()
        step_size = (self.lr / (1 - beta1 ** self.steps)).float().to(self.params[0].device)
        root = ((1 - beta2 ** self.steps) ** 0.5).float().to(self.params[0].device)
        for p, g, state in zip(self.params, grads, self.state):
            if not state:
                state += [torch.zeros_like(p), torch.zeros_like(p)]
            exp_avg, exp_avg_sq = state
            exp_avg.lerp_(g, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            shape = (-1, *[1] * (p.dim() - 1))
            denom = (exp_avg_sq.sqrt() / root.view(shape)).add_(eps)
            p.sub_(exp_avg.div(denom).mul_(step_size.view(shape)))


def check(trainers: Sequence[Trainer], streams: Sequence[Stream]) -> None:
    """ConfigError unless the fits can train together: naive, models.mlp networks of one shape, one
    optimiser setting, epochs, batch size and device, task-based streams of one scenario and length, no
    checkpoints or callbacks called at every step."""
    first = trainers[0]
    same = ("epochs", "batch_size", "optimizer_name", "lr", "momentum", "weight_decay", "device")
    for t in trainers:
        if type(t.strategy) is not Naive:
            raise ConfigError(f"`vectorize` trains naive fine-tuning only, got {t.strategy.name}", "vectorize")
        if t.checkpointing is not None or any(c.wants_steps for c in t.callbacks):
            raise ConfigError("`vectorize` fits keep no checkpoints and call no step callbacks", "vectorize")
        differ = next((k for k in same if getattr(t, k) != getattr(first, k)), None)
        if differ:
            raise ConfigError(f"`vectorize` trains seeds of one setting together: their `{differ}` differ", differ)
    if any(isinstance(s, OnlineStream) for s in streams) or len({(s.scenario, len(s)) for s in streams}) > 1:
        raise ConfigError("`vectorize` trains task-based streams of one scenario and length", "vectorize")


def fit_together(trainers: Sequence[Trainer], streams: Sequence[Stream]) -> list[Result]:
    """What `trainers[k].fit(streams[k])` returns, for every k, with the N models trained as one (see the
    module). Each Result's `train_seconds` and `task_seconds` are the wall time of the batched training
    that the N seeds shared (so the N fits' throughput together is N x a seed's `samples_per_second`); its
    evaluation seconds are its own."""
    check(trainers, streams)
    for trainer, stream in zip(trainers, streams):
        trainer.start(stream)  # seeds, reference row
    net = BatchedMLP([t.model for t in trainers])
    for i in range(len(streams[0])):
        tasks = [t.stream.tasks[i] for t in trainers]
        start = time.perf_counter()
        for t, task in zip(trainers, tasks):
            t.model.train()
            t.strategy.before_task(task)
        losses = _train_task(net, trainers, [task.train for task in tasks], i)
        for t, task in zip(trainers, tasks):
            t.strategy.after_task(task)
        seconds = time.perf_counter() - start
        _check_finite(net, trainers, i)
        net.copy_back()
        for t, task, loss in zip(trainers, tasks, losses):
            t.samples_seen += t.epochs * len(task.train)
            t.progress.losses.append(loss)
            t.progress.task_seconds.append(seconds)
            t1 = time.perf_counter()
            t.progress.matrix.append(t.evaluate(t.stream))
            t.progress.eval_seconds += time.perf_counter() - t1
            for callback in t.callbacks:
                callback.on_task_end(t, task)
    return [t.result() for t in trainers]


def gather(splits: Sequence[Split], idx: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Inputs (N, B, ...) and labels (N, B) of the samples idx[k] of splits[k], each seed's rows padded to
    the longest with zeros and the label IGNORE."""
    parts = [s.batch(i) for s, i in zip(splits, idx)]
    size = max(len(y) for _, y in parts)
    if all(len(y) == size for _, y in parts):
        return torch.stack([x for x, _ in parts]), torch.stack([y for _, y in parts])
    x = parts[0][0].new_zeros(len(parts), size, *parts[0][0].shape[1:])
    y = parts[0][1].new_full((len(parts), size), IGNORE)
    for k, (xk, yk) in enumerate(parts):
        x[k, : len(yk)], y[k, : len(yk)] = xk, yk
    return x, y


def _train_task(net: BatchedMLP, trainers: Sequence[Trainer], splits: Sequence[Split], task: int) -> list[list[float]]:
    """Train every seed on its split of `task` for its epochs, in its own order (`Trainer._epoch`'s
    permutations, drawn from each trainer's generator), with a fresh optimiser; each seed's epoch losses."""
    first = trainers[0]
    opt = StackedOptimizer(net.params, net.head, first.optimizer_name, first.lr or 0.0, first.momentum,
                           first.weight_decay)
    stream, device = first.stream, first.device
    keep = torch.stack([t.stream.masks[task] for t in trainers]).to(device).unsqueeze(1) \
        if stream.scenario == "task" else None  # (N, 1, outputs): each seed's task's units (`Stream.mask`)
    out: list[list[float]] = [[] for _ in trainers]
    for epoch in range(first.epochs):
        perms = [torch.randperm(len(s), generator=t.generator).to(s.y.device) for s, t in zip(splits, trainers)]
        chunks = [p.split(first.batch_size) for p in perms]
        total = torch.zeros(len(trainers), device=device)
        for j in range(max(len(c) for c in chunks)):
            here = [j < len(c) for c in chunks]
            x, y = gather(splits, [c[j] if on else p[:0] for c, p, on in zip(chunks, perms, here)])
            logits = net(x.to(device))
            y = y.to(device)
            if keep is not None:
                logits = logits.masked_fill(~keep, torch.finfo(logits.dtype).min)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="none")
            means = loss.view(y.shape).sum(1) / y.ne(IGNORE).sum(1).clamp_min(1)
            opt.zero_grad()
            means.sum().backward()
            opt.step(None if all(here) else torch.tensor(here, device=device))
            total += means.detach()
        for k, (n, mean) in enumerate(zip([len(c) for c in chunks], total.tolist())):
            if not math.isfinite(mean / n):
                raise TrainingError(f"the training loss became non-finite (seed {trainers[k].seed}, task {task + 1}/"
                                    f"{len(stream)}, epoch {epoch + 1}): the learning rate is too large for this "
                                    "model; lower `lr`")
            out[k].append(mean / n)
    return out


def _check_finite(net: BatchedMLP, trainers: Sequence[Trainer], task: int) -> None:
    """A diverged model is never evaluated or reported (`Trainer._check_parameters`)."""
    for p in net.params:
        bad = (~torch.isfinite(p)).flatten(1).any(1).tolist()
        if any(bad):
            seed = trainers[bad.index(True)].seed
            raise TrainingError(f"a parameter of seed {seed} became non-finite while learning task {task}: lower `lr`")
