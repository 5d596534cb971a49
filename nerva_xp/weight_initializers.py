"""Weight initializers (spec §8). W is (K, D): fan-in D, fan-out K.

Draws come from the host generator (spec §1.4) in float64, shape (K, D), and are then cast to the
run's dtype and written into W in one transfer. Setting a layer's weights always zeroes its bias.
"""

from __future__ import annotations

import math

from array_api_compat import array_namespace

from nerva_xp.device import assign_from_host
from nerva_xp.matrix_operations import Matrix
from nerva_xp.spec_strings import Param, format_spec, parse_spec
from nerva_xp.utilities import parse_function_call, resolve_rng  # noqa: F401 (re-export)


def set_weights_xavier_normal(W: Matrix, rng=None) -> None:
    """W ~ N(0, σ²), σ = √(2 / (D + K))."""
    K, D = W.shape
    assign_from_host(W, resolve_rng(rng).normal(0.0, math.sqrt(2.0 / (D + K)), (K, D)))


def set_weights_xavier_uniform(W: Matrix, rng=None) -> None:
    """W ~ U[−ℓ, ℓ), ℓ = √(6 / (D + K))."""
    K, D = W.shape
    limit = math.sqrt(6.0 / (D + K))
    assign_from_host(W, resolve_rng(rng).uniform(-limit, limit, (K, D)))


def set_weights_he_normal(W: Matrix, rng=None) -> None:
    """W ~ N(0, σ²), σ = √(2 / D)."""
    K, D = W.shape
    assign_from_host(W, resolve_rng(rng).normal(0.0, math.sqrt(2.0 / D), (K, D)))


def set_weights_he_uniform(W: Matrix, rng=None) -> None:
    """W ~ U[−ℓ, ℓ), ℓ = √(6 / D)."""
    K, D = W.shape
    limit = math.sqrt(6.0 / D)
    assign_from_host(W, resolve_rng(rng).uniform(-limit, limit, (K, D)))


def set_weights_uniform(W: Matrix, a: float = 0.0, b: float = 1.0, rng=None) -> None:
    """W ~ U[a, b)."""
    assign_from_host(W, resolve_rng(rng).uniform(a, b, W.shape))


def set_weights_normal(W: Matrix, mean: float = 0.0, std: float = 1.0, rng=None) -> None:
    """W ~ N(mean, std²)."""
    assign_from_host(W, resolve_rng(rng).normal(mean, std, W.shape))


def set_weights_zero(W: Matrix) -> None:
    """W = 0; draws nothing."""
    W[...] = array_namespace(W).zeros_like(W)


def set_bias_zero(b: Matrix) -> None:
    """b = 0."""
    b[...] = array_namespace(b).zeros_like(b)


def set_bias_uniform(b_: Matrix, a: float = 0.0, b: float = 1.0, rng=None) -> None:
    """b_ ~ U[a, b)."""
    assign_from_host(b_, resolve_rng(rng).uniform(a, b, b_.shape))


def set_bias_normal(b: Matrix, mean: float = 0.0, std: float = 1.0, rng=None) -> None:
    """b ~ N(mean, std²)."""
    assign_from_host(b, resolve_rng(rng).normal(mean, std, b.shape))


_AT_MOST_B = (lambda a, values: a <= values["b"], "a number <= b")
_AT_LEAST_A = (  # NumPy's uniform needs b − a finite
    lambda b, values: b >= values["a"] and math.isfinite(b - values["a"]),
    "a number >= a (with b - a finite)",
)
_NON_NEGATIVE = (lambda b, _: b >= 0, "a number >= 0")

WEIGHT_INITIALIZER_PARAMETERS = {
    "XavierNormal": (),
    "XavierUniform": (),
    "HeNormal": (),
    "HeUniform": (),
    "Uniform": (Param("a", 0.0, check=_AT_MOST_B), Param("b", 1.0, check=_AT_LEAST_A)),
    "Normal": (Param("a", 0.0), Param("b", 1.0, check=_NON_NEGATIVE)),
    "Zero": (),
}


class WeightInitializer:
    """``init(W, rng=None)`` sets W as its spec says; the repr is that spec."""

    def __init__(self, name: str, values: dict):
        self.name = name
        self.values = dict(values)

    def __call__(self, W: Matrix, rng=None) -> None:
        name, values = self.name, self.values
        if name == "Zero":
            set_weights_zero(W)
        elif name == "Uniform":
            set_weights_uniform(W, values["a"], values["b"], rng=rng)
        elif name == "Normal":
            set_weights_normal(W, values["a"], values["b"], rng=rng)
        else:
            _DRAWS[name](W, rng=rng)

    def __eq__(self, other) -> bool:
        return isinstance(other, WeightInitializer) and (self.name, self.values) == (
            other.name,
            other.values,
        )

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        return format_spec(self.name, self.values)


_DRAWS = {
    "XavierNormal": set_weights_xavier_normal,
    "XavierUniform": set_weights_xavier_uniform,
    "HeNormal": set_weights_he_normal,
    "HeUniform": set_weights_he_uniform,
}


def parse_weight_initializer(text: str) -> WeightInitializer:
    """The initializer for a spec such as ``XavierNormal`` or ``Normal(0, 0.1)``."""
    name, values = parse_spec(text, "weight initializer", WEIGHT_INITIALIZER_PARAMETERS)
    return WeightInitializer(name, values)


def set_layer_weights(layer, text: str, rng=None) -> None:
    """Set ``layer.W`` by the spec ``text`` and zero ``layer.b``."""
    parse_weight_initializer(text)(layer.W, rng=rng)
    set_bias_zero(layer.b)
