"""``nerva-xp prepare-data`` (spec §14.4): MNIST, CIFAR-10 and the embedded digits as NPZ files.

Sources are read from the data folder, or fetched with ``download=True`` (to a temporary name,
renamed when complete). MNIST comes from ``mnist.npz`` or the four IDX files; CIFAR-10 from the
Python tarball, whose pickled batches are read in place by an unpickler that only rebuilds NumPy
arrays. Existing outputs are never overwritten. Every problem with a source is one ``DataError``
line, ``cannot read <kind> file "<path>": <reason>``. Names: X inputs (N, D), T labels (N,).
"""

from __future__ import annotations

import gzip
import http.client
import io
import math
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
import zlib

import numpy as np

from nerva_xp.atomic_files import write_atomically
from nerva_xp.datasets import DATASET_KEYS, load_embedded_dataset
from nerva_xp.errors import describe_error
from nerva_xp.npz import DataError, load_dict_from_npz, save_dict_to_npz

MNIST_URL = "https://s3.amazonaws.com/img-datasets/mnist.npz"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MNIST_SOURCE = "mnist.npz"
CIFAR10_SOURCE = "cifar-10-python.tar.gz"
MNIST_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
CIFAR10_TRAIN_MEMBERS = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_MEMBER = "cifar-10-batches-py/test_batch"
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049
NUM_CLASSES = 10


def _error(kind: str, path: str, reason: str) -> DataError:
    return DataError(f'cannot read {kind} file "{path}": {reason}')


# --- sources and downloads -----------------------------------------------------------------------


def _reading(url: str, read):
    """read(), with a network failure as a DataError (not an OSError, which means writing)."""
    try:
        return read()
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise DataError(f'cannot download "{url}": {describe_error(error)}') from error


def download_file(url: str, path: str) -> str:
    """Fetch ``url`` to ``path`` through a temporary file in the same folder; returns ``path``."""
    print(f"Downloading {url} to {path}")

    def fetch(file) -> None:
        with _reading(url, lambda: urllib.request.urlopen(url, timeout=60)) as response:
            while chunk := _reading(url, lambda: response.read(1 << 20)):
                file.write(chunk)  # a write error stays an OSError: "cannot write"

    try:
        return write_atomically(path, fetch)
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise DataError(f'cannot download "{url}" to "{path}": {describe_error(error)}') from error


def _source(path: str, url: str, kind: str, download: bool) -> str:
    """``path`` when it exists, else downloaded from ``url`` if allowed, else a DataError."""
    if os.path.exists(path):
        return path
    if download:
        return download_file(url, path)
    raise _error(kind, path, "not found; run with --download to fetch it")


def _skip_existing(path: str) -> bool:
    if os.path.exists(path):
        print(f"{path} already exists, skipping")
        return True
    return False


def _save(path: str, data: dict) -> str:
    print(f"Saving dataset to {path}")
    return save_dict_to_npz(path, data)


def _scale(X: np.ndarray) -> np.ndarray:
    """X / 255 as float32."""
    return X.astype(np.float32) / np.float32(255)


# --- MNIST ---------------------------------------------------------------------------------------


def _check_mnist_part(X: np.ndarray, T: np.ndarray, part: str, path: str, labels_path=None):
    """X (n, 28, 28) uint8 and T (n,) labels in [0, 10); an error names the file at fault (the
    labels have their own file in the IDX format)."""
    labels_path = path if labels_path is None else labels_path
    if X.ndim != 3 or X.shape[1:] != (28, 28) or X.dtype != np.uint8:
        reason = f"x_{part} is {X.dtype} {X.shape}; expected uint8 (n, 28, 28)"
        raise _error("MNIST", path, reason)
    if T.shape != (X.shape[0],) or T.dtype.kind not in "iu":
        reason = f"y_{part} is {T.dtype} {T.shape}; expected {X.shape[0]} integer labels"
        raise _error("MNIST", labels_path, reason)
    if T.size and (T.min() < 0 or T.max() >= NUM_CLASSES):
        raise _error("MNIST", labels_path, f"y_{part} holds labels outside [0, {NUM_CLASSES})")


def load_mnist_npz(path: str) -> dict[str, np.ndarray]:
    """The four arrays of a Keras ``mnist.npz``, checked: x (n, 28, 28) uint8, y (n,) labels."""
    required = ("x_train", "y_train", "x_test", "y_test")
    data = load_dict_from_npz(path, required=required, kind="MNIST", keys=required)
    for part in ("train", "test"):
        _check_mnist_part(data[f"x_{part}"], data[f"y_{part}"], part, path)
    return data


