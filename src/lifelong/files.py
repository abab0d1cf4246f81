"""Atomic file writes (a reader sees the old file or the complete new one, never half of one), a
folder held by one process at a time, and reading a YAML file with a one-line error."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, FolderBusy, StorageError

try:
    import fcntl
except ImportError:  # Windows: folders are not locked
    fcntl = None  # type: ignore[assignment]


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed YAML file at `path`; a missing or malformed file is a ConfigError naming `what`
    ("config file", "suite file")."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {path} is not valid YAML: {str(err).splitlines()[0]}") from None


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
