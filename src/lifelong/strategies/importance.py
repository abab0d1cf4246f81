"""Per-sample gradient statistics for importance weights (EWC's Fisher, MAS's sensitivity).

`grad_stats` returns, for every trainable parameter θ, sum_n w_n s(∂ℓ_n/∂θ) where ℓ_n is a
per-sample scalar and s is the square (Fisher) or the absolute value (MAS). The statistic of the
*per-sample* gradient is taken, never that of the batch gradient (a known mistake: squaring the
gradient of a mean loss underestimates the Fisher by about the batch size). The model is put in
eval mode, so BatchNorm running statistics are untouched and dropout is off.

Two exact ways to compute it, checked against each other in the tests:
- "layers": for Linear layers the per-sample weight gradient is g_n a_n^T (output gradient times
  input), so sum_n s(g_n a_n^T) = s(g)^T s(a), one matrix product after one backward pass. For
  convolutions the per-sample gradient is formed from unfolded inputs (sum over positions) in chunks.
- "vmap": `torch.func.vmap(grad(...))` over samples, in chunks that bound memory; works for any model.
"auto" takes "layers" when every trainable parameter belongs to a Linear/Conv1d/Conv2d layer, and
"vmap" for a chunk where some such layer does not run exactly once. GEM shares the layer identity's
hooks and backward pass (`layer_grads`, `positions`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

# per-sample scalar objective: (logits (B, C), labels (B,), task ids (B,)) -> (B,)
Objective = Callable[[Tensor, Tensor, Tensor], Tensor]
STATS: dict[str, Callable[[Tensor], Tensor]] = {"square": torch.square, "abs": torch.abs}


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the duration (BatchNorm statistics frozen, dropout off), then the old mode."""
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


Layer = nn.Linear | nn.Conv1d | nn.Conv2d  # the layers whose gradients the layer identity computes


def identity_layers(model: nn.Module) -> list[Layer] | None:
    """The layers holding every trainable parameter, if all are supported by the layer identity."""
    layers: list[Layer] = []
    for module in model.modules():
        mine = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if not mine:
            continue
        if not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            return None
        if isinstance(module, (nn.Conv1d, nn.Conv2d)) and (module.groups != 1 or module.padding_mode != "zeros"
                                                           or isinstance(module.padding, str)):
            return None
        layers.append(module)
    return layers


def layer_grads(model: nn.Module, layers: list[Layer], x: Tensor,
                loss: Callable[[Tensor], Tensor]) -> list[tuple[Tensor, Tensor]] | None:
    """One forward pass of `model` on `x` with each layer's input captured, and one backward pass of the
    scalar `loss(model(x))` to the layers' outputs (not to the parameters): (input, output gradient) per
    layer, or None if a layer did not run exactly once (its gradient is then not one input's)."""
    inputs: dict[nn.Module, Tensor] = {}
    outputs: dict[nn.Module, Tensor] = {}
    calls: dict[nn.Module, int] = dict.fromkeys(layers, 0)

    def hook(module: nn.Module, args: tuple[Tensor, ...], result: Tensor) -> None:
        inputs[module], outputs[module] = args[0].detach(), result
        calls[module] += 1

    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        total = loss(model(x))
    finally:
        for h in handles:
            h.remove()
    if any(n != 1 for n in calls.values()):
        return None
    grads = torch.autograd.grad(total, [outputs[m] for m in layers], allow_unused=True)
    return [(inputs[m], torch.zeros_like(outputs[m]) if g is None else g) for m, g in zip(layers, grads)]


