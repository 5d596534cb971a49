"""Utilities: the seeded random generator, StopWatch, printing helpers, and re-exports of the
spec-string parser (spec §11) and of the NPZ functions (spec §15), as in nerva-torch."""

from __future__ import annotations

import time

import numpy as np

from nerva_xp.device import to_numpy
from nerva_xp.npz import load_dict_from_npz, save_dict_to_npz
from nerva_xp.spec_strings import Param, SpecError, format_spec, parse_spec, split_list

__all__ = [
    "Param",
    "SpecError",
    "StopWatch",
    "format_spec",
    "global_rng",
    "load_dict_from_npz",
    "parse_spec",
    "pp",
    "save_dict_to_npz",
    "set_numpy_options",
    "set_seed",
    "split_list",
]

_rng: np.random.Generator | None = None


def set_seed(seed: int | None) -> np.random.Generator:
    """Reseed the global host generator (PCG64) that every draw uses by default (spec §1.4)."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def global_rng() -> np.random.Generator:
    """The global host generator; seeded from OS entropy unless ``set_seed`` was called."""
    global _rng
    if _rng is None:
        _rng = np.random.default_rng()
    return _rng


def resolve_rng(rng: np.random.Generator | None) -> np.random.Generator:
    """``rng`` itself, or the global generator for None."""
    return global_rng() if rng is None else rng


class StopWatch:
    """Wall-clock seconds since construction or the last ``reset``."""

    def __init__(self):
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def reset(self) -> None:
        self.start = time.perf_counter()


def set_numpy_options() -> None:
    """NumPy print options used by ``--debug`` output (spec §13.2)."""
    np.set_printoptions(precision=8, edgeitems=3, threshold=5, suppress=True, linewidth=160)


def pp(name: str, A) -> None:
    """Print ``name (rows x cols)`` or ``name (n)``, then the array copied to the host."""
    host = to_numpy(A)
    shape = "x".join(str(n) for n in host.shape)
    print(f"{name} ({shape})")
    print(host)
