"""Fused operations (spec §1.7): for each, an array-API reference, a CuPy kernel and a dispatcher.

Layers and losses call the dispatchers (``srelu``, ``srelu_backward``,
``softmax_cross_entropy_loss``, ``softmax_cross_entropy_gradient``, ``batch_norm_backward``). On
CuPy arrays, with kernels enabled,
they run an ElementwiseKernel whose one-line body calls a ``__device__`` function from
``kernels/<file>.cu``; otherwise the ``*_reference`` function with the same signature. Reductions
(row max, log-sum-exp, column and element sums) always run as array code. Kernels are built lazily,
so importing this module never imports CuPy.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from array_api_compat import array_namespace

from nerva_xp.activation_functions import Srelu, Srelu_gradient
from nerva_xp.matrix_operations import Matrix, elements_sum, exp, log, rows_max, rows_sum
from nerva_xp.softmax_functions import stable_log_softmax, stable_softmax

_enabled = os.environ.get("NERVA_XP_FUSED", "1") != "0"


@dataclass(frozen=True)
class KernelSpec:
    """An ElementwiseKernel: CuPy's parameter strings, its one-line body and its .cu preamble."""

    name: str
    in_params: str
    out_params: str
    operation: str
    source: str  # file name in kernels/


KERNELS = {
    spec.name: spec
    for spec in (
        KernelSpec(
            "nerva_xp_srelu_forward",
            "T Z, raw T x",
            "T Y",
            "Y = nerva_xp_srelu(Z, x[0], x[1], x[2], x[3])",
            "srelu.cu",
        ),
        KernelSpec(
            "nerva_xp_srelu_backward",
            "T Z, T DY, raw T x",
            "T DZ, T G_al, T G_tl, T G_ar, T G_tr",
            "nerva_xp_srelu_backward(Z, DY, x[0], x[1], x[2], x[3], DZ, G_al, G_tl, G_ar, G_tr)",
            "srelu.cu",
        ),
        KernelSpec(
            "nerva_xp_softmax_cross_entropy_loss",
            "T Y, T Tgt, T m, T s",
            "T L",
            "L = nerva_xp_softmax_cross_entropy_term(Y, Tgt, m, s)",
            "softmax_cross_entropy.cu",
        ),
        KernelSpec(
            "nerva_xp_softmax_cross_entropy_gradient",
            "T Y, T Tgt, T m, T s, T r",
            "T DY",
            "DY = nerva_xp_softmax_cross_entropy_gradient(Y, Tgt, m, s, r)",
            "softmax_cross_entropy.cu",
        ),
        KernelSpec(
            "nerva_xp_batch_norm_backward",
            "T Z, T DY, T gamma, T inv_sqrt_Sigma, T sum_DY, T sum_Z_DY, T N",
            "T DX",
            "DX = nerva_xp_batch_norm_dx(Z, DY, gamma, inv_sqrt_Sigma, sum_DY, sum_Z_DY, N)",
            "batch_norm.cu",
        ),
    )
}


def kernel_folder() -> Path:
    """The .cu files' folder: ``kernels/`` of a checkout, else ``nerva_xp/kernels`` of a wheel."""
    checkout = Path(__file__).resolve().parent.parent / "kernels"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("nerva_xp") / "kernels"))


def kernel_source(file_name: str) -> str:
    """The CUDA source of ``kernels/<file_name>``."""
    return (kernel_folder() / file_name).read_text()


# ---- switch and dispatch ----


def kernels_enabled() -> bool:
    return _enabled


def set_kernels_enabled(enabled: bool) -> None:
    """Turn the fused kernels on or off (they are on unless NERVA_XP_FUSED=0)."""
    global _enabled
    _enabled = bool(enabled)


@contextlib.contextmanager
def kernels_disabled():
    """Run the block with the array-API references only."""
    saved = kernels_enabled()
    set_kernels_enabled(False)
    try:
        yield
    finally:
        set_kernels_enabled(saved)


_built: dict[str, object] = {}


def _uses_kernel(X: Matrix) -> bool:
    """Whether X is a CuPy array and kernels are on (CuPy is only looked up, never imported)."""
    cupy = sys.modules.get("cupy")
    return _enabled and cupy is not None and isinstance(X, cupy.ndarray)


def kernel(name: str):
    """The CuPy ElementwiseKernel ``name``, built on first use."""
    if name not in _built:
        import cupy

        spec = KERNELS[name]
        _built[name] = cupy.ElementwiseKernel(
            spec.in_params,
            spec.out_params,
            spec.operation,
            spec.name,
            preamble=kernel_source(spec.source),
        )
    return _built[name]


# ---- SReLU (spec §4, §6.3) ----


def srelu_reference(Z: Matrix, x: Matrix) -> Matrix:
    """Y = SReLU(Z) with x = [al, tl, ar, tr]."""
    return Srelu(x[0], x[1], x[2], x[3])(Z)


