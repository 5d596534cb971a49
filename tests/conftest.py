"""Backends as test data (STYLE.md §10): numpy and strict always, cupy where a GPU is usable."""

from __future__ import annotations

import numpy as np
import pytest

from nerva_xp.device import DeviceError, select_device, to_numpy

BACKENDS = ["cpu", "strict"]


def _device(name: str, dtype: str):
    try:
        return select_device(name, dtype)
    except DeviceError as error:
        pytest.skip(f"backend {name} not usable here: {error}")


@pytest.fixture(params=BACKENDS)
def device64(request):
    """Each backend in float64 (for gradient checks)."""
    return _device(request.param, "float64")


@pytest.fixture(params=[(b, t) for b in BACKENDS for t in ("float32", "float64")], ids=str)
def device_any(request):
    """Each backend in float32 and float64."""
    return _device(*request.param)


@pytest.fixture
def strict32():
    return _device("strict", "float32")


def host(x) -> np.ndarray:
    """A host NumPy copy of a device array."""
    return to_numpy(x)


def tolerance(device) -> dict:
    """rtol/atol for comparisons with reference values in the device's dtype."""
    if device.dtype_name == "float64":
        return {"rtol": 1e-6, "atol": 1e-9}
    return {"rtol": 1e-5, "atol": 1e-6}
