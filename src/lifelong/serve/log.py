"""The write-ahead log of a served learner: every accepted batch, in order, in SQLite (`DIR/log.sqlite`).

A batch is committed (journal_mode=WAL, synchronous=FULL: on disk, a power cut included, once `append`
returns) before the service answers the request that brought it, so that nothing acknowledged is lost:
the learner consumes the log in sequence order, and after a crash a restart replays what it had not
yet checkpointed. Inputs are kept as little-endian float32 (exactly what the learner is given), labels
as little-endian int64. The log is never shortened: it is the learner's whole history, which
`lifelong serve --replay-log DIR` learns again offline.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import StorageError

LOG_FILE = "log.sqlite"
VERSION = 1  # PRAGMA user_version of the schema below
X_DTYPE, Y_DTYPE = np.dtype("<f4"), np.dtype("<i8")
SCHEMA = """CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order in which the learner takes them, from 1
    rows INTEGER NOT NULL,
    x BLOB NOT NULL,                        -- rows x the input shape, little-endian float32
    y BLOB NOT NULL,                        -- rows labels, little-endian int64
    received REAL NOT NULL                  -- Unix time of the commit
)"""


@dataclass(frozen=True)
class Batch:
    seq: int
    x: np.ndarray  # float32, (rows, *input shape)
    y: np.ndarray  # int64, (rows,)


class Log:
    """The log in `folder`, opened (and made, if new) by this thread; `append` may be called from any
    thread (one at a time, under the log's lock), the rest from the thread that opened it or under the lock.
    With `read_only` (`--replay-log`), nothing is written to the folder: no schema, no pragma, no file made
    (the database is read as immutable when no write-ahead file holds batches not yet checkpointed into it,
    else SQLite's read-only mode, which reads that file)."""

    def __init__(self, folder: Path, read_only: bool = False) -> None:
        self.path = folder / LOG_FILE
        try:
            if read_only:
                self.db = self._open_read_only()
            else:
                folder.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, VERSION) or (read_only and version != VERSION):
                raise StorageError(f"{self.path} is a log of schema {version}, this lifelong reads {VERSION}: "
                                   "use the lifelong that wrote it")
            if not read_only:
                self.db.execute(SCHEMA)
                self.db.execute(f"PRAGMA user_version={VERSION}")
            self.last, self.samples = self.db.execute("SELECT COALESCE(MAX(seq), 0), COALESCE(SUM(rows), 0) "
                                                      "FROM batches").fetchone()
        except sqlite3.Error as err:
            raise StorageError(f"cannot open the log {self.path}: {err}") from None
        self.lock = threading.Lock()

    def _open_read_only(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise StorageError(f"there is no log {self.path}: give the `state` folder of a lifelong serve")
        wal = self.path.with_name(self.path.name + "-wal")
        mode = "mode=ro" if wal.exists() and wal.stat().st_size > 0 else "immutable=1"
        uri = f"{self.path.resolve().as_uri()}?{mode}"
        return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30)

    def append(self, x: np.ndarray, y: np.ndarray) -> int:
        """Commit one batch (float32 inputs, int64 labels) durably; returns its sequence number."""
        with self.lock:
            try:
                cursor = self.db.execute("INSERT INTO batches (rows, x, y, received) VALUES (?, ?, ?, ?)", (
                    len(y), x.astype(X_DTYPE, copy=False).tobytes(), y.astype(Y_DTYPE, copy=False).tobytes(),
                    time.time()))
            except sqlite3.Error as err:
                raise StorageError(f"cannot write to the log {self.path}: {err}") from None
            seq = cursor.lastrowid
            assert seq is not None
            self.last, self.samples = seq, self.samples + len(y)
            return seq

    def read(self, after: int, shape: tuple[int, ...], limit: int = 64) -> list[Batch]:
        """Up to `limit` batches after sequence number `after`, in order; inputs of `shape`."""
        rows = self.db.execute("SELECT seq, rows, x, y FROM batches WHERE seq > ? ORDER BY seq LIMIT ?",
                               (after, limit)).fetchall()
        return [Batch(seq, np.frombuffer(x, X_DTYPE).reshape(n, *shape), np.frombuffer(y, Y_DTYPE))
                for seq, n, x, y in rows]

    def close(self) -> None:
        self.db.close()
