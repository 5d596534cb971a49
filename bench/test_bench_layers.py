"""Activations, losses, layers and optimizer updates.

Activations: each ``act(X)`` and ``act.gradient(X)`` on a (100, 1024) pre-activation, and SReLU
through the layer-level fused dispatchers ``fused.srelu`` / ``fused.srelu_backward``.
Losses: the five CLI losses' value and gradient on (100, 10) outputs with one-hot targets
(SoftmaxCrossEntropy goes through the fused dispatchers). Layers: BatchNormalizationLayer(1024)
feedforward and backpropagate, SoftmaxLayer / LogSoftmaxLayer(1024 -> 10) backpropagate.
Optimizers: one update of a (1024, 3072) weight; and DW = DZ^T X (batch 100) with the update,
DW stored then used (the default) or folded into the update (one gemm on NumPy); and the Momentum
and Nesterov updates with Δ kept exact (OpenBLAS's one-thread axpby) or scaled (threaded axpy
calls, ``inplace.ScaledArray``, what the optimizers use).
"""

from __future__ import annotations

import pytest

from nerva_xp import fused, inplace
from nerva_xp.activation_functions import parse_activation
from nerva_xp.inplace import matmul_into
from nerva_xp.layers import BatchNormalizationLayer, LogSoftmaxLayer, SoftmaxLayer
from nerva_xp.loss_functions import parse_loss_function
from nerva_xp.optimizers import parse_optimizer

N, D, K = 100, 1024, 10  # batch, hidden width, classes

ACTIVATIONS = ["ReLU", "Sigmoid", "HyperbolicTangent", "LeakyReLU(0.1)", "AllReLU(0.1)", "SReLU"]
SRELU = "SReLU(al=0.1, tl=-0.5, ar=0.2, tr=0.5)"  # all four pieces hit by N(0, 1) data


@pytest.mark.parametrize("spec", ACTIVATIONS)
def test_activation(run, data, backend, spec):
    act = parse_activation(spec, device=backend)
    run(f"activation {spec}", act, data.normal((N, D)))


@pytest.mark.parametrize("spec", ACTIVATIONS)
def test_activation_gradient(run, data, backend, spec):
    act = parse_activation(spec, device=backend)
    run(f"activation {spec}", act.gradient, data.normal((N, D)))


def test_srelu_fused_forward(fused_mode, backend, run, data):
    """Y = SReLU(Z): the dispatcher SReLULayer.feedforward calls (a CuPy kernel when fused)."""
    x = parse_activation(SRELU, device=backend).x
    run("activation SReLU (layer dispatchers)", fused.srelu, data.normal((N, D)), x)


def test_srelu_fused_backward(fused_mode, backend, run, data):
    """(DZ, Dx) from Z and DY: the dispatcher SReLULayer.backpropagate calls."""
    x = parse_activation(SRELU, device=backend).x
    Z, DY = data.normal((N, D)), data.normal((N, D))
    run("activation SReLU (layer dispatchers)", fused.srelu_backward, Z, DY, x)


def _loss_inputs(data, name):
    """Y (N, K) valid for the loss (probabilities where it takes a log of Y) and one-hot T."""
    T = data.one_hot(data.labels(N, K), K)
    positive = name in ("CrossEntropy", "NegativeLogLikelihood")
    Y = data.probabilities((N, K)) if positive else data.normal((N, K))
    return Y, T


# SoftmaxCrossEntropy runs through the fused dispatchers: its own tests below take fused_mode
PLAIN_LOSSES = ["SquaredError", "CrossEntropy", "LogisticCrossEntropy", "NegativeLogLikelihood"]


@pytest.mark.parametrize("name", PLAIN_LOSSES)
def test_loss(run, data, name):
    run(f"loss {name}", parse_loss_function(name), *_loss_inputs(data, name))


@pytest.mark.parametrize("name", PLAIN_LOSSES)
def test_loss_gradient(run, data, name):
    run(f"loss {name}", parse_loss_function(name).gradient, *_loss_inputs(data, name))


def test_softmax_cross_entropy_loss(fused_mode, run, data):
    loss = parse_loss_function("SoftmaxCrossEntropy")
    run("loss SoftmaxCrossEntropy", loss, *_loss_inputs(data, "SoftmaxCrossEntropy"))