def srelu_backward_reference(Z: Matrix, DY: Matrix, x: Matrix) -> tuple[Matrix, Matrix]:
    """(DZ, Dx): DZ = DY ⊙ SReLU'(Z) and Dx = (Σ DY ⊙ A_l, Σ DY ⊙ T_l, Σ DY ⊙ A_r, Σ DY ⊙ T_r).

    A_l = (Z − tl) ⊙ [Z ≤ tl], T_l = (1 − al) [Z ≤ tl],
    A_r = (Z − tr) ⊙ [Z > tl and Z ≥ tr], T_r = (1 − ar) [Z > tl and Z ≥ tr].
    """
    xp = array_namespace(Z, DY, x)
    al, tl, ar, tr = x[0], x[1], x[2], x[3]
    DZ = DY * Srelu_gradient(al, tl, ar, tr)(Z)
    left = Z <= tl
    right = xp.logical_and(Z > tl, Z >= tr)
    Dx = xp.stack(
        [
            elements_sum(xp.where(left, DY * (Z - tl), 0.0)),
            (1 - al) * elements_sum(xp.where(left, DY, 0.0)),
            elements_sum(xp.where(right, DY * (Z - tr), 0.0)),
            (1 - ar) * elements_sum(xp.where(right, DY, 0.0)),
        ]
    )
    return DZ, Dx


def srelu(Z: Matrix, x: Matrix) -> Matrix:
    if _uses_kernel(Z):
        return kernel("nerva_xp_srelu_forward")(Z, x)
    return srelu_reference(Z, x)


def srelu_backward(Z: Matrix, DY: Matrix, x: Matrix) -> tuple[Matrix, Matrix]:
    if _uses_kernel(Z):
        DZ, *terms = kernel("nerva_xp_srelu_backward")(Z, DY, x)
        return DZ, array_namespace(Z).stack([elements_sum(G) for G in terms])
    return srelu_backward_reference(Z, DY, x)


# ---- softmax cross-entropy (spec §5) ----


def softmax_cross_entropy_loss_reference(Y: Matrix, T: Matrix) -> Matrix:
    """−Σ T ⊙ stable_log_softmax(Y) (0-d)."""
    return -elements_sum(T * stable_log_softmax(Y))


def softmax_cross_entropy_gradient_reference(Y: Matrix, T: Matrix) -> Matrix:
    """stable_softmax(Y) ⊙ rows_sum(T)[:, None] − T."""
    return stable_softmax(Y) * rows_sum(T)[:, None] - T


def _row_max_and_log_sum_exp(Y: Matrix) -> tuple[Matrix, Matrix]:
    """m = rows_max(Y) and s = log(rows_sum(exp(Y − m))), both as (N, 1) columns."""
    m = rows_max(Y)[:, None]
    return m, log(rows_sum(exp(Y - m)))[:, None]


def softmax_cross_entropy_loss(Y: Matrix, T: Matrix) -> Matrix:
    if _uses_kernel(Y):
        m, s = _row_max_and_log_sum_exp(Y)
        return elements_sum(kernel("nerva_xp_softmax_cross_entropy_loss")(Y, T, m, s))
    return softmax_cross_entropy_loss_reference(Y, T)


def softmax_cross_entropy_gradient(Y: Matrix, T: Matrix) -> Matrix:
    if _uses_kernel(Y):
        m, s = _row_max_and_log_sum_exp(Y)
        r = rows_sum(T)[:, None]
        return kernel("nerva_xp_softmax_cross_entropy_gradient")(Y, T, m, s, r)
    return softmax_cross_entropy_gradient_reference(Y, T)


# ---- batch normalization (spec §6.5) ----


def batch_norm_backward_reference(
    Z: Matrix, DY: Matrix, gamma: Matrix, inv_sqrt_Sigma: Matrix, sum_DY: Matrix, sum_Z_DY: Matrix
) -> Matrix:
    """DX = (inv_sqrt_Sigma / N) ⊙ (N·DZ − columns_sum(DZ) − Z ⊙ columns_sum(Z ⊙ DZ)),
    DZ = gamma ⊙ DY, with columns_sum(DZ) = gamma ⊙ sum_DY, columns_sum(Z ⊙ DZ) = gamma ⊙ sum_Z_DY.
    Z, DY (N, D); the others (D,) -> DX (N, D)."""
    N = Z.shape[0]
    return (inv_sqrt_Sigma / N) * (N * (gamma * DY) - gamma * sum_DY - Z * (gamma * sum_Z_DY))


def batch_norm_backward(
    Z: Matrix, DY: Matrix, gamma: Matrix, inv_sqrt_Sigma: Matrix, sum_DY: Matrix, sum_Z_DY: Matrix
) -> Matrix:
    if _uses_kernel(Z):
        return kernel("nerva_xp_batch_norm_backward")(
            Z, DY, gamma, inv_sqrt_Sigma, sum_DY, sum_Z_DY, float(Z.shape[0])
        )
    return batch_norm_backward_reference(Z, DY, gamma, inv_sqrt_Sigma, sum_DY, sum_Z_DY)
