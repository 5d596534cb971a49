"""The one place NPZ files are read and written (spec §15). Never ``allow_pickle=True``.

Reading validates the container and every member inside one guarded block, because NpzFile is lazy;
each failure becomes one line ``cannot read <kind> file "<path>": <reason>``. Writing goes to a
temporary file in the target folder, then ``os.replace``: a file is either complete or untouched.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
import warnings
import zipfile

import numpy as np

from nerva_xp.atomic_files import write_atomically
from nerva_xp.device import to_numpy
from nerva_xp.errors import describe_error

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


class DataError(RuntimeError):
    """A data file that cannot be used: the message names the file and what is wrong."""


def _read_magic(path: str, fail) -> bytes:
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block or never end
            fail("not a regular file")
        with open(path, "rb") as file:
            return file.read(6)
    except FileNotFoundError:
        fail("not found")
    except IsADirectoryError:
        fail("is a directory")
    except OSError as error:
        fail(error.strerror or str(error))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _python2_headers_read_quietly():
    """NumPy reads a header written by Python 2 (shapes like (20L, 4L)) but warns, with its own
    source lines, on stderr; the array is read correctly, so the warning is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*created on Python 2", category=UserWarning)
        yield


def _read_member(data, key: str, fail) -> np.ndarray:
    """One member's array; anything wrong with it (corrupt, truncated, encrypted, unsupported
    compression, a malformed header) is a one-line DataError, never another exception."""
    try:
        with _python2_headers_read_quietly():
            value = data[key]
    except ValueError as error:
        if "pickle" in str(error):
            fail(f'key "{key}" holds an object array; nerva-xp never unpickles')
        fail(f'member "{key}" is corrupt ({describe_error(error)})')
    except Exception as error:  # a hostile file can make NumPy or zipfile fail in many ways
        fail(f'member "{key}" is corrupt ({describe_error(error)})')
    if not isinstance(value, np.ndarray):  # NpzFile returns a member without .npy magic as bytes
        fail(f'member "{key}" is corrupt (not a .npy array)')
    return value


def _declared_shape(member):
    """(shape, dtype) from a .npy member's header, or None when it has no readable header."""
    try:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    except Exception:  # not a .npy member, or a malformed header: reading the key will say so
        return None
    return shape, dtype


def _check_member(archive, info, fail) -> None:
    key = info.filename.removesuffix(".npy")
    try:
        with archive.open(info) as member, _python2_headers_read_quietly():
            declared = _declared_shape(member)
            position = member.tell()
    except Exception as error:
        fail(f'member "{key}" is corrupt ({describe_error(error)})')
    if declared is None or declared[1].hasobject:
        return
    shape, dtype = declared
    if any(not 0 <= n < 2**63 for n in shape):
        fail(f'key "{key}" declares the impossible shape {shape}')
    available = info.file_size - position
    if math.prod(shape) * dtype.itemsize > available:
        fail(f'key "{key}" declares shape {shape} but holds {available} bytes of data')


def _check_declared_sizes(path: str, keys, fail) -> None:
    """Refuse a member (of ``keys``, or any) whose .npy header declares more data than the member
    holds, before NumPy allocates it (a damaged or hostile header could ask for terabytes)."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if keys is None or info.filename.removesuffix(".npy") in keys:
                _check_member(archive, info, fail)


def load_dict_from_npz(
    filename, required=(), kind: str = "npz", keys=None
) -> dict[str, np.ndarray]:
    """The arrays of an NPZ file, as host NumPy arrays in file order.

    Args:
        filename: the file to read.
        required: keys that must be present.
        kind: the word used in error messages (``dataset``, ``weights``, ...).
        keys: read only these keys (those present); None reads every key. Other members are
            then never opened, so whatever they hold cannot make the file fail.
    """
    wanted = None if keys is None else set(keys) | set(required)
    path = os.fspath(filename)

    def fail(reason: str):
        raise DataError(f'cannot read {kind} file "{path}": {reason}')

    if os.path.isdir(path):
        fail("is a directory")
    magic = _read_magic(path, fail)
    if magic.startswith(_NPY_MAGIC):
        fail("a .npy file was given; expected an NPZ archive")
    if not magic.startswith(_ZIP_MAGICS):
        fail("not an NPZ (zip) archive")
    try:
        with np.errstate(all="ignore"):
            _check_declared_sizes(path, wanted, fail)
            with np.load(path, allow_pickle=False) as data:
                present = list(data.files)
                for key in required:
                    if key not in present:
                        fail(f'required key "{key}" is missing')
                read = [key for key in present if wanted is None or key in wanted]
                return {key: _read_member(data, key, fail) for key in read}
    except DataError:
        raise
    except zipfile.BadZipFile as error:
        fail(f"truncated or corrupt zip archive ({describe_error(error)})")
    except Exception as error:  # a hostile file can make zipfile fail in many ways
        fail(f"not a readable NPZ archive ({describe_error(error)})")
    raise AssertionError("unreachable")


def npz_path(filename) -> str:
    """The path NumPy would write for ``filename``: ``.npz`` appended when missing."""
    path = os.fspath(filename)
    return path if path.endswith(".npz") else path + ".npz"


def save_dict_to_npz(filename, data: dict) -> str:
    """Write host or device arrays to ``filename`` atomically; returns the real path."""
    arrays = {key: to_numpy(value) for key, value in data.items()}
    return write_atomically(npz_path(filename), lambda file: np.savez_compressed(file, **arrays))


def check_weight_array(
    filename, key: str, value: np.ndarray, shape: tuple, kind: str = "weights", dtype=None
) -> np.ndarray:
    """``value`` if it is a finite numeric array of ``shape`` (a bias may also be (1, K)); with
    ``dtype``, cast to it, and then it must still be finite (1e300 overflows float32)."""

    def fail(reason: str):
        raise DataError(f'cannot read {kind} file "{filename}": key "{key}" {reason}')

    if value.dtype.kind not in "iuf":
        fail(f"holds {value.dtype} values; expected numbers")
    allowed = [shape] + ([(1, shape[0])] if re.fullmatch(r"b\d+", key) else [])
    if value.shape not in allowed:
        expected = " or ".join(shape_text(s) for s in allowed)
        fail(f"has shape {shape_text(value.shape)}; expected {expected}")
    if not np.all(np.isfinite(value)):
        fail("holds NaN or Inf values")
    if dtype is not None:
        with np.errstate(over="ignore"):
            value = value.astype(dtype, copy=False)
        if not np.all(np.isfinite(value)):
            fail(f"holds values beyond the range of {np.dtype(dtype).name}")
    return value


def shape_text(shape: tuple) -> str:
    """A shape as Python prints a tuple: ``(3,)``, ``(2, 5)``."""
    return "(" + ", ".join(str(n) for n in shape) + (",)" if len(shape) == 1 else ")")
