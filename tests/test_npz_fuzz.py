"""NPZ reading under damage (spec §7.2, §15): only ``DataError``, never another exception or a hang.

Valid dataset and weight files (stored and compressed) are damaged at random: cut at any position,
bytes flipped, overwritten or inserted, a member's ``.npy`` header text replaced (inside a zip with
correct CRCs, so the header itself is what is tested), or replaced by arbitrary bytes. Every loader
(``load_dict_from_npz``, ``load_npz_dataset``, ``MultilayerPerceptron.load_weights_and_bias``) must
then either succeed or raise ``nerva_xp.npz.DataError``; a failed weight load changes no weight.
"""

from __future__ import annotations

import contextlib
import io
import signal
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerva_xp.datasets import load_npz_dataset
from nerva_xp.multilayer_perceptron import parse_multilayer_perceptron
from nerva_xp.npz import DataError, load_dict_from_npz

FUZZ = settings(
    max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
CALL_LIMIT_S = 5  # a hang is a failure, not a stuck test run


def small_model():
    """ReLU;Linear 3;4;3: W1 (4, 3), b1 (4,), W2 (3, 4), b2 (3,)."""
    rng = np.random.default_rng(0)
    return parse_multilayer_perceptron(
        ["ReLU", "Linear"], [3, 4, 3], ["GradientDescent"], ["XavierNormal"], rng=rng
    )


def dataset_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.random((18, 3)).astype(np.float32)
    T = np.argmax(X, axis=1).astype(np.int64)
    return {"Xtrain": X[:12], "Ttrain": T[:12], "Xtest": X[12:], "Ttest": T[12:]}


def weight_arrays() -> dict[str, np.ndarray]:
    return {key: np.asarray(value) for key, value in small_model().weights_dict().items()}


ARRAYS = {"dataset": dataset_arrays(), "weights": weight_arrays()}


def npz_bytes(data: dict, compressed: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **data)
    return buffer.getvalue()


BASES = {
    f"{kind}-{'deflated' if compressed else 'stored'}": npz_bytes(data, compressed)
    for kind, data in ARRAYS.items()
    for compressed in (False, True)
}


# ---------------------------------------------------------------- the property


class HangError(BaseException):
    """Not an Exception, so no loader's error handling can turn a hang into a DataError."""


@contextlib.contextmanager
def time_limit(seconds: int):
    def alarm(*_):
        raise HangError(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def snapshot(model) -> dict[str, np.ndarray]:
    return {key: np.array(value, copy=True) for key, value in model.weights_dict().items()}


def load_weights(path) -> None:
    model = small_model()
    before = snapshot(model)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model.load_weights_and_bias(path)
    except DataError:
        after = snapshot(model)
        assert all(np.array_equal(after[k], before[k], equal_nan=True) for k in before)
        raise


LOADERS = {
    "load_dict_from_npz": load_dict_from_npz,
    "load_npz_dataset": load_npz_dataset,
    "load_weights_and_bias": load_weights,
}


def assert_only_data_errors(path, content: bytes) -> None:
    """Every loader either succeeds or raises DataError (with a one-line message)."""
    path.write_bytes(content)
    for name, load in LOADERS.items():
        try:
            with time_limit(CALL_LIMIT_S):
                load(path)
        except DataError as error:
            assert "\n" not in str(error), (name, str(error))
        except Exception as error:
            raise AssertionError(
                f"{name} raised {type(error).__name__}: {error} (not DataError)"
            ) from error


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "damaged.npz"


# ---------------------------------------------------------------- damage


POSITION = st.integers(min_value=0, max_value=2**31)
PAYLOAD = st.binary(min_size=1, max_size=16)
DAMAGE = st.one_of(
    st.tuples(st.just("cut"), POSITION, st.just(b"")),
    st.tuples(st.just("flip"), POSITION, st.integers(1, 255).map(lambda b: bytes([b]))),
    st.tuples(st.just("overwrite"), POSITION, PAYLOAD),
    st.tuples(st.just("insert"), POSITION, PAYLOAD),
)


def damage(content: bytes, kind: str, position: int, payload: bytes) -> bytes:
    at = position % (len(content) + 1)
    if kind == "cut":
        return content[:at]
    if kind == "flip":
        if not content:
            return content
        at = min(at, len(content) - 1)
        return content[:at] + bytes([content[at] ^ payload[0]]) + content[at + 1 :]
    if kind == "overwrite":
        return content[:at] + payload + content[at + len(payload) :]
    return content[:at] + payload + content[at:]


@FUZZ
@given(base=st.sampled_from(sorted(BASES)), damages=st.lists(DAMAGE, min_size=1, max_size=3))
def test_damaged_files_raise_only_data_error(target, base, damages):
    content = BASES[base]
    for kind, position, payload in damages:
        content = damage(content, kind, position, payload)
    assert_only_data_errors(target, content)


@FUZZ
@given(base=st.sampled_from(sorted(BASES)), position=POSITION)
def test_files_cut_anywhere_raise_only_data_error(target, base, position):
    content = BASES[base]
    assert_only_data_errors(target, content[: position % len(content)])


# ---------------------------------------------------------------- replaced .npy headers


DESCRS = [
    "<f4", ">f8", "<f2", "|u1", "<i8", "|b1", "<c16", "|O", "<U5", "|S3", "|V8", "<M8[s]",
    "<m8[D]", "f4", "x", "", "[('a', '<f4')]", "<f4 ",
]  # fmt: skip
DIM = st.one_of(st.integers(0, 20), st.integers(-3, 10**25), st.sampled_from([10**12, 2**63]))
SHAPE = st.lists(DIM, max_size=4).map(tuple)


def dict_header(descr: str, fortran: bool, shape: tuple) -> str:
    value = descr if descr.startswith("[") else repr(descr)
    return f"{{'descr': {value}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"


HEADER_TEXT = st.one_of(
    st.builds(dict_header, st.sampled_from(DESCRS), st.booleans(), SHAPE),
    st.text(max_size=80),
    st.sampled_from(["{}", "{'descr': '<f4'}", "[]", "None", "{'shape': (3,)}", "\x00" * 10]),
)


def with_header(npy: bytes, text: str, version: int) -> bytes:
    """``npy`` with its header text replaced by ``text`` (format version 1 or 2 length field)."""
    old_length = struct.unpack("<H", npy[8:10])[0]
    data = npy[10 + old_length :]
    header = (text + "\n").encode("latin-1", errors="replace")
    if version == 1:
        length = struct.pack("<H", len(header) % 2**16)
    else:
        length = struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + length + header + data


def rebuilt_zip(arrays: dict, key: str, text: str, version: int, compressed: bool) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, value in arrays.items():
            member = io.BytesIO()
            np.save(member, value)
            npy = member.getvalue()
            archive.writestr(f"{name}.npy", with_header(npy, text, version) if name == key else npy)
    return buffer.getvalue()


@FUZZ
@given(
    kind=st.sampled_from(sorted(ARRAYS)),
    data=st.data(),
    text=HEADER_TEXT,
    version=st.sampled_from([1, 2]),
    compressed=st.booleans(),
)
def test_replaced_member_headers_raise_only_data_error(
    target, kind, data, text, version, compressed
):
    arrays = ARRAYS[kind]
    key = data.draw(st.sampled_from(sorted(arrays)))
    assert_only_data_errors(target, rebuilt_zip(arrays, key, text, version, compressed))


# ---------------------------------------------------------------- arbitrary bytes


MAGICS = [b"", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY", b"\x93NUMPY\x01\x00"]


@FUZZ
@given(prefix=st.sampled_from(MAGICS), rest=st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_data_error(target, prefix, rest):
    assert_only_data_errors(target, prefix + rest)


def test_the_undamaged_bases_load(target):
    """The property is not vacuous: each base file loads where it should."""
    for name, content in BASES.items():
        target.write_bytes(content)
        assert list(load_dict_from_npz(target)) == list(ARRAYS[name.split("-")[0]])
        if name.startswith("dataset"):
            load_npz_dataset(target)
        else:
            load_weights(target)
