"""Benchmark fixtures: backends (numpy, cupy), fused kernels on/off, seeded data, ``timed``.

Run with ``pytest bench --benchmark-only`` (see bench/README.md); ``pytest`` alone does not collect
this folder (``testpaths = ["tests"]``). bench/ is a package, so this file imports as
``bench.conftest`` and ``pytest tests bench`` leaves tests/conftest.py the module ``conftest`` that
the tests import from; the benchmark modules take everything from fixtures instead.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from nerva_xp import fused
from nerva_xp.device import Device, DeviceError, select_device

BACKENDS = {"numpy": "cpu", "cupy": "cuda"}  # parameter id -> select_device name


@functools.cache
def _device(name: str) -> Device | DeviceError:
    try:
        return select_device(name, "float32")
    except DeviceError as error:
        return error


@pytest.fixture(params=list(BACKENDS))
def backend(request) -> Device:
    """The float32 Device of each backend; cupy skips, with the reason, where CUDA is unusable."""
    device = _device(BACKENDS[request.param])
    if isinstance(device, DeviceError):
        pytest.skip(f"backend {request.param} not usable here: {device}")
    return device


@pytest.fixture(params=["reference", "fused"])
def fused_mode(request, backend):
    """Fused kernels off ("reference") or on ("fused") for the test, restored afterwards.

    The kernels only ever run on CuPy arrays, so "fused" is skipped on numpy (both modes would run
    the same array-API references), and everywhere when NERVA_XP_FUSED=0 is set.
    """
    use_kernels = request.param == "fused"
    if use_kernels and backend.backend != "cupy":
        pytest.skip("kernels run only on CuPy arrays")
    if use_kernels and os.environ.get("NERVA_XP_FUSED", "1") == "0":
        pytest.skip("fused kernels switched off by NERVA_XP_FUSED=0")
    saved = fused.kernels_enabled()
    fused.set_kernels_enabled(use_kernels)
    try:
        yield request.param
    finally:
        fused.set_kernels_enabled(saved)


COLD_ROUNDS = 300  # timed calls of a cold-cache benchmark, each after its own cache sweep
SWEEP_ELEMENTS = 1 << 24  # float32: a 64 MiB sweep, several times the caches an array sits in


def timed(benchmark, device: Device, fn, *args, cold: bool = False):
    """Benchmark ``fn(*args)`` followed by ``device.synchronize()``; returns fn's result.

    On CuPy the timed call thus includes the queued GPU work, not just the launch. When timing, one
    untimed call runs first (kernel compilation, cuBLAS handles, the memory pool's first blocks).
    With ``cold``, each timed call comes after an untimed sum over a 64 MiB array, which pushes
    the operands out of the caches, as the GEMMs of a training step do between element-wise
    passes; repeated calls on the same operands otherwise find them in cache.
    """
    benchmark.extra_info.setdefault("backend", device.backend)
    benchmark.extra_info["fused_kernels"] = fused.kernels_enabled() and device.backend == "cupy"
    benchmark.extra_info["caches"] = "cold" if cold else "warm"
    if not benchmark.disabled:
        fn(*args)
        device.synchronize()
    target = lambda: (fn(*args), device.synchronize())[0]  # noqa: E731
    if not cold:
        return benchmark(target)
    sweep = device.ones((SWEEP_ELEMENTS,))

    def evict():
        device.xp.sum(sweep)
        device.synchronize()

    return benchmark.pedantic(target, setup=evict, rounds=COLD_ROUNDS, iterations=1)


@pytest.fixture
def run(backend, benchmark):  # backend first: its skip comes before the benchmark exists
    """``run(group, fn, *args, cold=False)``: ``timed`` on the test's backend, in benchmark group
    ``group``."""

    def run_in_group(group: str, fn, *args, cold: bool = False):
        benchmark.group = group
        return timed(benchmark, backend, fn, *args, cold=cold)

    return run_in_group


@pytest.fixture
def run_host(benchmark):
    """``run_host(group, baseline, fn, *args)`` for the host baselines: ``timed`` with the CPU
    device, in group ``group``, recorded as backend ``baseline`` (numpy, torch)."""
    cpu = select_device("cpu", "float32")

    def run_in_group(group: str, baseline: str, fn, *args):
        benchmark.group = group
        benchmark.extra_info["backend"] = baseline
        benchmark.extra_info["baseline"] = True
        return timed(benchmark, cpu, fn, *args)

    return run_in_group


class Data:
    """Seeded float32 host data (``numpy.random.default_rng``) moved to a device."""

    def __init__(self, device: Device | None, seed: int = 20240501):
        self.device = device
        self.rng = np.random.default_rng(seed)

    def _to_device(self, host: np.ndarray):
        host = host.astype(np.float32)
        return host if self.device is None else self.device.asarray(host)

    def uniform(self, shape, low: float = -1.0, high: float = 1.0):
        return self._to_device(self.rng.uniform(low, high, shape))

    def normal(self, shape, scale: float = 1.0):
        return self._to_device(self.rng.normal(0.0, scale, shape))

    def labels(self, n: int, k: int) -> np.ndarray:
        """n class labels in [0, k), on the host."""
        return self.rng.integers(0, k, n)

    def one_hot(self, labels: np.ndarray, k: int):
        return self._to_device(np.eye(k, dtype=np.float32)[labels])

    def probabilities(self, shape):
        """Rows of a softmax of normal logits: positive and summing to 1."""
        Z = self.rng.normal(0.0, 1.0, shape)
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        return self._to_device(E / E.sum(axis=1, keepdims=True))


@pytest.fixture
def data(backend) -> Data:
    """Seeded data on the test's backend (the same values on every backend)."""
    return Data(backend)


@pytest.fixture
def host_data() -> Data:
    """The same seeded data as ``data``, as host NumPy arrays (for the baselines)."""
    return Data(None)


@pytest.fixture
def torch_cpu():
    """PyTorch, or a skip saying it is not installed (it is not in the test extra)."""
    return pytest.importorskip("torch", reason="PyTorch is not installed (baselines only)")
