"""The numeric gate of the CUDA kernels (spec §1.7), run on the CPU.

Each kernel of ``nerva_xp.fused.KERNELS`` (its exact one-line body, with ``kernels/<file>.cu`` as
preamble) is compiled with g++ by cpu_kernels.py and compared, in float32 and float64, with the
array-API reference in fused.py, given the same reductions the dispatcher computes. Edge cases:
values at the SReLU thresholds (and tl >= tr), logits of ±1e4, a batch of one, non-one-hot targets.
The backward kernels are also checked against finite differences, and deliberately wrong bodies
are shown to fail the comparison.
"""

from __future__ import annotations

import numpy as np
import pytest
from cpu_kernels import KernelCompileError, compiler_available, run_elementwise

from nerva_xp import fused
from nerva_xp.softmax_functions import stable_log_softmax

pytestmark = pytest.mark.skipif(not compiler_available(), reason="needs a C++ compiler (g++)")

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
SRELU_X = [0.2, -0.3, 0.3, 0.7]  # al, tl, ar, tr


# ---- the kernels as the dispatchers call them, on NumPy arrays ----


def run_kernel(name: str, *args, operation=None, preamble=None):
    """Kernel ``name`` with its own body, or with a replaced operation or preamble."""
    spec = fused.KERNELS[name]
    operation = spec.operation if operation is None else operation
    preamble = fused.kernel_source(spec.source) if preamble is None else preamble
    return run_elementwise(spec.in_params, spec.out_params, operation, preamble, *args)


def srelu_kernel(Z, x, **body):
    return run_kernel("nerva_xp_srelu_forward", Z, x, **body)


def srelu_backward_kernel(Z, DY, x, **body):
    DZ, *terms = run_kernel("nerva_xp_srelu_backward", Z, DY, x, **body)
    return DZ, np.stack([np.sum(G) for G in terms])


def softmax_loss_terms(Y, T, **body):
    m, s = fused._row_max_and_log_sum_exp(Y)
    return run_kernel("nerva_xp_softmax_cross_entropy_loss", Y, T, m, s, **body)


def softmax_gradient_kernel(Y, T, **body):
    m, s = fused._row_max_and_log_sum_exp(Y)
    r = np.sum(T, axis=1)[:, None]
    return run_kernel("nerva_xp_softmax_cross_entropy_gradient", Y, T, m, s, r, **body)


def batch_norm_kernel(Z, DY, gamma, inv_sqrt_Sigma, sum_DY, sum_Z_DY, **body):
    N = float(Z.shape[0])
    args = (Z, DY, gamma, inv_sqrt_Sigma, sum_DY, sum_Z_DY, N)
    return run_kernel("nerva_xp_batch_norm_backward", *args, **body)


def test_every_kernel_has_a_numeric_test():
    tested = {
        "nerva_xp_srelu_forward",
        "nerva_xp_srelu_backward",
        "nerva_xp_softmax_cross_entropy_loss",
        "nerva_xp_softmax_cross_entropy_gradient",
        "nerva_xp_batch_norm_backward",
    }
    assert set(fused.KERNELS) == tested


# ---- comparison ----


