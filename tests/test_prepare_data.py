"""prepare-data (spec §14.4): MNIST (npz and IDX), CIFAR-10 tarball, digits; never the network."""

import gzip
import io
import os
import pickle
import struct
import tarfile
import urllib.request

import numpy as np
import pytest

from nerva_xp.datasets import load_embedded_dataset
from nerva_xp.npz import DataError, load_dict_from_npz
from nerva_xp.prepare_data import CIFAR10_URL, MNIST_URL, prepare_data

KEYS = ["Xtrain", "Ttrain", "Xtest", "Ttest"]


def message(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


# --- fabricated sources --------------------------------------------------------------------------


def mnist_arrays(n_train=5, n_test=3):
    rng = np.random.default_rng(1)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_mnist_npz(folder, arrays=None):
    arrays = mnist_arrays() if arrays is None else arrays
    np.savez(folder / "mnist.npz", **arrays)
    return arrays


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()


def write_idx(folder, arrays, gzipped=True):
    files = {
        "train-images-idx3-ubyte": idx_bytes(arrays["x_train"], 2051),
        "train-labels-idx1-ubyte": idx_bytes(arrays["y_train"], 2049),
        "t10k-images-idx3-ubyte": idx_bytes(arrays["x_test"], 2051),
        "t10k-labels-idx1-ubyte": idx_bytes(arrays["y_test"], 2049),
    }
    for name, data in files.items():
        if gzipped:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


def cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(x) for x in rng.integers(0, 10, n)]
    return data, labels


def write_tarball(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def cifar_members(sizes=(2, 3, 1, 2, 2), n_test=3):
    batches = {f"data_batch_{i + 1}": cifar_batch(n, i) for i, n in enumerate(sizes)}
    batches["test_batch"] = cifar_batch(n_test, 99)
    members = {
        f"cifar-10-batches-py/{name}": pickle.dumps({b"data": X, b"labels": T}, protocol=2)
        for name, (X, T) in batches.items()
    }
    return batches, members


def write_cifar(folder, members=None):
    batches, default = cifar_members()
    write_tarball(folder / "cifar-10-python.tar.gz", default if members is None else members)
    return batches


# --- MNIST ---------------------------------------------------------------------------------------


def check_mnist_output(path, arrays):
    data = load_dict_from_npz(path)
    assert list(data) == KEYS
    for part in ("train", "test"):
        X, T = data[f"X{part}"], data[f"T{part}"]
        n = arrays[f"x_{part}"].shape[0]
        assert X.shape == (n, 784) and X.dtype == np.float32
        assert T.shape == (n,) and T.dtype == np.uint8
        expected = arrays[f"x_{part}"].reshape(n, 784).astype(np.float32) / np.float32(255)
        np.testing.assert_array_equal(X, expected)
        np.testing.assert_array_equal(T, arrays[f"y_{part}"])


def test_mnist_from_npz(tmp_path, capsys):
    arrays = write_mnist_npz(tmp_path)
    path = prepare_data("mnist", str(tmp_path))
    assert path == str(tmp_path / "mnist-flattened.npz")
    check_mnist_output(path, arrays)
    assert f"Saving dataset to {path}" in capsys.readouterr().out


@pytest.mark.parametrize("gzipped", [True, False])
def test_mnist_from_idx_files(tmp_path, gzipped):
    arrays = mnist_arrays(4, 2)
    write_idx(tmp_path, arrays, gzipped)
    check_mnist_output(prepare_data("mnist", tmp_path), arrays)


def test_mnist_npz_is_preferred_over_idx(tmp_path):
    arrays = write_mnist_npz(tmp_path, mnist_arrays(5, 3))
    write_idx(tmp_path, mnist_arrays(2, 1))
    check_mnist_output(prepare_data("mnist", tmp_path), arrays)


def test_mnist_idx_with_wrong_magic_is_refused(tmp_path):
    write_idx(tmp_path, mnist_arrays())
    bad = idx_bytes(mnist_arrays()["y_test"], 2051)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bad))
    with pytest.raises(DataError) as error:
        prepare_data("mnist", tmp_path)
    assert "t10k-labels-idx1-ubyte.gz" in message(error)
    assert "magic number 2051; expected 2049" in message(error)
    assert not (tmp_path / "mnist-flattened.npz").exists()


