"""Optimizers (spec §9): each holds a parameter x and its gradient Dx and updates x in place.

``update(eta)`` writes into the arrays it was built from, so the layer sees the new values
(spec §1.5). Momentum and Nesterov keep Δ (``delta_x``), zero when the optimizer is created.
``update_from_product(eta, A, B)`` is the same update with Dx = A B computed inside it and never
stored (the opt-in folded weight updates of ``LinearLayer``).
"""

from __future__ import annotations

from array_api_compat import array_namespace

from nerva_xp import inplace
from nerva_xp.matrix_operations import Matrix
from nerva_xp.spec_strings import Param, format_spec, parse_spec
from nerva_xp.utilities import parse_function_call  # noqa: F401 (nerva-torch re-export)


class Optimizer:
    """Updates its parameter(s) with ``update(eta)``, eta a Python float."""

    def update(self, eta: float) -> None:
        raise NotImplementedError

    def buffers(self) -> dict[str, Matrix]:
        """The optimizer's state arrays by name (for checkpoints)."""
        return {}

    def make_state_exact(self) -> None:
        """Brings state kept in a faster form (Momentum's scaled Δ) back to its exact form."""


class GradientDescentOptimizer(Optimizer):
    """x ← x − η·Dx."""

    def __init__(self, x: Matrix, Dx: Matrix):
        if tuple(x.shape) != tuple(Dx.shape):
            raise ValueError(
                f"optimizer: x has shape {tuple(x.shape)} but Dx {tuple(Dx.shape)}; expected equal"
            )
        self.x = x
        self.Dx = Dx
        self._scratch = inplace.scratch_like(x)

    def update(self, eta: float) -> None:
        inplace.gradient_descent_update(self.x, self.Dx, float(eta), self._scratch)

    def update_from_product(self, eta: float, A: Matrix, B: Matrix) -> None:
        """``update(eta)`` with Dx = A B; self.Dx is not written."""
        inplace.gradient_descent_product_update(self.x, A, B, float(eta), self._scratch)

    def __repr__(self) -> str:
        return "GradientDescent()"


class MomentumOptimizer(GradientDescentOptimizer):
    """Δ ← μΔ − η·Dx; x ← x + Δ."""

    def __init__(self, x: Matrix, Dx: Matrix, mu: float):
        super().__init__(x, Dx)
        self.mu = float(mu)
        self._delta = inplace.ScaledArray(array_namespace(x).zeros_like(x))

    @property
    def delta_x(self) -> Matrix:
        """Δ. Between reads the NumPy fast path keeps it as a scale times this array
        (``inplace.ScaledArray``), so the array is Δ only until the next update: read
        ``delta_x`` again after updates rather than holding it."""
        return self._delta.exact()

    @delta_x.setter
    def delta_x(self, value: Matrix) -> None:
        self._delta = inplace.ScaledArray(value)

    def update(self, eta: float) -> None:
        inplace.momentum_update_scaled(
            self.x, self.Dx, self._delta, float(eta), self.mu, self._scratch
        )

    def update_from_product(self, eta: float, A: Matrix, B: Matrix) -> None:
        inplace.momentum_product_update(
            self.x, A, B, self.delta_x, float(eta), self.mu, self._scratch
        )

    def buffers(self) -> dict[str, Matrix]:
        return {"delta_x": self.delta_x}

    def make_state_exact(self) -> None:
        self._delta.exact()

    def __repr__(self) -> str:
        return format_spec("Momentum", {"mu": self.mu})


class NesterovOptimizer(MomentumOptimizer):
    """Δ ← μΔ − η·Dx; x ← x + μΔ − η·Dx (with the new Δ)."""

    def update(self, eta: float) -> None:
        inplace.nesterov_update_scaled(
            self.x, self.Dx, self._delta, float(eta), self.mu, self._scratch
        )

    def update_from_product(self, eta: float, A: Matrix, B: Matrix) -> None:
        inplace.nesterov_product_update(
            self.x, A, B, self.delta_x, float(eta), self.mu, self._scratch
        )

    def __repr__(self) -> str:
        return format_spec("Nesterov", {"mu": self.mu})


class CompositeOptimizer(Optimizer):
    """Calls each member's ``update(eta)`` in list order."""

    def __init__(self, optimizers: list[Optimizer]):
        self.optimizers = list(optimizers)

    def update(self, eta: float) -> None:
        for optimizer in self.optimizers:
            optimizer.update(eta)

    def make_state_exact(self) -> None:
        for optimizer in self.optimizers:
            getattr(optimizer, "make_state_exact", lambda: None)()

    def __repr__(self) -> str:
        return f"CompositeOptimizer([{', '.join(repr(o) for o in self.optimizers)}])"


OPTIMIZER_PARAMETERS = {
    "GradientDescent": (),
    "Momentum": (Param("mu"),),
    "Nesterov": (Param("mu"),),
}

_OPTIMIZER_CLASSES = {
    "GradientDescent": GradientDescentOptimizer,
    "Momentum": MomentumOptimizer,
    "Nesterov": NesterovOptimizer,
}


class OptimizerFactory:
    """``factory(x, Dx)`` builds the optimizer of a parsed spec; its repr is that spec."""

    def __init__(self, name: str, values: dict):
        self.name = name
        self.values = dict(values)

    def __call__(self, x: Matrix, Dx: Matrix) -> Optimizer:
        return _OPTIMIZER_CLASSES[self.name](x, Dx, **self.values)

    def __eq__(self, other) -> bool:
        return isinstance(other, OptimizerFactory) and (self.name, self.values) == (
            other.name,
            other.values,
        )

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.values.items())))

    def __repr__(self) -> str:
        spec = format_spec(self.name, self.values)
        return spec if self.values else spec + "()"


def parse_optimizer(text: str) -> OptimizerFactory:
    """A factory ``f(x, Dx) -> Optimizer`` for a spec such as ``Momentum(0.9)``."""
    name, values = parse_spec(text, "optimizer", OPTIMIZER_PARAMETERS)
    return OptimizerFactory(name, values)
