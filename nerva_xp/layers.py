"""Layers (spec §6), in row layout: X (N, D) -> Y (N, K), W (K, D), b (K,).

Parameters and gradients are allocated once and written in place with ``A[...] = value``, so
optimizers built from them keep seeing the arrays the layer reads (spec §1.5). ``backpropagate``
stores gradients (DW, Db, DX, ...) in attributes and returns nothing.
"""

from __future__ import annotations

from nerva_xp.activation_functions import (  # noqa: F401 (parse_activation: re-export)
    ACTIVATION_PARAMETERS,
    ActivationFunction,
    SReLUActivation,
    check_srelu_values,
    make_activation,
    parse_activation,
)
from nerva_xp.device import as_device
from nerva_xp.fused import batch_norm_backward, srelu, srelu_backward
from nerva_xp.inplace import matmul_into
from nerva_xp.matrix_operations import (  # noqa: F401 (nerva-torch users import these from here)
    Matrix,
    column_repeat,
    columns_mean,
    columns_sum,
    diag,
    elements_sum,
    exp,
    hadamard,
    identity,
    inv_sqrt,
    ones,
    row_repeat,
    rows_sum,
    vector_size,
    zeros,
)
from nerva_xp.optimizers import CompositeOptimizer, Optimizer, parse_optimizer
from nerva_xp.softmax_functions import (  # noqa: F401 (log_softmax, softmax: re-exports)
    log_softmax,
    softmax,
    stable_log_softmax,
    stable_softmax,
)
from nerva_xp.spec_strings import SpecError, parse_spec
from nerva_xp.weight_initializers import set_layer_weights


class Layer:
    """Base class: ``X`` (the last input), ``DX`` and an optional ``optimizer``."""

    def __init__(self):
        self.X: Matrix | None = None
        self.DX: Matrix | None = None
        self.optimizer: Optimizer | None = None

    def feedforward(self, X: Matrix) -> Matrix:
        raise NotImplementedError

    def backpropagate(self, Y: Matrix, DY: Matrix) -> None:
        raise NotImplementedError

    def optimize(self, eta: float) -> None:
        if self.optimizer is not None:
            self.optimizer.update(eta)

    def output_size(self) -> int:
        raise NotImplementedError

    def _check_gradient(self, DY: Matrix) -> None:
        """DY must have the shape of this layer's last output Y (spec §1.1), not one that
        broadcasts against it."""
        if self.X is None:
            raise ValueError(f"{self!r}: backpropagate needs a feedforward first")
        expected = (self.X.shape[0], self.output_size())
        if tuple(DY.shape) != expected:
            raise ValueError(f"{self!r}: DY has shape {tuple(DY.shape)}; expected {expected}")

    def named_parameters(self) -> list[tuple[str, Matrix, Matrix]]:
        """(name, parameter, gradient) for each trained array, in optimizer order."""
        return []

    def parameter_pairs(self) -> list[tuple[Matrix, Matrix]]:
        """The (parameter, gradient) pairs an optimizer updates, in spec order."""
        return [(x, Dx) for _, x, Dx in self.named_parameters()]

    def set_optimizer(self, text: str) -> None:
        """Install a CompositeOptimizer over the (parameter, gradient) pairs, each by ``text``."""
        make = parse_optimizer(text)
        self.optimizer = CompositeOptimizer([make(x, Dx) for x, Dx in self.parameter_pairs()])


