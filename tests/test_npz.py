"""NPZ reading and writing (spec §15): validated loads, no pickles, atomic writes."""

import ast
import pathlib
import zipfile

import numpy as np
import pytest

from nerva_xp import npz
from nerva_xp.npz import DataError, load_dict_from_npz, save_dict_to_npz

PACKAGE = pathlib.Path(npz.__file__).parent


def message(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_round_trip_keeps_keys_in_order_and_values(tmp_path):
    data = {"W1": np.ones((2, 3), np.float32), "b1": np.arange(2.0), "T": np.arange(3)}
    path = save_dict_to_npz(tmp_path / "w", data)
    assert path == str(tmp_path / "w.npz")
    loaded = load_dict_from_npz(path)
    assert list(loaded) == list(data)
    for key, value in data.items():
        np.testing.assert_array_equal(loaded[key], value)
        assert loaded[key].dtype == value.dtype


def test_save_accepts_device_arrays(tmp_path):
    from nerva_xp.device import select_device

    d = select_device("strict")
    path = save_dict_to_npz(tmp_path / "x.npz", {"A": d.asarray(np.eye(2))})
    np.testing.assert_array_equal(load_dict_from_npz(path)["A"], np.eye(2))


def test_save_replaces_an_existing_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "w.npz"
    save_dict_to_npz(target, {"a": np.zeros(2)})
    save_dict_to_npz(target, {"a": np.ones(2)})
    np.testing.assert_array_equal(load_dict_from_npz(target)["a"], np.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "w.npz"
    save_dict_to_npz(target, {"a": np.zeros(2)})
    before = target.read_bytes()

    def full_disk(file, **arrays):
        file.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full_disk)
    with pytest.raises(OSError):
        save_dict_to_npz(target, {"a": np.ones(2)})
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as error:
        load_dict_from_npz(tmp_path / "none.npz", kind="dataset")
    assert message(error) == f'cannot read dataset file "{tmp_path / "none.npz"}": not found'


def test_directory(tmp_path):
    with pytest.raises(DataError) as error:
        load_dict_from_npz(tmp_path, kind="weights")
    assert message(error).endswith(": is a directory")


def test_npy_file(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(DataError) as error:
        load_dict_from_npz(tmp_path / "a.npy")
    assert "a .npy file was given" in message(error)


@pytest.mark.parametrize("content", [b"", b"hello, this is text", b"\x89PNG\r\n\x1a\n...."])
def test_other_formats_renamed_npz(tmp_path, content):
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        load_dict_from_npz(path)
    assert message(error).endswith("not an NPZ (zip) archive")


def test_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, X=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError) as error:
        load_dict_from_npz(path)
    assert 'key "X" holds an object array; nerva-xp never unpickles' in message(error)


def test_missing_required_key(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, Xtrain=np.zeros((2, 2)))
    with pytest.raises(DataError) as error:
        load_dict_from_npz(path, required=("Xtrain", "Ttrain"), kind="dataset")
    assert message(error).endswith('required key "Ttrain" is missing')


def test_corrupt_member_is_reported(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.arange(1000.0))
    raw = bytearray(path.read_bytes())
    offset = raw.index(b"\x93NUMPY") + 200  # inside the stored array's data
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as error:
        load_dict_from_npz(path)
    assert "corrupt" in message(error)


def test_a_member_that_is_not_npy_is_reported_in_one_line(tmp_path):
    path = tmp_path / "d.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X.npy", b"these bytes are not an array")
    with pytest.raises(DataError) as error:
        load_dict_from_npz(path, kind="dataset")
    assert (
        message(error)
        == f'cannot read dataset file "{path}": member "X" is corrupt (not a .npy array)'
    )


def test_only_the_asked_keys_are_read(tmp_path):
    """Keys a reader does not need are never opened (spec §15.2: other keys are ignored)."""
    path = tmp_path / "d.npz"
    np.savez(path, A=np.arange(3), junk=np.array([{"a": 1}], dtype=object))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("raw.npy", b"not an array")
    assert list(load_dict_from_npz(path, keys=("A", "absent"))) == ["A"]
    assert list(load_dict_from_npz(path, required=("A",), keys=())) == ["A"]
    with pytest.raises(DataError):
        load_dict_from_npz(path)  # every key


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / "d.npz"
    np.savez_compressed(path, X=np.random.default_rng(0).random((50, 50)))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError):
        load_dict_from_npz(path)


def test_written_files_are_plain_zip_archives(tmp_path):
    path = save_dict_to_npz(tmp_path / "w", {"a": np.zeros(2)})
    assert zipfile.is_zipfile(path)


def test_no_module_ever_allows_pickles():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                assert isinstance(node.value, ast.Constant) and node.value.value is False


def python2_npy(array: np.ndarray) -> bytes:
    """A .npy member as NumPy under Python 2 wrote it: header shapes like (20L, 4L)."""
    dims = ", ".join(f"{n}L" for n in array.shape) + ("," if array.ndim == 1 else "")
    header = f"{{'descr': '{array.dtype.str}', 'fortran_order': False, 'shape': ({dims}), }}"
    header = header.encode("latin1")
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + array.tobytes()


def test_python2_files_are_read_without_numpys_warning(tmp_path, recwarn):
    """NumPy parses these headers but warns with its own source lines (they reached stderr)."""
    arrays = {"W1": np.arange(6, dtype=np.float32).reshape(2, 3), "b1": np.ones(2, np.float32)}
    path = tmp_path / "old.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in arrays.items():
            archive.writestr(f"{key}.npy", python2_npy(array))
    loaded = load_dict_from_npz(path)
    assert list(loaded) == list(arrays)
    for key, array in arrays.items():
        np.testing.assert_array_equal(loaded[key], array)
    assert [str(w.message) for w in recwarn] == []
