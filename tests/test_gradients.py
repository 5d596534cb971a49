"""Finite-difference gradient checks in float64 on every backend (spec §16.3).

Every layer (DX and each parameter gradient), activation derivative and loss gradient is compared
with the central difference of ``nerva_xp.gradient_check``; samples are kept at least 1e-3 away from
the kinks (ReLU-like activations at 0, the SReLU thresholds tl and tr). Also: the checker rejects a
wrong gradient, the O(N·D) BatchNormalization DX equals Nerva's literal N×N form (§6.5), and the
Softmax layer's DZ equals Nerva's column_repeat form (§6.4).
"""

from __future__ import annotations

import numpy as np
import pytest

import nerva_xp.activation_functions as af
import nerva_xp.loss_functions as lf
import nerva_xp.matrix_operations as mo
from nerva_xp.gradient_check import (
    activation_gradient_errors,
    check_gradient,
    gradient_error,
    layer_gradient_errors,
    loss_gradient_errors,
)
from nerva_xp.layers import (
    ActivationLayer,
    BatchNormalizationLayer,
    LinearLayer,
    LogSoftmaxLayer,
    SoftmaxLayer,
    SReLULayer,
)

from conftest import host

TOLERANCE = 1e-6
KINK_DISTANCE = 1e-3
N, D, K = 4, 3, 5

SRELU_PARAMETERS = {"default": (0.0, 0.0, 0.0, 1.0), "custom": (0.2, -0.5, 0.3, 0.5)}

# name -> (make activation on a device, kinks)
ACTIVATIONS = {
    "ReLU": (lambda d: af.ReLUActivation(), (0.0,)),
    "Sigmoid": (lambda d: af.SigmoidActivation(), ()),
    "HyperbolicTangent": (lambda d: af.HyperbolicTangentActivation(), ()),
    "LeakyReLU(0.1)": (lambda d: af.LeakyReLUActivation(0.1), (0.0,)),
    "AllReLU(0.3)": (lambda d: af.AllReLUActivation(0.3), (0.0,)),
    "SReLU()": (lambda d: af.SReLUActivation(device=d), (0.0, 1.0)),
    "SReLU(0.2,-0.5,0.3,0.5)": (
        lambda d: af.SReLUActivation(*SRELU_PARAMETERS["custom"], device=d),
        (-0.5, 0.5),
    ),
}


def assert_all_small(errors: dict[str, float]) -> None:
    bad = {name: error for name, error in errors.items() if not error <= TOLERANCE}
    assert not bad, f"gradient errors above {TOLERANCE}: {bad}"


def kink_distance(Z: np.ndarray, kinks) -> float:
    return min((float(np.min(np.abs(Z - k))) for k in kinks), default=np.inf)


def away_from_kinks(X: np.ndarray, kinks) -> np.ndarray:
    """X with entries within 1e-2 of a kink shifted by 2e-2 (never lands near another kink)."""
    X = X.copy()
    for k in kinks:
        X[np.abs(X - k) < 1e-2] += 2e-2
    assert kink_distance(X, kinks) > KINK_DISTANCE
    return X


def linear_sample(kinks=(), n=N, d=D, k=K):
    """Host X (n, d), W (k, d), b (k,) with Z = X W^T + b at least 1e-3 away from every kink."""
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((n, d))
        W = rng.standard_normal((k, d)) / np.sqrt(d)
        b = 0.5 * rng.standard_normal(k)
        if kink_distance(X @ W.T + b, kinks) > KINK_DISTANCE:
            return X, W, b
    raise AssertionError("no sample away from the kinks")


def set_linear(layer, d, W, b) -> None:
    layer.W[...] = d.asarray(W)
    layer.b[...] = d.asarray(b)


