"""Loss functions (spec §5): values summed over the whole batch, gradients not divided by N.

Y and T are (N, K), T one-hot (or non-negative weights). Lowercase functions take one row y, t (K,)
and return a 0-d value and a (K,) gradient; Capitalised ones take matrices.
"""

from __future__ import annotations

from array_api_compat import array_namespace

from nerva_xp import fused
from nerva_xp.activation_functions import Sigmoid
from nerva_xp.matrix_operations import (  # noqa: F401 (re-exported for nerva-torch users)
    Matrix,
    column_repeat,
    dot,
    elements_sum,
    hadamard,
    log,
    log_sigmoid,
    reciprocal,
    rows_sum,
)
from nerva_xp.softmax_functions import log_softmax, softmax, stable_log_softmax, stable_softmax
from nerva_xp.spec_strings import parse_spec

# ---- one row: y, t of shape (K,) ----


def squared_error_loss(y: Matrix, t: Matrix) -> Matrix:
    """dot(y − t, y − t)."""
    return dot(y - t, y - t)


def squared_error_loss_gradient(y: Matrix, t: Matrix) -> Matrix:
    """2(y − t)."""
    return 2 * (y - t)


def cross_entropy_loss(y: Matrix, t: Matrix) -> Matrix:
    """−dot(t, log y)."""
    return -dot(t, log(y))


def cross_entropy_loss_gradient(y: Matrix, t: Matrix) -> Matrix:
    """−t / y."""
    return -t / y


def softmax_cross_entropy_loss(y: Matrix, t: Matrix) -> Matrix:
    """−dot(t, log_softmax(y))."""
    return -dot(t, log_softmax(y))


def softmax_cross_entropy_loss_gradient(y: Matrix, t: Matrix) -> Matrix:
    """sum(t) softmax(y) − t."""
    return elements_sum(t) * softmax(y) - t


def stable_softmax_cross_entropy_loss(y: Matrix, t: Matrix) -> Matrix:
    """−dot(t, stable_log_softmax(y))."""
    return -dot(t, stable_log_softmax(y))


def stable_softmax_cross_entropy_loss_gradient(y: Matrix, t: Matrix) -> Matrix:
    """sum(t) stable_softmax(y) − t."""
    return elements_sum(t) * stable_softmax(y) - t


def softmax_cross_entropy_loss_gradient_one_hot(y: Matrix, t: Matrix) -> Matrix:
    """softmax(y) − t (t one-hot)."""
    return softmax(y) - t


def stable_softmax_cross_entropy_loss_gradient_one_hot(y: Matrix, t: Matrix) -> Matrix:
    """stable_softmax(y) − t (t one-hot)."""
    return stable_softmax(y) - t


def logistic_cross_entropy_loss(y: Matrix, t: Matrix) -> Matrix:
    """−dot(t, log_sigmoid(y))."""
    return -dot(t, log_sigmoid(y))


def logistic_cross_entropy_loss_gradient(y: Matrix, t: Matrix) -> Matrix:
    """t ⊙ σ(y) − t."""
    return t * Sigmoid(y) - t


def negative_log_likelihood_loss(y: Matrix, t: Matrix) -> Matrix:
    """−log(dot(y, t))."""
    return -log(dot(y, t))


def negative_log_likelihood_loss_gradient(y: Matrix, t: Matrix) -> Matrix:
    """−t / dot(y, t)."""
    return -t / dot(y, t)


# ---- matrices: Y, T of shape (N, K) ----


def Squared_error_loss(Y: Matrix, T: Matrix) -> Matrix:
    """Σ (Y − T)²."""
    return elements_sum((Y - T) * (Y - T))


def Squared_error_loss_gradient(Y: Matrix, T: Matrix) -> Matrix:
    """2(Y − T)."""
    return 2 * (Y - T)


def Cross_entropy_loss(Y: Matrix, T: Matrix) -> Matrix:
    """−Σ T ⊙ log Y."""
    return -elements_sum(T * log(Y))


def Cross_entropy_loss_gradient(Y: Matrix, T: Matrix) -> Matrix:
    """−T ⊙ (1 / Y)."""
    return -T / Y


def Softmax_cross_entropy_loss(Y: Matrix, T: Matrix) -> Matrix:
    """−Σ T ⊙ log_softmax(Y)."""
    return -elements_sum(T * log_softmax(Y))


def Softmax_cross_entropy_loss_gradient(Y: Matrix, T: Matrix) -> Matrix:
    """softmax(Y) ⊙ rows_sum(T)[:, None] − T."""
    return softmax(Y) * rows_sum(T)[:, None] - T


def Softmax_cross_entropy_loss_gradient_one_hot(Y: Matrix, T: Matrix) -> Matrix:
    """softmax(Y) − T (T one-hot)."""
    return softmax(Y) - T


def Stable_softmax_cross_entropy_loss(Y: Matrix, T: Matrix) -> Matrix:
    """−Σ T ⊙ stable_log_softmax(Y)."""
    return -elements_sum(T * stable_log_softmax(Y))


def Stable_softmax_cross_entropy_loss_gradient(Y: Matrix, T: Matrix) -> Matrix:
    """stable_softmax(Y) ⊙ rows_sum(T)[:, None] − T."""
    return stable_softmax(Y) * rows_sum(T)[:, None] - T