def test_mnist_idx_labels_out_of_range_name_the_labels_file(tmp_path):
    arrays = mnist_arrays()
    arrays["y_train"] = arrays["y_train"].copy()
    arrays["y_train"][0] = 12
    write_idx(tmp_path, arrays)
    with pytest.raises(DataError, match=r"y_train holds labels outside \[0, 10\)") as error:
        prepare_data("mnist", tmp_path)
    assert '"' + str(tmp_path / "train-labels-idx1-ubyte.gz") + '"' in message(error)


def test_mnist_idx_size_must_match_the_header(tmp_path):
    write_idx(tmp_path, mnist_arrays())
    data = idx_bytes(mnist_arrays()["x_train"], 2051)[:-10]
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(data))
    with pytest.raises(DataError, match="header announces 5x28x28") as error:
        prepare_data("mnist", tmp_path)
    assert "train-images-idx3-ubyte.gz" in message(error)


def test_mnist_idx_header_whose_size_product_wraps_is_refused(tmp_path):
    """2^22 · 2^21 · 2^21 = 2^64 wraps to 0 in int64 arithmetic."""
    write_idx(tmp_path, mnist_arrays())
    header = struct.pack(">4I", 2051, 2**22, 2**21, 2**21)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header))
    with pytest.raises(DataError, match="0 data bytes; the header announces"):
        prepare_data("mnist", tmp_path)


def test_mnist_idx_label_count_must_match_images(tmp_path):
    arrays = mnist_arrays()
    arrays["y_train"] = arrays["y_train"][:4]
    write_idx(tmp_path, arrays)
    with pytest.raises(DataError, match="4 labels for 5 images"):
        prepare_data("mnist", tmp_path)


def test_mnist_bad_gzip_is_refused(tmp_path):
    write_idx(tmp_path, mnist_arrays())
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:12])
    with pytest.raises(DataError) as error:
        prepare_data("mnist", tmp_path)
    assert f'cannot read MNIST file "{path}"' in message(error)


def test_mnist_npz_with_wrong_shape_is_refused(tmp_path):
    arrays = mnist_arrays()
    arrays["x_test"] = arrays["x_test"].reshape(3, 784)
    write_mnist_npz(tmp_path, arrays)
    with pytest.raises(DataError, match=r"x_test is uint8 \(3, 784\)"):
        prepare_data("mnist", tmp_path)


def test_mnist_npz_missing_key_is_refused(tmp_path):
    arrays = mnist_arrays()
    del arrays["y_test"]
    write_mnist_npz(tmp_path, arrays)
    with pytest.raises(DataError, match='required key "y_test" is missing'):
        prepare_data("mnist", tmp_path)


def test_missing_source_names_the_file_and_suggests_download(tmp_path):
    with pytest.raises(DataError) as error:
        prepare_data("mnist", tmp_path)
    expected = f'cannot read MNIST file "{tmp_path / "mnist.npz"}": not found; run with --download'
    assert message(error).startswith(expected)
    with pytest.raises(DataError, match="cifar-10-python.tar.gz.*--download"):
        prepare_data("cifar10", tmp_path)
    assert os.listdir(tmp_path) == []


# --- CIFAR-10 ------------------------------------------------------------------------------------


def test_cifar10_from_tarball(tmp_path, capsys):
    batches = write_cifar(tmp_path)
    path = prepare_data("cifar10", tmp_path)
    assert path == str(tmp_path / "cifar10-flattened.npz")
    assert f"Saving dataset to {path}" in capsys.readouterr().out
    data = load_dict_from_npz(path)
    assert list(data) == KEYS
    assert data["Xtrain"].shape == (10, 3072) and data["Xtest"].shape == (3, 3072)
    assert data["Xtrain"].dtype == np.float32 and data["Xtest"].dtype == np.float32
    assert data["Ttrain"].dtype == np.int32 and data["Ttest"].dtype == np.int32
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    np.testing.assert_array_equal(data["Ttrain"], sum((T for _, T in train), []))
    np.testing.assert_array_equal(data["Ttest"], batches["test_batch"][1])
    source = np.concatenate([X for X, _ in train])
    assert data["Xtrain"].min() >= 0 and data["Xtrain"].max() <= 1
    # channel c, row r, column k of the source lands at flat index (r * 32 + k) * 3 + c
    for i, c, r, k in [(0, 0, 0, 0), (3, 1, 5, 7), (9, 2, 31, 30), (4, 2, 0, 31)]:
        pixel = source[i, c * 1024 + r * 32 + k]
        assert data["Xtrain"][i, (r * 32 + k) * 3 + c] == np.float32(pixel) / np.float32(255)
    Xtest = batches["test_batch"][0].reshape(3, 3, 32, 32).transpose(0, 2, 3, 1).reshape(3, -1)
    np.testing.assert_array_equal(data["Xtest"], Xtest.astype(np.float32) / np.float32(255))