class LinearLayer(Layer):
    """Y = X W^T + b.  X (N, D) -> Y (N, K).

    Opt-in (``set_weight_update_folding(True)``): backpropagate keeps the factors of DW = DZ^T X
    and optimize folds the product into W's update (one BLAS gemm on the CPU, e.g.
    Δ ← μΔ − η·DZ^T X); the update is the same, but DW is then not written.
    """

    def __init__(self, D: int, K: int, device=None):
        super().__init__()
        d = as_device(device)
        self.W = d.zeros((K, D))
        self.DW = d.zeros((K, D))
        self.b = d.zeros((K,))
        self.Db = d.zeros((K,))
        self.fold_weight_update = False
        self._DW_factors: tuple[Matrix, Matrix] | None = None

    def input_size(self) -> int:
        return self.W.shape[1]

    def output_size(self) -> int:
        return self.W.shape[0]

    def named_parameters(self):
        return [("W", self.W, self.DW), ("b", self.b, self.Db)]

    def set_weights(self, text: str, rng=None) -> None:
        """Set W by the initializer spec ``text`` (spec §8) and b to zero."""
        set_layer_weights(self, text, rng=rng)

    def _linear(self, X: Matrix) -> Matrix:
        """Z = X W^T + b, the product computed as (W X^T)^T (a transposed view: the same sums,
        which OpenBLAS computes 3-6% faster for a CIFAR-shaped step; ``bench/``), b added in place
        (no second (N, K) array)."""
        self.X = X
        Z = (self.W @ X.T).T
        Z += self.b
        return Z

    def _linear_backward(self, DZ: Matrix, skip_DX: bool = False) -> None:
        """DW = DZ^T X, Db = columns_sum(DZ), DX = DZ W (computed as (W^T DZ^T)^T, as Z)."""
        X, W = self.X, self.W
        if self.fold_weight_update:
            self._DW_factors = (DZ.T, X)  # DW is computed inside W's update (optimize)
        else:
            matmul_into(DZ.T, X, self.DW)
        self.Db[...] = columns_sum(DZ)
        self.DX = None if skip_DX else (W.T @ DZ.T).T

    def set_weight_update_folding(self, enabled: bool = True) -> None:
        """Fold DW = DZ^T X into W's optimizer update (ValueError if W's optimizer cannot)."""
        if enabled:
            self._weight_optimizer()
        self.fold_weight_update = bool(enabled)
        self._DW_factors = None

    def _weight_optimizer(self) -> Optimizer:
        """The optimizer of W inside this layer's CompositeOptimizer, if it can fold DW."""
        members = getattr(self.optimizer, "optimizers", None) or [None]
        first = members[0]
        if getattr(first, "x", None) is not self.W or not hasattr(first, "update_from_product"):
            raise ValueError(
                f"{self!r}: folded weight updates need a CompositeOptimizer whose first member "
                "updates W with GradientDescent, Momentum or Nesterov (as set_optimizer builds)"
            )
        return first

    def optimize(self, eta: float) -> None:
        if not (self.fold_weight_update and self._DW_factors is not None):
            super().optimize(eta)
            return
        self._weight_optimizer().update_from_product(eta, *self._DW_factors)
        for optimizer in self.optimizer.optimizers[1:]:
            optimizer.update(eta)

    def feedforward(self, X: Matrix) -> Matrix:
        return self._linear(X)

    def backpropagate(self, Y: Matrix, DY: Matrix, skip_DX: bool = False) -> None:
        self._check_gradient(DY)
        self._linear_backward(DY, skip_DX)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(D={self.input_size()}, K={self.output_size()})"


class ActivationLayer(LinearLayer):
    """Z = X W^T + b, Y = act(Z).  Backward: DZ = DY ⊙ act'(Z), then the linear backward."""

    def __init__(self, D: int, K: int, act: ActivationFunction, device=None):
        super().__init__(D, K, device=device)
        self.act = act
        self.Z: Matrix | None = None
        self.DZ: Matrix | None = None

    def feedforward(self, X: Matrix) -> Matrix:
        self.Z = self._linear(X)
        return self.act(self.Z)

    def backpropagate(self, Y: Matrix, DY: Matrix, skip_DX: bool = False) -> None:
        self._check_gradient(DY)
        self.DZ = DY * self.act.gradient(self.Z)
        self._linear_backward(self.DZ, skip_DX)

    def __repr__(self) -> str:
        return f"ActivationLayer(D={self.input_size()}, K={self.output_size()}, act={self.act!r})"


class SReLULayer(ActivationLayer):
    """An ActivationLayer with SReLU, whose parameters x = [al, tl, ar, tr] are trained too.

    A_l = (Z − tl) ⊙ [Z ≤ tl], T_l = (1 − al) [Z ≤ tl], A_r = (Z − tr) ⊙ [Z > tl, Z ≥ tr],
    T_r = (1 − ar) [Z > tl, Z ≥ tr]; Dx = (Σ DY ⊙ A_l, Σ DY ⊙ T_l, Σ DY ⊙ A_r, Σ DY ⊙ T_r).
    """

    def __init__(self, D: int, K: int, act: SReLUActivation | None = None, device=None):
        act = SReLUActivation(device=device) if act is None else act
        act.to_device(device)
        super().__init__(D, K, act, device=device)

    def named_parameters(self):
        return super().named_parameters() + [("srelu", self.act.x, self.act.Dx)]

    def feedforward(self, X: Matrix) -> Matrix:
        self.Z = self._linear(X)
        return srelu(self.Z, self.act.x)

    def backpropagate(self, Y: Matrix, DY: Matrix, skip_DX: bool = False) -> None:
        self._check_gradient(DY)
        self.DZ, Dx = srelu_backward(self.Z, DY, self.act.x)
        self.act.Dx[...] = Dx
        self._linear_backward(self.DZ, skip_DX)


class SoftmaxLayer(LinearLayer):
    """Z = X W^T + b, Y = stable_softmax(Z).  DZ = Y ⊙ (DY − rows_sum(DY ⊙ Y)[:, None])."""

    def feedforward(self, X: Matrix) -> Matrix:
        return stable_softmax(self._linear(X))

    def backpropagate(self, Y: Matrix, DY: Matrix, skip_DX: bool = False) -> None:
        self._check_gradient(DY)
        DZ = Y * (DY - rows_sum(DY * Y)[:, None])
        self._linear_backward(DZ, skip_DX)