def positions(module: Layer, a: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """A layer's input `a` and output gradient `g` as (B, P, fan_in) and (B, P, out), P positions per
    sample (1 for a Linear layer on (B, in)): sample n's gradient of the weight, viewed as (out, fan_in),
    is sum_p g[n, p]^T a[n, p] and of the bias sum_p g[n, p]. Convolutions' inputs are unfolded."""
    if isinstance(module, nn.Linear):
        return a.reshape(len(a), -1, a.shape[-1]), g.reshape(len(g), -1, g.shape[-1])
    assert not isinstance(module.padding, str)  # `identity_layers` takes no layer with "same"/"valid" padding
    if isinstance(module, nn.Conv1d):
        a, g = a.unsqueeze(2), g.unsqueeze(2)
        k, s, p, d = (1, *module.kernel_size), (1, *module.stride), (0, *module.padding), (1, *module.dilation)
    else:
        k, s, p, d = module.kernel_size, module.stride, module.padding, module.dilation
    cols = F.unfold(a, k, dilation=d, padding=p, stride=s)  # (B, in*k, P)
    return cols.transpose(1, 2), g.flatten(2).transpose(1, 2)


def _layer_stats(model: nn.Module, layers: list[Layer], x: Tensor, y: Tensor, t: Tensor,
                 objective: Objective, stat: str, weights: Tensor | None, out: dict[str, Tensor],
                 names: dict[int, str]) -> bool:
    """Add each layer's statistic to `out`; False (nothing added) where `layer_grads` cannot be used."""
    captured = layer_grads(model, layers, x, lambda logits: objective(logits, y, t).sum())
    if captured is None:
        return False
    s = STATS[stat]
    for m, (a, g) in zip(layers, captured):
        if isinstance(m, nn.Linear) and a.ndim == 2:
            sg = s(g) if weights is None else s(g) * weights[:, None]
            w_stat, b_stat = sg.T @ s(a), sg.sum(0)
        else:
            a, g = positions(m, a, g)
            per_w, per_b = torch.bmm(g.transpose(1, 2), a).view(len(a), *m.weight.shape), g.sum(1)
            wv = None if weights is None else weights.view(-1, *[1] * (per_w.ndim - 1))
            w_stat = (s(per_w) if wv is None else s(per_w) * wv).sum(0)
            b_stat = (s(per_b) if weights is None else s(per_b) * weights[:, None]).sum(0)
        out[names[id(m.weight)]] += w_stat
        if m.bias is not None and m.bias.requires_grad:
            out[names[id(m.bias)]] += b_stat
    return True


def _vmap_stats(model: nn.Module, x: Tensor, y: Tensor, t: Tensor, objective: Objective, stat: str,
                weights: Tensor | None, out: dict[str, Tensor]) -> None:
    trainable = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    fixed = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    fixed.update(dict(model.named_buffers()))

    def one(params: dict[str, Tensor], xi: Tensor, yi: Tensor, ti: Tensor) -> Tensor:
        logits = functional_call(model, (params, fixed), (xi.unsqueeze(0),))
        return objective(logits, yi.unsqueeze(0), ti.unsqueeze(0)).sum()

    per_sample = vmap(grad(one), in_dims=(None, 0, 0, 0))(trainable, x, y, t)
    s = STATS[stat]
    for name, g in per_sample.items():
        v = s(g) if weights is None else s(g) * weights.view(-1, *[1] * (g.ndim - 1))
        out[name] += v.sum(0)


def grad_stats(model: nn.Module, x: Tensor, y: Tensor, t: Tensor, objective: Objective, stat: str = "square",
               weights: Tensor | None = None, method: str = "auto", chunk: int = 1024) -> dict[str, Tensor]:
    """sum_n w_n s(∂ℓ_n/∂θ) for every trainable parameter (by name), with ℓ = objective(...)."""
    if stat not in STATS:
        raise ValueError(f"stat must be one of {list(STATS)}")
    layers = identity_layers(model) if method in ("auto", "layers") else None
    if method == "layers" and layers is None:
        raise ValueError("the layer identity needs every trainable parameter in a Linear/Conv1d/Conv2d layer")
    if method not in ("auto", "layers", "vmap"):
        raise ValueError(f"method must be auto, layers or vmap, got {method!r}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    out = {n: torch.zeros_like(p) for n, p in named}
    names = {id(p): n for n, p in named}
    chunk = chunk if layers is not None else max(1, chunk // 8)  # vmap holds B copies of the gradient
    with eval_mode(model):
        for i in range(0, len(x), chunk):
            sl = slice(i, i + chunk)
            w = None if weights is None else weights[sl]
            if layers is None or not _layer_stats(model, layers, x[sl], y[sl], t[sl], objective, stat, w, out, names):
                try:
                    _vmap_stats(model, x[sl], y[sl], t[sl], objective, stat, w, out)
                except RuntimeError as err:  # vmap refuses data-dependent control flow (e.g. transformers' masks)
                    if "vmap" not in str(err):
                        raise
                    _loop_stats(model, x[sl], y[sl], t[sl], objective, stat, w, out)
    return out


def _loop_stats(model: nn.Module, x: Tensor, y: Tensor, t: Tensor, objective: Objective, stat: str,
                weights: Tensor | None, out: dict[str, Tensor]) -> None:
    """`_vmap_stats` by one backward pass per sample, for models that torch.func cannot batch (slower, the
    same sums up to rounding)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    s = STATS[stat]
    with torch.enable_grad():
        for i in range(len(x)):
            loss = objective(model(x[i : i + 1]), y[i : i + 1], t[i : i + 1]).sum()
            for (name, _), g in zip(named, torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)):
                if g is not None:
                    out[name] += s(g) if weights is None else s(g) * weights[i]


def fisher_sums(model: nn.Module, x: Tensor, y: Tensor, t: Tensor, mask: Callable[[Tensor, Tensor], Tensor],
                kind: str = "empirical", method: str = "auto", chunk: int = 1024) -> dict[str, Tensor]:
    """The per-sample squared gradients of the log-likelihood summed over the samples (`fisher_diagonal`
    without the division by their number): sums over shards of the samples add up to the whole's."""
    def nll(logits: Tensor, labels: Tensor, tasks: Tensor) -> Tensor:
        return F.cross_entropy(mask(logits, tasks), labels, reduction="none")

    if kind == "empirical":
        return grad_stats(model, x, y, t, nll, "square", method=method, chunk=chunk)
    if kind != "expected":
        raise ValueError(f"fisher must be 'empirical' or 'expected', got {kind!r}")
    with torch.no_grad(), eval_mode(model):
        probs = torch.cat([torch.softmax(mask(model(x[i : i + chunk]), t[i : i + chunk]), 1)
                           for i in range(0, max(len(x), 1), chunk)])  # (one empty batch for no samples)
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
    for c in (probs.sum(0) > 0).nonzero().flatten().tolist():
        part = grad_stats(model, x, torch.full_like(y, c), t, nll, "square", weights=probs[:, c],
                          method=method, chunk=chunk)
        total = {k: total[k] + v for k, v in part.items()}
    return total


def fisher_diagonal(model: nn.Module, x: Tensor, y: Tensor, t: Tensor, mask: Callable[[Tensor, Tensor], Tensor],
                    kind: str = "empirical", method: str = "auto", chunk: int = 1024) -> dict[str, Tensor]:
    """Diagonal Fisher information, the mean over samples of per-sample squared gradients of the
    log-likelihood: F = (1/N) sum_n (∂ log p(y_n | x_n) / ∂θ)^2.

    kind="empirical" takes y_n = the true label; kind="expected" takes the exact expectation over the
    model's predictive distribution, sum_c p(c | x_n) (∂ log p(c | x_n) / ∂θ)^2 (one pass per class
    with non-zero probability). `mask` applies the scenario's output mask (task-incremental heads).
    """
    total = fisher_sums(model, x, y, t, mask, kind, method, chunk)
    return {k: v / len(x) for k, v in total.items()}
