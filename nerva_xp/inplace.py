"""In-place updates of weight-sized arrays: the optimizer steps (spec §9) and DW = DZ^T X (§6.2).

Each operation has an array-API reference and NumPy fast paths computing the same formula. GEMM
results go straight into the stored gradient (``matmul(..., out=)``). Large updates of NumPy arrays
use level-1 BLAS (``host_blas``: y ← a·x + y and y ← a·x + b·y, which may fuse multiplies and
adds, so results can differ from the reference in the last bit); without it, ``out=`` ufuncs
on a reusable scratch buffer split over a small thread pool (same arithmetic as the reference).
No temporary the size of a weight matrix is made. ``set_threads`` sizes the pool.
The optimizers keep Momentum's and Nesterov's Δ as a scale times an array (``ScaledArray``), so
that their BLAS updates are threaded axpy calls only (``*_update_scaled``).

The ``*_product_update`` variants take Dx as a product A B that is never stored (the opt-in
folded weight updates of ``LinearLayer.set_weight_update_folding``): with BLAS, the product is
computed by one gemm straight into x or Δ (C ← α·A B + β·C); elsewhere A B is materialised and
the ordinary update runs, with the same results.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from nerva_xp import host_blas

MAX_THREADS = 1024  # the most --threads accepts
PARALLEL_MINIMUM = 1 << 16  # elements; smaller updates run on the calling thread
BLAS_MINIMUM = 1 << 14  # elements; smaller updates (biases) use the reference

_threads = max(1, min(os.cpu_count() or 1, 8))
_pool: ThreadPoolExecutor | None = None


def set_threads(count: int) -> None:
    """Use ``count`` threads for large element-wise updates."""
    global _threads, _pool
    if _pool is not None:
        _pool.shutdown()
    _threads, _pool = max(1, int(count)), None


def threads() -> int:
    return _threads


def _fast(*arrays) -> bool:
    """Whether every array is a plain C-contiguous NumPy array (the fast path applies)."""
    return all(type(a) is np.ndarray and a.flags.c_contiguous for a in arrays)


def _blas(*arrays) -> bool:
    """Whether the BLAS path applies: large writable NumPy arrays of one shape and float dtype,
    BLAS found (BLAS sees only pointers and sizes, so NumPy's own checks must hold first)."""
    return (
        _fast(*arrays)
        and arrays[0].size >= BLAS_MINIMUM
        and arrays[0].dtype in (np.float32, np.float64)
        and all(a.dtype == arrays[0].dtype and a.shape == arrays[0].shape for a in arrays)
        and all(a.flags.writeable for a in arrays)
        and host_blas.available()
    )


def _in_chunks(function, *arrays) -> None:
    """function(*chunks) over row blocks of the arrays, in parallel when they are large."""
    rows = arrays[0].shape[0] if arrays[0].ndim else 1
    parts = min(_threads, rows) if arrays[0].size >= PARALLEL_MINIMUM else 1
    if parts <= 1:
        function(*arrays)
        return
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_threads, thread_name_prefix="nerva-xp")
    bounds = [rows * k // parts for k in range(parts + 1)]
    chunks = [[a[bounds[k] : bounds[k + 1]] for a in arrays] for k in range(parts)]
    futures = [_pool.submit(function, *chunk) for chunk in chunks[1:]]
    function(*chunks[0])
    for future in futures:
        future.result()


def _gemm_blas(C, A, B) -> bool:
    """Whether C ← α·A B + β·C can run as one BLAS gemm on these arrays."""
    return (
        _blas(C)
        and type(A) is np.ndarray
        and A.ndim == B.ndim == 2
        and C.shape == (A.shape[0], B.shape[1])
        and A.shape[1] == B.shape[0]
        and type(B) is np.ndarray
        and A.dtype == B.dtype == C.dtype
        and host_blas.gemm_operand(A)
        and host_blas.gemm_operand(B)
    )


def scratch_like(x):
    """A reusable buffer for the ufunc path of updates of x (None where that path never runs)."""
    return np.empty_like(x) if _fast(x) and not _blas(x) else None


def matmul_into(A, B, out) -> None:
    """out = A B, written into ``out`` (e.g. DW = DZ^T X)."""
    if _fast(out) and type(A) is np.ndarray and type(B) is np.ndarray and out.dtype == A.dtype:
        np.matmul(A, B, out=out)
    else:
        out[...] = A @ B


# ---- the updates; ``scratch`` is a buffer shaped like x (only the fast path uses it) ----


def _gradient_descent_chunk(x, Dx, scratch, eta: float) -> None:
    np.subtract(x, np.multiply(Dx, eta, out=scratch), out=x)


def gradient_descent_update(x, Dx, eta: float, scratch=None) -> None:
    """x ← x − η·Dx."""
    if _blas(x, Dx):
        host_blas.axpy(-eta, Dx, x)
    elif scratch is not None and _fast(x, Dx, scratch):
        _in_chunks(lambda *a: _gradient_descent_chunk(*a, eta), x, Dx, scratch)
    else:
        x -= eta * Dx


def _momentum_chunk(x, Dx, delta, scratch, eta: float, mu: float) -> None:
    np.multiply(delta, mu, out=delta)
    np.subtract(delta, np.multiply(Dx, eta, out=scratch), out=delta)
    np.add(x, delta, out=x)


def momentum_update(x, Dx, delta, eta: float, mu: float, scratch=None) -> None:
    """Δ ← μΔ − η·Dx; x ← x + Δ."""
    if _blas(x, Dx, delta):
        host_blas.axpby(-eta, Dx, mu, delta)
        host_blas.axpy(1.0, delta, x)
    elif scratch is not None and _fast(x, Dx, delta, scratch):
        _in_chunks(lambda *a: _momentum_chunk(*a, eta, mu), x, Dx, delta, scratch)
    else:
        delta *= mu
        delta -= eta * Dx
        x += delta


def _nesterov_chunk(x, Dx, delta, scratch, eta: float, mu: float) -> None:
    np.multiply(Dx, eta, out=scratch)
    np.multiply(delta, mu, out=delta)
    np.subtract(delta, scratch, out=delta)
    np.subtract(x, scratch, out=x)
    np.add(x, np.multiply(delta, mu, out=scratch), out=x)


def nesterov_update(x, Dx, delta, eta: float, mu: float, scratch=None) -> None:
    """Δ ← μΔ − η·Dx; x ← x + μΔ − η·Dx (the new Δ), computed as (x − η·Dx) + μΔ."""
    if _blas(x, Dx, delta):
        host_blas.axpby(-eta, Dx, mu, delta)
        host_blas.axpy(-eta, Dx, x)
        host_blas.axpy(mu, delta, x)
    elif scratch is not None and _fast(x, Dx, delta, scratch):
        _in_chunks(lambda *a: _nesterov_chunk(*a, eta, mu), x, Dx, delta, scratch)
    else:
        delta *= mu
        delta -= eta * Dx
        x -= eta * Dx
        x += mu * delta


# ---- Δ kept as a scale times an array: momentum updates as axpy calls on OpenBLAS's threads ----


class ScaledArray:
    """Δ stored as ``scale · array``. Δ ← μΔ − η·Dx then needs no pass that multiplies Δ by μ:
    the scale becomes c' = μ·scale and the array takes S ← S − (η/c')·Dx, one axpy, which
    OpenBLAS runs on its threads (its axpby, which also scales, runs on one thread).
    ``exact()`` multiplies the scale into the array (one pass) and returns it, then holding Δ;
    a scale about to leave [1/LIMIT, LIMIT] is multiplied in the same way first, so the array
    never holds more than LIMIT·|Δ| (float32 overflows that much sooner than with Δ itself).
    Only momenta with 1/MU_RANGE ≤ |μ| ≤ MU_RANGE are scaled: the scale then lasts two steps at
    least before it is multiplied in (0.9: 52 steps)."""

    LIMIT = 256.0
    MU_RANGE = 16.0

    def __init__(self, array):
        self.array = array
        self.scale = 1.0

    def exact(self):
        """The array, made to hold Δ itself (scale 1)."""
        if self.scale != 1.0:
            if _blas(self.array):
                host_blas.scal(self.scale, self.array)  # on OpenBLAS's threads
            else:
                self.array *= self.scale
            self.scale = 1.0
        return self.array

    def rescaled(self, mu: float) -> float:
        """The scale after Δ ← μΔ, now set (the old one multiplied in first when μ·scale would
        leave [1/LIMIT, LIMIT])."""
        if not 1.0 / self.LIMIT <= abs(mu * self.scale) <= self.LIMIT:
            self.exact()
        self.scale *= mu
        return self.scale


def _scaled_path(x, Dx, delta: ScaledArray, mu: float) -> bool:
    """Whether the update can keep Δ scaled: the BLAS path applies and 1/MU_RANGE ≤ |μ| ≤
    MU_RANGE (with μ = 0, NaN or far outside, the scale would be multiplied in at every step)."""
    return 1.0 / delta.MU_RANGE <= abs(mu) <= delta.MU_RANGE and _blas(x, Dx, delta.array)


def _delta_update_scaled(plain_update, x, Dx, delta: ScaledArray, eta: float, mu: float, scratch):
    """Δ ← μΔ − η·Dx as c' = μc; S ← S − (η/c')·Dx, returning c'; or, where Δ is not kept
    scaled, the whole ``plain_update`` on the exact Δ, returning None."""
    if not _scaled_path(x, Dx, delta, mu):
        plain_update(x, Dx, delta.exact(), eta, mu, scratch)
        return None
    scale = delta.rescaled(mu)
    host_blas.axpy(-eta / scale, Dx, delta.array)
    return scale


def momentum_update_scaled(x, Dx, delta: ScaledArray, eta: float, mu: float, scratch=None):
    """``momentum_update`` with Δ = c·S (``delta``): c' = μc; S ← S − (η/c')·Dx; x ← x + c'·S."""
    scale = _delta_update_scaled(momentum_update, x, Dx, delta, eta, mu, scratch)
    if scale is not None:
        host_blas.axpy(scale, delta.array, x)


def nesterov_update_scaled(x, Dx, delta: ScaledArray, eta: float, mu: float, scratch=None):
    """``nesterov_update`` with Δ = c·S: c' = μc; S ← S − (η/c')·Dx; x ← x − η·Dx + μc'·S."""
    scale = _delta_update_scaled(nesterov_update, x, Dx, delta, eta, mu, scratch)
    if scale is not None:
        host_blas.axpy(-eta, Dx, x)
        host_blas.axpy(mu * scale, delta.array, x)


# ---- folded updates: Dx = A B (e.g. DW = DZ^T X) is consumed inside the update, never stored ----


def gradient_descent_product_update(x, A, B, eta: float, scratch=None) -> None:
    """x ← x − η·A B: one gemm with β = 1 (no pass over x besides the product's)."""
    if _gemm_blas(x, A, B):
        host_blas.gemm(-eta, A, B, 1.0, x)
    else:
        gradient_descent_update(x, A @ B, eta, scratch)


def momentum_product_update(x, A, B, delta, eta: float, mu: float, scratch=None) -> None:
    """Δ ← μΔ − η·A B (one gemm with β = μ); x ← x + Δ."""
    if _gemm_blas(delta, A, B) and _blas(x, delta):
        host_blas.gemm(-eta, A, B, mu, delta)
        host_blas.axpy(1.0, delta, x)
    else:
        momentum_update(x, A @ B, delta, eta, mu, scratch)


def nesterov_product_update(x, A, B, delta, eta: float, mu: float, scratch=None) -> None:
    """Δ ← μΔ − η·A B; x ← x + μΔ − η·A B (the new Δ), computed as x ← x − μΔ_old, then the
    gemm into Δ, then x ← x + (1 + μ)Δ_new, which is the same update without storing A B."""
    if _gemm_blas(delta, A, B) and _blas(x, delta):
        host_blas.axpy(-mu, delta, x)
        host_blas.gemm(-eta, A, B, mu, delta)
        host_blas.axpy(1.0 + mu, delta, x)
    else:
        nesterov_update(x, A @ B, delta, eta, mu, scratch)