def matches(actual, expected, dtype) -> bool:
    """Equal shapes and values to the dtype's tolerance (atol relative to the largest value)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    tol = RTOL[dtype]
    return actual.shape == expected.shape and np.allclose(
        actual, expected, rtol=tol, atol=tol * scale
    )


def assert_matches(actual, expected, dtype) -> None:
    difference = np.max(np.abs(np.asarray(actual, np.float64) - expected), initial=0.0)
    assert matches(actual, expected, dtype), f"max |difference| = {difference:g}"


# ---- test data ----


def srelu_case(case: str, dtype):
    """(Z, DY, x) for an SReLU case, in ``dtype``."""
    rng = np.random.default_rng(1)
    x = np.array(SRELU_X, dtype=dtype)
    if case == "tl >= tr":
        x = np.array([0.2, 1.0, 0.3, 0.5], dtype=dtype)
    elif case == "tl == tr":
        x = np.array([0.2, 0.7, 0.3, 0.7], dtype=dtype)
    elif case == "tl is NaN":  # no left or right terms, as the reference (spec §1.7)
        x = np.array([0.2, np.nan, 0.3, 0.5], dtype=dtype)
    tl, tr = x[1], x[3]
    Z = {
        "random": lambda: 2 * rng.standard_normal((6, 5)),
        "thresholds": lambda: [
            [tl, tr, tl - 1, tr + 1],
            [np.nextafter(tl, -9), np.nextafter(tl, 9), np.nextafter(tr, -9), np.nextafter(tr, 9)],
        ],
        "tl >= tr": lambda: [[tl, tr, (tl + tr) / 2, -2], [2, tl + 1, tr - 1, 0]],
        "tl == tr": lambda: [[tl, np.nextafter(tl, -9), np.nextafter(tl, 9), 0]],
        "tl is NaN": lambda: [[-2, 0, 0.4, 0.5], [0.6, 3, -0.1, 1]],
        "one row": lambda: rng.standard_normal((1, 7)),
        "large": lambda: [[1e4, -1e4, 3e4], [-3e4, 0, 1e3]],
    }[case]()
    Z = np.asarray(Z, dtype=dtype)
    return Z, rng.standard_normal(Z.shape).astype(dtype), x


SRELU_CASES = ["random", "thresholds", "tl >= tr", "tl == tr", "tl is NaN", "one row", "large"]


def softmax_case(case: str, dtype):
    """(Y, T) for a softmax cross-entropy case, in ``dtype``."""
    rng = np.random.default_rng(2)
    if case == "random":
        Y = rng.standard_normal((6, 4))
        T = np.eye(4)[rng.integers(0, 4, 6)]
    elif case == "not one-hot":
        Y = 3 * rng.standard_normal((5, 4))
        T = rng.random((5, 4))
        T[1] = 0
        T[2] *= 3
    elif case == "large":
        Y = [[1000, 1000], [1e4, -1e4], [-1e4, 1e4], [-1e4, -1e4], [1e4, 1e4]]
        T = [[1, 0], [0, 1], [0.5, 0.5], [0, 1], [0.25, 0.75]]
    else:  # one row
        Y, T = rng.standard_normal((1, 5)), [[0, 0, 1, 0, 0]]
    return np.asarray(Y, dtype=dtype), np.asarray(T, dtype=dtype)


SOFTMAX_CASES = ["random", "not one-hot", "large", "one row"]


def batch_norm_forward(X, eps=1e-7):
    """(Z, inv_sqrt_Sigma) of BatchNormalization's feedforward, in NumPy."""
    R = X - X.mean(axis=0)
    inv_sqrt_Sigma = 1 / np.sqrt((R * R).mean(axis=0) + eps)
    return R * inv_sqrt_Sigma, inv_sqrt_Sigma


def batch_norm_case(shape, dtype):
    """The batch-norm kernel's inputs for a batch of ``shape``, in ``dtype``."""
    rng = np.random.default_rng(3)
    X = (5 * rng.standard_normal(shape) + 2).astype(dtype)
    Z, inv_sqrt_Sigma = batch_norm_forward(X)
    DY = rng.standard_normal(shape).astype(dtype)
    gamma = rng.uniform(0.5, 2, shape[1]).astype(dtype)
    return Z, DY, gamma, inv_sqrt_Sigma, np.sum(DY, axis=0), np.sum(Z * DY, axis=0)


BATCH_NORM_SHAPES = [(8, 3), (2, 5), (1, 4), (64, 2)]


