"""Robustness of ``nerva-xp train`` (spec §11.3, §12.2, §13-§15): every user error is one line.

Each table case runs the real console script in a subprocess whose working folder holds the input
files and is also the output folder. It checks the exit code (2 for usage errors found before any
work starts, 1 for data and run-time errors), that stderr is exactly one line starting
``nerva-xp: error: `` that names the option or file and says what is wrong, that there is no
traceback, and that the folder is byte-for-byte unchanged: a failed run writes none of the outputs
(``--save-weights``, ``--metrics``) it was asked for. Ctrl-C and a full disk are tested separately.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import queue
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nerva_xp import cli
from nerva_xp.atomic_files import write_atomically
from nerva_xp.device import DeviceError, select_device
from nerva_xp.npz import load_dict_from_npz, save_dict_to_npz

NERVA_XP = shutil.which("nerva-xp")
COMMAND = [NERVA_XP] if NERVA_XP else [sys.executable, "-m", "nerva_xp"]
NETWORK = (
    "--layers=ReLU;Linear", "--layer-sizes=5;8;3", "--learning-rate=Constant(0.1)",
    "--loss=SoftmaxCrossEntropy", "--batch-size=16", "--epochs=2", "--seed=1", "--device=cpu",
)  # fmt: skip
OUTPUTS = ("--save-weights=w.npz", "--metrics=m.jsonl")
ON_DATA = (*NETWORK, "--load-dataset=data.npz", *OUTPUTS)


# ---------------------------------------------------------------- running and checking


def nerva_xp(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``nerva-xp train ARGS`` in ``cwd``."""
    return subprocess.run(
        [*COMMAND, "train", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def folder_state(folder: Path) -> str:
    """A hash of every name (files and folders, recursively) and every file's bytes."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        if path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, phrases) -> None:
    """Exit ``code``; stderr one ``nerva-xp: error: `` line holding every phrase; no traceback."""
    stderr = result.stderr
    assert "Traceback" not in stderr, stderr
    assert result.returncode == code, f"exit {result.returncode}: {stderr}"
    assert stderr.startswith("nerva-xp: error: "), stderr
    assert stderr.count("\n") == 1 and stderr.endswith("\n"), stderr
    for phrase in phrases:
        if isinstance(phrase, re.Pattern):
            assert phrase.search(stderr), f"{phrase.pattern!r} not in {stderr!r}"
        else:
            assert phrase in stderr, f"{phrase!r} not in {stderr!r}"


# ---------------------------------------------------------------- input files


def arrays(n: int = 60, d: int = 5, k: int = 3) -> dict[str, np.ndarray]:
    """A valid dataset: n training and n/2 test rows, d features, k classes."""
    rng = np.random.default_rng(0)
    X = rng.random((n + n // 2, d)).astype(np.float32)
    T = np.argmax(X[:, :k], axis=1).astype(np.int64)
    return {"Xtrain": X[:n], "Ttrain": T[:n], "Xtest": X[n:], "Ttest": T[n:]}


def npz_bytes(data: dict, compressed: bool = False) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **data)
    return buffer.getvalue()


def npy_bytes(value: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, value)
    return buffer.getvalue()


def dataset(**changes):
    """A setup writing data.npz: the valid arrays with ``changes`` (None removes a key)."""

    def setup(folder: Path) -> None:
        data = {key: value for key, value in {**arrays(), **changes}.items() if value is not None}
        np.savez(folder / "data.npz", **data)

    return setup


def raw(content: bytes, name: str = "data.npz"):
    """A setup writing ``content`` to ``name``."""

    def setup(folder: Path) -> None:
        (folder / name).write_bytes(content)

    return setup


def truncated() -> bytes:
    content = npz_bytes(arrays(), compressed=True)
    return content[: len(content) // 2]


def crc_damaged(data: dict) -> bytes:
    """``data`` stored (not compressed), with 4 bytes flipped inside the first member's data."""
    content = bytearray(npz_bytes(data))
    offset = content.index(b"\x93NUMPY") + 150  # past the 128-byte header
    content[offset : offset + 4] = bytes(b ^ 0xFF for b in content[offset : offset + 4])
    return bytes(content)


def absurd_header() -> bytes:
    """Xtrain's .npy header claims shape (10**12, 10**12) float32; the zip itself is sound."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 10**12)}
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Xtrain.npy", header.getvalue() + bytes(64))
        for key, value in arrays().items():
            if key != "Xtrain":
                archive.writestr(f"{key}.npy", npy_bytes(value))
    return buffer.getvalue()


def with_header_text(text: str, key: str = "Xtrain") -> bytes:
    """The dataset with ``key``'s .npy header text replaced; the data and the zip CRCs are sound."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, value in arrays().items():
            npy = npy_bytes(value)
            if name == key:
                length = struct.unpack("<H", npy[8:10])[0]
                header = (text + "\n").encode()
                npy = npy[:8] + struct.pack("<H", len(header)) + header + npy[10 + length :]
            archive.writestr(f"{name}.npy", npy)
    return buffer.getvalue()


def with_member_fields(content: bytes, flags: int = 0, method: int | None = None) -> bytes:
    """A zip with every central-directory entry's flag bits or compression method changed."""
    out = bytearray(content)
    at = out.find(b"PK\x01\x02")
    while at >= 0:
        struct.pack_into("<H", out, at + 8, struct.unpack_from("<H", out, at + 8)[0] | flags)
        if method is not None:
            struct.pack_into("<H", out, at + 10, method)
        at = out.find(b"PK\x01\x02", at + 4)
    return bytes(out)


def zip_of_text() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Xtrain.csv", "0.1,0.2,0.3,0.4,0.5\n")
    return buffer.getvalue()


class Trap:
    """Unpickling this creates the file PWNED in the working folder (the folder hash sees it)."""

    def __reduce__(self):
        return open, ("PWNED", "w")


def pickled_x() -> np.ndarray:
    return np.array([[Trap()] * 5] * 60, dtype=object)


def weight_arrays() -> dict[str, np.ndarray]:
    """Valid weights for ReLU;Linear 5;8;3."""
    rng = np.random.default_rng(1)
    return {
        "W1": rng.random((8, 5), np.float32), "b1": np.zeros(8, np.float32),
        "W2": rng.random((3, 8), np.float32), "b2": np.zeros(3, np.float32),
    }  # fmt: skip


def weights(**changes):
    """A setup writing w0.npz: the valid weights with ``changes`` (None removes a key)."""

    def setup(folder: Path) -> None:
        data = {**weight_arrays(), **changes}
        data = {key: value for key, value in data.items() if value is not None}
        np.savez(folder / "w0.npz", **data)

    return setup


def deeper_weights(folder: Path) -> None:
    """w0.npz saved by another architecture: ReLU;ReLU;Linear 5;16;16;3."""
    rng = np.random.default_rng(2)
    shapes = {"W1": (16, 5), "b1": (16,), "W2": (16, 16), "b2": (16,), "W3": (3, 16), "b3": (3,)}
    np.savez(folder / "w0.npz", **{k: rng.random(s, np.float32) for k, s in shapes.items()})


def directory(name: str):
    def setup(folder: Path) -> None:
        (folder / name).mkdir()

    return setup


def nothing(folder: Path) -> None:
    """No extra file."""


ARRAYS = arrays()
WEIGHTS = weight_arrays()
NAN_X = ARRAYS["Xtrain"].copy()
NAN_X[3, 2] = np.nan
INF_X = ARRAYS["Xtest"].copy()
INF_X[0, 0] = np.inf
NAN_W = np.full((8, 5), np.nan, np.float32)
LOAD_W0 = (*ON_DATA, "--load-weights=w0.npz")
CORRUPT = re.compile("corrupt|truncated")
HEADER = "{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"

# ---------------------------------------------------------------- the table

DATA_ERRORS = [
    ("dataset-missing", nothing, (*NETWORK, "--load-dataset=none.npz", *OUTPUTS),
     ['"none.npz"', "not found"]),
    ("dataset-is-a-directory", directory("folder.npz"),
     (*NETWORK, "--load-dataset=folder.npz", *OUTPUTS), ['"folder.npz"', "is a directory"]),
    ("dataset-empty", raw(b""), ON_DATA, ['"data.npz"', "not an NPZ (zip) archive"]),
    ("dataset-truncated", raw(truncated()), ON_DATA, ['"data.npz"', CORRUPT]),
    ("dataset-crc", raw(crc_damaged(ARRAYS)), ON_DATA, ['"data.npz"', '"Xtrain"', "corrupt"]),
    ("dataset-png-renamed", raw(b"\x89PNG\r\n\x1a\n" + bytes(64)), ON_DATA,
     ['"data.npz"', "not an NPZ (zip) archive"]),
    ("dataset-npy-renamed", raw(npy_bytes(ARRAYS["Xtrain"])), ON_DATA,
     ['"data.npz"', "a .npy file was given"]),
    ("dataset-zip-of-text", raw(zip_of_text()), ON_DATA,
     ['"data.npz"', 'required key "Xtrain" is missing']),
    ("dataset-pickled-objects", dataset(Xtrain=pickled_x()), ON_DATA,
     ['"data.npz"', 'key "Xtrain" holds an object array; nerva-xp never unpickles']),
    ("dataset-absurd-header", raw(absurd_header()), ON_DATA, ['"data.npz"', '"Xtrain"']),
    ("dataset-header-unbalanced", raw(with_header_text("{'descr': '<f4', 'shape': (60, 5")),
     ON_DATA, ['"data.npz"', '"Xtrain"', "corrupt"]),
    ("dataset-header-overflowing-dimension",
     raw(with_header_text(HEADER.format(shape=(0, 10**30)))),
     ON_DATA, ['"data.npz"', '"Xtrain"']),
    ("dataset-header-dimension-2**63",
     raw(with_header_text(HEADER.format(shape=(2**63, 0)))),
     ON_DATA, ['"data.npz"', '"Xtrain"']),
    ("dataset-encrypted-members", raw(with_member_fields(npz_bytes(ARRAYS), flags=0x1)),
     ON_DATA, ['"data.npz"', "encrypted"]),
    ("dataset-deflate64-members", raw(with_member_fields(npz_bytes(ARRAYS), method=9)),
     ON_DATA, ['"data.npz"', "compression"]),
    ("dataset-missing-key", dataset(Ttest=None), ON_DATA,
     ['"data.npz"', 'required key "Ttest" is missing']),
    ("dataset-unflattened", dataset(Xtrain=ARRAYS["Xtrain"].reshape(60, 5, 1)), ON_DATA,
     ['"data.npz"', '"Xtrain"', "(60, 5, 1)", "expected (N, D)"]),
    ("dataset-sample-counts", dataset(Ttrain=ARRAYS["Ttrain"][:50]), ON_DATA,
     ['"data.npz"', '"Ttrain"', "50", "60"]),
    ("dataset-label-out-of-range", dataset(Ttest=ARRAYS["Ttest"] * 0 + 5), ON_DATA,
     ['"data.npz"', "6 classes", "ends with 3"]),
    ("dataset-negative-label", dataset(Ttrain=ARRAYS["Ttrain"] - 1), ON_DATA,
     ['"data.npz"', '"Ttrain"', "holds the label -1", "expected class labels"]),
    ("dataset-fractional-label", dataset(Ttrain=ARRAYS["Ttrain"] + 0.5), ON_DATA,
     ['"data.npz"', '"Ttrain"', ".5 (row 0)", "expected class labels"]),
    ("dataset-nan", dataset(Xtrain=NAN_X), ON_DATA, ['"data.npz"', '"Xtrain"', "NaN"]),
    ("dataset-inf", dataset(Xtest=INF_X), ON_DATA, ['"data.npz"', '"Xtest"', "Inf"]),
    ("dataset-string-dtype", dataset(Xtrain=ARRAYS["Xtrain"].astype(str)), ON_DATA,
     ['"data.npz"', '"Xtrain"', "expected numbers"]),
    ("dataset-complex-dtype", dataset(Xtest=ARRAYS["Xtest"].astype(np.complex64)), ON_DATA,
     ['"data.npz"', '"Xtest"', "expected numbers"]),
    ("dataset-string-labels", dataset(Ttrain=ARRAYS["Ttrain"].astype(str)), ON_DATA,
     ['"data.npz"', '"Ttrain"']),
    ("dataset-zero-samples", dataset(Xtrain=np.zeros((0, 5), np.float32),
                                     Ttrain=np.zeros(0, np.int64)), ON_DATA,
     ['"data.npz"', '"Xtrain"', "zero samples"]),
    ("dataset-wrong-width", dataset(Xtrain=np.ones((60, 7)), Xtest=np.ones((30, 7))), ON_DATA,
     ['"data.npz"', "7 features", "starts with 5"]),
    ("weights-missing", nothing, LOAD_W0, ['"w0.npz"', "not found"]),
    ("weights-missing-key", weights(W2=None), LOAD_W0, ['"w0.npz"', '"W2"', "missing"]),
    ("weights-wrong-shape", weights(W1=np.ones((8, 4), np.float32)), LOAD_W0,
     ['"w0.npz"', '"W1"', "(8, 4)", "(8, 5)"]),
    ("weights-nan", weights(W1=NAN_W), LOAD_W0, ['"w0.npz"', '"W1"', "NaN"]),
    ("weights-other-architecture", deeper_weights, LOAD_W0,
     ['"w0.npz"', '"W1"', "(16, 5)", "(8, 5)"]),
    ("weights-pickled-objects", weights(b1=np.array([Trap()] * 8, dtype=object)), LOAD_W0,
     ['"w0.npz"', '"b1"', "never unpickles"]),
    ("weights-crc", raw(crc_damaged(WEIGHTS), "w0.npz"), LOAD_W0, ['"w0.npz"', '"W1"', "corrupt"]),
    ("dataset-overflows-float32", dataset(Xtrain=ARRAYS["Xtrain"].astype(np.float64) * 1e300),
     ON_DATA, []),  # finite in the file, Inf as float32: a data error or the §12.2 stop, cleanly
    ("layer-size-too-large-to-allocate", nothing, (*ON_DATA, "--layer-sizes=5;100000000000;3"),
     ["--layer-sizes"]),
    ("non-finite-gradient", nothing,
     ("--layers=Linear", "--layer-sizes=5;3", "--learning-rate=Constant(1e30)",
      "--loss=SquaredError", "--epochs=5", "--device=cpu", "--load-dataset=data.npz", *OUTPUTS),
     ["training: non-finite loss gradient in epoch ", re.compile(r"\(first at batch \d+\)$")]),
]  # fmt: skip

USAGE_ERRORS = [
    ("epochs-not-a-number", ["--epochs=ten"], ["--epochs", 'expected an integer >= 0, got "ten"']),
    ("epochs-fraction", ["--epochs=1.5"], ["--epochs", "expected an integer >= 0"]),
    ("epochs-negative", ["--epochs=-3"], ["--epochs", "expected an integer >= 0"]),
    ("batch-size-zero", ["--batch-size=0"], ["--batch-size", "expected an integer >= 1"]),
    ("seed-negative", ["--seed=-1"], ["--seed", "expected an integer >= 0"]),
    ("threads-zero", ["--threads=0"], ["--threads", "expected an integer in [1, 1024]"]),
    ("dtype-unknown", ["--dtype=float16"], ["--dtype", "float16"]),
    ("option-misspelt", ["--epohcs=3"], ["--epohcs"]),
    ("layer-misspelt", ["--layers=Relu;Linear"],
     ["--layers", 'invalid layer "Relu": unknown name "Relu" (did you mean "ReLU"?)']),
    ("layer-malformed", ["--layers=ReLU;Linear("], ["--layers", 'invalid layer "Linear("',
                                                    "syntax error at position"]),
    ("layer-empty-item", ["--layers=ReLU;;Linear"], ["--layers", "empty"]),
    ("loss-misspelt", ["--loss=SoftmaxCrossEntropyy"],
     ["--loss", 'invalid loss function "SoftmaxCrossEntropyy"',
      '(did you mean "SoftmaxCrossEntropy"?)']),
    ("optimizer-misspelt", ["--optimizers=Momentun(0.9)"],
     ["--optimizers", 'invalid optimizer "Momentun(0.9)"', '(did you mean "Momentum"?)']),
    ("optimizer-missing-parameter", ["--optimizers=Momentum"],
     ["--optimizers", "missing required parameter mu"]),
    ("scheduler-misspelt", ["--learning-rate=Constnt(0.1)"],
     ["--learning-rate", 'invalid learning rate scheduler "Constnt(0.1)"',
      '(did you mean "Constant"?)']),
    ("scheduler-nan", ["--learning-rate=Constant(nan)"],
     ["--learning-rate", 'invalid learning rate scheduler "Constant(nan)"']),
    ("initializer-misspelt", ["--layer-weights=XavierNormall"],
     ["--layer-weights", 'invalid weight initializer "XavierNormall"',
      '(did you mean "XavierNormal"?)']),
    ("initializer-parameter-not-a-number", ["--layer-weights=Uniform(a=x)"],
     ["--layer-weights", 'parameter a: expected a number, got "x"']),
    ("sizes-too-few", ["--layer-sizes=5;8"], ["--layer-sizes", "expected 3 entries", "got 2"]),
    ("sizes-not-a-number", ["--layer-sizes=5;eight;3"], ["--layer-sizes", "eight"]),
    ("sizes-zero", ["--layer-sizes=5;0;3"], ["--layer-sizes", "0"]),
    ("optimizers-count", ["--optimizers=GradientDescent;GradientDescent;GradientDescent"],
     ["--optimizers", "expected 1 or 2 entries", "got 3"]),
    ("initializers-count", ["--layer-weights=XavierNormal;XavierNormal;XavierNormal"],
     ["--layer-weights", "expected 1 or 2 entries", "got 3"]),
    ("device-gpu", ["--device=gpu"], ["--device", '"gpu"']),
    ("device-cuda-x", ["--device=cuda:x"], ["--device", "cuda:x"]),
    ("output-folder-missing", ["--save-weights=missing/w.npz"],
     ["--save-weights", "missing", "does not exist"]),
    ("metrics-folder-missing", ["--metrics=missing/m.jsonl"],
     ["--metrics", "missing", "does not exist"]),
    ("output-is-a-directory", ["--save-initial-weights=sub.npz"], ["--save-initial-weights",
                                                                   "is a directory"]),
    ("output-is-the-dataset", ["--save-weights=data.npz"], ["--save-weights", "is an input"]),
    ("output-is-the-dataset-without-suffix", ["--save-dataset=data"],
     ["--save-dataset", "is an input"]),
    ("metrics-is-the-dataset", ["--metrics=data.npz"], ["--metrics", "is an input"]),
    ("output-is-the-weights-to-load", ["--load-weights=w0.npz", "--save-initial-weights=w0.npz"],
     ["--save-initial-weights", "is an input"]),
    ("usage-error-before-reading-a-missing-dataset",
     ["--load-dataset=none.npz", "--layers=Relu;Linear"], ["--layers", "did you mean"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("setup", "args", "phrases"),
    [pytest.param(setup, args, phrases, id=name) for name, setup, args, phrases in DATA_ERRORS],
)
def test_data_errors_exit_1_and_change_nothing(tmp_path, setup, args, phrases):
    dataset()(tmp_path)
    setup(tmp_path)
    before = folder_state(tmp_path)
    assert_one_line_error(nerva_xp(tmp_path, *args), 1, phrases)
    assert folder_state(tmp_path) == before
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    ("args", "phrases"),
    [pytest.param(args, phrases, id=name) for name, args, phrases in USAGE_ERRORS],
)
def test_usage_errors_exit_2_and_change_nothing(tmp_path, args, phrases):
    dataset()(tmp_path)
    weights()(tmp_path)
    (tmp_path / "sub.npz").mkdir()
    before = folder_state(tmp_path)
    result = nerva_xp(tmp_path, *ON_DATA, *args)
    assert_one_line_error(result, 2, phrases)
    assert result.stdout == ""  # found before any work starts: not even the device line
    assert folder_state(tmp_path) == before


# ---------------------------------------------------------------- cases needing a condition


def cuda_is_usable() -> bool:
    try:
        select_device("cuda")
    except DeviceError:
        return False
    return True


def test_cuda_asked_for_but_absent_exits_2(tmp_path):
    if cuda_is_usable():
        pytest.skip("CUDA is usable on this machine, so --device=cuda is not an error here")
    dataset()(tmp_path)
    before = folder_state(tmp_path)
    result = nerva_xp(tmp_path, *ON_DATA, "--device=cuda")
    assert_one_line_error(result, 2, ["--device", "cuda is unavailable: "])
    assert folder_state(tmp_path) == before


def folder_is_writable_anyway(folder: Path) -> bool:
    try:
        (folder / "probe").write_bytes(b"")
    except PermissionError:
        return False
    (folder / "probe").unlink()
    return True


def test_read_only_output_folder_exits_2(tmp_path):
    dataset()(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.geteuid() == 0 or folder_is_writable_anyway(locked):
            pytest.skip(
                "running as root (or a mode-0o555 folder is writable here): root ignores folder "
                "permissions, so no folder is read-only for this process"
            )
        before = folder_state(tmp_path)
        result = nerva_xp(tmp_path, *ON_DATA, "--save-weights=locked/w.npz")
        assert_one_line_error(result, 2, ["--save-weights", "locked", "not writable"])
        assert folder_state(tmp_path) == before
    finally:
        locked.chmod(0o755)


def test_debug_shows_the_traceback_behind_the_message(tmp_path):
    dataset(Xtrain=NAN_X)(tmp_path)
    before = folder_state(tmp_path)
    result = nerva_xp(tmp_path, *ON_DATA, "--debug")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("nerva-xp: error: ") and '"Xtrain"' in last
    assert folder_state(tmp_path) == before


# ---------------------------------------------------------------- inputs that must work


def test_extra_keys_are_ignored(tmp_path):
    dataset(notes=np.arange(4), Xvalid=np.ones((3, 9)))(tmp_path)
    result = nerva_xp(tmp_path, *ON_DATA)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert list(load_dict_from_npz(tmp_path / "w.npz")) == ["W1", "b1", "W2", "b2"]
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 3


def test_whole_number_float_labels_are_accepted(tmp_path):
    dataset(Ttrain=ARRAYS["Ttrain"].astype(np.float64))(tmp_path)
    result = nerva_xp(tmp_path, *ON_DATA)
    assert result.returncode == 0, result.stderr


def test_batch_larger_than_the_data_is_one_batch_per_epoch(tmp_path):
    dataset()(tmp_path)
    result = nerva_xp(tmp_path, *ON_DATA, "--batch-size=1000", "--epochs=2", "--debug")
    assert result.returncode == 0, result.stderr
    assert re.findall(r"^epoch: (\d+) batch: (\d+)$", result.stdout, re.M) == [
        ("0", "0"),
        ("1", "0"),
    ]
    assert "X (60x5)" in result.stdout
    assert (tmp_path / "w.npz").exists()


def test_empty_test_set_is_a_clean_result_or_a_clean_error(tmp_path):
    dataset(Xtest=np.zeros((0, 5), np.float32), Ttest=np.zeros(0, np.int64))(tmp_path)
    before = folder_state(tmp_path)
    result = nerva_xp(tmp_path, *ON_DATA)
    if result.returncode == 0:
        assert "Traceback" not in result.stderr and (tmp_path / "w.npz").exists()
    else:
        assert_one_line_error(result, 1, ['"data.npz"', '"Xtest"'])
        assert folder_state(tmp_path) == before


# ---------------------------------------------------------------- Ctrl-C


def _default_sigint() -> None:  # a child of an ignoring shell would otherwise ignore SIGINT too
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_line(lines: queue.Queue, prefix: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        assert line is not None, f"the run ended before printing {prefix!r}"
        if line.startswith(prefix):
            return


def test_ctrl_c_exits_130_and_writes_nothing(tmp_path):
    args = ["--device=cpu", "--epochs=100000", "--seed=1", *OUTPUTS]
    process = subprocess.Popen(
        [*COMMAND, "train", *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=_default_sigint,
    )  # fmt: skip
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_for_line(lines, "epoch |", timeout=60)
        wait_for_line(lines, "    1 |", timeout=60)  # training is under way
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read()
    assert code == 130, stderr
    assert "Traceback" not in stderr and stderr.count("\n") <= 1, stderr
    assert sorted(tmp_path.iterdir()) == []  # no w.npz, m.jsonl or temporary file


def test_ctrl_c_while_the_library_loads_exits_130_without_a_traceback():
    """The console script imports only the standard library before main() guards against Ctrl-C;
    a KeyboardInterrupt raised while NumPy loads (simulated by an import hook) is caught there."""
    script = (
        "import sys\n"
        "import nerva_xp.cli\n"
        "assert 'numpy' not in sys.modules, 'nerva_xp.cli imports NumPy at module level'\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'numpy':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "sys.exit(nerva_xp.cli.main(['train', '--epochs=1']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 130, result.stderr
    assert result.stderr == "nerva-xp: interrupted\n"


# ---------------------------------------------------------------- a full disk


def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_folder_refusing_new_files_is_named_by_the_file_asked_for(tmp_path, monkeypatch):
    """Root may pass os.access on /proc and still be refused a new file there: the error names the
    output the user gave, not the temporary file that could not be made."""
    import tempfile

    def refuse(*_args, **_kwargs):
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), str(tmp_path / ".nerva-xp-x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OSError) as error:
        write_atomically(tmp_path / "m.jsonl", lambda file: file.write(b"{}"))
    assert error.value.filename == str(tmp_path / "m.jsonl")
    assert error.value.strerror.startswith("cannot write: ")
    assert list(tmp_path.iterdir()) == []


def test_full_disk_in_write_atomically_keeps_the_previous_file(tmp_path):
    target = tmp_path / "m.jsonl"
    target.write_bytes(b"previous\n")

    def write_part(file) -> None:
        file.write(b"half of the new con")
        no_space()

    with pytest.raises(OSError) as error:
        write_atomically(target, write_part)
    assert error.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]


def test_full_disk_at_fsync_keeps_the_previous_npz(tmp_path, monkeypatch):
    target = save_dict_to_npz(tmp_path / "w.npz", {"a": np.zeros(3)})
    before = Path(target).read_bytes()
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError):
        save_dict_to_npz(target, {"a": np.ones(3)})
    assert Path(target).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]


def partial_savez(file, **_arrays) -> None:
    file.write(b"PK\x03\x04 partial")
    no_space()


@pytest.mark.parametrize(
    ("option", "name", "patch"),
    [
        ("--save-weights", "w.npz", (np, "savez_compressed", partial_savez)),
        ("--metrics", "m.jsonl", (os, "fsync", no_space)),
    ],
)
def test_full_disk_while_the_cli_saves(tmp_path, monkeypatch, capsys, option, name, patch):
    dataset()(tmp_path)
    (tmp_path / name).write_bytes(b"the previous file")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(*patch)
    code = cli.main(["train", *NETWORK, "--load-dataset=data.npz", f"{option}={name}"])
    stderr = capsys.readouterr().err
    assert code == 1
    assert stderr.startswith("nerva-xp: error: ") and stderr.count("\n") == 1, stderr
    assert name in stderr and "No space left on device" in stderr, stderr
    assert (tmp_path / name).read_bytes() == b"the previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data.npz", name])


def test_pickle_trap_really_creates_its_file_when_unpickled(tmp_path, monkeypatch):
    """The object-array cases rely on this: unpickling Trap would show up in the folder hash."""
    monkeypatch.chdir(tmp_path)
    pickle.loads(pickle.dumps(Trap())).close()
    assert (tmp_path / "PWNED").exists()
