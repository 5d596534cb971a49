"""Compile gate for the fused kernels: CuPy's generated CUDA source must compile, with no GPU.

For every kernel in ``nerva_xp.fused.KERNELS`` and for float32 and float64 this builds the exact
module source that ``cupy.ElementwiseKernel.__call__`` would compile for a typical call (the
argument layouts of the dispatchers in ``fused.py``), and compiles it to PTX with NVRTC (the
nvidia-cuda-nvrtc-cu12 wheel) for compute_75, 80 and 90 with CuPy's own options; float32 PTX must
hold no double-precision (``.f64``) instruction. Where ``nvcc`` is installed it compiles the same
source too. Deliberately broken kernels show that the gate can fail.

CuPy generates the source in ``cupy._core._kernel`` (``_get_elementwise_kernel_code``,
``_ArgInfo``, ``ElementwiseKernel._decide_params_type``) and prepends the headers and assembles
the options in ``cupy._core.core``: internals, so the CuPy version is pinned below and any change
in them makes these tests fail, never skip.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from unittest import mock

import cupy
import numpy as np
import pytest
from cupy._core import _carray, _kernel, _scalar, core
from cupy.cuda.compiler import CompileException
from cupy_backends.cuda.libs import nvrtc

from nerva_xp import fused
from nerva_xp.fused import KERNELS, KernelSpec

CUPY_VERSION = "14.2."
DTYPES = ["float32", "float64"]
ARCHS = [75, 80, 90]

# cupy/_core/_kernel.pxd: cdef enum _ArgKind (not exported to Python)
ARG_KIND_NDARRAY, ARG_KIND_INDEXER, ARG_KIND_SCALAR = 1, 2, 3

# The arguments of each kernel as its dispatcher in fused.py passes them: shapes of C-contiguous
# arrays, None for a Python float. Z, Y, T, DY are (N, D), x is (4,), the row statistics m, s, r
# are (N, 1) columns, the batch-norm vectors are (D,).
N, D = 3, 5
CALLS = {
    "nerva_xp_srelu_forward": ((N, D), (4,)),
    "nerva_xp_srelu_backward": ((N, D), (N, D), (4,)),
    "nerva_xp_softmax_cross_entropy_loss": ((N, D), (N, D), (N, 1), (N, 1)),
    "nerva_xp_softmax_cross_entropy_gradient": ((N, D), (N, D), (N, 1), (N, 1), (N, 1)),
    "nerva_xp_batch_norm_backward": ((N, D), (N, D), (D,), (D,), (D,), (D,), None),
}

# The same calls with the layouts the layers pass: their (N, D) matrices are transposed GEMM
# results ((W X^T)^T, (W^T DZ^T)^T: Fortran-contiguous), except the targets T of the loader.
# Such calls do not collapse to 1-D, so CuPy compiles other kernel variants (2-D, strided).
TRANSPOSED = np.empty((D, N)).T
LAYER_CALLS = {
    name: tuple(
        TRANSPOSED if shape == (N, D) and not (name.startswith("nerva_xp_softmax") and i == 1)
        else shape
        for i, shape in enumerate(shapes)
    )
    for name, shapes in CALLS.items()
}  # fmt: skip


# ---- CuPy's generated source ----


def elementwise_kernel(spec: KernelSpec):
    """The ElementwiseKernel that fused.kernel builds for spec, kept out of fused's cache (where
    it would meet tests that stand a fake CuPy in for the real one)."""
    with (
        mock.patch.dict(fused.KERNELS, {spec.name: spec}),
        mock.patch.dict(fused._built, clear=True),
    ):
        kern = fused.kernel(spec.name)
    assert isinstance(kern, cupy.ElementwiseKernel), "fused.kernel did not use the real CuPy"
    return kern


def _array_info(dtype, ndim: int, c_contiguous: bool):
    return _kernel._ArgInfo(ARG_KIND_NDARRAY, cupy.ndarray, dtype, ndim, c_contiguous, True)


def _layout(arg):
    """An array with the argument's layout: a shape stands for a C-contiguous array."""
    return arg if arg is None or isinstance(arg, np.ndarray) else np.empty(arg)


def _contiguous_view(array: np.ndarray, full: tuple) -> bool:
    """Whether array, broadcast to full, is C-contiguous (as in CuPy)."""
    return np.broadcast_to(array, full).flags.c_contiguous


