"""Matrix operations against NumPy on every backend and float dtype (spec §2).

Each function of the §2 table is compared with a NumPy oracle on random inputs: values, the result
shape of the 1-D vector convention, and the input's float dtype (§1.2). Allocating functions use the
device's dtype and device.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from array_api_compat import device as array_device

import nerva_xp.matrix_operations as mo

from conftest import host, tolerance

RNG_SEED = 20240601


def sample(shape, low=None, high=None, seed=0):
    rng = np.random.default_rng(RNG_SEED + seed)
    if low is None:
        return rng.standard_normal(shape)
    return rng.uniform(low, high, shape)


def check(device, result, expected) -> None:
    """Same shape, the device's dtype, and NumPy's values within the dtype's tolerance."""
    expected = np.asarray(expected)
    assert tuple(result.shape) == expected.shape
    assert result.dtype == device.dtype
    np.testing.assert_allclose(host(result), expected, **tolerance(device))


# name -> (NumPy oracle, input shape, (low, high) or None for N(0, 1))
UNARY = {
    "columns_sum": (lambda A: A.sum(axis=0), (4, 3), None),
    "rows_sum": (lambda A: A.sum(axis=1), (4, 3), None),
    "columns_max": (lambda A: A.max(axis=0), (4, 3), None),
    "rows_max": (lambda A: A.max(axis=1), (4, 3), None),
    "columns_mean": (lambda A: A.sum(axis=0) / A.shape[0], (4, 3), None),
    "rows_mean": (lambda A: A.sum(axis=1) / A.shape[1], (4, 3), None),
    "elements_sum": (np.sum, (4, 3), None),
    "diag": (np.diag, (4, 4), None),
    "exp": (np.exp, (4, 3), None),
    "log": (np.log, (4, 3), (0.1, 3.0)),
    "sqrt": (np.sqrt, (4, 3), (0.1, 3.0)),
    "square": (np.square, (4, 3), None),
    "abs": (np.abs, (4, 3), None),
    "reciprocal": (lambda A: 1.0 / A, (4, 3), (0.5, 2.0)),
    "inv_sqrt": (lambda A: 1.0 / np.sqrt(A + 1e-7), (4, 3), (0.1, 3.0)),
    "log_sigmoid": (lambda A: -np.logaddexp(0.0, -A), (4, 3), None),
}


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_function(device_any, name):
    oracle, shape, bounds = UNARY[name]
    A = sample(shape, *(bounds or (None, None)))
    A = A.astype(device_any.dtype_name)  # the oracle sees exactly the device's inputs
    check(device_any, getattr(mo, name)(device_any.asarray(A)), oracle(A.astype(np.float64)))


def test_vector_results_are_one_dimensional(device_any):
    A = device_any.asarray(sample((4, 3)))
    shapes = {
        "columns_sum": (3,),
        "rows_sum": (4,),
        "columns_max": (3,),
        "rows_max": (4,),
        "columns_mean": (3,),
        "rows_mean": (4,),
    }
    for name, shape in shapes.items():
        assert tuple(getattr(mo, name)(A).shape) == shape, name
    assert tuple(mo.elements_sum(A).shape) == ()


@pytest.mark.parametrize("layout", ["row-major", "column-major", "no rows"])
def test_columns_sum_of_every_layout(device_any, layout):
    """columns_sum is the product 1^T X: the same sums for a transposed view (as a layer's DZ,
    a transposed GEMM result) and zeros for a matrix without rows."""
    A = sample((0, 3) if layout == "no rows" else (5, 3)).astype(device_any.dtype_name)
    X = device_any.asarray(A.T.copy()).T if layout == "column-major" else device_any.asarray(A)
    check(device_any, mo.columns_sum(X), A.astype(np.float64).sum(axis=0))


def test_means_divide_by_the_reduced_dimension(device_any):
    A = np.arange(12.0).reshape(4, 3)  # 4 rows, 3 columns
    X = device_any.asarray(A)
    check(device_any, mo.columns_mean(X), A.sum(axis=0) / 4)
    check(device_any, mo.rows_mean(X), A.sum(axis=1) / 3)


# name -> (NumPy oracle, shape of X, shape of Y)
BINARY = {
    "product": (lambda A, B: A @ B, (3, 4), (4, 2)),
    "hadamard": (lambda A, B: A * B, (3, 4), (3, 4)),
    "dot": (lambda A, B: np.sum(A * B), (5,), (5,)),
}


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_function(device_any, name):
    oracle, shape_x, shape_y = BINARY[name]
    A, B = sample(shape_x, seed=1), sample(shape_y, seed=2)
    A, B = A.astype(device_any.dtype_name), B.astype(device_any.dtype_name)
    result = getattr(mo, name)(device_any.asarray(A), device_any.asarray(B))
    check(device_any, result, oracle(A.astype(np.float64), B.astype(np.float64)))


