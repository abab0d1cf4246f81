"""IDX reader: exact round trips of hand-built files, and a DataError naming the file for every corruption."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from lifelong.data import parse_idx, read_idx
from lifelong.errors import DataError

CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
         np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(a: np.ndarray) -> bytes:
    """The IDX encoding of `a`, written field by field as the format describes."""
    header = struct.pack(">BBBB", 0, 0, CODES[a.dtype], a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


UBYTE_3D = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10  # values up to 230
INT32_1D = np.array([0, 1, -1, 2**31 - 1, -(2**31), 123456789], dtype=np.int32)


def test_header_is_built_as_documented():
    raw = idx_bytes(UBYTE_3D)
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert raw[4:16] == b"\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04"
    assert len(raw) == 16 + 24


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("array", [UBYTE_3D, INT32_1D], ids=["ubyte-3d", "int32-1d"])
def test_read_round_trip(tmp_path, array, compress):
    raw = idx_bytes(array)
    path = tmp_path / ("data.idx.gz" if compress else "data.idx")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    out = read_idx(path)
    assert out.shape == array.shape
    assert out.dtype == array.dtype  # same kind and width, native byte order
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    # the values survive arithmetic (a big-endian view would also compare equal but is not native)
    assert int(out.astype(np.int64).sum()) == int(array.astype(np.int64).sum())


def test_read_accepts_str_path(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(INT32_1D))
    np.testing.assert_array_equal(read_idx(str(path)), INT32_1D)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.float32, np.float64])
def test_other_dtypes(dtype):
    a = (np.arange(12).reshape(3, 4) - 5).astype(dtype)
    out = parse_idx(idx_bytes(a))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, a)


def _good() -> bytes:
    return idx_bytes(UBYTE_3D)


CORRUPTIONS = {
    "bad-magic": (lambda: b"\x01\x00" + _good()[2:], "magic"),
    "bad-magic-second-byte": (lambda: b"\x00\x07" + _good()[2:], "magic"),
    "empty-file": (lambda: b"", "magic"),
    "three-bytes": (lambda: b"\x00\x00\x08", "magic"),
    "unknown-dtype": (lambda: _good()[:2] + b"\x07" + _good()[3:], "dtype"),
    "zero-dims": (lambda: b"\x00\x00\x08\x00", "0 dimensions"),
    "header-cut-short": (lambda: _good()[:10], "header cut short"),
    "truncated-body": (lambda: _good()[:-1], "truncated"),
    "extra-trailing-bytes": (lambda: _good() + b"\x00\x00", "longer"),
}


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupt_content_raises_data_error_naming_file(tmp_path, case, compress):
    make, words = CORRUPTIONS[case]
    raw = make()
    path = tmp_path / f"{case}.idx{'.gz' if compress else ''}"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert words in str(info.value)


def test_truncated_body_message_gives_sizes():
    with pytest.raises(DataError, match=r"needs 24 bytes of data, found 23"):
        parse_idx(_good()[:-1], "name")


def _gzipped_payload() -> bytes:
    # random bytes: deflate stores them as they are, so a flipped byte reaches the CRC check
    rng = np.random.default_rng(0)
    return idx_bytes(rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8))


@pytest.mark.parametrize("payload", ["random", "compressible"])
@pytest.mark.parametrize("damage", ["flip-middle", "truncate", "trailing-garbage", "header-only"])
def test_corrupt_gzip_raises_data_error_naming_file(tmp_path, payload, damage):
    raw = _gzipped_payload() if payload == "random" else idx_bytes(np.zeros((50, 28, 28), np.uint8))
    gz = bytearray(gzip.compress(raw))
    mid = len(gz) // 2
    if damage == "flip-middle":
        gz[mid : mid + 4] = bytes(b ^ 0xFF for b in gz[mid : mid + 4])
    elif damage == "truncate":
        gz = gz[:mid]
    elif damage == "trailing-garbage":
        gz += b"not gzip"
    else:
        gz = gz[:10]
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(bytes(gz))
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file_raises_data_error_naming_it(tmp_path):
    path = tmp_path / "nope" / "train-images-idx3-ubyte"
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(DataError) as info:
        read_idx(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_parse_idx_names_what_it_was_given():
    with pytest.raises(DataError, match="my-buffer"):
        parse_idx(b"\x00\x00\x08\x01\x00\x00\x00\x05abc", "my-buffer")
