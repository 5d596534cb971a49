"""The CUDA code path (spec §1.3, §1.7) on a machine without a GPU, through a fake CuPy.

fake_cupy.py stands in for ``cupy`` in ``sys.modules``: device selection, allocation, the fused
dispatchers (their kernels compiled for the CPU), training and ``nerva-xp train --device=cuda``
then run the code that a GPU run would, and must agree with the CPU run. Without the fake, on a
machine with no usable GPU, ``cuda`` is refused in one line and ``auto`` falls back to the CPU.
"""

from __future__ import annotations

import sys

import fake_cupy
import numpy as np
import pytest
from cpu_kernels import compiler_available

from nerva_xp import fused
from nerva_xp.cli import main
from nerva_xp.datasets import make_dataloaders
from nerva_xp.device import CudaDevice, DeviceError, select_device, to_numpy
from nerva_xp.learning_rate import parse_learning_rate
from nerva_xp.loss_functions import StableSoftmaxCrossEntropyLossFunction
from nerva_xp.multilayer_perceptron import parse_multilayer_perceptron
from nerva_xp.training import stochastic_gradient_descent

DTYPES = ["float32", "float64"]
TOLERANCE = {"float32": {"rtol": 1e-5, "atol": 1e-6}, "float64": {"rtol": 1e-10, "atol": 1e-12}}
LAYERS = ["SReLU", "BatchNormalization", "ReLU", "Linear"]


@pytest.fixture
def fake(monkeypatch):
    """fake_cupy installed as ``cupy``, with no kernels built yet and kernels on."""
    if not compiler_available():
        pytest.skip("the fake CuPy compiles its kernels with g++")
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setattr(fused, "_built", {})
    monkeypatch.setattr(fused, "_enabled", True)
    fake_cupy.reset()
    return fake_cupy


# ---- device selection ----


def test_cuda_is_selected_through_cupy(fake):
    d = select_device("cuda")
    assert isinstance(d, CudaDevice) and d.name == "cuda:0" and d.dtype_name == "float32"
    assert d.describe() == "cuda:0 (cupy, Fake CPU GPU)"
    assert fake.kernel_calls["nerva_xp_probe"] == 1


def test_a_cuda_index_out_of_range_is_refused(fake):
    with pytest.raises(DeviceError, match="out of range") as error:
        select_device("cuda:1")
    assert "\n" not in str(error.value)


def test_cuda_n_makes_gpu_n_current(fake, monkeypatch):
    """CuPy runs kernels, ufuncs and array creation on the current GPU, whatever ``device=``."""
    monkeypatch.setattr(fake, "DEVICE_COUNT", 2)
    assert select_device("cuda:1").name == "cuda:1" and fake.current_device == 1
    select_device("cuda")
    assert fake.current_device == 0


def test_auto_picks_the_gpu(fake):
    d = select_device("auto", "float64")
    assert d.name == "cuda:0" and d.note is None and d.dtype_name == "float64"


def test_no_cuda_device_is_refused_and_auto_falls_back(fake, monkeypatch):
    monkeypatch.setattr(fake, "DEVICE_COUNT", 0)
    with pytest.raises(DeviceError, match="^cuda is unavailable: no CUDA device found$"):
        select_device("cuda")
    assert select_device("auto").note == "cuda unavailable: no CUDA device found"


