"""What every meta-learner shares: the functional inner loop, meta-training, and evaluation.

A meta-learner holds a model and learns, from a distribution of tasks, something that makes the
next task quick to learn. `meta_train(tasks, iterations)` takes `iterations` outer steps on batches
of `meta_batch` episodes; `predict(episodes, steps)` adapts to each episode's support set with
`steps` gradient steps and returns the outputs on its query set. Per-episode work is vectorised
with `torch.func.vmap` (no Python loop over the tasks of a batch) and adaptation is functional
(`torch.func.functional_call` on a dictionary of tensors): the module's own parameters are the
meta-parameters and are never overwritten by an inner step.

BatchNorm: every meta-learner (and baseline) normalises with the statistics of the batch it is
given: the support set while adapting, the query set when predicting (ProtoNets: support and query
in one batch), each episode on its own.
Running statistics are dropped (`torch.func.replace_all_batch_norm_modules_`), as in Finn et al.'s
reference MAML code, which always used batch statistics. This is transductive at meta-test time
(query predictions see the query batch's statistics), the protocol of the MAML paper; the library's
`conv4` and `resnet18` have BatchNorm (mlp and cnn none).

Under data-parallel training (`lifelong.distributed`) every rank draws the same meta-batch, computes the
meta-loss of its share of the episodes (`shard`; the baselines' pretraining: of the samples) and the
meta-gradients are averaged over the ranks before the outer step (`MetaLearner.descend`), so N ranks step
as one process with the whole meta-batch; scoring shards the episodes and gathers the per-episode results.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, replace_all_batch_norm_modules_, vmap
from tqdm import tqdm

from .. import distributed
from ..data.episodes import Episodes
from ..errors import ConfigError, TrainingError
from .tasks import TaskSet

Params = dict[str, Tensor]
Loss = Callable[[Tensor, Tensor], Tensor]


def task_loss(kind: str) -> Loss:
    """Mean squared error for regression tasks, cross-entropy for classification; inputs (S, out), targets."""
    if kind == "regression":
        return F.mse_loss
    return F.cross_entropy


def inner_loop(model: nn.Module, params: Params, x: Tensor, y: Tensor, loss: Loss, steps: int, lr: float,
               first_order: bool) -> Params:
    """`steps` of gradient descent on `loss(model(x), y)` over `params` (other tensors of `model` stay):
    theta_{i+1} = theta_i - lr * grad L(theta_i). The result stays differentiable w.r.t. the starting
    `params` (through the gradients too: second order), unless `first_order`, where each gradient is
    treated as a constant (the first-order approximation of Finn et al. 2017, Section 5.2)."""
    for _ in range(steps):
        params = sgd_step(params, grad(lambda p: loss(functional_call(model, p, (x,)), y))(params), lr, first_order)
    return params


def sgd_step(params: Params, grads: Params, lr: float, first_order: bool) -> Params:
    """One inner step, theta - lr * grad, for each tensor of `params`; with `first_order` the gradients
    are constants (detached), so nothing flows back through them."""
    return {k: v - lr * (grads[k].detach() if first_order else grads[k]) for k, v in params.items()}


def shard(episodes: Episodes) -> Episodes:
    """This rank's share of the episodes of a meta-batch every rank drew (all of them in one process)."""
    return Episodes(*(distributed.shard(t) for t in episodes)) if distributed.active() else episodes


def global_mean(value: Tensor, rows: int, total: int) -> Tensor:
    """The mean over all ranks' `total` rows of a mean `value` over this rank's `rows` (`value` in one process)."""
    if not distributed.active():
        return value
    weighted = (value * rows if rows else torch.zeros_like(value)).reshape(1)
    distributed.all_reduce_sum([weighted])
    return weighted[0] / total


def check_positive(name: str, whole: tuple[str, ...] = (), **values: float) -> None:
    """Raise ConfigError unless each value is a positive number (a whole number for the names in `whole`)."""
    for arg, v in values.items():
        kinds = int if arg in whole else (int, float)
        if isinstance(v, bool) or not isinstance(v, kinds) or not 0 < v < math.inf:
            kind = "whole" if arg in whole else "positive"
            raise ConfigError(f"{name}: `{arg}` must be a {kind} number > 0, got {v!r}", f"{name}.{arg}")


