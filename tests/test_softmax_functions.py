"""Softmax and log-softmax, plain and stable, and their Jacobians (spec §3).

Plain and stable forms agree where both are finite, rows of softmax sum to 1, a 1-D input is one
row, the stable forms survive the overflow examples, and every Jacobian equals the formula of §3
and the central-difference Jacobian (float64).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import nerva_xp.softmax_functions as sf
from nerva_xp.gradient_check import numerical_gradient

from conftest import host, tolerance

PAIRS = [(sf.softmax, sf.stable_softmax), (sf.log_softmax, sf.stable_log_softmax)]
FUNCTIONS = [sf.softmax, sf.stable_softmax, sf.log_softmax, sf.stable_log_softmax]
CLASSES = {
    sf.SoftmaxFunction: sf.softmax,
    sf.StableSoftmaxFunction: sf.stable_softmax,
    sf.LogSoftmaxFunction: sf.log_softmax,
    sf.StableLogSoftmaxFunction: sf.stable_log_softmax,
}


def name_of(f) -> str:
    return getattr(f, "__name__", str(f))


def host_softmax(X: np.ndarray) -> np.ndarray:
    E = np.exp(X - X.max(axis=-1, keepdims=True))
    return E / E.sum(axis=-1, keepdims=True)


def sample(shape=(5, 4), seed=0, scale=3.0) -> np.ndarray:
    return scale * np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("plain, stable", PAIRS, ids=lambda f: name_of(f))
def test_plain_equals_stable_where_finite(device_any, plain, stable):
    X = device_any.asarray(sample())
    A, B = plain(X), stable(X)
    assert A.dtype == B.dtype == device_any.dtype
    np.testing.assert_allclose(host(A), host(B), **tolerance(device_any))


@pytest.mark.parametrize("f", FUNCTIONS, ids=name_of)
def test_against_numpy(device_any, f):
    X = sample(seed=1)
    expected = host_softmax(X)
    if "log" in f.__name__:
        expected = np.log(expected)
    result = f(device_any.asarray(X))
    assert tuple(result.shape) == X.shape
    assert result.dtype == device_any.dtype
    np.testing.assert_allclose(host(result), expected, **tolerance(device_any))


@pytest.mark.parametrize("f", [sf.softmax, sf.stable_softmax], ids=name_of)
def test_rows_of_softmax_sum_to_one(device_any, f):
    Y = host(f(device_any.asarray(sample((6, 5), seed=2))))
    assert np.all(Y > 0)
    np.testing.assert_allclose(Y.sum(axis=1), np.ones(6), **tolerance(device_any))


@pytest.mark.parametrize("f", [sf.log_softmax, sf.stable_log_softmax], ids=name_of)
def test_rows_of_exp_log_softmax_sum_to_one(device_any, f):
    Y = host(f(device_any.asarray(sample((6, 5), seed=3))))
    np.testing.assert_allclose(np.exp(Y).sum(axis=1), np.ones(6), **tolerance(device_any))


@pytest.mark.parametrize("f", FUNCTIONS, ids=name_of)
def test_one_dimensional_input_is_one_row(device_any, f):
    x = sample((4,), seed=4)
    y = f(device_any.asarray(x))
    assert tuple(y.shape) == (4,)
    assert y.dtype == device_any.dtype
    row = host(f(device_any.asarray(x[None, :])))
    np.testing.assert_allclose(host(y), row[0], **tolerance(device_any))


def test_stable_softmax_overflow_example(device_any):
    X = device_any.asarray([[1000.0, 1000.0]])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        Y = sf.stable_softmax(X)
    np.testing.assert_allclose(host(Y), [[0.5, 0.5]], **tolerance(device_any))


def test_stable_log_softmax_overflow_example(device_any):
    X = device_any.asarray([[1000.0, 0.0]])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        Y = sf.stable_log_softmax(X)
    np.testing.assert_allclose(host(Y), [[0.0, -1000.0]], **tolerance(device_any))


def test_plain_forms_overflow_in_the_examples(device_any):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        Y = host(sf.softmax(device_any.asarray([[1000.0, 1000.0]])))
        L = host(sf.log_softmax(device_any.asarray([[1000.0, 0.0]])))
    assert np.all(np.isnan(Y))
    assert np.all(np.isneginf(L))


@pytest.mark.parametrize("f", [sf.stable_softmax, sf.stable_log_softmax], ids=name_of)
def test_stable_forms_are_finite_for_extreme_rows(device_any, f):
    X = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0], [3e4, 3e4, 1.0]])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        Y = host(f(device_any.asarray(X)))
    assert np.all(np.isfinite(Y))
    expected = host_softmax(X)
    if "log" in f.__name__:
        expected = X - X.max(axis=1, keepdims=True)
        expected = expected - np.log(np.exp(expected).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(Y, expected, **tolerance(device_any))


# ---- Jacobians ----


def softmax_jacobian_formula(x: np.ndarray) -> np.ndarray:
    """Diag(y) − y yᵀ."""
    y = host_softmax(x)
    return np.diag(y) - np.outer(y, y)


def log_softmax_jacobian_formula(x: np.ndarray) -> np.ndarray:
    """I_D − 1_D yᵀ."""
    y = host_softmax(x)
    return np.eye(x.shape[0]) - np.ones((x.shape[0], 1)) * y[None, :]


# jacobian -> (the function it differentiates, the §3 formula)
JACOBIANS = {
    sf.softmax_jacobian: (sf.softmax, softmax_jacobian_formula),
    sf.stable_softmax_jacobian: (sf.stable_softmax, softmax_jacobian_formula),
    sf.log_softmax_jacobian: (sf.log_softmax, log_softmax_jacobian_formula),
    sf.stable_log_softmax_jacobian: (sf.stable_log_softmax, log_softmax_jacobian_formula),
}


def numerical_jacobian(f, x) -> np.ndarray:
    """J[i, j] = ∂f(x)_i / ∂x_j by central differences."""
    return np.stack([numerical_gradient(lambda i=i: f(x)[i], x) for i in range(x.shape[0])])


def check_jacobian(device, jacobian, f, formula, seed=5) -> None:
    xh = sample((4,), seed=seed)
    x = device.asarray(xh)
    J = jacobian(x)
    assert tuple(J.shape) == (4, 4)
    assert J.dtype == device.dtype
    np.testing.assert_allclose(host(J), formula(xh), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(host(J), numerical_jacobian(f, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("jacobian", list(JACOBIANS), ids=name_of)
def test_jacobian_function(device64, jacobian):
    f, formula = JACOBIANS[jacobian]
    check_jacobian(device64, jacobian, f, formula)


@pytest.mark.parametrize("cls", list(CLASSES), ids=lambda c: c.__name__)
def test_class_jacobian(device64, cls):
    g = cls()
    _, formula = next(v for k, v in JACOBIANS.items() if v[0] is CLASSES[cls])
    check_jacobian(device64, g.jacobian, g, formula, seed=6)


@pytest.mark.parametrize("cls", list(CLASSES), ids=lambda c: c.__name__)
def test_class_call_equals_function(device_any, cls):
    X = device_any.asarray(sample(seed=7))
    np.testing.assert_array_equal(host(cls()(X)), host(CLASSES[cls](X)))


@pytest.mark.parametrize("jacobian", list(JACOBIANS), ids=name_of)
def test_jacobian_keeps_dtype(device_any, jacobian):
    J = jacobian(device_any.asarray(sample((3,), seed=8)))
    assert J.dtype == device_any.dtype
    assert tuple(J.shape) == (3, 3)


@pytest.mark.parametrize("jacobian", list(JACOBIANS), ids=name_of)
def test_jacobian_of_a_one_row_matrix_is_that_of_the_row(device_any, jacobian):
    """Nerva passes x as a (1, D) row; a (D, 1) column means the same; more rows are refused."""
    xh = sample((3,), seed=9)
    expected = host(jacobian(device_any.asarray(xh)))
    for shape in ((1, 3), (3, 1)):
        J = jacobian(device_any.asarray(xh.reshape(shape)))
        assert tuple(J.shape) == (3, 3)
        np.testing.assert_array_equal(host(J), expected)
    with pytest.raises(ValueError, match=r"x has shape \(2, 3\); expected one row"):
        jacobian(device_any.asarray(sample((2, 3), seed=9)))


def test_reexported_matrix_operations():
    for name in ("exp", "log", "rows_sum", "rows_max"):
        assert callable(getattr(sf, name))
