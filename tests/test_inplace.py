"""In-place updates (spec §1.5, §9): the BLAS path, the ufunc path and the array-API reference
compute the same optimizer steps, into the very arrays they were given."""

import numpy as np
import pytest

from nerva_xp import host_blas, inplace

from conftest import device_or_skip, host

SHAPE = (300, 200)  # 60000 elements: above the BLAS and thread thresholds


def arrays(dtype, seed=0):
    rng = np.random.default_rng(seed)
    x, Dx, delta = (rng.standard_normal(SHAPE).astype(dtype) for _ in range(3))
    return x, Dx, delta


def run(update, path: str, dtype):
    """x and Δ after two updates along ``path`` (blas, ufunc or reference)."""
    x, Dx, delta = arrays(dtype)
    if path == "reference":
        device = device_or_skip("strict", np.dtype(dtype).name)
        x, Dx, delta = (device.asarray(a) for a in (x, Dx, delta))
    scratch = np.empty_like(x) if path == "ufunc" else None
    ids = (id(x), id(delta))
    for eta in (0.1, 0.05):
        update(x, Dx, delta, eta, scratch)
    assert (id(x), id(delta)) == ids
    return host(x), host(delta)


UPDATES = {
    "gradient_descent": lambda x, Dx, delta, eta, s: inplace.gradient_descent_update(x, Dx, eta, s),
    "momentum": lambda x, Dx, delta, eta, s: inplace.momentum_update(x, Dx, delta, eta, 0.9, s),
    "nesterov": lambda x, Dx, delta, eta, s: inplace.nesterov_update(x, Dx, delta, eta, 0.9, s),
}


@pytest.fixture
def no_blas(monkeypatch):
    monkeypatch.setattr(host_blas, "available", lambda: False)


@pytest.mark.parametrize("name", UPDATES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ufunc_path_is_bit_identical_to_the_reference(name, dtype, no_blas):
    for got, expected in zip(
        run(UPDATES[name], "ufunc", dtype), run(UPDATES[name], "reference", dtype), strict=True
    ):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", UPDATES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blas_path_equals_the_reference_up_to_rounding(name, dtype):
    if not host_blas.available():
        pytest.skip("NumPy's bundled OpenBLAS was not found; the ufunc path is used")
    tolerance = 1e-6 if dtype == np.float32 else 1e-14
    for got, expected in zip(
        run(UPDATES[name], "blas", dtype), run(UPDATES[name], "reference", dtype), strict=True
    ):
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)


def test_threaded_ufunc_path_equals_one_thread(no_blas):
    results = []
    for count in (1, 2):
        inplace.set_threads(count)
        results.append(run(UPDATES["momentum"], "ufunc", np.float32))
    inplace.set_threads(2)
    for one, two in zip(*results, strict=True):
        np.testing.assert_array_equal(one, two)


def test_scratch_buffers_only_where_the_ufunc_path_runs(monkeypatch):
    big = np.zeros(SHAPE, np.float32)
    assert inplace.scratch_like(np.zeros(10, np.float32)) is not None  # small: no BLAS
    assert (inplace.scratch_like(big) is None) == host_blas.available()
    monkeypatch.setattr(host_blas, "available", lambda: False)
    assert inplace.scratch_like(big).shape == SHAPE


def test_matmul_into_writes_into_the_given_array():
    rng = np.random.default_rng(1)
    A, B = rng.random((7, 5), dtype=np.float32), rng.random((5, 3), dtype=np.float32)
    out = np.zeros((7, 3), np.float32)
    inplace.matmul_into(A, B, out)
    np.testing.assert_allclose(out, A @ B, rtol=1e-6)