class MetaLearner:
    """Base class. Subclasses set `name`/`summary`, implement `meta_step` and `predict`; their
    keyword arguments (after `model` and `tasks`) are their hyper-parameters."""

    name: ClassVar[str] = "meta"
    summary: ClassVar[str] = ""
    classification_only: ClassVar[bool] = False
    classification_defaults: ClassVar[dict[str, Any]] = {}  # hyper-parameters that differ for classification
    optimizer: torch.optim.Optimizer  # the outer optimiser, of the learners that `descend`

    def __init__(self, model: nn.Module, tasks: TaskSet) -> None:
        if self.classification_only and tasks.kind != "classification":
            raise ConfigError(f"{self.name} learns classification tasks only; {tasks.name} is {tasks.kind}: give "
                              "`tasks` of classification episodes or use another meta-learner", "tasks")
        replace_all_batch_norm_modules_(model)
        self.model, self.tasks = model, tasks
        self.loss = task_loss(tasks.kind)
        self.progress = 0.0  # fraction of meta-training done, for annealed schedules
        self.selection: dict[str, Any] | None = None  # what `meta_train`'s model selection kept

    def params(self) -> Params:
        """The meta-parameters, by name."""
        return dict(self.model.named_parameters())

    def meta_step(self, batch: Any) -> Tensor:
        """One outer update from a batch of `draw` (the same on every rank); returns its (detached) loss."""
        raise NotImplementedError

    def descend(self, loss_of: Callable[[Any], Tensor], batch: Any, rows: int, total: int) -> Tensor:
        """A step of `self.optimizer` on the mean loss `loss_of(batch)`; returns the loss (detached). Under
        data-parallel training `batch` is this rank's `rows` of the `total` rows (episodes or samples) of the
        meta-batch: the gradients are averaged over the ranks, weighted by their rows, and the loss returned
        is the mean over all of them."""
        self.optimizer.zero_grad(set_to_none=True)
        if rows:  # a rank's share of a meta-batch smaller than the world is empty
            loss = loss_of(batch)
            loss.backward()
        else:
            loss = torch.zeros((), device=next(self.model.parameters()).device)
        if distributed.active():
            distributed.average_gradients([p for g in self.optimizer.param_groups for p in g["params"]], rows)
        self.optimizer.step()
        return global_mean(loss.detach(), rows, total)

    def predict(self, episodes: Episodes, steps: int) -> Tensor:
        """Outputs on each query set after adapting to its support set, shape (B, Q, outputs)."""
        raise NotImplementedError

    def draw(self) -> Any:
        """The next meta-training batch: `meta_batch` episodes of `tasks.train` on the model's device."""
        device = next(self.model.parameters()).device
        return self.tasks.train.sample(getattr(self, "meta_batch", 1)).to(device)

    def meta_train(self, iterations: int, progress: bool = False, label: str = "", valid: Episodes | None = None,
                   every: int = 100, steps: int = 10) -> list[float]:
        """`iterations` outer steps on batches drawn from `tasks.train`; returns the loss of each step.

        Model selection (early stopping) with `valid`, a fixed set of validation episodes: before
        meta-training, every `every` iterations and at the end, the mean query loss (cross-entropy;
        regression: MSE) and accuracy on `valid` after `steps` adaptation steps are measured, and the
        meta-parameters of the lowest loss (the latest of equals) are restored at the end. The loss, not
        the accuracy, because validation accuracy saturates (at 100% on easy splits) and then cannot
        tell iterations apart. `self.selection` records the curve, (iteration, accuracy or minus the
        MSE, loss) triples, and the iteration kept."""
        self.model.train()
        distributed.broadcast([*self.model.parameters(), *self.model.buffers()])  # one start on every rank
        device = next(self.model.parameters()).device
        losses = torch.zeros(iterations, device=device)  # read back once, at the end
        valid = valid.to(device) if valid is not None else None
        best: tuple[float, int, dict[str, Tensor]] | None = None
        curve: list[tuple[int, float, float]] = []
        bar = tqdm(range(iterations + 1), disable=not progress, file=sys.stderr, desc=label, leave=False,
                   dynamic_ncols=True)
        for i in bar:
            if valid is not None and (i % every == 0 or i == iterations):
                score, loss = self.score(valid, steps)
                curve.append((i, score, loss))
                if best is None or loss <= best[0]:
                    best = (loss, i, {k: v.detach().clone() for k, v in self.model.state_dict().items()})
            if i == iterations:
                break
            self.progress = i / iterations
            losses[i] = self.meta_step(self.draw())
            if progress and i % 50 == 0:
                bar.set_postfix(loss=f"{float(losses[max(i - 49, 0): i + 1].mean()):.3f}")
        if not torch.isfinite(losses).all():
            raise TrainingError(f"{self.name}: the meta-training loss became non-finite: lower the learning rates "
                                "(`meta_lr`, `inner_lr`)")
        if best is not None and valid is not None:
            self.model.load_state_dict(best[2])
            self.selection = {"kept": best[1], "every": every, "steps": steps, "tasks": len(valid[0]),
                              "curve": curve}
        return losses.tolist()

    def score(self, episodes: Episodes, steps: int) -> tuple[float, float]:
        """Mean query accuracy on `episodes` (regression: minus the MSE) after `steps` adaptation steps,
        and the mean query loss (cross-entropy; regression: the MSE)."""
        was_training = self.model.training
        metric, loss = per_task(self, episodes, steps, 50)
        self.model.train(was_training)
        return float(metric.mean()) * (-1 if self.tasks.kind == "regression" else 1), float(loss.mean())

    def options(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if isinstance(v, (int, float, bool)) and k != "progress"}


