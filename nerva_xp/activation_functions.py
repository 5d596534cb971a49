"""Activation functions (spec §4): values f(X) and element-wise derivatives f'(X).

Capitalised functions take a matrix X; ``Leaky_relu(alpha)`` and friends return functions of X.
Every result keeps X's shape and dtype. Classes derive from ActivationFunction; their repr is the
canonical spec string and ``parse_activation`` reads it back.
"""

from __future__ import annotations

import math
import struct

from array_api_compat import array_namespace

from nerva_xp.device import as_device, to_numpy
from nerva_xp.matrix_operations import Matrix
from nerva_xp.spec_strings import Param, SpecError, format_spec, parse_spec
from nerva_xp.utilities import parse_function_call  # noqa: F401 (nerva-torch re-export)


def _mask(condition: Matrix, X: Matrix) -> Matrix:
    """[condition] as 0/1 in X's dtype."""
    return array_namespace(X).astype(condition, X.dtype)


def Relu(X: Matrix) -> Matrix:
    """max(0, X), against the scalar 0: no array of zeros to allocate and fill, which costs most
    where X is out of cache, as in a training step (``bench/`` "layer formulation Relu")."""
    return array_namespace(X).maximum(X, 0.0)


def Relu_gradient(X: Matrix) -> Matrix:
    """[X > 0] (0 at X = 0)."""
    return _mask(X > 0, X)


def Leaky_relu(alpha: float):
    """X -> max(X, αX)."""
    return lambda X: array_namespace(X).maximum(X, alpha * X)


# The selections below are products with 0/1 masks, which give exactly the selected value
# (x·1 = x, and x·0 + y = y for finite values), updated in place: on a (100, 1024) float32
# matrix NumPy's where took 3-6× as long (LeakyReLU, AllReLU and SReLU gradients and AllReLU
# ~430-670 against 70-150 µs; Sigmoid 0.7-1.5 ms against 0.28 ms; bench/ "activation" groups).
# Fresh temporaries of that size can also cost page faults in glibc's allocator. The SReLU
# value keeps where: its branches hold X, and a product would turn 0·inf into NaN.


def _either(condition: Matrix, X: Matrix, a, b) -> Matrix:
    """a where condition, else b (finite numbers, or b a finite array shaped like X):
    M·a − (M·b − b) with M = [condition], computed in place (each temporary the size of X can
    cost page faults as well as a pass)."""
    M = _mask(condition, X)
    result = M * a
    M *= b
    M -= b
    result -= M
    return result


def Leaky_relu_gradient(alpha: float):
    """X -> 1 where X > 0, else α."""
    return lambda X: _either(X > 0, X, 1.0, alpha)


def All_relu(alpha: float):
    """X -> αX where X < 0, else X (X times α or 1)."""

    def all_relu(X: Matrix) -> Matrix:
        factor = _either(X < 0, X, alpha, 1.0)
        factor *= X
        return factor

    return all_relu


def All_relu_gradient(alpha: float):
    """X -> α where X < 0, else 1."""
    return lambda X: _either(X < 0, X, alpha, 1.0)


def Hyperbolic_tangent(X: Matrix) -> Matrix:
    return array_namespace(X).tanh(X)


def Hyperbolic_tangent_gradient(X: Matrix) -> Matrix:
    """1 − tanh²(X)."""
    Y = array_namespace(X).tanh(X)
    return 1 - Y * Y


def Sigmoid(X: Matrix) -> Matrix:
    """σ(X) = 1 / (1 + e^{−X}), computed from E = e^{−|X|} so that nothing overflows."""
    xp = array_namespace(X)
    E = xp.exp(-xp.abs(X))
    Y = _either(X >= 0, X, 1.0, E)  # then divided by 1 + E: 1 / (1 + E) or E / (1 + E)
    E += 1
    Y /= E
    return Y


def Sigmoid_gradient(X: Matrix) -> Matrix:
    """σ(X) (1 − σ(X))."""
    Y = Sigmoid(X)
    return Y * (1 - Y)


def Srelu(al, tl, ar, tr):
    """X -> tl + al(X − tl) if X ≤ tl; X if tl < X < tr; tr + ar(X − tr) otherwise."""

    def f(X: Matrix) -> Matrix:
        xp = array_namespace(X)
        right = xp.where(X < tr, X, tr + ar * (X - tr))
        return xp.where(X <= tl, tl + al * (X - tl), right)

    return f


def Srelu_gradient(al, tl, ar, tr):
    """X -> al if X ≤ tl; 1 if tl < X < tr; ar otherwise."""

    def f(X: Matrix) -> Matrix:
        return _either(X <= tl, X, al, _either(X < tr, X, 1.0, ar))

    return f


class ActivationFunction:
    """f(X) with ``__call__`` and f'(X) with ``gradient``; equal when class and parameters are."""

    def __call__(self, X: Matrix) -> Matrix:
        raise NotImplementedError

    def gradient(self, X: Matrix) -> Matrix:
        raise NotImplementedError

    def parameters(self) -> dict[str, float]:
        return {}

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.parameters() == other.parameters()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(self.parameters().items())))

    def __repr__(self) -> str:
        return format_spec(self.spec_name, self.parameters())


