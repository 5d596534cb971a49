"""Folded weight updates (opt-in, issue 5): DW = DZ^T X is consumed inside W's optimizer update
(one BLAS gemm C ← α·A B + β·C on NumPy) instead of being stored. The updates must equal the
default ones: bit for bit where the product is materialised (strict, NumPy without BLAS), up to
rounding where BLAS fuses it."""

import numpy as np
import pytest

from nerva_xp import host_blas, inplace
from nerva_xp.layers import parse_linear_layer
from nerva_xp.loss_functions import parse_loss_function
from nerva_xp.multilayer_perceptron import parse_multilayer_perceptron
from nerva_xp.optimizers import MomentumOptimizer

from conftest import device_or_skip, host

OPTIMIZERS = ["GradientDescent", "Momentum(0.9)", "Nesterov(0.9)"]
K, D, N = 120, 150, 40  # W has 18000 elements: above the BLAS threshold


def needs_blas():
    if not host_blas.available():
        pytest.skip("NumPy's bundled OpenBLAS was not found; the materialised product is used")


@pytest.fixture
def no_blas(monkeypatch):
    monkeypatch.setattr(host_blas, "available", lambda: False)


# ---- host_blas.gemm ----


@pytest.mark.parametrize("order_A", ["C", "F"])
@pytest.mark.parametrize("order_B", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_computes_alpha_AB_plus_beta_C_for_every_layout(order_A, order_B, dtype):
    needs_blas()
    rng = np.random.default_rng(0)
    A = np.asarray(rng.standard_normal((7, 5)), dtype=dtype, order=order_A)
    B = np.asarray(rng.standard_normal((5, 3)), dtype=dtype, order=order_B)
    C = rng.standard_normal((7, 3)).astype(dtype)
    expected = -0.5 * (A.astype(np.float64) @ B) + 0.25 * C
    host_blas.gemm(-0.5, A, B, 0.25, C)
    np.testing.assert_allclose(C, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_gemm_takes_the_transposed_view_of_a_gradient():
    needs_blas()
    rng = np.random.default_rng(1)
    DZ, X = rng.random((N, K), dtype=np.float32), rng.random((N, D), dtype=np.float32)
    C = np.zeros((K, D), np.float32)
    assert host_blas.gemm_operand(DZ.T) and not host_blas.gemm_operand(X[:, ::2])
    host_blas.gemm(1.0, DZ.T, X, 0.0, C)
    np.testing.assert_allclose(C, DZ.T @ X, rtol=1e-5)


# ---- inplace: product updates against the ordinary ones ----

PRODUCT_UPDATES = {
    "gradient_descent": (
        lambda x, A, B, d, eta: inplace.gradient_descent_product_update(x, A, B, eta),
        lambda x, Dx, d, eta: inplace.gradient_descent_update(x, Dx, eta),
    ),
    "momentum": (
        lambda x, A, B, d, eta: inplace.momentum_product_update(x, A, B, d, eta, 0.9),
        lambda x, Dx, d, eta: inplace.momentum_update(x, Dx, d, eta, 0.9),
    ),
    "nesterov": (
        lambda x, A, B, d, eta: inplace.nesterov_product_update(x, A, B, d, eta, 0.9),
        lambda x, Dx, d, eta: inplace.nesterov_update(x, Dx, d, eta, 0.9),
    ),
}


def two_updates(name: str, folded: bool, dtype, device=None):
    """x and Δ after two updates with Dx = DZ^T X, folded or materialised first."""
    rng = np.random.default_rng(2)
    x, delta = (rng.standard_normal((K, D)).astype(dtype) for _ in range(2))
    DZ, X = rng.standard_normal((N, K)).astype(dtype), rng.random((N, D)).astype(dtype)
    if device is not None:
        x, delta, DZ, X = (device.asarray(a) for a in (x, delta, DZ, X))
    product_update, update = PRODUCT_UPDATES[name]
    ids = (id(x), id(delta))
    for eta in (0.1, 0.05):
        if folded:
            product_update(x, DZ.T, X, delta, eta)
        else:
            update(x, DZ.T @ X, delta, eta)
    assert (id(x), id(delta)) == ids
    return host(x), host(delta)


@pytest.mark.parametrize("name", PRODUCT_UPDATES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blas_product_update_equals_the_ordinary_update_up_to_rounding(name, dtype):
    needs_blas()
    tolerance = 2e-5 if dtype == np.float32 else 1e-12
    folded, default = two_updates(name, True, dtype), two_updates(name, False, dtype)
    for got, expected in zip(folded, default, strict=True):
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("name", PRODUCT_UPDATES)
def test_without_blas_the_product_update_is_the_ordinary_one(name, no_blas):
    for got, expected in zip(
        two_updates(name, True, np.float32), two_updates(name, False, np.float32), strict=True
    ):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", PRODUCT_UPDATES)
def test_reference_product_update_is_the_ordinary_one_on_strict(name, strict32):
    for got, expected in zip(
        two_updates(name, True, np.float32, strict32),
        two_updates(name, False, np.float32, strict32),
        strict=True,
    ):
        np.testing.assert_array_equal(got, expected)


def test_gradient_descent_folds_into_one_gemm_on_the_weights(monkeypatch):
    needs_blas()
    calls = []
    monkeypatch.setattr(host_blas, "axpy", lambda *a: calls.append("axpy"))
    real_gemm = host_blas.gemm
    monkeypatch.setattr(host_blas, "gemm", lambda *a: calls.append("gemm") or real_gemm(*a))
    two_updates("gradient_descent", True, np.float32)
    assert calls == ["gemm", "gemm"]


# ---- layers and networks ----


def train(M, device, steps=4, loss="SoftmaxCrossEntropy", eta=0.05):
    rng = np.random.default_rng(3)
    X = device.asarray(rng.random((N, M.layers[0].input_size())))
    T = device.asarray(np.eye(3)[rng.integers(0, 3, N)])
    loss_function = parse_loss_function(loss)
    for _ in range(steps):
        Y = M.feedforward(X)
        M.backpropagate(Y, loss_function.gradient(Y, T) / N)
        M.optimize(eta)
    return M


def network(optimizer: str, device, folded: bool):
    M = parse_multilayer_perceptron(
        ["ReLU", "BatchNormalization", "SReLU", "Linear"], [D, K, 60, 3],
        [optimizer], ["XavierNormal"], device=device, rng=np.random.default_rng(4),
    )  # fmt: skip
    M.set_weight_update_folding(folded)
    return M


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_folded_training_equals_default_training(optimizer, device_any):
    folded = train(network(optimizer, device_any, True), device_any)
    default = train(network(optimizer, device_any, False), device_any)
    exact = device_any.name == "strict"
    tolerance = {"rtol": 1e-4, "atol": 1e-6}
    if device_any.dtype_name == "float64":
        tolerance = {"rtol": 1e-9, "atol": 1e-12}
    for (key, got), expected in zip(
        folded.weights_dict().items(), default.weights_dict().values(), strict=True
    ):
        if exact:
            np.testing.assert_array_equal(host(got), host(expected), err_msg=key)
        else:
            np.testing.assert_allclose(host(got), host(expected), err_msg=key, **tolerance)


def test_folded_layers_do_not_write_DW_but_still_write_the_other_gradients():
    device = device_or_skip("cpu", "float64")
    M = train(network("Momentum(0.9)", device, True), device, steps=1)
    for layer in M.linear_layers():
        assert not np.any(host(layer.DW)) and np.any(host(layer.Db))
    M.set_weight_update_folding(False)
    train(M, device, steps=1)
    assert all(np.any(host(layer.DW)) for layer in M.linear_layers())


def test_optimize_before_any_backpropagate_is_the_ordinary_update():
    device = device_or_skip("cpu", "float64")
    folded, default = (network("Momentum(0.9)", device, fold) for fold in (True, False))
    for M in (folded, default):
        M.layers[0].optimizer.optimizers[0].delta_x[...] = 0.5
        M.optimize(0.1)
    np.testing.assert_array_equal(host(folded.layers[0].W), host(default.layers[0].W))


def test_a_hand_built_optimizer_cannot_fold():
    layer = parse_linear_layer("ReLU", 4, 3, "GradientDescent", "XavierNormal")
    layer.optimizer = MomentumOptimizer(layer.W, layer.DW, 0.9)
    with pytest.raises(
        ValueError, match="folded weight updates need a CompositeOptimizer whose first member"
    ):
        layer.set_weight_update_folding(True)
    assert not layer.fold_weight_update
    layer.set_weight_update_folding(False)  # always allowed


def test_a_new_optimizer_of_a_folded_layer_is_used():
    device = device_or_skip("cpu", "float64")
    M = network("Momentum(0.9)", device, True)
    for layer in M.layers:
        layer.set_optimizer("GradientDescent")
    reference = network("Momentum(0.9)", device, False)
    for layer in reference.layers:
        layer.set_optimizer("GradientDescent")
    train(M, device), train(reference, device)
    np.testing.assert_allclose(host(M.layers[0].W), host(reference.layers[0].W), rtol=1e-12)


def test_gradient_checks_refuse_a_folded_layer():
    from nerva_xp.gradient_check import layer_gradient_errors

    device = device_or_skip("cpu", "float64")
    layer = parse_linear_layer("ReLU", 4, 3, "Momentum(0.9)", "XavierNormal", device=device)
    X = device.asarray(np.random.default_rng(5).random((6, 4)))
    layer.set_weight_update_folding(True)
    with pytest.raises(ValueError, match="does not write DW"):
        layer_gradient_errors(layer, X)
    layer.set_weight_update_folding(False)
    assert max(layer_gradient_errors(layer, X).values()) < 1e-6


@pytest.mark.parametrize("fold", [False, True], ids=["default", "folded"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_a_step_allocates_nothing_the_size_of_a_weight_matrix(optimizer, fold):
    """Hot-loop hygiene on NumPy: DW goes straight into its array, updates run in place (and
    folded updates never materialise DZ^T X), so a step's peak allocation stays batch-sized."""
    import tracemalloc

    if fold:
        needs_blas()
    device = device_or_skip("cpu", "float32")
    M = parse_multilayer_perceptron(
        ["ReLU", "Linear"], [2000, 300, 10], [optimizer], ["XavierNormal"],
        device=device, rng=np.random.default_rng(6),
    )  # fmt: skip
    M.set_weight_update_folding(fold)
    rng = np.random.default_rng(7)
    X = device.asarray(rng.random((20, 2000)))
    T = device.asarray(np.eye(10)[rng.integers(0, 10, 20)])
    loss = parse_loss_function("SoftmaxCrossEntropy")

    def step():
        Y = M.feedforward(X)
        M.backpropagate(Y, loss.gradient(Y, T) / 20)
        M.optimize(0.01)

    step()  # first-call allocations (thread pools, BLAS buffers) are not per step
    tracemalloc.start()
    try:
        step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    weight_bytes = M.layers[0].W.nbytes  # 2.4 MB; the batch-sized arrays are 160 kB at most
    assert peak < weight_bytes / 4, f"peak {peak} bytes in one step"
