"""Prototypical networks.

Snell, Swersky & Zemel 2017, "Prototypical Networks for Few-shot Learning" (NeurIPS), Eqs. 1-2: an
embedding f_phi maps each support sample; the prototype of class k is the mean embedding of its
support samples, c_k = (1/|S_k|) sum_{x in S_k} f_phi(x) (Eq. 1), and a query x is classified by a
softmax over negative squared Euclidean distances, p(y = k | x) ∝ exp(-||f_phi(x) - c_k||^2) (Eq. 2).
Meta-training minimises the query cross-entropy with Adam; no adaptation steps at test (steps is 0).
Support and query samples are embedded in one forward pass, as in the paper's code, so a BatchNorm
in the embedding normalises them with the statistics of the whole episode; embedded apart, the
prototypes would be normalised by the support set's own statistics (at 1 shot, those of N samples)
and the queries by others, which shifts the one against the other.

The embedding is the model's pre-logits (`models.pre_logits`: the classifier's input, pooled features
for a ResNet or a timm model), not its logits; a module without timm's contract is the embedding itself.
Hyper-parameters: `meta_lr` 1e-3 (Adam, as in the paper), `meta_batch` episodes per step (the paper
uses 1 episode of more ways; 4 here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import vmap

from ..data.episodes import Episodes
from ..models import CONTRACT, pre_logits
from .base import MetaLearner, check_positive, shard
from .tasks import TaskSet


class ProtoNet(MetaLearner):
    """Nearest class mean in a learned embedding."""

    name = "protonet"
    summary = "prototypical networks: nearest class mean in a learned embedding (Snell et al. 2017)"
    classification_only = True

    def __init__(self, model: nn.Module, tasks: TaskSet, meta_lr: float = 1e-3, meta_batch: int = 4) -> None:
        check_positive(self.name, ("meta_batch",), meta_lr=meta_lr, meta_batch=meta_batch)
        super().__init__(model, tasks)
        self.meta_lr, self.meta_batch, self.ways = meta_lr, meta_batch, tasks.n_outputs
        self.optimizer = torch.optim.Adam(model.parameters(), lr=meta_lr)

    def embed(self, x: Tensor) -> Tensor:
        """f_phi(x): the model's pre-logits, or its output where it does not follow timm's contract."""
        return pre_logits(self.model, x) if all(hasattr(self.model, n) for n in CONTRACT) else self.model(x)

    def logits(self, episodes: Episodes) -> Tensor:
        """-||f(x_q) - c_k||^2 for every query and class, shape (B, Q, N)."""

        def one(xs: Tensor, ys: Tensor, xq: Tensor) -> Tensor:
            f = self.embed(torch.cat([xs, xq]))  # one forward: one set of BatchNorm statistics per episode
            onehot = F.one_hot(ys, self.ways).to(f.dtype)  # (S, N)
            protos = (onehot.T @ f[: len(xs)]) / onehot.sum(0).unsqueeze(1)  # Eq. 1
            return -(f[len(xs) :].unsqueeze(1) - protos.unsqueeze(0)).pow(2).sum(-1)  # Eq. 2's logits

        return vmap(one)(episodes.xs, episodes.ys, episodes.xq)

    def meta_step(self, episodes: Episodes) -> Tensor:
        mine = shard(episodes)
        return self.descend(self.query_loss, mine, len(mine.yq), len(episodes.yq))

    def query_loss(self, episodes: Episodes) -> Tensor:
        """The mean query cross-entropy of the episodes (every episode has as many queries)."""
        return F.cross_entropy(self.logits(episodes).flatten(0, 1), episodes.yq.flatten())

    def predict(self, episodes: Episodes, steps: int) -> Tensor:
        return self.logits(episodes)