# ---- kernels against the references ----


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SRELU_CASES)
def test_srelu_forward_kernel(case, dtype):
    Z, _, x = srelu_case(case, dtype)
    assert srelu_kernel(Z, x).dtype == dtype
    assert_matches(srelu_kernel(Z, x), fused.srelu_reference(Z, x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SRELU_CASES)
def test_srelu_backward_kernel(case, dtype):
    Z, DY, x = srelu_case(case, dtype)
    DZ, Dx = srelu_backward_kernel(Z, DY, x)
    DZ_expected, Dx_expected = fused.srelu_backward_reference(Z, DY, x)
    assert_matches(DZ, DZ_expected, dtype)
    assert_matches(Dx, Dx_expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SOFTMAX_CASES)
def test_softmax_cross_entropy_loss_kernel(case, dtype):
    Y, T = softmax_case(case, dtype)
    terms = softmax_loss_terms(Y, T)
    assert np.all(np.isfinite(terms))
    assert_matches(terms, -T * stable_log_softmax(Y), dtype)
    assert_matches(np.sum(terms), fused.softmax_cross_entropy_loss_reference(Y, T), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SOFTMAX_CASES)
def test_softmax_cross_entropy_gradient_kernel(case, dtype):
    Y, T = softmax_case(case, dtype)
    expected = fused.softmax_cross_entropy_gradient_reference(Y, T)
    assert_matches(softmax_gradient_kernel(Y, T), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BATCH_NORM_SHAPES, ids=str)
def test_batch_norm_backward_kernel(shape, dtype):
    args = batch_norm_case(shape, dtype)
    assert_matches(batch_norm_kernel(*args), fused.batch_norm_backward_reference(*args), dtype)


def test_batch_norm_backward_kernel_gives_zero_for_a_batch_of_one():
    DX = batch_norm_kernel(*batch_norm_case((1, 4), np.float32))
    assert np.all(DX == 0)


# ---- backward kernels against finite differences (float64) ----


def central_difference(f, x: np.ndarray, h: float) -> np.ndarray:
    """The gradient of the scalar f at x, one element at a time."""
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        gradient[index] = (f(x + step) - f(x - step)) / (2 * h)
    return gradient


def srelu_away_from_kinks():
    Z, DY, x = srelu_case("random", np.float64)
    near = (np.abs(Z - x[1]) < 1e-3) | (np.abs(Z - x[3]) < 1e-3)
    return np.where(near, Z + 0.01, Z), DY, x


def test_srelu_backward_kernel_matches_finite_differences():
    Z, DY, x = srelu_away_from_kinks()
    DZ, Dx = srelu_backward_kernel(Z, DY, x)
    h = 1e-6
    numeric_DZ = DY * (srelu_kernel(Z + h, x) - srelu_kernel(Z - h, x)) / (2 * h)
    numeric_Dx = central_difference(lambda v: np.sum(DY * srelu_kernel(Z, v)), x, h)
    np.testing.assert_allclose(DZ, numeric_DZ, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(Dx, numeric_Dx, rtol=1e-6, atol=1e-8)


def test_softmax_cross_entropy_gradient_kernel_matches_finite_differences():
    Y, T = softmax_case("not one-hot", np.float64)
    numeric = central_difference(lambda V: np.sum(softmax_loss_terms(V, T)), Y, 1e-6)
    np.testing.assert_allclose(softmax_gradient_kernel(Y, T), numeric, rtol=1e-6, atol=1e-8)


def test_batch_norm_backward_kernel_matches_finite_differences():
    rng = np.random.default_rng(4)
    X, DY = 3 * rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)

    def loss(V):
        return np.sum(DY * (gamma * batch_norm_forward(V)[0] + beta))

    Z, inv_sqrt_Sigma = batch_norm_forward(X)
    DX = batch_norm_kernel(Z, DY, gamma, inv_sqrt_Sigma, DY.sum(axis=0), (Z * DY).sum(axis=0))
    np.testing.assert_allclose(DX, central_difference(loss, X, 1e-6), rtol=1e-6, atol=1e-8)


# ---- the gate catches wrong bodies ----


def mutated(name: str, old: str, new: str, where: str) -> dict:
    """A body for kernel ``name`` with ``old`` replaced by ``new`` in its operation or preamble."""
    spec = fused.KERNELS[name]
    text = spec.operation if where == "operation" else fused.kernel_source(spec.source)
    assert old in text, f"the mutation {old!r} no longer applies to {name}"
    return {where: text.replace(old, new)}


def srelu_forward_ok(case: str, **body) -> bool:
    Z, _, x = srelu_case(case, np.float32)
    return matches(srelu_kernel(Z, x, **body), fused.srelu_reference(Z, x), np.float32)


def srelu_backward_ok(case: str, **body) -> bool:
    Z, DY, x = srelu_case(case, np.float32)
    actual = srelu_backward_kernel(Z, DY, x, **body)
    expected = fused.srelu_backward_reference(Z, DY, x)
    return all(matches(a, e, np.float32) for a, e in zip(actual, expected, strict=True))


def softmax_ok(case: str, **body) -> bool:
    Y, T = softmax_case(case, np.float32)
    loss = np.sum(softmax_loss_terms(Y, T, **body))
    gradient = softmax_gradient_kernel(Y, T, **body)
    expected_loss = fused.softmax_cross_entropy_loss_reference(Y, T)
    expected_gradient = fused.softmax_cross_entropy_gradient_reference(Y, T)
    return matches(loss, expected_loss, np.float32) and matches(
        gradient, expected_gradient, np.float32
    )


def batch_norm_ok(shape, **body) -> bool:
    args = batch_norm_case(shape, np.float32)
    expected = fused.batch_norm_backward_reference(*args)
    return matches(batch_norm_kernel(*args, **body), expected, np.float32)


SRELU, SRELU_BACKWARD = "nerva_xp_srelu_forward", "nerva_xp_srelu_backward"
SOFTMAX_GRADIENT = "nerva_xp_softmax_cross_entropy_gradient"
MUTATIONS = {
    "srelu left branch returns z": (
        srelu_forward_ok, "random",
        (SRELU, "if (z <= tl) return tl + al * (z - tl);", "if (z <= tl) return z;", "preamble"),
    ),
    "g_al and g_tl swapped": (
        srelu_backward_ok, "random",
        (SRELU_BACKWARD, "DZ, G_al, G_tl", "DZ, G_tl, G_al", "operation"),
    ),
    "derivative left of tl only": (
        srelu_backward_ok, "thresholds",
        (SRELU_BACKWARD, "if (z <= tl) return al;", "if (z < tl) return al;", "preamble"),
    ),
    "softmax gradient ignores the row sum of T": (
        softmax_ok, "not one-hot", (SOFTMAX_GRADIENT, "* r - t", "- t", "preamble"),
    ),
    "loss term adds the log-sum-exp": (
        softmax_ok, "random",
        ("nerva_xp_softmax_cross_entropy_loss", "(y - m - s)", "(y - m + s)", "preamble"),
    ),
    "batch norm drops gamma from the Z term": (
        batch_norm_ok, (8, 3),
        ("nerva_xp_batch_norm_backward", "z * (gamma * sum_z_dy)", "z * sum_z_dy", "preamble"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_a_wrong_kernel_body_fails_the_gate(mutation):
    check, case, change = MUTATIONS[mutation]
    assert check(case)
    assert not check(case, **mutated(*change))


# ---- the harness itself ----


def test_harness_broadcasts_binds_scalars_raw_arrays_and_outputs():
    a = np.arange(6.0).reshape(2, 3)[:, ::-1]  # not contiguous
    b = np.array([[10.0], [20.0]])
    r = np.array([0.0, 100.0])
    y, k = run_elementwise("T a, T b, T c, raw T r", "T y, T k", "y = a + b * c + r[1]; k = i", "",
                           a, b, 2.0, r)  # fmt: skip
    np.testing.assert_array_equal(y, a + b * 2 + 100)
    np.testing.assert_array_equal(k, np.arange(6.0).reshape(2, 3))


def test_harness_follows_cupy_type_rules():
    add = ("T x, T y", "T z", "z = x + y", "")
    assert run_elementwise(*add, np.ones(2, np.float32), 0.5).dtype == np.float32
    with pytest.raises(TypeError, match="mismatched"):
        run_elementwise(*add, np.ones(2, np.float32), np.ones(2, np.float64))


def test_harness_reports_compile_errors():
    with pytest.raises(KernelCompileError, match="undeclared|not declared"):
        run_elementwise("T x", "T y", "y = no_such_function(x)", "", np.ones(1))