class ReLUActivation(ActivationFunction):
    spec_name = "ReLU"

    def __call__(self, X):
        return Relu(X)

    def gradient(self, X):
        return Relu_gradient(X)


class _AlphaActivation(ActivationFunction):
    def __init__(self, alpha: float):
        self.alpha = float(alpha)

    def parameters(self):
        return {"alpha": self.alpha}


class LeakyReLUActivation(_AlphaActivation):
    """max(X, αX), derivative 1 where X > 0 else α, both as Nerva has them (spec §4). For α ≤ 1
    this is the usual leaky ReLU; for α > 1 the value is αX where X > 0 while the derivative
    stays 1 there, so the two do not match."""

    spec_name = "LeakyReLU"

    def __call__(self, X):
        return Leaky_relu(self.alpha)(X)

    def gradient(self, X):
        return Leaky_relu_gradient(self.alpha)(X)


class AllReLUActivation(_AlphaActivation):
    spec_name = "AllReLU"

    def __call__(self, X):
        return All_relu(self.alpha)(X)

    def gradient(self, X):
        return All_relu_gradient(self.alpha)(X)


class HyperbolicTangentActivation(ActivationFunction):
    spec_name = "HyperbolicTangent"

    def __call__(self, X):
        return Hyperbolic_tangent(X)

    def gradient(self, X):
        return Hyperbolic_tangent_gradient(X)


class SigmoidActivation(ActivationFunction):
    spec_name = "Sigmoid"

    def __call__(self, X):
        return Sigmoid(X)

    def gradient(self, X):
        return Sigmoid_gradient(X)


class SReLUActivation(ActivationFunction):
    """SReLU with the trainable vector x = [al, tl, ar, tr] and its gradient Dx (both (4,))."""

    spec_name = "SReLU"

    def __init__(self, al=0.0, tl=0.0, ar=0.0, tr=1.0, device=None):
        d = as_device(device)
        values = {"al": float(al), "tl": float(tl), "ar": float(ar), "tr": float(tr)}
        check_srelu_values(values, d.dtype_name)
        self.x = d.asarray(list(values.values()))
        self.Dx = d.zeros((4,))

    def to_device(self, device) -> None:
        """Move x and Dx to ``device`` (and its dtype), keeping their values."""
        d = as_device(device)
        self.x = d.asarray(to_numpy(self.x))
        self.Dx = d.asarray(to_numpy(self.Dx))

    def _parameters(self):
        x = self.x
        return x[0], x[1], x[2], x[3]

    def __call__(self, X):
        return Srelu(*self._parameters())(X)

    def gradient(self, X):
        return Srelu_gradient(*self._parameters())(X)

    def parameters(self):
        """The current [al, tl, ar, tr], each as the shortest decimal that rounds to it in x's
        dtype (str of a NumPy scalar), so that SReLU(0.1) shows al=0.1 in float32 runs too."""
        al, tl, ar, tr = (float(str(v)) for v in to_numpy(self.x))
        return {"al": al, "tl": tl, "ar": ar, "tr": tr}


def _fits_float32(value: float) -> bool:
    """Whether ``value`` rounds to a finite float32."""
    try:
        return math.isfinite(struct.unpack("f", struct.pack("f", value))[0])
    except OverflowError:
        return False


def check_srelu_values(values: dict, dtype_name: str) -> None:
    """SReLU's parameters are stored in the run's dtype: in float32 each must be within ±3.4e38
    (SpecError otherwise); any finite number fits float64."""
    for name, value in values.items():
        if dtype_name == "float32" and not _fits_float32(value):
            raise SpecError(
                f"parameter {name}: expected a number within ±3.4e38 (float32), got {value!r}"
            )


ACTIVATION_PARAMETERS = {
    "ReLU": (),
    "Sigmoid": (),
    "HyperbolicTangent": (),
    "LeakyReLU": (Param("alpha"),),
    "AllReLU": (Param("alpha"),),
    "SReLU": tuple(
        Param(name, default)
        for name, default in (("al", 0.0), ("tl", 0.0), ("ar", 0.0), ("tr", 1.0))
    ),
}

_ACTIVATION_CLASSES = {
    "ReLU": ReLUActivation,
    "Sigmoid": SigmoidActivation,
    "HyperbolicTangent": HyperbolicTangentActivation,
    "LeakyReLU": LeakyReLUActivation,
    "AllReLU": AllReLUActivation,
    "SReLU": SReLUActivation,
}


def make_activation(name: str, values: dict, device=None) -> ActivationFunction:
    """The activation for a parsed spec (name, parameter values)."""
    if name == "SReLU":
        return SReLUActivation(**values, device=device)
    return _ACTIVATION_CLASSES[name](**values)


def parse_activation(text: str, device=None) -> ActivationFunction:
    """The activation for a spec string such as ``ReLU`` or ``SReLU(al=0.1)`` (spec §4, §11)."""
    name, values = parse_spec(text, "activation", ACTIVATION_PARAMETERS)
    try:
        return make_activation(name, values, device)
    except SpecError as error:  # SReLU values beyond the device's dtype
        raise SpecError(f'invalid activation "{text.strip()}": {error}') from None