def per_task(learner: MetaLearner, episodes: Episodes, steps: int, batch: int) -> tuple[Tensor, Tensor]:
    """The query accuracy (regression: MSE) and loss of each episode after `steps` adaptation steps, in
    eval mode, `batch` episodes at a time; on the CPU. Under data-parallel training each rank adapts to its
    share of the episodes and every rank gets the results of all of them."""
    learner.model.eval()
    device = next(learner.model.parameters()).device
    metric, loss = [], []
    mine = shard(episodes)
    with torch.no_grad():  # torch.func.grad inside `predict` still computes its gradients
        for i in range(0, len(mine.yq), batch):
            ep = Episodes(*(t[i:i + batch] for t in mine)).to(device)
            out = learner.predict(ep, steps)
            if learner.tasks.kind == "regression":
                metric.append((out - ep.yq).pow(2).flatten(1).mean(1).cpu())
                loss.append(metric[-1])
            else:
                metric.append((out.argmax(-1) == ep.yq).float().mean(1).cpu())
                loss.append(F.cross_entropy(out.flatten(0, 1), ep.yq.flatten(), reduction="none")
                            .view_as(ep.yq).mean(1).cpu())
    if not distributed.active():
        return torch.cat(metric), torch.cat(loss)
    both = torch.stack([torch.cat(metric), torch.cat(loss)], 1) if metric else torch.zeros(0, 2)
    both = distributed.all_gather_rows(both.to(device)).cpu()  # on the device: NCCL gathers CUDA tensors
    return both[:, 0], both[:, 1]


def meta_test_episodes(tasks: TaskSet, n: int) -> tuple[Episodes, Tensor | None]:
    """`n` meta-test episodes of `tasks`, and the data-set classes of each, (n, N) (None for regression).
    Drawn once and passed to `evaluate` for every step count and method, the comparisons are paired."""
    if hasattr(tasks.test, "sample_with_classes"):
        return tasks.test.sample_with_classes(n)
    return tasks.test.sample(n), None


def evaluate(learner: MetaLearner, steps: int, n_tasks: int = 600, batch: int = 100, episodes: Episodes | None = None,
             classes: Tensor | None = None) -> dict[str, Any]:
    """Mean query accuracy (classification) or MSE (regression) over meta-test `episodes` (default:
    `n_tasks` drawn by `meta_test_episodes`), each after `steps` adaptation steps, with the 95% confidence
    interval of the mean (1.96 standard errors over tasks). With the episodes' `classes` (as
    `meta_test_episodes` gives them), `by_classes` holds the mean per class subset ("6,8": 0.93, ...):
    how much the accuracy depends on which classes a task has, beyond sample noise."""
    if episodes is None:
        episodes, classes = meta_test_episodes(learner.tasks, n_tasks)
    v = per_task(learner, episodes, steps, batch)[0].double()
    std = float(v.std()) if len(v) > 1 else 0.0
    result: dict[str, Any] = {"mean": float(v.mean()), "std": std, "ci95": 1.96 * std / math.sqrt(len(v)),
                              "tasks": len(v)}
    if classes is not None:
        by: dict[str, list[float]] = {}
        for c, value in zip(classes.sort(1).values.tolist(), v.tolist()):
            by.setdefault(",".join(map(str, c)), []).append(value)
        result["by_classes"] = {k: sum(a) / len(a) for k, a in sorted(by.items())}
    return result


def adapt_and_predict(learner: MetaLearner, params: Params, episodes: Episodes, steps: int, lr: float) -> Tensor:
    """`inner_loop` on each support set from `params` (first order: nothing flows back), then the
    query outputs; vectorised over the episodes."""
    model, loss = learner.model, learner.loss

    def one(p: Params, xs: Tensor, ys: Tensor, xq: Tensor) -> Tensor:
        return functional_call(model, inner_loop(model, p, xs, ys, loss, steps, lr, True), (xq,))

    fixed = {k: v.detach() for k, v in params.items()}
    return vmap(one, in_dims=(None, 0, 0, 0))(fixed, episodes.xs, episodes.ys, episodes.xq)
