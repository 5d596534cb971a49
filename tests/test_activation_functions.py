"""Activation functions: values, derivatives, dtypes, SReLU parameters, equality (spec §4).

Values and derivatives keep X's shape and float dtype (nerva-numpy returned int64/float64, which is
forbidden), the worked values of §4 hold, ReLU'(0) = 0, LeakyReLU keeps max(x, αx) for α > 1, the
SReLU cases are tested in order, and Sigmoid neither overflows nor warns.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from array_api_compat import device as array_device

import nerva_xp.activation_functions as af

from conftest import host, tolerance

# name -> activation on a device
ACTIVATIONS = {
    "ReLU": lambda d: af.ReLUActivation(),
    "LeakyReLU(0.1)": lambda d: af.LeakyReLUActivation(0.1),
    "LeakyReLU(2.0)": lambda d: af.LeakyReLUActivation(2.0),
    "AllReLU(0.3)": lambda d: af.AllReLUActivation(0.3),
    "HyperbolicTangent": lambda d: af.HyperbolicTangentActivation(),
    "Sigmoid": lambda d: af.SigmoidActivation(),
    "SReLU()": lambda d: af.SReLUActivation(device=d),
    "SReLU(0.2,-1,0.5,1)": lambda d: af.SReLUActivation(0.2, -1.0, 0.5, 1.0, device=d),
}

# name -> (value function, derivative function) of the Capitalised matrix functions
FUNCTIONS = {
    "Relu": (af.Relu, af.Relu_gradient),
    "Leaky_relu(0.1)": (af.Leaky_relu(0.1), af.Leaky_relu_gradient(0.1)),
    "All_relu(0.3)": (af.All_relu(0.3), af.All_relu_gradient(0.3)),
    "Hyperbolic_tangent": (af.Hyperbolic_tangent, af.Hyperbolic_tangent_gradient),
    "Sigmoid": (af.Sigmoid, af.Sigmoid_gradient),
    "Srelu(0.2,-1,0.5,1)": (af.Srelu(0.2, -1.0, 0.5, 1.0), af.Srelu_gradient(0.2, -1.0, 0.5, 1.0)),
}

# Inputs hitting every branch, the kinks included.
X_BRANCHES = np.array([[-2.0, -1.0, -0.5, 0.0], [0.5, 1.0, 2.0, 3.0]])


def values(device, f, x) -> np.ndarray:
    return host(f(device.asarray(np.asarray(x, dtype=np.float64))))


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_class_keeps_shape_and_dtype(device_any, name):
    act = ACTIVATIONS[name](device_any)
    X = device_any.asarray(X_BRANCHES)
    for result in (act(X), act.gradient(X)):
        assert tuple(result.shape) == X_BRANCHES.shape
        assert result.dtype == device_any.dtype
        assert array_device(result) == device_any.device


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_function_keeps_shape_and_dtype(device_any, name):
    X = device_any.asarray(X_BRANCHES)
    for f in FUNCTIONS[name]:
        result = f(X)
        assert tuple(result.shape) == X_BRANCHES.shape
        assert result.dtype == device_any.dtype


# (activation name, x, values, derivatives): the worked values of §4
WORKED = [
    ("ReLU", [-2.0, 0.0, 3.0], [0.0, 0.0, 3.0], [0.0, 0.0, 1.0]),
    ("LeakyReLU(0.1)", [-2.0, 0.0, 3.0], [-0.2, 0.0, 3.0], [0.1, 0.1, 1.0]),
    ("AllReLU(0.3)", [-2.0, 0.0, 3.0], [-0.6, 0.0, 3.0], [0.3, 1.0, 1.0]),
    ("SReLU(0.2,-1,0.5,1)", [-2.0, -0.5, 0.5, 2.0], [-1.2, -0.5, 0.5, 1.5], [0.2, 1.0, 1.0, 0.5]),
]


@pytest.mark.parametrize("name, x, value, derivative", WORKED, ids=[w[0] for w in WORKED])
def test_worked_values(device_any, name, x, value, derivative):
    act = ACTIVATIONS[name](device_any)
    np.testing.assert_allclose(values(device_any, act, x), value, **tolerance(device_any))
    np.testing.assert_allclose(
        values(device_any, act.gradient, x), derivative, **tolerance(device_any)
    )


@pytest.mark.parametrize("name, x, value, derivative", WORKED, ids=[w[0] for w in WORKED])
def test_worked_values_on_a_matrix(device_any, name, x, value, derivative):
    act = ACTIVATIONS[name](device_any)
    X = np.array([x, x])
    np.testing.assert_allclose(values(device_any, act, X), [value, value], **tolerance(device_any))


def test_relu_derivative_is_zero_at_zero(device_any):
    x = [0.0, -0.0]
    np.testing.assert_array_equal(values(device_any, af.ReLUActivation().gradient, x), [0.0, 0.0])
    np.testing.assert_array_equal(values(device_any, af.Relu_gradient, x), [0.0, 0.0])


def test_leaky_relu_alpha_above_one_keeps_max(device_any):
    act = af.LeakyReLUActivation(2.0)
    x = [-2.0, 0.0, 3.0]
    np.testing.assert_allclose(
        values(device_any, act, x), [-2.0, 0.0, 6.0], **tolerance(device_any)
    )
    np.testing.assert_allclose(
        values(device_any, act.gradient, x), [2.0, 2.0, 1.0], **tolerance(device_any)
    )


# (al, tl, ar, tr), x, values, derivatives: first matching case wins when tl >= tr
SRELU_ORDER = [
    (
        (0.2, 1.0, 0.5, -1.0),
        [-2.0, 0.0, 1.0, 2.0],
        [0.4, 0.8, 1.0, 0.5],
        [0.2, 0.2, 0.2, 0.5],
    ),
    (
        (0.2, 0.5, 0.5, 0.5),
        [0.0, 0.5, 1.0],
        [0.4, 0.5, 0.75],
        [0.2, 0.2, 0.5],
    ),
]


@pytest.mark.parametrize("params, x, value, derivative", SRELU_ORDER, ids=["tl>tr", "tl=tr"])
def test_srelu_case_order(device_any, params, x, value, derivative):
    act = af.SReLUActivation(*params, device=device_any)
    tol = tolerance(device_any)
    np.testing.assert_allclose(values(device_any, act, x), value, **tol)
    np.testing.assert_allclose(values(device_any, act.gradient, x), derivative, **tol)
    np.testing.assert_allclose(values(device_any, af.Srelu(*params), x), value, **tol)
    np.testing.assert_allclose(values(device_any, af.Srelu_gradient(*params), x), derivative, **tol)


def test_srelu_defaults_give_clip(device_any):
    act = af.SReLUActivation(device=device_any)
    x = np.array([-2.0, 0.0, 0.5, 1.0, 3.0])
    np.testing.assert_allclose(values(device_any, act, x), np.clip(x, 0.0, 1.0))
    np.testing.assert_allclose(values(device_any, act.gradient, x), [0.0, 0.0, 1.0, 0.0, 0.0])


def test_srelu_equals_relu_with_ar_one(device_any):
    act = af.SReLUActivation(0.0, 0.0, 1.0, 1.0, device=device_any)
    x = np.array([-2.0, 0.0, 0.5, 1.0, 3.0])
    np.testing.assert_allclose(values(device_any, act, x), np.maximum(x, 0.0))
    np.testing.assert_allclose(values(device_any, act.gradient, x), [0.0, 0.0, 1.0, 1.0, 1.0])


def test_srelu_parameters_on_the_device(device_any):
    act = af.SReLUActivation(0.2, -1.0, 0.5, 1.0, device=device_any)
    for array in (act.x, act.Dx):
        assert tuple(array.shape) == (4,)
        assert array.dtype == device_any.dtype
        assert array_device(array) == device_any.device
    np.testing.assert_allclose(host(act.x), [0.2, -1.0, 0.5, 1.0], **tolerance(device_any))
    np.testing.assert_array_equal(host(act.Dx), np.zeros(4))


EXTREMES = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0])


@pytest.mark.parametrize("f", [af.Sigmoid, af.Sigmoid_gradient], ids=lambda f: f.__name__)
def test_sigmoid_does_not_overflow_or_warn(device_any, f):
    X = device_any.asarray(EXTREMES)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        result = host(f(X))
    assert np.all(np.isfinite(result))


def test_sigmoid_limits(device_any):
    Y = values(device_any, af.Sigmoid, EXTREMES)
    np.testing.assert_allclose(Y[[0, -1]], [0.0, 1.0], atol=1e-30)
    assert np.all((Y >= 0.0) & (Y <= 1.0))
    np.testing.assert_allclose(values(device_any, af.Sigmoid_gradient, EXTREMES)[[0, -1]], 0.0)


def test_sigmoid_matches_the_textbook_formula(device_any):
    x = np.linspace(-30.0, 30.0, 121)
    expected = 1.0 / (1.0 + np.exp(-x))
    float64 = device_any.dtype_name == "float64"
    act = af.SigmoidActivation()
    rtol = 1e-12 if float64 else 1e-6
    np.testing.assert_allclose(values(device_any, act, x), expected, rtol=rtol, atol=0)
    # σ(1 − σ) cancels in 1 − σ for large x: absolute error up to the dtype's epsilon
    atol = 1e-15 if float64 else 1e-7
    gradient = values(device_any, act.gradient, x)
    np.testing.assert_allclose(gradient, expected * (1 - expected), rtol=10 * rtol, atol=atol)


def test_hyperbolic_tangent(device_any):
    x = np.linspace(-5.0, 5.0, 11)
    tol = tolerance(device_any)
    act = af.HyperbolicTangentActivation()
    np.testing.assert_allclose(values(device_any, act, x), np.tanh(x), **tol)
    np.testing.assert_allclose(values(device_any, act.gradient, x), 1 - np.tanh(x) ** 2, **tol)


# pairs that must be equal (and hash equal), and pairs that must differ
EQUAL = [
    (af.ReLUActivation(), af.ReLUActivation()),
    (af.SigmoidActivation(), af.SigmoidActivation()),
    (af.HyperbolicTangentActivation(), af.HyperbolicTangentActivation()),
    (af.LeakyReLUActivation(0.1), af.LeakyReLUActivation(0.1)),
    (af.AllReLUActivation(0.3), af.AllReLUActivation(0.3)),
    (af.SReLUActivation(), af.SReLUActivation(0.0, 0.0, 0.0, 1.0)),
    (af.SReLUActivation(0.5, -1.0, 0.25, 2.0), af.SReLUActivation(0.5, -1.0, 0.25, 2.0)),
]
DIFFERENT = [
    (af.LeakyReLUActivation(0.1), af.LeakyReLUActivation(0.2)),
    (af.LeakyReLUActivation(0.1), af.AllReLUActivation(0.1)),
    (af.ReLUActivation(), af.SigmoidActivation()),
    (af.SReLUActivation(), af.SReLUActivation(tr=2.0)),
    (af.ReLUActivation(), af.SReLUActivation(0.0, 0.0, 1.0, 1.0)),
]


@pytest.mark.parametrize("a, b", EQUAL, ids=lambda a: repr(a))
def test_equal_activations(a, b):
    assert a == b
    assert (a != b) is False
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


@pytest.mark.parametrize("a, b", DIFFERENT, ids=lambda a: repr(a))
def test_different_activations(a, b):
    assert a != b
    assert (a == b) is False


def test_srelu_equality_follows_trained_values():
    a, b = af.SReLUActivation(), af.SReLUActivation()
    a.x[...] = a.x + 0.25
    assert a != b


def _where_oracles(alpha):
    """The spec's selections written with NumPy's where (float64 inputs, float32 too)."""

    def sigmoid(x):
        E = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + E), E / (1 + E))

    return {
        "leaky gradient": (af.Leaky_relu_gradient(alpha), lambda x: np.where(x > 0, 1.0, alpha)),
        "all relu": (af.All_relu(alpha), lambda x: np.where(x < 0, alpha * x, x)),
        "all relu gradient": (af.All_relu_gradient(alpha), lambda x: np.where(x < 0, alpha, 1.0)),
        "sigmoid": (af.Sigmoid, sigmoid),
        "srelu gradient": (
            af.Srelu_gradient(0.2, -1.0, 0.5, 1.0),
            lambda x: np.where(x <= -1.0, 0.2, np.where(x < 1.0, 1.0, 0.5)),
        ),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "name", ["leaky gradient", "all relu", "all relu gradient", "sigmoid", "srelu gradient"]
)
def test_mask_products_select_exactly_what_where_selects(name, dtype):
    """The 0/1-mask forms are bit for bit the selections, also at ±0, ±inf, NaN and extremes."""
    rng = np.random.default_rng(5)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3e38, -3e38, 0.2, -1.0, 0.5]
    x = np.concatenate([special, 10 * rng.standard_normal(500)]).astype(dtype).reshape(32, 16)
    x = np.asfortranarray(x)  # as a layer holds Z
    function, oracle = _where_oracles(0.3)[name]
    with np.errstate(all="ignore"):
        actual, expected = function(x), oracle(x).astype(dtype)
    assert actual.dtype == dtype
    bits = [np.ascontiguousarray(a).view(np.uint8) for a in (actual, expected)]
    np.testing.assert_array_equal(*bits)