def test_softmax_cross_entropy_gradient(fused_mode, run, data):
    loss = parse_loss_function("SoftmaxCrossEntropy")
    run("loss SoftmaxCrossEntropy", loss.gradient, *_loss_inputs(data, "SoftmaxCrossEntropy"))


def test_batch_norm_feedforward(run, data, backend):
    layer = BatchNormalizationLayer(D, device=backend)
    run("batch-norm", layer.feedforward, data.normal((N, D)))


def test_batch_norm_backpropagate(fused_mode, backend, run, data):
    """Dbeta, Dgamma and DX (the fused batch_norm_backward dispatcher) after one feedforward."""
    layer = BatchNormalizationLayer(D, device=backend)
    Y = layer.feedforward(data.normal((N, D)))
    run("batch-norm", layer.backpropagate, Y, data.normal((N, D)))


@pytest.mark.parametrize("layer_class", [SoftmaxLayer, LogSoftmaxLayer], ids=lambda c: c.__name__)
def test_softmax_layer_backpropagate(run, data, backend, layer_class):
    """DZ of the (log-)softmax, then DW, Db and DX of the 1024 -> 10 linear part."""
    layer = layer_class(D, K, device=backend)
    layer.W[...] = data.normal((K, D), 0.03)
    Y = layer.feedforward(data.normal((N, D)))
    run(f"layer {layer_class.__name__} backpropagate", layer.backpropagate, Y, data.normal((N, K)))


OPTIMIZERS = ["GradientDescent", "Momentum(0.9)", "Nesterov(0.9)"]


@pytest.mark.parametrize("spec", OPTIMIZERS)
def test_optimizer_update(run, data, spec):
    """One in-place update of W (1024, 3072) from DW; eta is small so W stays bounded."""
    W, DW = data.normal((1024, 3072)), data.normal((1024, 3072))
    optimizer = parse_optimizer(spec)(W, DW)
    run(f"optimizer {spec}", optimizer.update, 1e-4)


@pytest.mark.parametrize("mode", ["stored", "folded"])
@pytest.mark.parametrize("spec", OPTIMIZERS)
def test_optimizer_update_with_weight_gradient(run, data, spec, mode):
    """DW = DZ^T X for W (1024, 3072) and batch 100, then the update: DW stored and read
    (``matmul_into``, ``update``) or never stored (``update_from_product``)."""
    W, DW = data.normal((1024, 3072)), data.normal((1024, 3072))
    DZ, X = data.normal((N, 1024)), data.uniform((N, 3072), 0.0, 1.0)
    optimizer = parse_optimizer(spec)(W, DW)

    def stored():
        matmul_into(DZ.T, X, DW)
        optimizer.update(1e-6)

    group = f"optimizer {spec} with DW = DZ^T X"
    if mode == "stored":
        run(group, stored)
    else:
        run(group, optimizer.update_from_product, 1e-6, DZ.T, X)


DELTA_UPDATES = {
    "Momentum(0.9)": (inplace.momentum_update, inplace.momentum_update_scaled),
    "Nesterov(0.9)": (inplace.nesterov_update, inplace.nesterov_update_scaled),
}


@pytest.mark.parametrize("storage", ["exact", "scaled"])
@pytest.mark.parametrize("spec", DELTA_UPDATES)
def test_momentum_delta_storage(run, data, backend, spec, storage):
    """One update of W (1024, 3072) with Δ stored as itself or as a scale times an array (the same
    code on CuPy, where Δ is never scaled)."""
    if backend.backend != "numpy" and storage == "scaled":
        pytest.skip("Δ is scaled only on the NumPy BLAS path")
    W, DW = data.normal((1024, 3072)), data.normal((1024, 3072))
    exact, scaled = DELTA_UPDATES[spec]
    delta = data.normal((1024, 3072), 1e-3)
    group = f"optimizer {spec}: Δ exact or scaled"
    if storage == "exact":
        run(group, exact, W, DW, delta, 1e-4, 0.9)
    else:
        run(group, scaled, W, DW, inplace.ScaledArray(delta), 1e-4, 0.9)
