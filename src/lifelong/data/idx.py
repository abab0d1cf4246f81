"""Reader for the IDX format used by MNIST and Fashion-MNIST (gzip-compressed or raw).

Layout: two zero bytes, a dtype code, the number of dimensions, one big-endian uint32 per
dimension, then the values in big-endian order. Every field is checked so that a truncated or
corrupt file fails with a message naming it instead of producing garbage tensors.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file into a numpy array in native byte order."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read IDX file {path}: {err.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"corrupt gzip data in IDX file {path} ({err}): delete it and reinstall it") from None
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file; `name` is used in error messages."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{name} is not an IDX file (bad magic number): delete it and reinstall it")
    code, ndim = raw[2], raw[3]
    if code not in _DTYPES:
        raise DataError(f"{name}: unknown IDX dtype code 0x{code:02x}; the file is corrupt")
    if ndim == 0:
        raise DataError(f"{name}: IDX header declares 0 dimensions; the file is corrupt")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name} is truncated (header cut short): delete it and reinstall it")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    body = len(raw) - header
    if body != expected:
        what = "truncated" if body < expected else "longer than its header says"
        raise DataError(
            f"{name} is {what}: header {dims} needs {expected} bytes of data, found {body}; "
            "delete it and reinstall it"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))