def py2_pickle(data: np.ndarray, labels) -> bytes:
    """A batch as Python 2 pickled the real files: str keys and raw data as 8-bit strings."""

    def string(x):
        return b"U" + bytes([len(x)]) + x if len(x) < 256 else b"T" + struct.pack("<I", len(x)) + x

    def int4(value):
        return b"J" + struct.pack("<i", value)

    dtype = b"cnumpy\ndtype\n" + string(b"u1") + b"K\x00K\x01\x87R(K\x03" + string(b"|")
    dtype += b"NNN" + int4(-1) + int4(-1) + b"K\x00tb"
    array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + string(b"b")
    array += b"\x87R(K\x01" + int4(data.shape[0]) + int4(3072) + b"\x86" + dtype
    array += b"\x89" + string(data.tobytes()) + b"tb"
    label_list = b"](" + b"".join(b"K" + bytes([label]) for label in labels) + b"e"
    return b"\x80\x02}(" + string(b"data") + array + string(b"labels") + label_list + b"u."


def test_cifar10_reads_python2_pickles(tmp_path):
    batches, members = cifar_members()
    for name, (X, T) in batches.items():
        members[f"cifar-10-batches-py/{name}"] = py2_pickle(X, T)
    write_cifar(tmp_path, members)
    data = load_dict_from_npz(prepare_data("cifar10", tmp_path))
    X, T = batches["test_batch"]
    Xtest = X.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(len(T), 3072)
    np.testing.assert_array_equal(data["Xtest"], Xtest.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(data["Ttest"], T)
    assert data["Xtrain"].shape == (10, 3072)


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_refuses_a_malicious_pickle_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    _, members = cifar_members()
    members["cifar-10-batches-py/data_batch_2"] = pickle.dumps(
        {b"data": Evil(marker), b"labels": [0]}, protocol=2
    )
    write_cifar(tmp_path, members)
    with pytest.raises(DataError) as error:
        prepare_data("cifar10", tmp_path)
    assert 'member "cifar-10-batches-py/data_batch_2": refused to unpickle' in message(error)
    assert f"{os.system.__module__}.system" in message(error)
    assert not marker.exists()
    assert not (tmp_path / "cifar10-flattened.npz").exists()


def test_cifar10_missing_member_is_refused(tmp_path):
    _, members = cifar_members()
    del members["cifar-10-batches-py/test_batch"]
    write_cifar(tmp_path, members)
    with pytest.raises(DataError) as error:
        prepare_data("cifar10", tmp_path)
    assert 'member "cifar-10-batches-py/test_batch": not found in the archive' in message(error)


@pytest.mark.parametrize("keep", [300, -300])
def test_cifar10_truncated_tarball_is_refused(tmp_path, keep):
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(DataError) as error:
        prepare_data("cifar10", tmp_path)
    assert message(error).startswith(f'cannot read CIFAR-10 file "{path}": not a readable')


def test_cifar10_source_that_is_no_archive_is_refused(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"<html>404</html>")
    with pytest.raises(DataError, match='tar.gz": not a tar or tar.gz archive$'):
        prepare_data("cifar10", tmp_path)


def test_cifar10_member_that_is_no_pickle_is_refused(tmp_path):
    _, members = cifar_members()
    members["cifar-10-batches-py/data_batch_3"] = b"garbage"
    write_cifar(tmp_path, members)
    with pytest.raises(DataError, match='data_batch_3": not a readable pickle'):
        prepare_data("cifar10", tmp_path)


def test_cifar10_batch_with_wrong_shape_is_refused(tmp_path):
    _, members = cifar_members()
    data = np.zeros((2, 1024), np.uint8)
    members["cifar-10-batches-py/data_batch_1"] = pickle.dumps(
        {b"data": data, b"labels": [0, 1]}, protocol=2
    )
    write_cifar(tmp_path, members)
    with pytest.raises(DataError, match=r"data is not a uint8 \(n, 3072\) array"):
        prepare_data("cifar10", tmp_path)


@pytest.mark.parametrize(
    ("labels", "problem"),
    [([1.7, 0], "labels are float64 values"), ([2**70, 0], "labels are object values")],
)
def test_cifar10_labels_must_be_integers(tmp_path, labels, problem):
    _, members = cifar_members()
    data = np.zeros((2, 3072), np.uint8)
    members["cifar-10-batches-py/data_batch_1"] = pickle.dumps(
        {b"data": data, b"labels": labels}, protocol=2
    )
    write_cifar(tmp_path, members)
    with pytest.raises(DataError, match=problem):
        prepare_data("cifar10", tmp_path)


@pytest.mark.parametrize(
    "raw",
    [b"\x80\x02]q\x00}q\x01X\x01\x00\x00\x00aq\x02K\x01sb.", b"\x80\x02K\x01}q\x01b."],
    ids=["BUILD on a list", "BUILD on an int"],
)
def test_cifar10_pickles_that_fail_while_loading_are_refused(tmp_path, raw):
    _, members = cifar_members()
    members["cifar-10-batches-py/data_batch_1"] = raw
    write_cifar(tmp_path, members)
    with pytest.raises(DataError, match='data_batch_1": not a readable pickle'):
        prepare_data("cifar10", tmp_path)


def test_cifar10_member_that_links_to_itself_is_refused(tmp_path):
    _, members = cifar_members()
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if name.endswith("data_batch_1"):
                info.type, info.linkname = tarfile.SYMTYPE, "data_batch_1"
                tar.addfile(info)
                continue
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="data_batch_1"):
        prepare_data("cifar10", tmp_path)