def _idx_paths(data_dir: str) -> list[str] | None:
    """The four IDX files (gzipped or not) when all are present, else None."""
    paths = []
    for name in MNIST_IDX_FILES:
        candidates = [os.path.join(data_dir, n) for n in (name, name.removesuffix(".gz"))]
        found = [p for p in candidates if os.path.isfile(p)]
        if not found:
            return None
        paths.append(found[0])
    return paths


def _read_bytes(path: str, kind: str) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic."""
    try:
        with open(path, "rb") as file:
            raw = file.read()
        return gzip.decompress(raw) if raw.startswith(b"\x1f\x8b") else raw
    except (OSError, EOFError, zlib.error) as error:
        raise _error(
            kind, path, f"not a readable (gzipped) file ({describe_error(error)})"
        ) from error


def read_idx(path: str, magic: int) -> np.ndarray:
    """An IDX array: images (n, rows, cols) for magic 2051, labels (n,) for 2049; uint8."""
    data = _read_bytes(path, "MNIST")
    dims = 3 if magic == IDX_IMAGES_MAGIC else 1
    header = 4 * (1 + dims)
    if len(data) < header:
        raise _error("MNIST", path, f"{len(data)} bytes; too short for an IDX header")
    found, *shape = struct.unpack(f">{1 + dims}I", data[:header])
    if found != magic:
        raise _error("MNIST", path, f"magic number {found}; expected {magic}")
    if len(data) - header != math.prod(shape):  # Python integers: the product cannot wrap
        announced = "x".join(map(str, shape))
        reason = f"{len(data) - header} data bytes; the header announces {announced}"
        raise _error("MNIST", path, reason)
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_mnist_idx(paths: list[str]) -> dict[str, np.ndarray]:
    """x_train, y_train, x_test, y_test from the four IDX files, in ``MNIST_IDX_FILES`` order."""
    data = {}
    for part, (images, labels) in zip(("train", "test"), (paths[:2], paths[2:]), strict=True):
        X, T = read_idx(images, IDX_IMAGES_MAGIC), read_idx(labels, IDX_LABELS_MAGIC)
        if T.shape[0] != X.shape[0]:
            reason = f'{T.shape[0]} labels for {X.shape[0]} images in "{images}"'
            raise _error("MNIST", labels, reason)
        _check_mnist_part(X, T, part, images, labels)
        data[f"x_{part}"], data[f"y_{part}"] = X, T
    return data


def _load_mnist(data_dir: str, download: bool) -> dict[str, np.ndarray]:
    path = os.path.join(data_dir, MNIST_SOURCE)
    idx = None if os.path.exists(path) else _idx_paths(data_dir)
    if idx is not None:
        return load_mnist_idx(idx)
    return load_mnist_npz(_source(path, MNIST_URL, "MNIST", download))


def prepare_mnist(data_dir: str = ".", download: bool = False) -> str:
    """Write ``mnist-flattened.npz``: X (n, 784) float32 = pixel / 255, T the uint8 labels."""
    output = os.path.join(data_dir, "mnist-flattened.npz")
    if _skip_existing(output):
        return output
    data = _load_mnist(data_dir, download)
    flat = {}
    for part in ("train", "test"):
        X = data[f"x_{part}"]
        flat[f"X{part}"] = _scale(X.reshape(X.shape[0], 28 * 28))
        flat[f"T{part}"] = data[f"y_{part}"].astype(np.uint8)
    return _save(output, flat)


# --- CIFAR-10 ------------------------------------------------------------------------------------


_RECONSTRUCT = np.ndarray((0,), np.uint8).__reduce__()[0]  # numpy(._)core.multiarray._reconstruct


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: latin-1 only."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") != "latin1":
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds builtin containers and NumPy arrays, and refuses anything else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }

    def find_class(self, module: str, name: str):
        """The allowed global ``module.name``; a DataError for any other."""
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refused to unpickle {module}.{name}")
        return self.ALLOWED[(module, name)]


def _batch_item(batch: dict, key: str):
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise DataError(f'no "{key}" entry')


def _check_batch(batch) -> tuple[np.ndarray, np.ndarray]:
    """(data (n, 3072) uint8, labels (n,) int32) of one unpickled batch, else a DataError."""
    if not isinstance(batch, dict):
        raise DataError(f"a pickled {type(batch).__name__}; expected a dict")
    X, labels = _batch_item(batch, "data"), _batch_item(batch, "labels")
    if not isinstance(X, np.ndarray) or X.dtype != np.uint8 or X.ndim != 2 or X.shape[1] != 3072:
        raise DataError("data is not a uint8 (n, 3072) array")
    try:
        T = np.asarray(labels)
    except (TypeError, ValueError) as error:
        raise DataError(f"labels are not integers ({describe_error(error)})") from error
    if T.dtype.kind not in "iu":  # floats, bools, and integers beyond int64 (object arrays)
        raise DataError(f"labels are {T.dtype} values; expected integers")
    if T.shape != (X.shape[0],) or (T.size and (T.min() < 0 or T.max() >= NUM_CLASSES)):
        raise DataError(f"labels are not {X.shape[0]} class labels in [0, {NUM_CLASSES})")
    return X, T.astype(np.int32)


def _member_bytes(tar: tarfile.TarFile, member: str) -> bytes:
    try:
        file = tar.extractfile(tar.getmember(member))
    except KeyError as error:
        raise DataError("not found in the archive") from error
    except RecursionError as error:  # a link to itself
        raise DataError("a link that leads to itself") from error
    if file is None:
        raise DataError("not a regular file")
    return file.read()


def unpickle_batch(raw: bytes):
    """One CIFAR batch pickle, rebuilt by ``RestrictedUnpickler`` (Python 2 strings as bytes)."""
    try:
        return RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except DataError:
        raise
    except Exception as error:  # a hostile pickle can make the unpickler fail in many ways
        raise DataError(f"not a readable pickle ({describe_error(error)})") from error


def flatten_cifar(X: np.ndarray) -> np.ndarray:
    """(n, 3072) channel-major uint8 -> (n, 3072) float32 / 255 in (row, column, channel) order."""
    n = X.shape[0]
    return _scale(X.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1).reshape(n, 3072))


def _open_tar(path: str) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:*")
    except tarfile.ReadError as error:
        raise _error("CIFAR-10", path, "not a tar or tar.gz archive") from error


def load_cifar10_tarball(path: str) -> dict[str, np.ndarray]:
    """Xtrain, Ttrain, Xtest, Ttest from the CIFAR-10 Python tarball, read without extracting."""
    batches = {}
    try:
        with _open_tar(path) as tar:
            for member in (*CIFAR10_TRAIN_MEMBERS, CIFAR10_TEST_MEMBER):
                try:
                    batches[member] = _check_batch(unpickle_batch(_member_bytes(tar, member)))
                except DataError as error:
                    raise _error("CIFAR-10", path, f'member "{member}": {error}') from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        reason = f"not a readable tar.gz archive ({describe_error(error)})"
        raise _error("CIFAR-10", path, reason) from error
    train = [batches[member] for member in CIFAR10_TRAIN_MEMBERS]
    Xtest, Ttest = batches[CIFAR10_TEST_MEMBER]
    return {
        "Xtrain": flatten_cifar(np.concatenate([X for X, _ in train])),
        "Ttrain": np.concatenate([T for _, T in train]),
        "Xtest": flatten_cifar(Xtest),
        "Ttest": Ttest,
    }


def prepare_cifar10(data_dir: str = ".", download: bool = False) -> str:
    """Write ``cifar10-flattened.npz``: X (n, 3072) float32 in [0, 1], T int32 labels."""
    output = os.path.join(data_dir, "cifar10-flattened.npz")
    if _skip_existing(output):
        return output
    source = os.path.join(data_dir, CIFAR10_SOURCE)
    data = load_cifar10_tarball(_source(source, CIFAR10_URL, "CIFAR-10", download))
    return _save(output, data)


# --- digits and the entry point ------------------------------------------------------------------


def prepare_digits(data_dir: str = ".", download: bool = False) -> str:
    """Write the embedded 8×8 digits dataset (spec §14.2) to ``digits.npz``."""
    output = os.path.join(data_dir, "digits.npz")
    if _skip_existing(output):
        return output
    return _save(output, dict(zip(DATASET_KEYS, load_embedded_dataset(), strict=True)))


PREPARERS = {"mnist": prepare_mnist, "cifar10": prepare_cifar10, "digits": prepare_digits}


def prepare_data(dataset: str, data_dir: str = ".", download: bool = False) -> str:
    """Write the dataset NPZ file of ``dataset`` into ``data_dir``; returns its path.

    Args:
        dataset: ``mnist``, ``cifar10`` or ``digits``.
        data_dir: the folder holding the sources and receiving the output.
        download: fetch a missing source from its official URL.
    """
    if dataset not in PREPARERS:
        raise ValueError(f'dataset: expected one of {", ".join(PREPARERS)}, got "{dataset}"')
    return PREPARERS[dataset](os.fspath(data_dir), download)
