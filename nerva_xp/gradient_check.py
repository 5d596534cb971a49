"""The one central finite-difference checker (spec §16.3), public as in Chainer.

    ∂f/∂x_i ≈ (f(x + h e_i) − f(x − h e_i)) / 2h

Use float64 arrays: in float32 the rounding error of f swamps the difference quotient. Each
element is perturbed in place and restored, so ``f`` reads the very array being checked.
"""

from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace

from nerva_xp.device import assign_from_host, to_numpy
from nerva_xp.matrix_operations import Matrix


def numerical_gradient(f, x: Matrix, h: float = 1e-6) -> np.ndarray:
    """The central-difference gradient of the scalar ``f()`` with respect to ``x``, on the host."""
    base = to_numpy(x).copy()
    gradient = np.zeros(base.shape)
    for index in np.ndindex(*base.shape):
        value = float(base[index])
        for sign in (1.0, -1.0):
            base[index] = value + sign * h
            assign_from_host(x, base)
            gradient[index] += sign * float(f())
        base[index] = value
        assign_from_host(x, base)
        gradient[index] /= 2.0 * h
    return gradient


def gradient_error(f, x: Matrix, analytic: Matrix, h: float = 1e-6) -> float:
    """max |numerical − analytic| / max(1, |analytic|), elementwise."""
    expected = to_numpy(analytic)
    difference = np.abs(numerical_gradient(f, x, h) - expected)
    return float(np.max(difference / np.maximum(1.0, np.abs(expected)), initial=0.0))


def check_gradient(f, x: Matrix, analytic: Matrix, h: float = 1e-6, tolerance: float = 1e-6):
    """Raise AssertionError when ``analytic`` is not the gradient of ``f()`` at ``x``."""
    error = gradient_error(f, x, analytic, h)
    if not error <= tolerance:
        raise AssertionError(f"gradient check failed: error {error:.3g} > {tolerance:.3g}")
    return error


def activation_gradient_errors(act, X: Matrix, h: float = 1e-6) -> dict[str, float]:
    """Errors of act.gradient(X) (elementwise: ∂ Σ act(X) / ∂X = act'(X))."""
    xp = array_namespace(X)
    analytic = to_numpy(act.gradient(X))
    return {"X": gradient_error(lambda: xp.sum(act(X)), X, analytic, h)}


def loss_gradient_errors(loss, Y: Matrix, T: Matrix, h: float = 1e-6) -> dict[str, float]:
    """Errors of loss.gradient(Y, T) against the loss value."""
    analytic = to_numpy(loss.gradient(Y, T))
    return {"Y": gradient_error(lambda: loss(Y, T), Y, analytic, h)}


def layer_gradient_errors(layer, X: Matrix, rng=None, h: float = 1e-6) -> dict[str, float]:
    """Errors of DX and of every parameter gradient of ``layer`` for L = Σ Y ⊙ R, R random.

    Returns a dict: ``"X"`` and each name of ``layer.named_parameters()`` -> error. A layer with
    folded weight updates does not write DW, so it is refused (ValueError).
    """
    if getattr(layer, "fold_weight_update", False):
        raise ValueError(
            f"{layer!r} folds its weight update and does not write DW; "
            "call set_weight_update_folding(False) before checking its gradients"
        )
    rng = np.random.default_rng(0) if rng is None else rng
    xp = array_namespace(X)
    Y = layer.feedforward(X)
    R = xp.zeros_like(Y)
    assign_from_host(R, rng.standard_normal(tuple(Y.shape)))
    layer.backpropagate(Y, R)
    analytic = {"X": to_numpy(layer.DX)}
    analytic.update({name: to_numpy(D) for name, _, D in layer.named_parameters()})

    def L():
        return xp.sum(layer.feedforward(X) * R)

    errors = {"X": gradient_error(L, X, analytic["X"], h)}
    for name, x, _ in layer.named_parameters():
        errors[name] = gradient_error(L, x, analytic[name], h)
    return errors
