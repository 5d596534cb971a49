"""Kernels on a real GPU: each fused kernel equals its reference, and a CUDA training run equals
the NumPy one. Every test here skips, with the reason, where no usable CUDA device exists."""

import numpy as np
import pytest

from nerva_xp import fused
from nerva_xp.datasets import make_dataloaders
from nerva_xp.device import select_device
from nerva_xp.learning_rate import parse_learning_rate
from nerva_xp.loss_functions import parse_loss_function
from nerva_xp.multilayer_perceptron import parse_multilayer_perceptron
from nerva_xp.training import stochastic_gradient_descent

from conftest import device_or_skip, host


@pytest.fixture(params=["float32", "float64"])
def gpu(request):
    return device_or_skip("cuda", request.param)


def random(d, *shape, seed=0):
    return d.asarray(np.random.default_rng(seed).standard_normal(shape))


def both_ways(function, *args):
    """(kernel result, reference result) of a dispatcher, as host arrays."""
    with_kernel = function(*args)
    with fused.kernels_disabled():
        without = function(*args)
    as_host = lambda r: [host(a) for a in r] if isinstance(r, tuple) else [host(r)]  # noqa: E731
    return as_host(with_kernel), as_host(without)


def assert_same(gpu, pair):
    tolerance = 1e-5 if gpu.dtype_name == "float32" else 1e-12
    for kernel_result, reference in zip(*pair, strict=True):
        np.testing.assert_allclose(kernel_result, reference, rtol=tolerance, atol=tolerance)


def test_srelu_kernels(gpu):
    Z, DY, x = random(gpu, 64, 32), random(gpu, 64, 32, seed=1), gpu.asarray([0.2, -0.5, 0.3, 0.5])
    assert_same(gpu, both_ways(fused.srelu, Z, x))
    assert_same(gpu, both_ways(fused.srelu_backward, Z, DY, x))


def test_softmax_cross_entropy_kernels(gpu):
    Y = random(gpu, 64, 10) * 30
    T = gpu.asarray(np.eye(10)[np.arange(64) % 10])
    assert_same(gpu, both_ways(fused.softmax_cross_entropy_loss, Y, T))
    assert_same(gpu, both_ways(fused.softmax_cross_entropy_gradient, Y, T))


def test_batch_norm_kernel(gpu):
    Z, DY = random(gpu, 64, 16), random(gpu, 64, 16, seed=1)
    gamma, inv = random(gpu, 16, seed=2), gpu.asarray(np.linspace(0.5, 2.0, 16))
    sums = (gpu.xp.sum(DY, axis=0), gpu.xp.sum(Z * DY, axis=0))
    assert_same(gpu, both_ways(fused.batch_norm_backward, Z, DY, gamma, inv, *sums))


def train(device, seed=4):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((200, 12))
    T = np.argmax(X[:, :4], axis=1)
    M = parse_multilayer_perceptron(
        ["SReLU", "BatchNormalization", "ReLU", "Linear"], [12, 16, 16, 4], ["Momentum(0.9)"],
        ["XavierNormal"], device=device, rng=rng,
    )  # fmt: skip
    train_loader, test_loader = make_dataloaders(X, T, X, T, 32, True, rng, device)
    loss, lr = parse_loss_function("SoftmaxCrossEntropy"), parse_learning_rate("Constant(0.05)")
    stochastic_gradient_descent(M, 3, loss, lr, train_loader, test_loader)
    return {key: host(value) for key, value in M.weights_dict().items()}


def test_cuda_training_equals_the_numpy_training(gpu, capsys):
    expected = train(select_device("cpu", gpu.dtype_name))
    tolerance = 1e-4 if gpu.dtype_name == "float32" else 1e-10
    for key, value in train(gpu).items():
        np.testing.assert_allclose(value, expected[key], rtol=tolerance, atol=tolerance)


def _captured(work) -> None:
    """work() while a fresh stream captures a CUDA graph: a synchronous device-to-host copy (a
    ``float(x)``, ``.get()`` or stream synchronisation) then raises (CuPy's begin_capture docs)."""
    import cupy

    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        try:
            work()
        finally:
            stream.end_capture()


def test_the_batch_loop_never_copies_to_the_host(gpu):
    from nerva_xp.training import run_batches

    rng = np.random.default_rng(0)
    X, T = rng.standard_normal((256, 12)), np.arange(256) % 4
    M = parse_multilayer_perceptron(
        ["SReLU", "BatchNormalization", "Softmax"], [12, 16, 4], ["Nesterov(0.9)"],
        ["HeNormal"], device=gpu, rng=rng,
    )  # fmt: skip
    loader, _ = make_dataloaders(X, T, X, T, 64, True, rng, gpu)
    loss = parse_loss_function("SoftmaxCrossEntropy")
    batches = list(loader)  # drawing the permutation is host work, before the loop
    run_batches(M, loss, 0.1, batches, epoch=0)  # warm-up: kernels built, cuBLAS ready
    _captured(lambda: run_batches(M, loss, 0.1, batches, epoch=0))
    with pytest.raises(RuntimeError):  # the control: capture does catch a copy to the host
        _captured(lambda: float(M.layers[0].W[0, 0]))
