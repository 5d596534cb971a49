"""Nerva's matrix operations (spec §2), written once against the Python array API.

Names follow Nerva: lowercase functions take vectors or scalars, Capitalised ones matrices. Vectors
are 1-D; m×n is the input shape. Functions that allocate take ``device=None`` (the default device);
all others take their namespace from their arguments.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace
from array_api_compat import device as array_device

from nerva_xp.device import as_device

Matrix = Any  # an array of the run's namespace

epsilon = 1e-7  # read by inv_sqrt at call time


def is_vector(x: Matrix) -> bool:
    return x.ndim == 1


def is_column_vector(x: Matrix) -> bool:
    return x.ndim == 1 or x.shape[1] == 1


def is_row_vector(x: Matrix) -> bool:
    return x.ndim == 1 or x.shape[0] == 1


def vector_size(x: Matrix) -> int:
    return x.shape[0]


def is_square(X: Matrix) -> bool:
    return X.ndim == 2 and X.shape[0] == X.shape[1]


def _flatten(x: Matrix) -> Matrix:
    """A (m,1) or (1,n) matrix as a 1-D vector; 1-D input unchanged."""
    return x if x.ndim == 1 else array_namespace(x).reshape(x, (-1,))


def zeros(m: int, n: int | None = None, device=None) -> Matrix:
    """0_m (shape (m,)) or 0_mn (shape (m, n))."""
    return as_device(device).zeros((m,) if n is None else (m, n))


def ones(m: int, n: int | None = None, device=None) -> Matrix:
    """1_m (shape (m,)) or 1_mn (shape (m, n))."""
    return as_device(device).ones((m,) if n is None else (m, n))


def identity(n: int, device=None) -> Matrix:
    """I_n, shape (n, n)."""
    d = as_device(device)
    return d.xp.eye(n, dtype=d.dtype, device=d.device)


def product(X: Matrix, Y: Matrix) -> Matrix:
    """X · Y."""
    return X @ Y


def dot(x: Matrix, y: Matrix) -> Matrix:
    """Σ_i x_i y_i (0-d); (m,1) and (1,n) inputs are flattened first."""
    x, y = _flatten(x), _flatten(y)
    return array_namespace(x, y).sum(x * y)


def hadamard(X: Matrix, Y: Matrix) -> Matrix:
    """X ⊙ Y; the shapes must be equal."""
    if X.shape != Y.shape:
        raise ValueError(f"hadamard: shapes differ, {X.shape} and {Y.shape}")
    return X * Y


def diag(X: Matrix) -> Matrix:
    """(X_11, ..., X_nn), shape (n,)."""
    return array_namespace(X).linalg.diagonal(X)


def Diag(x: Matrix) -> Matrix:
    """The (n, n) matrix with x on its diagonal."""
    x = _flatten(x)
    xp = array_namespace(x)
    return xp.eye(x.shape[0], dtype=x.dtype, device=x.device) * x


def elements_sum(X: Matrix) -> Matrix:
    """Σ_ij X_ij (0-d)."""
    return array_namespace(X).sum(X)


def column_repeat(x: Matrix, n: int) -> Matrix:
    """x 1_n^T: n copies of x as columns, shape (m, n). Not for hot paths."""
    x = _flatten(x)
    return array_namespace(x).tile(x[:, None], (1, n))


def row_repeat(x: Matrix, m: int) -> Matrix:
    """1_m x: m copies of x as rows, shape (m, n). Not for hot paths."""
    x = _flatten(x)
    return array_namespace(x).tile(x[None, :], (m, 1))


def columns_sum(X: Matrix) -> Matrix:
    """1_m^T X, shape (n,), computed as that product: NumPy sums the columns of a transposed
    (column-major) matrix 3–4× slower than BLAS's matrix-vector product
    (``bench/test_bench_ops.py``)."""
    xp = array_namespace(X)
    return xp.ones(X.shape[0], dtype=X.dtype, device=array_device(X)) @ X


def rows_sum(X: Matrix) -> Matrix:
    """X 1_n, shape (m,)."""
    return array_namespace(X).sum(X, axis=1)


def columns_max(X: Matrix) -> Matrix:
    """Column maxima, shape (n,)."""
    return array_namespace(X).max(X, axis=0)


def rows_max(X: Matrix) -> Matrix:
    """Row maxima, shape (m,)."""
    return array_namespace(X).max(X, axis=1)


def columns_mean(X: Matrix) -> Matrix:
    """(1_m^T X) / m: column means, divided by the number of rows. Shape (n,)."""
    return array_namespace(X).mean(X, axis=0)


def rows_mean(X: Matrix) -> Matrix:
    """(X 1_n) / n: row means, divided by the number of columns. Shape (m,)."""
    return array_namespace(X).mean(X, axis=1)


def apply(f, X: Matrix) -> Matrix:
    """f applied element-wise."""
    return f(X)


def exp(X: Matrix) -> Matrix:
    return array_namespace(X).exp(X)


def log(X: Matrix) -> Matrix:
    return array_namespace(X).log(X)


def sqrt(X: Matrix) -> Matrix:
    return array_namespace(X).sqrt(X)


def square(X: Matrix) -> Matrix:
    return X * X


def abs(X: Matrix) -> Matrix:  # noqa: A001 (Nerva's name)
    return array_namespace(X).abs(X)


def reciprocal(X: Matrix) -> Matrix:
    """1 / X."""
    return 1 / X


def clip(X: Matrix, a_min: float, a_max: float) -> Matrix:
    return array_namespace(X).clip(X, a_min, a_max)


def inv_sqrt(X: Matrix) -> Matrix:
    """1 / sqrt(X + epsilon), with the module's current epsilon."""
    return 1 / array_namespace(X).sqrt(X + epsilon)


def log_sigmoid(X: Matrix) -> Matrix:
    """log σ(X) = −log(1 + e^{−X}), finite for every finite X."""
    xp = array_namespace(X)
    return -xp.logaddexp(xp.zeros_like(X), -X)
