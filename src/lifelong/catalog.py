"""What the command line needs before it runs anything: each command's options and the `lifelong list`
tables, as JSON, so that `lifelong --help`, `list`, `report` and a mistyped option answer without
importing PyTorch (which takes seconds).

It is a cache of the live registries and config classes (`cli.live_catalog`), keyed by a digest of the
library's version and source files, so that an edited strategy or config shows at once: a missing,
stale or unreadable entry is rebuilt (importing everything, once) and written atomically under
$XDG_CACHE_HOME/lifelong (default ~/.cache/lifelong), replacing the entries of earlier sources; where
that cannot be written, each start rebuilds it. Only names and strings come from the file: argparse
types are looked up by name in `configs.PARSERS`, never imported from it."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__
from .files import atomic_write_json, cache_dir

ROOT = Path(__file__).parent
KEYS = ("digest", "commands", "strategies", "lists")


def source_digest() -> str:
    """SHA-256 of the library's version and of every source file under the package (name and bytes)."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(ROOT.rglob("*.py")):
        digest.update(f"\0{path.relative_to(ROOT).as_posix()}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_file(digest: str) -> Path:
    """The cache's file for sources of `digest`."""
    return cache_dir() / f"catalog-{digest[:24]}.json"


def load(build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The catalog of these sources: read from the cache, or `build()` and cached."""
    digest = source_digest()
    path = cache_file(digest)
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("digest") == digest and all(k in data for k in KEYS):
            return data
    data = json.loads(json.dumps({"digest": digest, **build()}))  # lists as a cached catalog reads them
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, data)
        for old in path.parent.glob("catalog-*.json"):  # of earlier sources: one file, not one per edit
            if old != path:
                old.unlink(missing_ok=True)
    return data