def arginfos(kern, dtype: str, args: tuple) -> tuple:
    """(arginfos, type map) as ElementwiseKernel.__call__ computes them for small arrays of these
    shapes or layouts (None: a Python float): it broadcasts the non-raw arrays, collapses them to
    1-D when all are then C-contiguous (_reduce_dims; a 2-D broadcast or a transposed matrix
    stays 2-D), and gives scalars the dtype of their parameter."""
    arrays = [_layout(arg) for arg in args]
    in_dtypes = tuple(None if a is None else np.dtype(dtype) for a in arrays)
    in_types, out_types, type_map = kern._decide_params_type(in_dtypes, ())
    broadcast = [
        a for p, a in zip(kern.in_params, arrays, strict=True) if a is not None and not p.raw
    ]
    full = np.broadcast_shapes(*(a.shape for a in broadcast))
    assert len(full) <= 2, "the model of _reduce_dims covers 1-D and 2-D calls only"
    ndim = 1 if all(_contiguous_view(a, full) for a in broadcast) else len(full)
    infos = []
    for p, a, t in zip(kern.in_params, arrays, in_types, strict=True):
        if a is None:
            infos.append(_kernel._ArgInfo(ARG_KIND_SCALAR, _scalar.CScalar, t, 0, True, True))
        elif p.raw:
            infos.append(_array_info(t, a.ndim, a.flags.c_contiguous))
        else:
            infos.append(_array_info(t, ndim, _contiguous_view(a, full)))
    infos += [_array_info(t, ndim, True) for t in out_types]
    infos.append(_kernel._ArgInfo(ARG_KIND_INDEXER, _carray.Indexer, None, ndim, True, True))
    return tuple(infos), type_map


def generated_source(spec: KernelSpec, dtype: str, shapes: tuple | None = None) -> str:
    """The CUDA source CuPy compiles for spec in dtype: core.compile_with_cache's header includes
    followed by _get_elementwise_kernel_code's module."""
    kern = elementwise_kernel(spec)
    infos, type_map = arginfos(kern, dtype, CALLS[spec.name] if shapes is None else shapes)
    code = _kernel._get_elementwise_kernel_code(
        infos, type_map, kern.params, kern.operation, kern.name, kern.preamble, **kern.kwargs
    )
    headers = "".join(f"#include <{header}>\n" for header in core._cupy_header_list)
    return headers + code


def cupy_options() -> tuple[str, ...]:
    """CuPy's NVRTC options for an ElementwiseKernel without options, less the architecture:
    core.assemble_cupy_compiler_options, then -ftz=true (compiler._compile_with_cache_cuda) and
    --device-as-default-execution-space (compiler._compile_using_nvrtc_no_warning)."""
    options = core.assemble_cupy_compiler_options(())
    return options + ("-ftz=true", "--device-as-default-execution-space")


# ---- compilers ----


def nvrtc_ptx(source: str, name: str, arch: int) -> str:
    """PTX for compute_<arch> from NVRTC; CompileException with NVRTC's log on failure."""
    options = cupy_options() + (f"--gpu-architecture=compute_{arch}",)
    program = nvrtc.createProgram(source, f"{name}.cu", (), ())
    try:
        nvrtc.compileProgram(program, options)
        return nvrtc.getPTX(program).decode()
    except nvrtc.NVRTCError:
        log = nvrtc.getProgramLog(program)
        raise CompileException(log, source, name, options, "nvrtc") from None
    finally:
        nvrtc.destroyProgram(program)


@functools.cache
def kernel_ptx(name: str, dtype: str, arch: int) -> str:
    return nvrtc_ptx(generated_source(KERNELS[name], dtype), name, arch)


def nvcc_options() -> list[str]:
    """CuPy's options for nvcc: without the NVRTC-only flag and without the CUDA 12 runtime
    headers of the wheel, as nvcc brings its own toolkit's (they must match its version)."""
    header_dir = core._get_header_dir_path()
    return [
        option
        for option in cupy_options()
        if option != "--device-as-default-execution-space"
        and not (option.startswith("-I") and not option[2:].startswith(header_dir))
    ]


