"""A test-only stand-in for the part of CuPy that nerva-xp uses, running on the CPU.

Inject it with ``monkeypatch.setitem(sys.modules, "cupy", fake_cupy)`` (see the ``fake_cupy``
fixture of test_cuda_path.py). ``ndarray`` is a NumPy subclass, so array-api-compat serves it
through its NumPy namespace and NumPy operations on it keep the subclass, while
``isinstance(X, cupy.ndarray)`` still tells it apart from plain NumPy arrays. ``ElementwiseKernel``
compiles the kernel for the CPU (cpu_kernels.py) and counts its calls in ``kernel_calls``. The
``cuda`` namespace pretends there is one GPU, named "Fake CPU GPU".
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np
from cpu_kernels import CpuElementwiseKernel

GPU_NAME = b"Fake CPU GPU"
DEVICE_COUNT = 1
current_device = 0  # set by Device.use()

float32 = np.float32
float64 = np.float64
int64 = np.int64

kernel_calls: Counter[str] = Counter()  # kernel name -> number of calls


class ndarray(np.ndarray):  # noqa: N801 (CuPy's name)
    """A "device" array: a NumPy array of another class."""

    def get(self) -> np.ndarray:
        """A host copy, as ``cupy.ndarray.get``."""
        return np.array(self)


def _device_array(array) -> ndarray:
    return np.asarray(array).view(ndarray)


def zeros(shape, dtype=float) -> ndarray:
    return _device_array(np.zeros(shape, dtype=dtype))


def ones(shape, dtype=float) -> ndarray:
    return _device_array(np.ones(shape, dtype=dtype))


def asarray(a, dtype=None) -> ndarray:
    """A device array; like CuPy, a copy unless ``a`` already is one of the right dtype."""
    if isinstance(a, ndarray) and (dtype is None or a.dtype == np.dtype(dtype)):
        return a
    return _device_array(np.array(a, dtype=dtype))


def asnumpy(a) -> np.ndarray:
    return np.array(a)


class ElementwiseKernel(CpuElementwiseKernel):
    """The CPU harness, returning device arrays and counting calls by kernel name."""

    def __call__(self, *args):
        kernel_calls[self.name] += 1
        result = super().__call__(*args)
        if isinstance(result, tuple):
            return tuple(_device_array(r) for r in result)
        return _device_array(result)


def _check_index(index: int) -> int:
    if not 0 <= index < DEVICE_COUNT:
        raise RuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
    return index


class Device:
    """``cupy.cuda.Device``: a context manager selecting GPU ``index``."""

    def __init__(self, index=None):
        self.id = 0 if index is None else int(index)

    def __enter__(self):
        _check_index(self.id)
        return self

    def __exit__(self, *exc_info) -> bool:
        return False

    def synchronize(self) -> None:
        _check_index(self.id)

    def use(self) -> None:
        """Make this GPU the current one (where kernels and allocations go)."""
        global current_device
        current_device = _check_index(self.id)


def _get_device_properties(index: int) -> dict:
    _check_index(index)
    return {"name": GPU_NAME}


_stream = SimpleNamespace(synchronize=lambda: None)

cuda = SimpleNamespace(
    Device=Device,
    get_current_stream=lambda: _stream,
    runtime=SimpleNamespace(
        getDeviceCount=lambda: DEVICE_COUNT,
        getDeviceProperties=_get_device_properties,
    ),
)


def reset() -> None:
    """Forget the counted kernel calls; GPU 0 is current."""
    global current_device
    kernel_calls.clear()
    current_device = 0
