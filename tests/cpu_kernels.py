"""Run a CuPy ElementwiseKernel definition on NumPy arrays by compiling it for the CPU with g++.

The generated C++ follows CuPy's rules: a type placeholder (``T``) takes the dtype of the arrays
bound to it (which must agree), Python scalars adopt it, non-raw inputs broadcast together (NumPy
rules), a ``raw`` input is a pointer to its C-order elements (``x[0]``), outputs are allocated with
the broadcast shape and returned (a tuple when there are several), and ``i`` is the element index.
The preamble and the operation are pasted verbatim, with ``__device__`` defined away. Each distinct
source is compiled once (``-O2 -ffp-contract=off``: no fused multiply-add) into a cache folder.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CXX = os.environ.get("CXX", "g++")
FLAGS = ("-O2", "-shared", "-fPIC", "-std=c++17", "-ffp-contract=off")
C_TYPES = {"float32": "float", "float64": "double", "int32": "int", "int64": "long long"}
USER = os.getuid() if hasattr(os, "getuid") else "user"
CACHE = Path(tempfile.gettempdir()) / f"nerva_xp_cpu_kernels_{USER}"

_libraries: dict[str, ctypes.CDLL] = {}


class KernelCompileError(RuntimeError):
    """g++ rejected a generated kernel; the message holds its diagnostics and the source."""


def compiler_available() -> bool:
    return shutil.which(CXX) is not None


@dataclass(frozen=True)
class Param:
    """``[raw] type name``; a type that is not a dtype name is a placeholder such as ``T``."""

    type: str
    name: str
    raw: bool = False

    @property
    def placeholder(self) -> bool:
        return self.type not in C_TYPES


def parse_params(text: str) -> tuple[Param, ...]:
    """The parameters of a CuPy parameter string such as ``"T Z, raw T x"``."""
    params = []
    for part in text.split(","):
        words = part.split()
        raw = bool(words) and words[0] == "raw"
        words = words[1:] if raw else words
        if len(words) != 2:
            raise ValueError(f"bad kernel parameter {part.strip()!r}")
        params.append(Param(words[0], words[1], raw))
    return tuple(params)


def _bind_types(params, args) -> dict[str, np.dtype]:
    """Placeholder -> dtype, from the arrays passed for it; they must all agree."""
    types: dict[str, np.dtype] = {}
    for p, a in zip(params, args, strict=True):
        if p.placeholder and isinstance(a, np.ndarray):
            bound = types.setdefault(p.type, a.dtype)
            if bound != a.dtype:
                raise TypeError(f"Type is mismatched. {p.name} {a.dtype} {bound}")
    return types


def _dtype(param: Param, types) -> np.dtype:
    dtype = types.get(param.type) if param.placeholder else np.dtype(param.type)
    if dtype is None:
        raise TypeError(f"Cannot determine the type of {param.name} ({param.type})")
    if dtype.name not in C_TYPES:
        raise TypeError(f"{param.name}: dtype {dtype} is not supported by the CPU harness")
    return dtype


@dataclass(frozen=True)
class Binding:
    """How one parameter reaches the operation: ``kind`` is array, raw, scalar or out."""

    name: str
    c_type: str
    kind: str


def _binding_lines(bindings: list[Binding]) -> list[str]:
    """The declarations of the parameters inside the element loop."""
    lines, k = [], 0
    for j, b in enumerate(bindings):
        pointer = f"(({b.c_type}*)_ptr[{j}])"
        if b.kind == "array":
            lines.append(f"const {b.c_type} {b.name} = {pointer}[_off[{k}]];")
            k += 1
        elif b.kind == "raw":
            lines.append(f"const {b.c_type}* const {b.name} = {pointer};")
        elif b.kind == "scalar":
            lines.append(f"const {b.c_type} {b.name} = {pointer}[0];")
        else:
            lines.append(f"{b.c_type}& {b.name} = {pointer}[i];")
    return ["        " + line for line in lines]


def generate_source(bindings: list[Binding], operation: str, preamble: str, types) -> str:
    """The C++ translation unit of one kernel for one type binding."""
    count = sum(b.kind == "array" for b in bindings)
    typedefs = [f"typedef {C_TYPES[dtype.name]} {name};" for name, dtype in types.items()]
    return "\n".join(
        [
            "#include <math.h>",
            "#include <stddef.h>",
            "#define __device__",
            "#define __host__",
            "#define __forceinline__ inline",
            *typedefs,
            "// ---- preamble ----",
            preamble,
            "// ---- kernel ----",
            'extern "C" void nerva_xp_cpu_kernel(ptrdiff_t _n, int _ndim, const ptrdiff_t* _shape,',
            "                                    void* const* _ptr, const ptrdiff_t* _stride) {",
            "    for (ptrdiff_t i = 0; i < _n; ++i) {",
            f"        ptrdiff_t _off[{count + 1}] = {{0}};",
            "        ptrdiff_t _rest = i;",
            "        for (int _d = _ndim - 1; _d >= 0; --_d) {",
            "            const ptrdiff_t _k = _rest % _shape[_d];",
            "            _rest /= _shape[_d];",
            f"            for (int _a = 0; _a < {count}; ++_a)",
            "                _off[_a] += _k * _stride[_a * _ndim + _d];",
            "        }",
            *_binding_lines(bindings),
            f"        {operation};",
            "    }",
            "}",
            "",
        ]
    )


def _library(source: str) -> ctypes.CDLL:
    """The compiled ``source``, built once per distinct source (and kept on disk between runs)."""
    key = hashlib.sha256(" ".join((CXX, *FLAGS, source)).encode()).hexdigest()[:24]
    if key not in _libraries:
        CACHE.mkdir(exist_ok=True)
        library = CACHE / f"{key}.so"
        if not library.exists():
            _compile(source, library)
        _libraries[key] = ctypes.CDLL(str(library))
    return _libraries[key]


def _compile(source: str, library: Path) -> None:
    with tempfile.TemporaryDirectory(dir=CACHE) as folder:
        cpp, so = Path(folder) / "kernel.cpp", Path(folder) / "kernel.so"
        cpp.write_text(source)
        command = [CXX, *FLAGS, "-o", str(so), str(cpp)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise KernelCompileError(f"{result.stderr}\n---- source ----\n{source}")
        os.replace(so, library)  # atomic: a concurrent run never loads half a library


def _input(param: Param, arg, dtype: np.dtype, shape) -> tuple[str, np.ndarray]:
    """(kind, array) of one input: a 1-element array for a scalar, a broadcast view otherwise."""
    if not isinstance(arg, np.ndarray):
        return "scalar", np.array([arg], dtype=dtype)
    array = np.asarray(arg, dtype=dtype)  # a plain ndarray, cast for a concrete parameter type
    if param.raw:
        return "raw", np.ascontiguousarray(array)
    if any(s % array.itemsize for s in array.strides):
        array = np.ascontiguousarray(array)
    return "array", np.broadcast_to(array, shape)


def run_elementwise(in_params: str, out_params: str, operation: str, preamble: str, *args):
    """Run the kernel on NumPy arrays and Python scalars; returns the output array(s)."""
    ins, outs = parse_params(in_params), parse_params(out_params)
    if len(args) != len(ins):
        raise TypeError(f"the kernel takes {len(ins)} inputs ({len(args)} given)")
    types = _bind_types(ins, args)
    arrays = [a for p, a in zip(ins, args, strict=True) if not p.raw and isinstance(a, np.ndarray)]
    if not arrays:
        raise ValueError("the kernel needs a non-raw array input to fix its shape")
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    inputs = [_input(p, a, _dtype(p, types), shape) for p, a in zip(ins, args, strict=True)]
    outputs = [np.empty(shape, dtype=_dtype(p, types)) for p in outs]
    bindings = [
        Binding(p.name, C_TYPES[a.dtype.name], kind)
        for p, (kind, a) in zip(ins, inputs, strict=True)
    ] + [Binding(p.name, C_TYPES[a.dtype.name], "out") for p, a in zip(outs, outputs, strict=True)]
    source = generate_source(bindings, operation, preamble, types)
    _call(_library(source), shape, [a for _, a in inputs] + outputs, bindings)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _call(library, shape, arrays, bindings) -> None:
    n = int(np.prod(shape, dtype=np.int64))
    if n == 0:
        return
    strides = [
        [s // a.itemsize for s in a.strides]
        for a, b in zip(arrays, bindings, strict=True)
        if b.kind == "array"
    ]
    shape_array = np.array(shape, dtype=np.intp)
    stride_array = np.array(strides, dtype=np.intp).reshape(-1)
    pointers = (ctypes.c_void_p * len(arrays))(*(a.ctypes.data for a in arrays))
    function = library.nerva_xp_cpu_kernel
    function.restype = None
    function(
        ctypes.c_ssize_t(n),
        ctypes.c_int(len(shape)),
        shape_array.ctypes.data_as(ctypes.c_void_p),
        pointers,
        stride_array.ctypes.data_as(ctypes.c_void_p),
    )


class CpuElementwiseKernel:
    """``cupy.ElementwiseKernel``'s interface over ``run_elementwise`` (extra options ignored)."""

    def __init__(self, in_params, out_params, operation, name="kernel", preamble="", **kwargs):
        self.in_params, self.out_params = in_params, out_params
        self.operation, self.name, self.preamble = operation, name, preamble
        self.options = kwargs
        self.params = parse_params(in_params), parse_params(out_params)  # fails early, as CuPy

    def __call__(self, *args):
        return run_elementwise(
            self.in_params, self.out_params, self.operation, self.preamble, *args
        )