# ---- layers ----


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_layer_gradients(device64, name):
    make, kinks = ACTIVATIONS[name]
    d = device64
    X, W, b = linear_sample(kinks)
    act = make(d)
    if isinstance(act, af.SReLUActivation):
        layer = SReLULayer(D, K, act, device=d)
    else:
        layer = ActivationLayer(D, K, act, device=d)
    set_linear(layer, d, W, b)
    errors = layer_gradient_errors(layer, d.asarray(X))
    assert {"X"} | {n for n, _, _ in layer.named_parameters()} == set(errors)
    assert_all_small(errors)


@pytest.mark.parametrize("case", list(SRELU_PARAMETERS))
def test_srelu_layer_checks_its_four_parameters(device64, case):
    d = device64
    al, tl, ar, tr = SRELU_PARAMETERS[case]
    X, W, b = linear_sample((tl, tr))
    layer = SReLULayer(D, K, af.SReLUActivation(al, tl, ar, tr, device=d), device=d)
    set_linear(layer, d, W, b)
    names = [n for n, x, _ in layer.named_parameters() if x is layer.act.x]
    assert len(names) == 1, "act.x must be one of the layer's trained parameters"
    errors = layer_gradient_errors(layer, d.asarray(X))
    assert tuple(layer.act.Dx.shape) == (4,)
    assert np.any(host(layer.act.Dx) != 0)
    assert errors[names[0]] <= TOLERANCE
    assert_all_small(errors)


def test_srelu_layer_default_activation(device64):
    d = device64
    X, W, b = linear_sample((0.0, 1.0))
    layer = SReLULayer(D, K, device=d)
    set_linear(layer, d, W, b)
    assert_all_small(layer_gradient_errors(layer, d.asarray(X)))


@pytest.mark.parametrize(
    "make", [LinearLayer, SoftmaxLayer, LogSoftmaxLayer], ids=lambda c: c.__name__
)
def test_linear_type_layer_gradients(device64, make):
    d = device64
    X, W, b = linear_sample()
    layer = make(D, K, device=d)
    set_linear(layer, d, W, b)
    errors = layer_gradient_errors(layer, d.asarray(X))
    assert {"X"} | {n for n, _, _ in layer.named_parameters()} == set(errors)
    assert len(errors) == 3
    assert_all_small(errors)


def batch_norm_layer(d, seed=0, n=6, dims=3):
    rng = np.random.default_rng(seed)
    layer = BatchNormalizationLayer(dims, device=d)
    layer.gamma[...] = d.asarray(rng.uniform(0.5, 2.0, dims))
    layer.beta[...] = d.asarray(rng.standard_normal(dims))
    X = rng.standard_normal((n, dims)) * rng.uniform(0.5, 3.0, dims) + rng.standard_normal(dims)
    return layer, d.asarray(X)