# --- digits, skipping, argument checks -----------------------------------------------------------


def test_digits_writes_the_embedded_dataset(tmp_path):
    path = prepare_data("digits", tmp_path)
    assert path == str(tmp_path / "digits.npz")
    data = load_dict_from_npz(path)
    assert list(data) == KEYS
    for key, expected in zip(KEYS, load_embedded_dataset(), strict=True):
        np.testing.assert_array_equal(data[key], expected)
        assert data[key].dtype == expected.dtype


@pytest.mark.parametrize(
    "dataset, output", [("mnist", "mnist-flattened.npz"), ("cifar10", "cifar10-flattened.npz")]
)
def test_existing_output_is_never_overwritten(tmp_path, capsys, dataset, output):
    path = tmp_path / output
    path.write_bytes(b"keep me")
    assert prepare_data(dataset, tmp_path) == str(path)
    assert path.read_bytes() == b"keep me"
    assert f"{path} already exists, skipping" in capsys.readouterr().out


def test_unknown_dataset_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match='expected one of mnist, cifar10, digits, got "svhn"'):
        prepare_data("svhn", tmp_path)


# --- downloads (urlopen is monkeypatched: no network) --------------------------------------------


class FakeResponse(io.BytesIO):
    def __init__(self, data, fail_after=None):
        super().__init__(data)
        self.fail_after = fail_after

    def read(self, size=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        return super().read(size if self.fail_after is None else min(size, 64))


def serve(monkeypatch, data, fail_after=None):
    requested = []

    def urlopen(url, timeout=None):
        requested.append(url)
        return FakeResponse(data, fail_after)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return requested


def test_download_fetches_a_missing_source(tmp_path, monkeypatch, capsys):
    source = tmp_path / "served"
    source.mkdir()
    arrays = write_mnist_npz(source)
    requested = serve(monkeypatch, (source / "mnist.npz").read_bytes())
    path = prepare_data("mnist", tmp_path, download=True)
    assert requested == [MNIST_URL]
    check_mnist_output(path, arrays)
    assert (tmp_path / "mnist.npz").read_bytes() == (source / "mnist.npz").read_bytes()
    out = capsys.readouterr().out
    assert f"Downloading {MNIST_URL} to {tmp_path / 'mnist.npz'}" in out
    assert sorted(os.listdir(tmp_path)) == ["mnist-flattened.npz", "mnist.npz", "served"]


def test_download_uses_a_present_source(tmp_path, monkeypatch):
    write_cifar(tmp_path)
    requested = serve(monkeypatch, b"")
    prepare_data("cifar10", tmp_path, download=True)
    assert requested == []


def test_failed_download_leaves_no_partial_file(tmp_path, monkeypatch):
    requested = serve(monkeypatch, bytes(10_000), fail_after=1000)
    with pytest.raises(DataError) as error:
        prepare_data("cifar10", tmp_path, download=True)
    assert requested == [CIFAR10_URL]
    assert message(error).startswith(f'cannot download "{CIFAR10_URL}"')
    assert "connection reset by peer" in message(error) and "cannot write" not in message(error)
    assert os.listdir(tmp_path) == []


def test_interrupted_download_leaves_no_partial_file(tmp_path, monkeypatch):
    def urlopen(url, timeout=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(KeyboardInterrupt):
        prepare_data("mnist", tmp_path, download=True)
    assert os.listdir(tmp_path) == []
