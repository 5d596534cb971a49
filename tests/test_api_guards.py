"""Library calls with mismatched shapes fail with a clear exception, never a silent broadcast or an
out-of-bounds BLAS access (the fast paths hand NumPy arrays to BLAS as bare pointers)."""

import numpy as np
import pytest

from nerva_xp import host_blas, inplace
from nerva_xp.datasets import DataLoader
from nerva_xp.layers import BatchNormalizationLayer, LinearLayer, parse_linear_layer
from nerva_xp.multilayer_perceptron import parse_multilayer_perceptron
from nerva_xp.npz import DataError
from nerva_xp.optimizers import GradientDescentOptimizer, MomentumOptimizer

LAYERS = ["Linear", "ReLU", "SReLU", "Softmax", "LogSoftmax"]


def large_layer(text="Linear", optimizer="Momentum(0.9)"):
    """A layer big enough for the BLAS paths (inplace.BLAS_MINIMUM elements)."""
    return parse_linear_layer(
        text, 200, 100, optimizer, "XavierNormal", rng=np.random.default_rng(0)
    )


def test_an_optimizer_needs_x_and_Dx_of_one_shape():
    layer = large_layer()
    with pytest.raises(ValueError, match=r"x has shape \(100, 200\) but Dx \(100,\)"):
        GradientDescentOptimizer(layer.W, layer.Db)
    with pytest.raises(ValueError, match="expected equal"):
        MomentumOptimizer(layer.W, layer.DW.T, 0.9)


def test_blas_routines_refuse_mismatched_arrays():
    x, y = np.ones(20000, np.float32), np.ones(30000, np.float32)
    with pytest.raises(ValueError, match="does not match"):
        host_blas.axpy(1.0, x, y)
    with pytest.raises(ValueError, match="does not match"):
        host_blas.axpby(1.0, x, 0.5, y)
    A, B = np.ones((100, 8), np.float32), np.ones((64, 200), np.float32)
    with pytest.raises(ValueError, match="do not match"):
        host_blas.gemm(1.0, A, B, 0.0, np.zeros((100, 200), np.float32))


def test_a_read_only_parameter_is_never_written_by_blas():
    x, Dx = np.ones((200, 100), np.float32), np.ones((200, 100), np.float32)
    x.flags.writeable = False
    assert not inplace._blas(x, Dx)
    with pytest.raises(ValueError, match="read-only"):
        inplace.gradient_descent_update(x, Dx, 0.1)
    np.testing.assert_array_equal(x, 1.0)


@pytest.mark.parametrize("text", LAYERS)
@pytest.mark.parametrize("shape", [(100,), (1, 100), (8, 1), (8, 4000), (64, 100)])
def test_backpropagate_refuses_a_DY_that_is_not_the_shape_of_Y(text, shape):
    layer = large_layer(text)
    Y = layer.feedforward(np.ones((8, 200), np.float32))
    with pytest.raises(ValueError, match=r"DY has shape .*; expected \(8, 100\)"):
        layer.backpropagate(Y, np.ones(shape, np.float32))


@pytest.mark.parametrize("shape", [(8, 4000), (64, 100)])
def test_a_folded_layer_refuses_a_wrong_DY_and_its_weights_stay_intact(shape):
    layer = large_layer()
    layer.set_weight_update_folding(True)
    W = np.array(layer.W)
    Y = layer.feedforward(np.ones((8, 200), np.float32))
    with pytest.raises(ValueError, match="DY has shape"):
        layer.backpropagate(Y, np.ones(shape, np.float32))
    layer.optimize(0.1)  # nothing to fold: no factors were kept
    np.testing.assert_array_equal(layer.W, W)


def test_batch_normalization_refuses_a_broadcasting_DY():
    layer = BatchNormalizationLayer(4)
    Y = layer.feedforward(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
    with pytest.raises(ValueError, match=r"expected \(5, 4\)"):
        layer.backpropagate(Y, np.ones((1, 4), np.float32))


def test_backpropagate_before_feedforward_says_so():
    with pytest.raises(ValueError, match="needs a feedforward first"):
        LinearLayer(3, 2).backpropagate(None, np.ones((1, 2), np.float32))


def test_feedforward_needs_a_matrix():
    M = parse_multilayer_perceptron(
        ["ReLU", "BatchNormalization", "Linear"], [5, 4, 3], ["GradientDescent"], ["XavierNormal"]
    )
    with pytest.raises(ValueError, match=r"X has shape \(5,\); expected \(N, D\)"):
        M.feedforward(np.ones(5, np.float32))


def test_a_loader_needs_as_many_targets_as_rows():
    with pytest.raises(DataError, match="X has 10 rows but T has 9"):
        DataLoader(np.zeros((10, 3)), np.zeros(9, int), 4, num_classes=3)


LOSS_NAMES = ["SquaredError", "CrossEntropy", "LogisticCrossEntropy", "NegativeLogLikelihood",
              "SoftmaxCrossEntropy"]  # fmt: skip


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("shape", [(4, 1), (1, 3), (3,)])
def test_a_loss_refuses_targets_that_would_broadcast(name, shape):
    from nerva_xp.loss_functions import parse_loss_function

    loss = parse_loss_function(name)
    Y = np.full((4, 3), 0.3, np.float32)
    for method in (loss, loss.gradient):
        with pytest.raises(ValueError, match=r"T has shape .*; expected \(4, 3\)"):
            method(Y, np.ones(shape, np.float32))


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("backend", ["cpu", "strict"])
@pytest.mark.parametrize("target_dtype", ["int64", "bool", "float64"])
def test_a_loss_keeps_the_dtype_of_Y_whatever_the_dtype_of_T(name, backend, target_dtype):
    """Spec §5: the value is a 0-d array in Y's dtype; an integer or bool one-hot T is taken as
    Y's dtype, not promoted with it (on NumPy int64 with float32 gave float64; strict refused)."""
    from nerva_xp.device import select_device, to_numpy
    from nerva_xp.loss_functions import parse_loss_function

    device = select_device(backend, "float32")
    xp = device.xp
    loss = parse_loss_function(name)
    Y = device.asarray(np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]))
    labels = np.array([[0, 1, 0], [1, 0, 0]])
    T = xp.asarray(labels.astype(target_dtype), device=Y.device)
    as_float = device.asarray(labels)
    assert loss(Y, T).dtype == xp.float32
    assert loss.gradient(Y, T).dtype == xp.float32
    assert float(loss(Y, T)) == float(loss(Y, as_float))
    assert np.array_equal(to_numpy(loss.gradient(Y, T)), to_numpy(loss.gradient(Y, as_float)))