@pytest.mark.parametrize("epsilon", [None, 0.5], ids=["epsilon=1e-7", "epsilon=0.5"])
def test_batch_normalization_gradients(device64, monkeypatch, epsilon):
    if epsilon is not None:
        monkeypatch.setattr(mo, "epsilon", epsilon)
    layer, X = batch_norm_layer(device64)
    errors = layer_gradient_errors(layer, X)
    assert {"X", "beta", "gamma"} <= set(errors)
    assert len(errors) == 3
    assert_all_small(errors)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_batch_normalization_dx_equals_nerva_literal_form(device64, n):
    d = device64
    layer, X = batch_norm_layer(d, seed=n, n=n, dims=4)
    Y = layer.feedforward(X)
    DY_host = np.random.default_rng(10 + n).standard_normal((n, 4))
    layer.backpropagate(Y, d.asarray(DY_host))

    Xh, gamma = host(X), host(layer.gamma)
    R = Xh - Xh.mean(axis=0)
    inv_sqrt_Sigma = 1.0 / np.sqrt((R * R).mean(axis=0) + mo.epsilon)
    Z = R * inv_sqrt_Sigma
    DZ = gamma * DY_host
    literal = (inv_sqrt_Sigma / n) * (
        (n * np.eye(n) - np.ones((n, n))) @ DZ - Z * np.diag(Z.T @ DZ)
    )
    np.testing.assert_allclose(host(layer.DX), literal, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(host(layer.Dbeta), DY_host.sum(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        host(layer.Dgamma), (DY_host * Z).sum(axis=0), rtol=1e-10, atol=1e-12
    )


def test_softmax_layer_dz_equals_nerva_column_repeat_form(device64):
    d = device64
    X, W, b = linear_sample()
    layer = SoftmaxLayer(D, K, device=d)
    set_linear(layer, d, W, b)
    Y = layer.feedforward(d.asarray(X))
    DY = np.random.default_rng(7).standard_normal((N, K))
    layer.backpropagate(Y, d.asarray(DY))

    Yh = host(Y)
    DZ = Yh * (DY - np.tile(np.diag(DY @ Yh.T)[:, None], (1, K)))
    np.testing.assert_allclose(host(layer.DW), DZ.T @ X, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(host(layer.Db), DZ.sum(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(host(layer.DX), DZ @ W, rtol=1e-10, atol=1e-12)


# ---- activations ----


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_derivative(device64, name):
    make, kinks = ACTIVATIONS[name]
    rng = np.random.default_rng(3)
    X = away_from_kinks(2.0 * rng.standard_normal((5, 4)), kinks)
    assert_all_small(activation_gradient_errors(make(device64), device64.asarray(X)))


class _Pair:
    """An activation made of a Capitalised value function and its gradient function."""

    def __init__(self, f, g):
        self.f, self.g = f, g

    def __call__(self, X):
        return self.f(X)

    def gradient(self, X):
        return self.g(X)


FUNCTION_PAIRS = {
    "Relu": (lambda: _Pair(af.Relu, af.Relu_gradient), (0.0,)),
    "Leaky_relu(0.1)": (lambda: _Pair(af.Leaky_relu(0.1), af.Leaky_relu_gradient(0.1)), (0.0,)),
    "All_relu(0.3)": (lambda: _Pair(af.All_relu(0.3), af.All_relu_gradient(0.3)), (0.0,)),
    "Hyperbolic_tangent": (
        lambda: _Pair(af.Hyperbolic_tangent, af.Hyperbolic_tangent_gradient),
        (),
    ),
    "Sigmoid": (lambda: _Pair(af.Sigmoid, af.Sigmoid_gradient), ()),
    "Srelu(0.2,-0.5,0.3,0.5)": (
        lambda: _Pair(af.Srelu(0.2, -0.5, 0.3, 0.5), af.Srelu_gradient(0.2, -0.5, 0.3, 0.5)),
        (-0.5, 0.5),
    ),
}


@pytest.mark.parametrize("name", list(FUNCTION_PAIRS))
def test_activation_function_pair_derivative(device64, name):
    make, kinks = FUNCTION_PAIRS[name]
    X = away_from_kinks(2.0 * np.random.default_rng(4).standard_normal((5, 4)), kinks)
    assert_all_small(activation_gradient_errors(make(), device64.asarray(X)))


def test_leaky_relu_alpha_above_one_mismatch_is_detected(device64):
    """Spec §4: for α > 1, max(x, αx) and the derivative (1 if x > 0 else α) disagree."""
    d = device64
    X = away_from_kinks(np.random.default_rng(5).standard_normal((5, 4)), (0.0,))
    errors = activation_gradient_errors(af.LeakyReLUActivation(2.0), d.asarray(X))
    assert errors["X"] > 0.1
    Xl, W, b = linear_sample((0.0,))
    layer = ActivationLayer(D, K, af.LeakyReLUActivation(2.0), device=d)
    set_linear(layer, d, W, b)
    assert layer_gradient_errors(layer, d.asarray(Xl))["X"] > 0.1


# ---- losses ----


def loss_sample(positive: bool, weights: bool, n=N, k=K):
    """Y: softmax rows if positive, else N(0, 1); T: one-hot, or non-negative weights."""
    rng = np.random.default_rng(11)
    Y = rng.standard_normal((n, k))
    if positive:
        E = np.exp(Y)
        Y = E / E.sum(axis=1, keepdims=True)
    T = rng.uniform(0.0, 2.0, (n, k)) if weights else np.eye(k)[rng.integers(0, k, n)]
    return Y, T


# class -> Y must be positive (probabilities)
LOSSES = {
    lf.SquaredErrorLossFunction: False,
    lf.CrossEntropyLossFunction: True,
    lf.LogisticCrossEntropyLossFunction: False,
    lf.NegativeLogLikelihoodLossFunction: True,
    lf.StableSoftmaxCrossEntropyLossFunction: False,
    lf.SoftmaxCrossEntropyLossFunction: False,
}


@pytest.mark.parametrize("weights", [False, True], ids=["one-hot", "weights"])
@pytest.mark.parametrize("loss", list(LOSSES), ids=lambda c: c.__name__)
def test_loss_gradient(device64, loss, weights):
    d = device64
    Y, T = loss_sample(LOSSES[loss], weights)
    assert_all_small(loss_gradient_errors(loss(), d.asarray(Y), d.asarray(T)))


# value function -> (gradient function, y must be positive)
ROW_LOSSES = {
    lf.squared_error_loss: (lf.squared_error_loss_gradient, False),
    lf.cross_entropy_loss: (lf.cross_entropy_loss_gradient, True),
    lf.softmax_cross_entropy_loss: (lf.softmax_cross_entropy_loss_gradient, False),
    lf.stable_softmax_cross_entropy_loss: (lf.stable_softmax_cross_entropy_loss_gradient, False),
    lf.logistic_cross_entropy_loss: (lf.logistic_cross_entropy_loss_gradient, False),
    lf.negative_log_likelihood_loss: (lf.negative_log_likelihood_loss_gradient, True),
}


@pytest.mark.parametrize("weights", [False, True], ids=["one-hot", "weights"])
@pytest.mark.parametrize("value", list(ROW_LOSSES), ids=lambda f: f.__name__)
def test_row_loss_gradient(device64, value, weights):
    d = device64
    gradient, positive = ROW_LOSSES[value]
    Y, T = loss_sample(positive, weights)
    y, t = d.asarray(Y[1, :]), d.asarray(T[1, :])
    analytic = gradient(y, t)
    assert tuple(analytic.shape) == (K,)
    check_gradient(lambda: value(y, t), y, analytic, tolerance=TOLERANCE)


# ---- the checker itself ----


def test_checker_rejects_a_wrong_gradient(device64):
    d = device64
    Y, T = loss_sample(False, False)
    Yd, Td = d.asarray(Y), d.asarray(T)
    loss = lf.SquaredErrorLossFunction()
    right = loss.gradient(Yd, Td)
    check_gradient(lambda: loss(Yd, Td), Yd, right)
    with pytest.raises(AssertionError):
        check_gradient(lambda: loss(Yd, Td), Yd, right * 1.01)
    assert gradient_error(lambda: loss(Yd, Td), Yd, right * 1.01) > 1e-3


def test_layer_checker_sees_a_wrong_parameter_gradient(device64, monkeypatch):
    """A layer whose Db is off by 1% fails layer_gradient_errors."""
    d = device64
    X, W, b = linear_sample()
    layer = LinearLayer(D, K, device=d)
    set_linear(layer, d, W, b)
    backward = layer.backpropagate

    def wrong(Y, DY, *args, **kwargs):
        backward(Y, DY, *args, **kwargs)
        layer.Db[...] = layer.Db * 1.01

    monkeypatch.setattr(layer, "backpropagate", wrong)
    names = {id(x): name for name, x, _ in layer.named_parameters()}
    errors = layer_gradient_errors(layer, d.asarray(X))
    assert errors[names[id(layer.b)]] > TOLERANCE
    assert errors[names[id(layer.W)]] <= TOLERANCE