def Stable_softmax_cross_entropy_loss_gradient_one_hot(Y: Matrix, T: Matrix) -> Matrix:
    """stable_softmax(Y) − T (T one-hot)."""
    return stable_softmax(Y) - T


def Logistic_cross_entropy_loss(Y: Matrix, T: Matrix) -> Matrix:
    """−Σ T ⊙ log_sigmoid(Y)."""
    return -elements_sum(T * log_sigmoid(Y))


def Logistic_cross_entropy_loss_gradient(Y: Matrix, T: Matrix) -> Matrix:
    """T ⊙ σ(Y) − T."""
    return T * Sigmoid(Y) - T


def Negative_log_likelihood_loss(Y: Matrix, T: Matrix) -> Matrix:
    """−Σ_i log(rows_sum(Y ⊙ T)_i)."""
    return -elements_sum(log(rows_sum(Y * T)))


def Negative_log_likelihood_loss_gradient(Y: Matrix, T: Matrix) -> Matrix:
    """−T / rows_sum(Y ⊙ T)[:, None]."""
    return -T / rows_sum(Y * T)[:, None]


# ---- classes ----


class LossFunction:
    """``__call__(Y, T)`` gives the 0-d loss, ``gradient(Y, T)`` the (N, K) gradient ∇_Y L."""

    spec_name = ""

    def __call__(self, Y: Matrix, T: Matrix) -> Matrix:
        raise NotImplementedError

    def gradient(self, Y: Matrix, T: Matrix) -> Matrix:
        raise NotImplementedError

    def _targets(self, Y: Matrix, T: Matrix) -> Matrix:
        """T in Y's dtype (an integer or bool one-hot T would otherwise promote the loss and its
        gradient past Y's dtype, spec §5); T must have Y's shape (an (N, 1) label column or a
        (K,) row would broadcast)."""
        if tuple(T.shape) != tuple(Y.shape):
            raise ValueError(f"{self!r}: T has shape {tuple(T.shape)}; expected {tuple(Y.shape)}")
        return T if T.dtype == Y.dtype else array_namespace(Y).astype(T, Y.dtype)

    def __eq__(self, other) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self).__name__)

    def __repr__(self) -> str:
        return self.spec_name


class SquaredErrorLossFunction(LossFunction):
    spec_name = "SquaredError"

    def __call__(self, Y, T):
        T = self._targets(Y, T)
        return Squared_error_loss(Y, T)

    def gradient(self, Y, T):
        T = self._targets(Y, T)
        return Squared_error_loss_gradient(Y, T)


class CrossEntropyLossFunction(LossFunction):
    spec_name = "CrossEntropy"

    def __call__(self, Y, T):
        T = self._targets(Y, T)
        return Cross_entropy_loss(Y, T)

    def gradient(self, Y, T):
        T = self._targets(Y, T)
        return Cross_entropy_loss_gradient(Y, T)


class SoftmaxCrossEntropyLossFunction(LossFunction):
    """The non-stable softmax cross-entropy; it has no spec name."""

    def __call__(self, Y, T):
        T = self._targets(Y, T)
        return Softmax_cross_entropy_loss(Y, T)

    def gradient(self, Y, T):
        T = self._targets(Y, T)
        return Softmax_cross_entropy_loss_gradient(Y, T)

    def __repr__(self) -> str:
        return "SoftmaxCrossEntropyLossFunction()"


class StableSoftmaxCrossEntropyLossFunction(LossFunction):
    """The spec formulas, through the fused dispatchers (a CuPy kernel on CUDA)."""

    spec_name = "SoftmaxCrossEntropy"

    def __call__(self, Y, T):
        T = self._targets(Y, T)
        return fused.softmax_cross_entropy_loss(Y, T)

    def gradient(self, Y, T):
        T = self._targets(Y, T)
        return fused.softmax_cross_entropy_gradient(Y, T)


class LogisticCrossEntropyLossFunction(LossFunction):
    spec_name = "LogisticCrossEntropy"

    def __call__(self, Y, T):
        T = self._targets(Y, T)
        return Logistic_cross_entropy_loss(Y, T)

    def gradient(self, Y, T):
        T = self._targets(Y, T)
        return Logistic_cross_entropy_loss_gradient(Y, T)


class NegativeLogLikelihoodLossFunction(LossFunction):
    spec_name = "NegativeLogLikelihood"

    def __call__(self, Y, T):
        T = self._targets(Y, T)
        return Negative_log_likelihood_loss(Y, T)

    def gradient(self, Y, T):
        T = self._targets(Y, T)
        return Negative_log_likelihood_loss_gradient(Y, T)


_LOSS_CLASSES = {
    cls.spec_name: cls
    for cls in (
        SquaredErrorLossFunction,
        CrossEntropyLossFunction,
        LogisticCrossEntropyLossFunction,
        NegativeLogLikelihoodLossFunction,
        StableSoftmaxCrossEntropyLossFunction,
    )
}


def parse_loss_function(text: str) -> LossFunction:
    """The loss for one of the five CLI names (``Name()`` is accepted)."""
    name, _ = parse_spec(text, "loss function", {name: () for name in _LOSS_CLASSES})
    return _LOSS_CLASSES[name]()