class LogSoftmaxLayer(LinearLayer):
    """Z = X W^T + b, Y = stable_log_softmax(Z).  DZ = DY − exp(Y) ⊙ rows_sum(DY)[:, None]."""

    def feedforward(self, X: Matrix) -> Matrix:
        return stable_log_softmax(self._linear(X))

    def backpropagate(self, Y: Matrix, DY: Matrix, skip_DX: bool = False) -> None:
        self._check_gradient(DY)
        DZ = DY - exp(Y) * rows_sum(DY)[:, None]
        self._linear_backward(DZ, skip_DX)


class BatchNormalizationLayer(Layer):
    """Batch statistics in every feedforward (no running statistics, no train/eval mode).

    R = X − columns_mean(X); Sigma = columns_mean(R ⊙ R); inv_sqrt_Sigma = 1/sqrt(Sigma + ε);
    Z = R ⊙ inv_sqrt_Sigma; Y = gamma ⊙ Z + beta.
    """

    def __init__(self, D: int, device=None):
        super().__init__()
        d = as_device(device)
        self.gamma = d.ones((D,))
        self.Dgamma = d.zeros((D,))
        self.beta = d.zeros((D,))
        self.Dbeta = d.zeros((D,))
        self.inv_sqrt_Sigma = d.zeros((D,))
        self.Z: Matrix | None = None

    def input_size(self) -> int:
        return self.gamma.shape[0]

    def output_size(self) -> int:
        return self.gamma.shape[0]

    def named_parameters(self):
        return [("beta", self.beta, self.Dbeta), ("gamma", self.gamma, self.Dgamma)]

    def feedforward(self, X: Matrix) -> Matrix:
        self.X = X
        R = X - columns_mean(X)
        Sigma = columns_mean(R * R)
        self.inv_sqrt_Sigma[...] = inv_sqrt(Sigma)
        self.Z = R * self.inv_sqrt_Sigma
        return self.gamma * self.Z + self.beta

    def backpropagate(self, Y: Matrix, DY: Matrix, skip_DX: bool = False) -> None:
        """DZ = gamma ⊙ DY; Dbeta = columns_sum(DY); Dgamma = columns_sum(DY ⊙ Z);
        DX = (inv_sqrt_Sigma / N) ⊙ (N·DZ − columns_sum(DZ) − Z ⊙ columns_sum(Z ⊙ DZ))."""
        self._check_gradient(DY)
        Z = self.Z
        self.Dbeta[...] = columns_sum(DY)
        self.Dgamma[...] = columns_sum(DY * Z)
        if not skip_DX:
            self.DX = batch_norm_backward(
                Z, DY, self.gamma, self.inv_sqrt_Sigma, self.Dbeta, self.Dgamma
            )
        else:
            self.DX = None

    def __repr__(self) -> str:
        return f"BatchNormalizationLayer(D={self.input_size()})"


LAYER_PARAMETERS = {
    "Linear": (),
    "ReLU": (),
    "Sigmoid": (),
    "HyperbolicTangent": (),
    "Softmax": (),
    "LogSoftmax": (),
    "AllReLU": ACTIVATION_PARAMETERS["AllReLU"],
    "LeakyReLU": ACTIVATION_PARAMETERS["LeakyReLU"],
    "SReLU": ACTIVATION_PARAMETERS["SReLU"],
    "BatchNormalization": (),
}

_PLAIN_LAYERS = {"Linear": LinearLayer, "Softmax": SoftmaxLayer, "LogSoftmax": LogSoftmaxLayer}


def parse_layer(text: str, dtype_name: str | None = None) -> tuple[str, dict]:
    """(name, parameter values) of a layer spec such as ``LeakyReLU(0.1)``; with ``dtype_name``,
    SReLU's values must also fit that dtype (they are stored in it)."""
    name, values = parse_spec(text, "layer", LAYER_PARAMETERS)
    if name == "SReLU" and dtype_name is not None:
        try:
            check_srelu_values(values, dtype_name)
        except SpecError as error:
            raise SpecError(f'invalid layer "{text.strip()}": {error}') from None
    return name, values


def parse_linear_layer(
    text: str, D: int, K: int, optimizer: str, weight_initializer: str, device=None, rng=None
) -> LinearLayer:
    """A linear-type layer D -> K for ``text``, with its optimizer and initial weights."""
    name, values = parse_layer(text)
    if name == "BatchNormalization":
        raise SpecError(f'invalid layer "{text.strip()}": not a linear-type layer')
    if name in _PLAIN_LAYERS:
        layer = _PLAIN_LAYERS[name](D, K, device=device)
    elif name == "SReLU":
        layer = SReLULayer(D, K, make_activation(name, values, device), device=device)
    else:
        layer = ActivationLayer(D, K, make_activation(name, values, device), device=device)
    layer.set_optimizer(optimizer)
    layer.set_weights(weight_initializer, rng=rng)
    return layer