@pytest.mark.parametrize("shapes", [((4, 1), (1, 4)), ((1, 4), (4, 1)), ((4, 1), (4,))], ids=str)
def test_dot_of_column_and_row_matrices(device_any, shapes):
    a, b = sample(4, seed=3), sample(4, seed=4)
    x = device_any.asarray(a.reshape(shapes[0]))
    y = device_any.asarray(b.reshape(shapes[1]))
    check(device_any, mo.dot(x, y), np.dot(a, b))


def test_hadamard_rejects_unequal_shapes(device_any):
    X = device_any.asarray(sample((3, 4)))
    with pytest.raises((ValueError, AssertionError)):
        mo.hadamard(X, device_any.asarray(sample((4,))))
    with pytest.raises((ValueError, AssertionError)):
        mo.hadamard(X, device_any.asarray(sample((1, 4))))


@pytest.mark.parametrize("shape", [(4,), (4, 1), (1, 4)], ids=str)
def test_Diag(device_any, shape):
    x = sample(4, seed=5)
    check(device_any, mo.Diag(device_any.asarray(x.reshape(shape))), np.diag(x))


def test_column_and_row_repeat(device_any):
    x = sample(3, seed=6)
    v = device_any.asarray(x)
    check(device_any, mo.column_repeat(v, 2), np.tile(x[:, None], (1, 2)))
    check(device_any, mo.row_repeat(v, 5), np.tile(x[None, :], (5, 1)))


def test_clip_and_apply(device_any):
    A = sample((4, 3), seed=7)
    X = device_any.asarray(A)
    check(device_any, mo.clip(X, -0.5, 0.5), np.clip(A, -0.5, 0.5))
    check(device_any, mo.apply(lambda M: 2.0 * M + 1.0, X), 2.0 * A + 1.0)


@pytest.mark.parametrize(
    "args, shape", [((3,), (3,)), ((3, 2), (3, 2)), ((3, 0), (3, 0)), ((0,), (0,))], ids=str
)
@pytest.mark.parametrize("name, value", [("zeros", 0.0), ("ones", 1.0)])
def test_zeros_and_ones(device_any, name, value, args, shape):
    result = getattr(mo, name)(*args, device=device_any)
    check(device_any, result, np.full(shape, value))
    assert array_device(result) == device_any.device


def test_identity(device_any):
    result = mo.identity(4, device=device_any)
    check(device_any, result, np.eye(4))
    assert array_device(result) == device_any.device


def test_inv_sqrt_reads_epsilon_at_call_time(device_any, monkeypatch):
    X = device_any.asarray([[4.0, 0.25], [1.0, 16.0]])
    assert mo.epsilon == 1e-7
    check(device_any, mo.inv_sqrt(X), 1.0 / np.sqrt(np.array([[4.0, 0.25], [1.0, 16.0]]) + 1e-7))
    monkeypatch.setattr(mo, "epsilon", 0.0)
    check(device_any, mo.inv_sqrt(X), [[0.5, 2.0], [1.0, 0.25]])
    monkeypatch.setattr(mo, "epsilon", 1.0)
    check(device_any, mo.inv_sqrt(device_any.asarray([0.0, 3.0])), [1.0, 0.5])


def test_log_sigmoid_is_finite_for_large_inputs(device_any):
    x = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = mo.log_sigmoid(device_any.asarray(x))
    values = host(result)
    assert np.all(np.isfinite(values))
    assert result.dtype == device_any.dtype
    np.testing.assert_allclose(values, -np.logaddexp(0.0, -x), **tolerance(device_any))
    np.testing.assert_allclose(values[[0, 1]], [-1000.0, -100.0], **tolerance(device_any))
    assert np.all(values <= 0.0)


def test_log_sigmoid_matches_log_of_sigmoid(device_any):
    x = np.linspace(-20.0, 20.0, 41)
    expected = np.log(1.0 / (1.0 + np.exp(-x)))
    check(device_any, mo.log_sigmoid(device_any.asarray(x)), expected)


def test_epsilon_constant():
    assert mo.epsilon == 1e-7


# (shape, is_vector, is_column_vector, is_row_vector, is_square)
SHAPES = [
    ((3,), True, True, True, False),
    ((3, 1), False, True, False, False),
    ((1, 3), False, False, True, False),
    ((1, 1), False, True, True, True),
    ((3, 3), False, False, False, True),
    ((2, 3), False, False, False, False),
]


@pytest.mark.parametrize("shape, vector, column, row, square", SHAPES, ids=lambda v: str(v))
def test_shape_helpers(device_any, shape, vector, column, row, square):
    x = device_any.zeros(shape)
    assert mo.is_vector(x) is vector
    assert mo.is_column_vector(x) is column
    assert mo.is_row_vector(x) is row
    assert mo.is_square(x) is square
    assert mo.vector_size(x) == shape[0]


def test_matrix_alias_exists():
    assert hasattr(mo, "Matrix")
