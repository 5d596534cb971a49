"""Softmax and log-softmax, plain and stable, row by row (spec §3).

X is (N, D); a 1-D x of shape (D,) is one row and gives a 1-D result. The stable forms subtract the
row maximum first: S = X − rows_max(X)[:, None]. Jacobians take one row x (D,) and return (D, D).
"""

from __future__ import annotations

from array_api_compat import array_namespace
from array_api_compat import device as array_device

from nerva_xp.matrix_operations import (  # noqa: F401 (re-exported for nerva-torch users)
    Diag,
    Matrix,
    column_repeat,
    exp,
    hadamard,
    identity,
    is_row_vector,
    log,
    reciprocal,
    row_repeat,
    rows_max,
    rows_sum,
)


def _rows(X: Matrix) -> tuple[Matrix, bool]:
    return (X[None, :], True) if X.ndim == 1 else (X, False)


def _shifted(X: Matrix) -> Matrix:
    """S = X − rows_max(X)[:, None]."""
    return X - rows_max(X)[:, None]


def softmax(X: Matrix) -> Matrix:
    """E / rows_sum(E)[:, None] with E = exp(X) (not stabilised)."""
    X, one = _rows(X)
    E = exp(X)
    Y = E / rows_sum(E)[:, None]
    return Y[0, :] if one else Y


def stable_softmax(X: Matrix) -> Matrix:
    """exp(S) / rows_sum(exp(S))[:, None] with S = X − rows_max(X)[:, None]."""
    X, one = _rows(X)
    E = exp(_shifted(X))
    Y = E / rows_sum(E)[:, None]
    return Y[0, :] if one else Y


def log_softmax(X: Matrix) -> Matrix:
    """X − log(rows_sum(exp(X)))[:, None] (not stabilised)."""
    X, one = _rows(X)
    Y = X - log(rows_sum(exp(X)))[:, None]
    return Y[0, :] if one else Y


def stable_log_softmax(X: Matrix) -> Matrix:
    """S − log(rows_sum(exp(S)))[:, None] with S = X − rows_max(X)[:, None]."""
    X, one = _rows(X)
    S = _shifted(X)
    Y = S - log(rows_sum(exp(S)))[:, None]
    return Y[0, :] if one else Y


def _softmax_jacobian(y: Matrix) -> Matrix:
    """Diag(y) − y y^T."""
    return Diag(y) - y[:, None] * y[None, :]


def _log_softmax_jacobian(y: Matrix) -> Matrix:
    """I_D − 1_D y^T."""
    xp = array_namespace(y)
    return xp.eye(y.shape[0], dtype=y.dtype, device=array_device(y)) - y[None, :]


def _one_row(x: Matrix) -> Matrix:
    """x as a (D,) vector: a (D,) row as it is, a (1, D) row or (D, 1) column (as Nerva passes
    rows) flattened; ValueError for anything else."""
    if x.ndim == 2 and 1 in x.shape:
        return array_namespace(x).reshape(x, (-1,))
    if x.ndim != 1:
        raise ValueError(f"softmax Jacobian: x has shape {tuple(x.shape)}; expected one row (D,)")
    return x


def softmax_jacobian(x: Matrix) -> Matrix:
    """Diag(y) − y y^T with y = softmax(x); x (D,) -> (D, D)."""
    return _softmax_jacobian(softmax(_one_row(x)))


def stable_softmax_jacobian(x: Matrix) -> Matrix:
    """Diag(y) − y y^T with y = stable_softmax(x)."""
    return _softmax_jacobian(stable_softmax(_one_row(x)))


def log_softmax_jacobian(x: Matrix) -> Matrix:
    """I_D − 1_D y^T with y = softmax(x)."""
    return _log_softmax_jacobian(softmax(_one_row(x)))


def stable_log_softmax_jacobian(x: Matrix) -> Matrix:
    """I_D − 1_D y^T with y = stable_softmax(x)."""
    return _log_softmax_jacobian(stable_softmax(_one_row(x)))


class SoftmaxFunction:
    def __call__(self, X: Matrix) -> Matrix:
        return softmax(X)

    def jacobian(self, x: Matrix) -> Matrix:
        return softmax_jacobian(x)


class StableSoftmaxFunction:
    def __call__(self, X: Matrix) -> Matrix:
        return stable_softmax(X)

    def jacobian(self, x: Matrix) -> Matrix:
        return stable_softmax_jacobian(x)


class LogSoftmaxFunction:
    def __call__(self, X: Matrix) -> Matrix:
        return log_softmax(X)

    def jacobian(self, x: Matrix) -> Matrix:
        return log_softmax_jacobian(x)


class StableLogSoftmaxFunction:
    def __call__(self, X: Matrix) -> Matrix:
        return stable_log_softmax(X)

    def jacobian(self, x: Matrix) -> Matrix:
        return stable_log_softmax_jacobian(x)
