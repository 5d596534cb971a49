"""BLAS routines (axpy, axpby, scal, gemm) of the OpenBLAS bundled with NumPy, through ctypes.

NumPy has no in-place y ← a·x + y; with it, updates pass over memory fewer times and run on
OpenBLAS's own threads (axpby, OpenBLAS's y ← a·x + b·y, runs on one thread). NumPy's matmul
has no C ← α·A B + β·C either; with gemm, an optimizer update can be folded into the
weight-gradient product (``inplace``).
The library and its symbols are looked up once; where they are missing (another NumPy build) or
NERVA_XP_HOST_BLAS=0, ``available()`` is False and callers use their ufunc path. Arrays must be
float32 or float64 NumPy arrays: C-contiguous, except that gemm also takes transposed
(Fortran-contiguous) A and B.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os

import numpy as np

_PREFIXES = ("scipy_cblas_", "cblas_")  # NumPy >= 2 wheels rename OpenBLAS's symbols
_SUFFIXES = ("64_", "")  # ILP64 builds take 64-bit sizes
_ROW_MAJOR, _NO_TRANSPOSE, _TRANSPOSE = 101, 111, 112  # CBLAS enumerations


def _candidates() -> list[str]:
    numpy_folder = os.path.dirname(np.__file__)
    patterns = ("numpy.libs/*openblas*", ".dylibs/*openblas*", "numpy.libs/*blas*")
    found = []
    for pattern in patterns:
        found += glob.glob(os.path.join(numpy_folder, "..", pattern))
        found += glob.glob(os.path.join(numpy_folder, pattern))
    return found


def _bind(library, name: str, integer, arguments):
    function = getattr(library, name)
    function.argtypes = [integer if a is int else a for a in arguments]
    function.restype = None
    return function


@functools.cache
def _routines() -> dict | None:
    if os.environ.get("NERVA_XP_HOST_BLAS", "1") == "0":
        return None
    for path in _candidates():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                try:
                    return {
                        np.dtype(np.float32): _table(library, prefix, suffix, "s"),
                        np.dtype(np.float64): _table(library, prefix, suffix, "d"),
                    }
                except AttributeError:
                    continue
    return None


def _table(library, prefix: str, suffix: str, letter: str) -> dict:
    """axpy, axpby, scal and gemm for one float type (letter s or d) under one symbol naming."""
    real = ctypes.c_float if letter == "s" else ctypes.c_double
    integer = ctypes.c_int64 if suffix else ctypes.c_int
    vector = [ctypes.c_void_p, int]
    flags = [ctypes.c_int] * 3  # order, transpose A, transpose B
    name = f"{prefix}{letter}{{}}{suffix}"
    return {
        "axpy": _bind(library, name.format("axpy"), integer, [int, real, *vector, *vector]),
        "axpby": _bind(library, name.format("axpby"), integer, [int, real, *vector, real, *vector]),
        "scal": _bind(library, name.format("scal"), integer, [int, real, *vector]),
        "gemm": _bind(
            library,
            name.format("gemm"),
            integer,
            [*flags, int, int, int, real, *vector, *vector, real, *vector],
        ),  # fmt: skip
    }


def available() -> bool:
    return _routines() is not None


def _check_vectors(x: np.ndarray, y: np.ndarray) -> None:
    if x.size != y.size or x.dtype != y.dtype:  # BLAS would read out of bounds
        raise ValueError(f"BLAS: x {x.shape} {x.dtype} does not match y {y.shape} {y.dtype}")


def axpy(a: float, x: np.ndarray, y: np.ndarray) -> None:
    """y ← a·x + y, in place."""
    _check_vectors(x, y)
    _routines()[y.dtype]["axpy"](y.size, a, x.ctypes.data, 1, y.ctypes.data, 1)


def axpby(a: float, x: np.ndarray, b: float, y: np.ndarray) -> None:
    """y ← a·x + b·y, in place (an OpenBLAS extension of BLAS)."""
    _check_vectors(x, y)
    _routines()[y.dtype]["axpby"](y.size, a, x.ctypes.data, 1, b, y.ctypes.data, 1)


def scal(a: float, x: np.ndarray) -> None:
    """x ← a·x, in place."""
    _check_vectors(x, x)
    _routines()[x.dtype]["scal"](x.size, a, x.ctypes.data, 1)


def _operand(A: np.ndarray) -> tuple[int, int]:
    """(transpose flag, leading dimension) of a C- or Fortran-contiguous matrix, row-major BLAS."""
    if A.flags.c_contiguous:
        return _NO_TRANSPOSE, max(1, A.shape[1])
    return _TRANSPOSE, max(1, A.shape[0])


def gemm_operand(A: np.ndarray) -> bool:
    """Whether gemm takes A as it is (C-contiguous, or the transpose of a C-contiguous array)."""
    return A.flags.c_contiguous or A.flags.f_contiguous


def gemm(alpha: float, A: np.ndarray, B: np.ndarray, beta: float, C: np.ndarray) -> None:
    """C ← α·A B + β·C, in place; C C-contiguous, A and B accepted by ``gemm_operand``."""
    (M, K), N = A.shape, B.shape[1]
    if B.shape[0] != K or C.shape != (M, N):  # BLAS would read or write out of bounds
        raise ValueError(f"gemm: shapes {A.shape} @ {B.shape} into {C.shape} do not match")
    transpose_A, lda = _operand(A)
    transpose_B, ldb = _operand(B)
    _routines()[C.dtype]["gemm"](
        _ROW_MAJOR, transpose_A, transpose_B, M, N, K,
        alpha, A.ctypes.data, lda, B.ctypes.data, ldb, beta, C.ctypes.data, max(1, N),
    )  # fmt: skip
