"""Atomic file writes (a reader sees the old file or the complete new one, never half of one), sealed
JSON (a digest over its canonical form, so that an edited file is told from the one written), a folder
held by one process at a time (YAML files are read by `configs.read_yaml`)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ConfigError, FolderBusy, StorageError

try:
    import fcntl
except ImportError:  # Windows: folders are not locked
    fcntl = None  # type: ignore[assignment]


def cache_dir() -> Path:
    """lifelong's cache folder: `$XDG_CACHE_HOME/lifelong`, by default ~/.cache/lifelong (where no home
    directory is known, a `lifelong-cache` folder in the system's temporary folder)."""
    try:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no home directory
        root = Path(tempfile.gettempdir()) / "lifelong-cache"
    return root / "lifelong"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync it, then rename it over `path`. A failed
    write (disk full, read-only folder) leaves `path` as it was and raises StorageError."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise StorageError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, StorageError):
            raise StorageError(f"cannot write {path}: {err.strerror or err}; it was left as it was") from None
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode())


def json_digest(obj: Any) -> str:
    """The SHA-256 of `obj` as canonical JSON: as JSON reads it back (tuples as lists, keys as strings,
    what JSON cannot hold as its `str`), keys sorted, no spaces; so the object written and the one read
    back have the same digest."""
    text = json.dumps(json.loads(json.dumps(obj, default=str)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def seal(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` with the digest of its canonical JSON (`json_digest`) added under "digest"."""
    return {**obj, "digest": json_digest(obj)}


def unsealed(info: Any) -> str | None:
    """None if `info` (a JSON object read back) holds under "digest" the digest of the rest of itself (a
    file written by `seal` and not edited since), else why not, as words to follow the file's name. This
    detects accidental and careless edits, not deliberate ones: whoever edits the file and writes the new
    digest in it defeats it."""
    if not isinstance(info, dict) or "digest" not in info:
        return "has no digest (an earlier lifelong wrote it, or it was edited)"
    if info["digest"] != json_digest({k: v for k, v in info.items() if k != "digest"}):
        return "was altered (its digest does not match its contents)"
    return None


@contextmanager
def exclusive(folder: str | Path) -> Iterator[None]:
    """Hold `folder` (which must exist) for this process until the block ends: an advisory `flock` on
    the folder itself, so no lock file is left behind and a killed process frees it at once. A second
    process asking for it gets a FolderBusy error at once instead of writing into the same run. Where
    the file system cannot lock a folder (network file systems such as NFS; Windows), the block runs
    unlocked, with a warning on file systems that refuse."""
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as err:
        raise ConfigError(f"cannot open {folder}: {err.strerror}: choose a folder this user can read and write") \
            from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(f"another lifelong process is writing to {folder}: wait for it to finish, "
                             "or write elsewhere") from None
        except OSError as err:
            warnings.warn(f"cannot lock {folder} ({err.strerror}): make sure no other lifelong process writes "
                          "there at the same time", stacklevel=3)
        yield
    finally:
        os.close(fd)
