"""Devices: which array namespace, which device and which float dtype a run uses (spec §1.3).

A Device only allocates and moves arrays between the host and itself; math functions take their
namespace from their arguments. Backends: ``cpu`` (NumPy through array-api-compat), ``cuda:N``
(CuPy, imported only when asked for) and ``strict`` (array-api-strict on its second device, for
tests). This is the only module that makes CuPy arrays.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nerva_xp.errors import describe_error

DTYPE_NAMES = ("float32", "float64")


class DeviceError(RuntimeError):
    """A requested device cannot be used; the message says why in one line."""


@dataclass(frozen=True)
class Device:
    """Where a run's arrays live: ``name`` (cpu, cuda:0, strict), the namespace ``xp``, the
    ``device`` object passed as ``device=`` to it, and the float ``dtype`` of the run."""

    name: str
    xp: Any = field(repr=False)
    device: Any = field(repr=False)
    dtype: Any = field(repr=False)
    backend: str = "numpy"
    note: str | None = None  # why ``auto`` fell back to the CPU, if it did

    @property
    def dtype_name(self) -> str:
        return "float64" if self.dtype == self.xp.float64 else "float32"

    @property
    def int_dtype(self):
        """The dtype of class labels on the device (spec §1.2)."""
        return self.xp.int64

    def zeros(self, shape) -> Any:
        return self.xp.zeros(shape, dtype=self.dtype, device=self.device)

    def ones(self, shape) -> Any:
        return self.xp.ones(shape, dtype=self.dtype, device=self.device)

    def asarray(self, host, dtype=None) -> Any:
        """Copy a host array (or nested list) to the device, as ``dtype`` (default: the run's)."""
        dtype = self.dtype if dtype is None else dtype
        host = np.asarray(host)
        with np.errstate(over="ignore"):  # 1e300 into float32 is inf; callers check finiteness
            values = host.astype(numpy_dtype(dtype), copy=False)
        return self.xp.asarray(values, device=self.device)

    def to_host(self, x) -> np.ndarray:
        return to_numpy(x)

    def synchronize(self) -> None:
        """Wait until queued work on the device is done (a no-op on the CPU)."""

    def describe(self) -> str:
        """The device part of the CLI's device line, e.g. ``cpu (numpy)``."""
        note = f"; {self.note}" if self.note else ""
        return f"{self.name} ({self.backend}{note})"


def numpy_dtype(dtype) -> np.dtype:
    """The NumPy dtype with the same name as a dtype of any namespace (float32, int64, ...)."""
    try:
        return np.dtype(dtype)
    except TypeError:  # array_api_strict dtypes print as "array_api_strict.float32"
        return np.dtype(str(dtype).rsplit(".", 1)[-1])


def assign_from_host(A, host) -> None:
    """A[...] = host values, cast to A's dtype and copied to A's device in one transfer."""
    from array_api_compat import array_namespace
    from array_api_compat import device as array_device

    with np.errstate(over="ignore"):  # 1e300 into float32 is inf; callers check finiteness
        values = np.asarray(host).astype(numpy_dtype(A.dtype), copy=False)
    A[...] = array_namespace(A).asarray(values, device=array_device(A))


def to_numpy(x) -> np.ndarray:
    """A host NumPy copy (or view) of a device array, scalar or 0-d array."""
    if isinstance(x, np.ndarray | np.generic | int | float | bool):
        return np.asarray(x)
    if hasattr(x, "get") and type(x).__module__.startswith("cupy"):
        return x.get()
    return np.from_dlpack(x)


def _check_dtype(dtype: str) -> str:
    if dtype not in DTYPE_NAMES:
        raise DeviceError(f'unknown dtype "{dtype}"; expected float32 or float64')
    return dtype


def _select_cpu(dtype: str) -> Device:
    import array_api_compat.numpy as xp

    return Device("cpu", xp, "cpu", getattr(xp, dtype), "numpy")


def _select_strict(dtype: str) -> Device:
    try:
        import array_api_strict as xp
    except ImportError as error:
        raise DeviceError("device strict needs the array-api-strict package") from error
    return Device("strict", xp, xp.Device("device1"), getattr(xp, dtype), "array_api_strict")


@dataclass(frozen=True)
class CudaDevice(Device):
    """A CUDA GPU through CuPy: arrays are allocated by CuPy on GPU ``index``."""

    cupy: Any = field(default=None, repr=False)
    index: int = 0
    gpu_name: str = ""

    def _allocate(self, make):
        with self.cupy.cuda.Device(self.index):
            return make()

    def zeros(self, shape) -> Any:
        return self._allocate(lambda: self.cupy.zeros(shape, dtype=numpy_dtype(self.dtype)))

    def ones(self, shape) -> Any:
        return self._allocate(lambda: self.cupy.ones(shape, dtype=numpy_dtype(self.dtype)))

    def asarray(self, host, dtype=None) -> Any:
        dtype = numpy_dtype(self.dtype if dtype is None else dtype)
        with np.errstate(over="ignore"):  # 1e300 into float32 is inf; callers check finiteness
            host = np.asarray(host).astype(dtype, copy=False)
        return self._allocate(lambda: self.cupy.asarray(host))

    def synchronize(self) -> None:
        self.cupy.cuda.Device(self.index).synchronize()

    def describe(self) -> str:
        return f"{self.name} (cupy, {self.gpu_name})"


def _import_cupy():
    """CuPy, imported with its import-time warnings silenced."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import cupy
    except ImportError as error:
        if isinstance(error, ModuleNotFoundError) and error.name == "cupy":
            raise DeviceError("CuPy is not installed (pip install 'nerva-xp[gpu]')") from None
        raise DeviceError(f"CuPy does not import ({describe_error(error)})") from None
    except Exception as error:  # a broken CUDA install can fail in many ways
        raise DeviceError(f"CuPy does not import ({describe_error(error)})") from None
    return cupy


def _cuda_index(name: str) -> int:
    text = "0" if name == "cuda" else name.removeprefix("cuda:")
    if not re.fullmatch(r"[0-9]+", text):
        raise DeviceError(f'unknown device "{name}"; expected auto, cpu, cuda or cuda:N')
    return int(text)


def _probe(cupy, index: int, dtype: str):
    """A one-element array made by a freshly compiled kernel: proves NVRTC and the GPU work."""
    with cupy.cuda.Device(index):
        kernel = cupy.ElementwiseKernel("T x", "T y", "y = x + (T)1", "nerva_xp_probe")
        probe = kernel(cupy.zeros(1, dtype=dtype))
        if float(probe[0]) != 1.0:
            raise DeviceError("a test kernel computed a wrong result")
        properties = cupy.cuda.runtime.getDeviceProperties(index)
    name = properties.get("name", b"")
    return probe, name.decode() if isinstance(name, bytes) else str(name)


def _select_cuda(name: str, dtype: str) -> Device:
    index = _cuda_index(name)
    cupy = _import_cupy()
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:
        raise DeviceError(f"no usable CUDA driver or device ({describe_error(error)})") from None
    if count == 0:
        raise DeviceError("no CUDA device found")
    if index >= count:
        raise DeviceError(f"device index {index} out of range ({count} CUDA device(s))")
    try:
        probe, gpu_name = _probe(cupy, index, dtype)
    except DeviceError:
        raise
    except Exception as error:
        raise DeviceError(f"CUDA kernels do not compile or run ({describe_error(error)})") from None
    cupy.cuda.Device(index).use()  # CuPy computes on the current GPU, whatever ``device=`` says
    from array_api_compat import array_namespace
    from array_api_compat import device as array_device

    xp = array_namespace(probe)
    return CudaDevice(
        f"cuda:{index}", xp, array_device(probe), getattr(xp, dtype), "cupy", None, cupy, index,
        gpu_name,
    )  # fmt: skip


def select_device(name: str = "auto", dtype: str = "float32") -> Device:
    """The Device for ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``strict`` with float ``dtype``."""
    _check_dtype(dtype)
    if name == "cpu":
        return _select_cpu(dtype)
    if name == "strict":
        return _select_strict(dtype)
    if name == "auto":
        try:
            return _select_cuda("cuda:0", dtype)
        except DeviceError as error:
            return replace(_select_cpu(dtype), note=f"cuda unavailable: {error}")
    if name == "cuda" or name.startswith("cuda:"):
        _cuda_index(name)
        try:
            return _select_cuda(name, dtype)
        except DeviceError as error:
            raise DeviceError(f"{name} is unavailable: {error}") from None
    raise DeviceError(f'unknown device "{name}"; expected auto, cpu, cuda or cuda:N')


def device_of(x) -> Device:
    """The Device holding array ``x``, with x's float dtype as the run's: the default device where
    it matches, else the CPU, CUDA GPU or array-api-strict device of x."""
    from array_api_compat import array_namespace, is_cupy_namespace, is_numpy_namespace
    from array_api_compat import device as array_device

    xp, dtype = array_namespace(x), numpy_dtype(x.dtype).name
    _check_dtype(dtype)
    default = default_device()
    if default.xp is xp and default.dtype == x.dtype and default.device == array_device(x):
        return default
    if is_numpy_namespace(xp):
        return _select_cpu(dtype)
    if is_cupy_namespace(xp):
        return select_device(f"cuda:{array_device(x).id}", dtype)
    return replace(_select_strict(dtype), device=array_device(x))


_default_device: Device | None = None


def default_device() -> Device:
    """The device for ``device=None``: CPU/float32 unless ``set_default_device`` was called."""
    global _default_device
    if _default_device is None:
        _default_device = _select_cpu("float32")
    return _default_device


def set_default_device(device: Device | str) -> None:
    global _default_device
    _default_device = as_device(device)


def as_device(device: Device | str | None) -> Device:
    """``device`` itself, the default device for None, or ``select_device(device)`` for a name."""
    if device is None:
        return default_device()
    if isinstance(device, str):
        return select_device(device)
    return device
