"""Utilities: the seeded random generator, StopWatch, printing helpers, and re-exports of the
spec-string parser (spec §11) and of the NPZ functions (spec §15), as in nerva-torch."""

from __future__ import annotations

import time

import numpy as np

from nerva_xp.device import to_numpy
from nerva_xp.npz import load_dict_from_npz, save_dict_to_npz
from nerva_xp.spec_strings import Param, SpecError, format_spec, parse_call, parse_spec, split_list

__all__ = [
    "FunctionCall",
    "Param",
    "SpecError",
    "StopWatch",
    "format_spec",
    "global_rng",
    "load_dict_from_npz",
    "parse_function_call",
    "parse_spec",
    "pp",
    "pp_numpy",
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


def pp_numpy(name: str, array: np.ndarray) -> None:
    """Print ``name (rows x cols)`` or ``name (n)``, then the array."""
    shape = "x".join(str(n) for n in array.shape)
    print(f"{name} ({shape})")
    print(array)


def pp(name: str, A) -> None:
    """``pp_numpy`` of a device array copied to the host."""
    pp_numpy(name, to_numpy(A))


class FunctionCall:
    """A parsed item ``name(key=value, ...)`` with its arguments as text (nerva-torch's API).

    A single positional argument is stored under the key ``""``.
    """

    def __init__(self, name: str, arguments: dict[str, str]):
        self.name = name
        self.arguments = arguments

    def has_key(self, key: str) -> bool:
        return key in self.arguments

    def get_value(self, key: str) -> str:
        if key in self.arguments:
            return self.arguments[key]
        if list(self.arguments) == [""]:
            return self.arguments[""]
        return ""

    def as_scalar(self, key: str, default_value: float | None = None) -> float:
        value = self.get_value(key)
        if value:
            return float(value)
        if default_value is not None:
            return default_value
        raise SpecError(f'invalid item "{self.name}": missing required parameter {key}')

    def as_string(self, key: str, default_value: str | None = None) -> str:
        value = self.get_value(key)
        if value:
            return value
        if default_value is not None:
            return default_value
        raise SpecError(f'invalid item "{self.name}": missing required parameter {key}')


def parse_function_call(text: str) -> FunctionCall:
    """``name(args)`` as a FunctionCall; the grammar is that of spec §11.1."""
    name, args = parse_call(text)
    arguments: dict[str, str] = {}
    for index, (key, value) in enumerate(args):
        key = "" if key is None and len(args) == 1 else (key if key is not None else str(index))
        if key in arguments:
            raise SpecError(f'invalid item "{text.strip()}": parameter {key} given twice')
        arguments[key] = value
    return FunctionCall(name, arguments)