def test_a_failing_probe_kernel_is_refused(fake, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("nvrtc: error: failed\nsecond line")

    monkeypatch.setattr(fake, "ElementwiseKernel", broken)
    message = "CUDA kernels do not compile or run \\(RuntimeError: nvrtc: error: failed\\)$"
    with pytest.raises(DeviceError, match=message):
        select_device("cuda")


@pytest.mark.parametrize("dtype", DTYPES)
def test_device_arrays_are_cupy_arrays(fake, dtype):
    d = select_device("cuda", dtype)
    host = np.arange(6.0).reshape(2, 3)
    A = d.asarray(host)
    host[0, 0] = 99  # the device copy does not follow the host array
    for array in (d.zeros((2, 3)), d.ones((2, 3)), A):
        assert isinstance(array, fake.ndarray) and array.dtype == np.dtype(dtype)
    assert type(to_numpy(A)) is np.ndarray and to_numpy(A)[0, 0] == 0
    d.synchronize()


# ---- dispatchers ----


def dispatcher_cases(dtype: str) -> dict:
    """name -> (dispatcher, host arguments, reference); KERNEL_OF[name] is its kernel."""
    rng = np.random.default_rng(7)

    def array(*shape):
        return rng.standard_normal(shape).astype(dtype)

    Z, DY, x = array(6, 4), array(6, 4), np.array([0.2, -0.3, 0.3, 0.7], dtype=dtype)
    Y, T = 3 * array(6, 4), rng.random((6, 4)).astype(dtype)
    gamma, inv_sqrt_Sigma = rng.uniform(0.5, 2, 4).astype(dtype), rng.uniform(0.5, 2, 4)
    batch_norm = (Z, DY, gamma, inv_sqrt_Sigma.astype(dtype), DY.sum(0), (Z * DY).sum(0))
    return {
        "srelu": (fused.srelu, (Z, x), fused.srelu_reference),
        "srelu_backward": (fused.srelu_backward, (Z, DY, x), fused.srelu_backward_reference),
        "loss": (
            fused.softmax_cross_entropy_loss,
            (Y, T),
            fused.softmax_cross_entropy_loss_reference,
        ),
        "gradient": (
            fused.softmax_cross_entropy_gradient,
            (Y, T),
            fused.softmax_cross_entropy_gradient_reference,
        ),
        "batch_norm": (fused.batch_norm_backward, batch_norm, fused.batch_norm_backward_reference),
    }


KERNEL_OF = {
    "srelu": "nerva_xp_srelu_forward",
    "srelu_backward": "nerva_xp_srelu_backward",
    "loss": "nerva_xp_softmax_cross_entropy_loss",
    "gradient": "nerva_xp_softmax_cross_entropy_gradient",
    "batch_norm": "nerva_xp_batch_norm_backward",
}


def assert_same(actual, expected, dtype: str) -> None:
    if isinstance(expected, tuple):
        for a, e in zip(actual, expected, strict=True):
            assert_same(a, e, dtype)
        return
    np.testing.assert_allclose(to_numpy(actual), expected, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", KERNEL_OF)
def test_dispatchers_run_the_kernels_on_cupy_arrays(fake, name, dtype):
    dispatcher, args, reference = dispatcher_cases(dtype)[name]
    result = dispatcher(*[fake.asarray(a) for a in args])
    assert dict(fake.kernel_calls) == {KERNEL_OF[name]: 1}
    assert list(fused._built) == [KERNEL_OF[name]]
    first = result[0] if isinstance(result, tuple) else result
    assert isinstance(first, fake.ndarray) and first.dtype == np.dtype(dtype)
    assert_same(result, reference(*args), dtype)


@pytest.mark.parametrize("name", KERNEL_OF)
def test_dispatchers_run_the_references_with_kernels_disabled(fake, name):
    dispatcher, args, reference = dispatcher_cases("float32")[name]
    with fused.kernels_disabled():
        result = dispatcher(*[fake.asarray(a) for a in args])
    assert not fake.kernel_calls and not fused._built
    assert_same(result, reference(*args), "float32")


def test_dispatchers_run_the_references_on_numpy_arrays(fake):
    for dispatcher, args, reference in dispatcher_cases("float32").values():
        assert_same(dispatcher(*args), reference(*args), "float32")
    assert not fake.kernel_calls


# ---- training ----


def train_weights(device_name: str, dtype: str, seed: int = 5, fold=False) -> list[np.ndarray]:
    """The parameters after a short seeded SGD run of an SReLU/BN/ReLU network on ``device``
    (with folded weight updates if ``fold``)."""
    d = select_device(device_name, dtype)
    rng = np.random.default_rng(seed)
    X, labels = rng.standard_normal((60, 6)), rng.integers(0, 3, 60)
    M = parse_multilayer_perceptron(
        LAYERS, [6, 8, 8, 3], ["Momentum(0.9)"], ["XavierNormal"], device=d, rng=rng
    )
    M.set_weight_update_folding(fold)
    loaders = make_dataloaders(
        X[:40], labels[:40], X[40:], labels[40:], 10, shuffle=True, rng=rng, device=d
    )
    loss, lr = StableSoftmaxCrossEntropyLossFunction(), parse_learning_rate("Constant(0.1)")
    stochastic_gradient_descent(M, 3, loss, lr, *loaders)
    return [to_numpy(p) for layer in M.layers for _, p, _ in layer.named_parameters()]


@pytest.mark.parametrize("fold", [False, True], ids=["default", "folded"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_training_on_the_gpu_path_matches_the_cpu(fake, dtype, fold):
    on_gpu = train_weights("cuda", dtype, fold=fold)
    assert set(fake.kernel_calls) == set(fused.KERNELS) | {"nerva_xp_probe"}
    on_cpu = train_weights("cpu", dtype)
    assert len(on_gpu) == len(on_cpu)
    for gpu, cpu in zip(on_gpu, on_cpu, strict=True):
        np.testing.assert_allclose(gpu, cpu, **TOLERANCE[dtype])


def test_train_command_on_cuda(fake, capsys):
    code = main(
        [
            "train", "--device=cuda", "--epochs=1", "--seed=1", "--batch-size=100",
            "--layers=SReLU;BatchNormalization;ReLU;Linear", "--layer-sizes=64;16;16;10",
            "--learning-rate=Constant(0.01)", "--loss=SoftmaxCrossEntropy",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0].startswith("Device: cuda:0 (cupy, Fake CPU GPU)")
    assert set(fake.kernel_calls) == set(fused.KERNELS) | {"nerva_xp_probe"}


# ---- without the fake ----


def test_without_a_gpu_cuda_is_refused_in_one_line_and_auto_uses_the_cpu():
    try:
        d = select_device("cuda")
    except DeviceError as error:
        message = str(error)
    else:
        pytest.skip(f"a CUDA GPU is usable here: {d.describe()}")
    assert message.startswith("cuda is unavailable: ") and "\n" not in message
    auto = select_device("auto")
    assert auto.name == "cpu" and auto.note.startswith("cuda unavailable: ")
    assert auto.describe().startswith("cpu (numpy; cuda unavailable: ")
