"""The arrays of a request, checked before anything is logged or learnt: a request refused here (`Refused`:
an HTTP status and a one-line reason) changes nothing.

A body is JSON (`{"x": [[...], ...], "y": [...]}`: numbers only, no NaN or Infinity) or NumPy's own
format: an `.npz` archive with arrays `x` and `y` (`numpy.savez`), or, where no labels are wanted
(`/predict`), a bare `.npy` of `x`; both read with `allow_pickle=False`, an archive's members no larger
in all than the body limit. Inputs must be floats or integers (no bool, complex, text or objects),
finite as float32; labels integers from 0 to the number of classes - 1.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

JSON_TYPES = ("application/json",)
NUMPY_TYPES = ("application/octet-stream", "application/x-npy", "application/x-npz")
MAX_CLASSES = 100_000  # the most classes the first batch may set (a larger learner is started with `classes`)


class Refused(Exception):
    """A request refused: `status` (400, 413, 415, 422; 503 from the service), the one-line `reason` and
    any `headers` of the answer (Retry-After)."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers


def parse(body: bytes, content_type: str, labelled: bool, max_bytes: int) -> tuple[Any, Any]:
    """The body's `x` and `y` (None unless `labelled`), as they came (lists, or arrays from NumPy files)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in JSON_TYPES:
        return _from_json(body, labelled)
    if kind in NUMPY_TYPES:
        return _from_numpy(body, labelled, max_bytes)
    raise Refused(415, f"unsupported Content-Type {kind or '(none)'!r}: send application/json or an .npz/.npy "
                       "file as application/octet-stream")


def _refuse_constant(name: str) -> None:
    raise Refused(422, f"the body holds {name}: send finite numbers")


def _from_json(body: bytes, labelled: bool) -> tuple[Any, Any]:
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as err:
        raise Refused(400, f"the body is not valid JSON: {str(err).splitlines()[0]}") from None
    wanted = ("x", "y") if labelled else ("x",)
    if not isinstance(data, dict):
        raise Refused(422, f"the body must be a JSON object with {' and '.join(wanted)}")
    unknown = sorted(set(data) - set(wanted))
    if unknown:
        raise Refused(422, f"unknown field {unknown[0]!r}: the body holds {' and '.join(wanted)} only")
    for name in wanted:
        if name not in data:
            raise Refused(422, f"the body has no {name!r}")
    return data["x"], data.get("y")


def _from_numpy(body: bytes, labelled: bool, max_bytes: int) -> tuple[Any, Any]:
    try:
        if body[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                if sum(i.file_size for i in archive.infolist()) > max_bytes:
                    raise Refused(413, f"the .npz archive unpacks to more than {max_bytes} bytes")
            with np.load(io.BytesIO(body), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        elif body[:6] == b"\x93NUMPY":
            arrays = {"x": np.load(io.BytesIO(body), allow_pickle=False)}
        else:
            raise Refused(400, "the body is neither an .npz archive nor an .npy file")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise Refused(400, f"the body is not a readable .npy/.npz file: {str(err).splitlines()[0]}") from None
    wanted = ("x", "y") if labelled else ("x",)
    unknown = sorted(set(arrays) - set(wanted))
    if unknown:
        raise Refused(422, f"unknown array {unknown[0]!r}: the file holds {' and '.join(wanted)} only")
    for name in wanted:
        if name not in arrays:
            raise Refused(422, f"the file has no array {name!r}" + (" (a bare .npy holds x only: send an .npz with x "
                                                                     "and y)" if name == "y" else ""))
    return arrays["x"], arrays.get("y")


def _array(value: Any, name: str, kinds: str, types: tuple[type, ...], what: str) -> np.ndarray:
    """`value` (a NumPy array, or nested JSON lists) as an array whose dtype is of `kinds`; JSON values must
    be of `types` (so that true, "1" or a ragged list is refused, not converted)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in kinds:
            raise Refused(422, f"{name} has dtype {value.dtype}: send {what}")
        return value
    objects = np.array(value, dtype=object)
    found = {type(v) for v in objects.reshape(-1).tolist()}
    if not found <= set(types):
        bad = sorted(t.__name__ for t in found - set(types))[0]
        raise Refused(422, f"{name} holds a {bad.replace('NoneType', 'null')} (or is ragged): send {what} in a "
                           "rectangular array")
    try:
        return np.array(objects.tolist(), dtype=np.float64 if float in types else np.int64)
    except OverflowError:
        raise Refused(422, f"{name} holds a number too large for {what}") from None


def check(x: Any, y: Any, shape: tuple[int, ...] | None, classes: int | None,
          max_rows: int) -> tuple[np.ndarray, np.ndarray | None]:
    """`x` as float32 rows of `shape` (any shape of at least one dimension when None) and `y` (if not None)
    as int64 labels from 0 to `classes` - 1 (any label >= 0 when None), one per row."""
    xs = _array(x, "x", "fiu", (int, float), "floats or integers")
    if xs.ndim < 2 or len(xs) == 0:
        raise Refused(422, f"x has shape {list(xs.shape)}: send a non-empty list of rows (samples)")
    if len(xs) > max_rows:
        raise Refused(413, f"the batch has {len(xs)} rows, more than the limit of {max_rows}: send smaller batches")
    if shape is not None and xs.shape[1:] != shape:
        raise Refused(422, f"x has rows of shape {list(xs.shape[1:])}, this learner takes {list(shape)}")
    with np.errstate(over="ignore", invalid="ignore"):
        x32 = xs.astype(np.float32)
    finite = np.isfinite(x32).reshape(len(x32), -1).all(1)
    if not finite.all():
        raise Refused(422, f"x row {int(np.argmin(finite))} holds NaN, infinity or a number beyond float32: send "
                           "finite numbers")
    if y is None:
        return x32, None
    ys = _array(y, "y", "iu", (int,), "whole-number labels")
    if ys.shape != (len(xs),):
        raise Refused(422, f"y has shape {list(ys.shape)}: send one label per row of x ({len(xs)})")
    top = classes if classes is not None else MAX_CLASSES
    bad = (ys < 0) | (ys >= top)
    if bad.any():
        label = ys[np.argmax(bad)]
        span = f"0 to {top - 1}" if classes is not None else f"0 to {top - 1} (more need a start with --classes)"
        raise Refused(422, f"label {label} is out of range: this learner's labels run from {span}")
    return x32, ys.astype(np.int64)