def nvcc_ptx(nvcc: str, source: str, folder) -> str:
    cu, ptx = folder / "kernel.cu", folder / "kernel.ptx"
    cu.write_text(source)
    # compute_75: nvcc 13 dropped the architectures below it (Maxwell to Volta)
    command = [nvcc, "-ptx", "-arch=compute_75", *nvcc_options(), "-o", str(ptx), str(cu)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"nvcc failed:\n{result.stderr}"
    return ptx.read_text()


def f64_lines(ptx: str) -> list[str]:
    """The PTX lines that name a double-precision register or instruction."""
    return [
        line for line in ptx.splitlines() if ".f64" in line and not line.lstrip().startswith("//")
    ]


def check_ptx(ptx: str, name: str, dtype: str) -> None:
    assert f".entry {name}(" in ptx
    if dtype == "float32":
        assert f64_lines(ptx) == [], f"double precision in float32 {name}"
    else:
        assert f64_lines(ptx), f"no double precision in float64 {name}"


# ---- tests ----


def test_cupy_version_is_pinned():
    assert cupy.__version__.startswith(CUPY_VERSION), (
        f"CuPy {cupy.__version__}: these tests call CuPy {CUPY_VERSION}x internals "
        "(cupy._core._kernel, cupy._core.core); check them against the new version and update "
        "CUPY_VERSION and the pyproject pin"
    )


def test_generated_source_has_cupys_kernel_signature():
    """The modelled arguments give the signatures CuPy generates (fails if the internals move)."""
    srelu = generated_source(KERNELS["nerva_xp_srelu_forward"], "float32")
    assert srelu.startswith("#include <cupy/complex.cuh>\n#include <cupy/carray.cuh>\n")
    assert "typedef float T;" in srelu
    assert (
        'extern "C" __global__ void nerva_xp_srelu_forward(const CArray<float, 1, 1, 1> _raw_Z, '
        "const CArray<float, 1, 1, 1> x, CArray<float, 1, 1, 1> _raw_Y, CIndexer<1, 1> _ind)"
    ) in srelu
    batch_norm = generated_source(KERNELS["nerva_xp_batch_norm_backward"], "float64")
    assert "const CArray<double, 2, 1, 1> _raw_DY, const CArray<double, 2, 0, 1> _raw_gamma" in (
        batch_norm
    )
    assert "const double N, CArray<double, 2, 1, 1> _raw_DX, CIndexer<2, 1> _ind)" in batch_norm


def test_every_kernel_has_a_call_layout():
    assert set(CALLS) == set(KERNELS) == set(LAYER_CALLS)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_compiles_for_the_layouts_the_layers_pass(name, dtype):
    """The 2-D strided variants CuPy builds for transposed Z, Y and DY compile too."""
    source = generated_source(KERNELS[name], dtype, LAYER_CALLS[name])
    real = "float" if dtype == "float32" else "double"
    assert f"CArray<{real}, 2, 0, 1>" in source  # a 2-D, non-C-contiguous argument
    check_ptx(nvrtc_ptx(source, name, 90), name, dtype)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_compiles_with_nvrtc(name, dtype, arch):
    check_ptx(kernel_ptx(name, dtype, arch), name, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_compiles_with_nvcc(name, dtype, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    check_ptx(nvcc_ptx(nvcc, generated_source(KERNELS[name], dtype), tmp_path), name, dtype)


BROKEN = [
    KernelSpec("nerva_xp_broken_call", "T Z", "T Y", "Y = nerva_xp_undefined(Z)", "srelu.cu"),
    KernelSpec("nerva_xp_broken_arity", "T Z", "T Y", "Y = nerva_xp_srelu(Z, Z)", "srelu.cu"),
]


@pytest.mark.parametrize("spec", BROKEN, ids=lambda spec: spec.name)
def test_broken_kernel_fails_to_compile(spec):
    with pytest.raises(CompileException, match="error: "):
        nvrtc_ptx(generated_source(spec, "float32", ((N, D),)), spec.name, 75)


def test_double_precision_in_float32_kernel_is_detected():
    spec = KernelSpec("nerva_xp_double_exp", "T Z", "T Y", "Y = exp((double)Z)", "srelu.cu")
    ptx = nvrtc_ptx(generated_source(spec, "float32", ((N, D),)), spec.name, 75)
    with pytest.raises(AssertionError, match="double precision"):
        check_ptx(ptx, spec.name, "float32")
