"""Fused operations (spec §1.7): for each, the array-API reference that defines it.

Layers and losses call these functions; the CUDA backend may replace a reference by a fused
ElementwiseKernel on CuPy arrays, with the same signature and the same values.
"""

from __future__ import annotations

from array_api_compat import array_namespace

from nerva_xp.matrix_operations import Matrix, columns_sum, elements_sum


def srelu_parameter_gradient(Z: Matrix, DY: Matrix, x: Matrix) -> Matrix:
    """Dx = (Σ DY ⊙ A_l, Σ DY ⊙ T_l, Σ DY ⊙ A_r, Σ DY ⊙ T_r) for x = [al, tl, ar, tr] (spec §6.3).

    A_l = (Z − tl) ⊙ [Z ≤ tl], T_l = (1 − al) [Z ≤ tl],
    A_r = (Z − tr) ⊙ [Z > tl and Z ≥ tr], T_r = (1 − ar) [Z > tl and Z ≥ tr].
    """
    xp = array_namespace(Z, DY, x)
    al, tl, ar, tr = x[0], x[1], x[2], x[3]
    left = xp.astype(tl >= Z, Z.dtype)
    right = xp.astype(xp.logical_and(tl < Z, tr <= Z), Z.dtype)
    DY_left, DY_right = DY * left, DY * right
    return xp.stack(
        [
            elements_sum(DY_left * (Z - tl)),
            (1 - al) * elements_sum(DY_left),
            elements_sum(DY_right * (Z - tr)),
            (1 - ar) * elements_sum(DY_right),
        ]
    )


def batch_norm_backward(Z: Matrix, DY: Matrix, gamma: Matrix, inv_sqrt_Sigma: Matrix) -> Matrix:
    """DX = (inv_sqrt_Sigma / N) ⊙ (N·DZ − columns_sum(DZ) − Z ⊙ columns_sum(Z ⊙ DZ)),
    DZ = gamma ⊙ DY (spec §6.5).  Z, DY (N, D); gamma, inv_sqrt_Sigma (D,) -> DX (N, D)."""
    N = Z.shape[0]
    DZ = gamma * DY
    return (inv_sqrt_Sigma / N) * (N * DZ - columns_sum(DZ) - Z * columns_sum(Z * DZ))
