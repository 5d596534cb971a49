"""Backends as test data (STYLE.md §10): numpy and strict always, cupy where a GPU is usable.

The ``cuda`` parameters skip, with the reason CUDA is unusable, on machines without a GPU.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from nerva_xp.device import DeviceError, select_device, to_numpy

BACKENDS = ["cpu", "strict", "cuda"]


@functools.cache
def _device(name: str, dtype: str):
    try:
        return select_device(name, dtype)
    except DeviceError as error:
        return error


def device_or_skip(name: str, dtype: str = "float32"):
    """The Device, or a visible skip saying why the backend is unusable here."""
    device = _device(name, dtype)
    if isinstance(device, DeviceError):
        pytest.skip(f"backend {name} not usable here: {device}")
    return device


@pytest.fixture(params=BACKENDS)
def device64(request):
    """Each backend in float64 (for gradient checks)."""
    return device_or_skip(request.param, "float64")


@pytest.fixture(params=[(b, t) for b in BACKENDS for t in ("float32", "float64")], ids=str)
def device_any(request):
    """Each backend in float32 and float64."""
    return device_or_skip(*request.param)


@pytest.fixture
def strict32():
    return device_or_skip("strict", "float32")


def host(x) -> np.ndarray:
    """A host NumPy copy of a device array."""
    return to_numpy(x)


def tolerance(device) -> dict:
    """rtol/atol for comparisons with reference values in the device's dtype."""
    if device.dtype_name == "float64":
        return {"rtol": 1e-6, "atol": 1e-9}
    return {"rtol": 1e-5, "atol": 1e-6}