def test_blas_can_be_switched_off_by_environment():
    import subprocess
    import sys

    code = "from nerva_xp import host_blas; print(host_blas.available())"
    result = subprocess.run(
        [sys.executable, "-c", code], env={"NERVA_XP_HOST_BLAS": "0", "PATH": "/usr/bin"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == "False"


# ---- Δ kept as scale · array (inplace.ScaledArray): the optimizers' NumPy fast path ----

SCALED_UPDATES = {
    "momentum": inplace.momentum_update_scaled,
    "nesterov": inplace.nesterov_update_scaled,
}
PLAIN_UPDATES = {"momentum": inplace.momentum_update, "nesterov": inplace.nesterov_update}
IN_RANGE = [0.9, -0.9, 0.5, 0.07, 1.2]  # 1/16 <= |μ| <= 16: Δ kept scaled
OUT_OF_RANGE = [1.0, 0.03, 0.0, 20.0, float("nan")]  # 1.0: the scale stays 1


@pytest.fixture
def needs_blas():
    if not host_blas.available():
        pytest.skip("NumPy's bundled OpenBLAS was not found; Δ is never scaled")


def scaled_run(name: str, mu: float, dtype, steps: int = 120):
    """x and Δ after ``steps`` scaled updates (η changing every step, a new Dx every 7 steps),
    the scales seen, and the same run through the strict reference."""
    x, Dx, delta = arrays(dtype)
    strict = device_or_skip("strict", np.dtype(dtype).name)
    rx, rDx, rdelta = (strict.asarray(a.copy()) for a in (x, Dx, delta))  # no shared memory
    scaled = inplace.ScaledArray(delta)
    scales = []
    rng = np.random.default_rng(5)
    for step in range(steps):
        if step % 7 == 6:
            new = rng.standard_normal(SHAPE).astype(dtype)
            Dx[...], rDx = new, strict.asarray(new.copy())
        eta = 0.1 / (1 + step)
        SCALED_UPDATES[name](x, Dx, scaled, eta, mu)
        PLAIN_UPDATES[name](rx, rDx, rdelta, eta, mu)
        scales.append(scaled.scale)
    return (x, scaled.exact(), scales), (host(rx), host(rdelta))


def assert_close_to_the_reference(got, expected, dtype):
    tolerance = 2e-5 if dtype == np.float32 else 1e-13
    for a, b in zip(got, expected, strict=True):
        with np.errstate(invalid="ignore"):
            scale = np.nanmax(np.abs(b)) if np.isfinite(b).any() else 0.0
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance * scale)


@pytest.mark.parametrize("name", SCALED_UPDATES)
@pytest.mark.parametrize("mu", IN_RANGE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scaled_updates_equal_the_reference_over_many_steps(name, mu, dtype, needs_blas):
    (x, delta, scales), expected = scaled_run(name, mu, dtype)
    assert_close_to_the_reference((x, delta), expected, dtype)
    assert any(scale != 1.0 for scale in scales)  # Δ was kept scaled
    limit = inplace.ScaledArray.LIMIT
    assert all(1 / limit <= abs(scale) <= limit for scale in scales)
    if abs(mu) != 0.9:  # 0.9^k stays in range for 52 steps, so 120 steps multiply it in twice
        return
    assert sum(abs(b) > abs(a) for a, b in zip(scales[:-1], scales[1:], strict=True)) == 2


@pytest.mark.parametrize("name", SCALED_UPDATES)
@pytest.mark.parametrize("mu", OUT_OF_RANGE)
def test_a_momentum_outside_the_scale_range_keeps_delta_exact(name, mu, needs_blas):
    (x, delta, scales), expected = scaled_run(name, mu, np.float32, steps=9)
    assert scales == [1.0] * 9
    assert_close_to_the_reference((x, delta), expected, np.float32)


def test_the_upper_limit_is_kept_too(needs_blas):
    x, Dx, delta = arrays(np.float32)
    scaled = inplace.ScaledArray(delta)
    scales = []
    for _ in range(40):
        inplace.momentum_update_scaled(x, Dx, scaled, 1e-3, 1.2)
        scales.append(scaled.scale)
    assert max(scales) > 200 and max(scales) <= inplace.ScaledArray.LIMIT
    assert scaled.exact() is delta and scaled.scale == 1.0


@pytest.mark.parametrize("name", ["Momentum", "Nesterov"])
def test_optimizer_delta_x_reads_and_writes_delta_itself(name, needs_blas):
    from nerva_xp.optimizers import parse_optimizer

    x, Dx, _ = arrays(np.float32)
    rx, rdelta = x.copy(), np.zeros_like(x)
    optimizer = parse_optimizer(f"{name}(0.9)")(x, Dx)
    plain = PLAIN_UPDATES[name.lower()]
    for step in range(130):
        if step == 30:  # a write through delta_x (e.g. a checkpoint's Δ) is what is used
            optimizer.delta_x[...] = 0.25
            rdelta[...] = 0.25
        if step == 70:  # so is an array bound to delta_x
            optimizer.delta_x = np.full_like(x, -0.5)
            rdelta[...] = -0.5
        optimizer.update(0.01)
        plain(rx, Dx, rdelta, 0.01, 0.9, np.empty_like(x))
        if step in (20, 51, 52, 53, 100):  # around a step where the scale is multiplied in
            np.testing.assert_allclose(optimizer.delta_x, rdelta, rtol=1e-5, atol=1e-7)
    assert_close_to_the_reference((x,), (rx,), np.float32)
    assert optimizer.buffers()["delta_x"] is optimizer.delta_x
    optimizer.update(0.01)
    optimizer.make_state_exact()
    assert optimizer._delta.scale == 1.0
