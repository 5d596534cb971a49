"""Devices (spec §1.3): selection, allocation, host copies, and the import boundaries."""

import ast
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from nerva_xp import device as device_module
from nerva_xp.device import DeviceError, default_device, select_device, set_default_device

PACKAGE = pathlib.Path(device_module.__file__).parent

# Modules that compute: they get their namespace from their arguments (spec §1.3).
MATH_MODULES = [
    "matrix_operations",
    "softmax_functions",
    "activation_functions",
    "loss_functions",
    "layers",
    "optimizers",
    "learning_rate",
    "weight_initializers",
    "multilayer_perceptron",
    "training",
    "fused",
    "spec_strings",
]


def imported_modules(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", MATH_MODULES)
def test_math_modules_import_neither_numpy_nor_cupy(module):
    allowed = {"cupy"} if module == "fused" else set()  # fused builds its kernels lazily
    assert not imported_modules(module) & ({"numpy", "cupy"} - allowed)


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_only_the_device_module_imports_cupy(path):
    if path.stem not in ("device", "fused"):
        assert "cupy" not in imported_modules(path.stem)


def test_importing_nerva_xp_does_not_import_cupy():
    code = "import sys, nerva_xp.training; assert 'cupy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cpu_device_uses_numpy_with_the_requested_dtype(dtype):
    d = select_device("cpu", dtype)
    assert d.name == "cpu" and d.device == "cpu" and d.dtype_name == dtype
    assert isinstance(d.zeros((2, 3)), np.ndarray)
    assert d.zeros((2, 3)).dtype == np.dtype(dtype)


def test_strict_device_runs_on_a_second_device():
    import array_api_strict as xp

    d = select_device("strict")
    assert d.device == xp.Device("device1")
    A = d.asarray(np.ones((2, 2)))
    assert A.device == xp.Device("device1") and A.dtype == xp.float32
    with pytest.raises(ValueError):
        A + xp.ones((2, 2), dtype=xp.float32)  # an allocation that forgot device= fails


def test_host_round_trip_keeps_values():
    for name in ("cpu", "strict"):
        d = select_device(name, "float64")
        values = np.arange(6.0).reshape(2, 3)
        np.testing.assert_array_equal(d.to_host(d.asarray(values)), values)


def test_labels_are_int64_on_the_device():
    d = select_device("strict")
    assert d.asarray(np.array([1, 2], dtype=np.int32), dtype=d.int_dtype).dtype == d.xp.int64


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("gpu", 'unknown device "gpu"; expected auto, cpu, cuda or cuda:N'),
        ("cuda", "cuda"),
        ("cuda:1", "cuda:1"),
    ],
)
def test_unusable_devices_raise_one_line_errors(name, message):
    with pytest.raises(DeviceError) as error:
        select_device(name)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unknown_dtype_is_rejected():
    with pytest.raises(DeviceError, match='unknown dtype "float16"'):
        select_device("cpu", "float16")


def test_auto_falls_back_to_the_cpu_without_cuda():
    assert select_device("auto").name == "cpu"


def test_default_device_is_cpu_float32_and_can_be_changed():
    assert default_device().name == "cpu" and default_device().dtype_name == "float32"
    try:
        set_default_device(select_device("cpu", "float64"))
        assert default_device().dtype_name == "float64"
    finally:
        set_default_device(select_device("cpu", "float32"))


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (ModuleNotFoundError("No module named 'cupy'", name="cupy"), "CuPy is not installed"),
        (ImportError("libcublas.so.12: cannot open shared object file"), "CuPy does not import"),
        (ModuleNotFoundError("No module named 'fastrlock'", name="fastrlock"), "does not import"),
    ],
)
def test_a_broken_cupy_is_not_called_missing(monkeypatch, failure, message):
    import builtins

    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name == "cupy":
            raise failure
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    monkeypatch.setattr(builtins, "__import__", failing_import)
    with pytest.raises(DeviceError, match=message) as error:
        select_device("cuda")
    assert "\n" not in str(error.value)
