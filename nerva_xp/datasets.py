"""Datasets (spec §12.1, §14.2, §15.2): DataLoader, one-hot helpers and NPZ dataset loading.

The whole dataset is copied to the device once; a batch is a slice (or, when shuffling, a gather by
one uploaded permutation per pass), so no batch costs a host-to-device copy. Labels are checked
once, at construction, and one-hot encoded on the device per batch.
"""

from __future__ import annotations

import math
import os
from importlib import resources

import numpy as np
from array_api_compat import array_namespace

from nerva_xp.device import Device, as_device, to_numpy
from nerva_xp.matrix_operations import Matrix
from nerva_xp.npz import DataError, shape_text
from nerva_xp.utilities import load_dict_from_npz, resolve_rng

DATASET_KEYS = ("Xtrain", "Ttrain", "Xtest", "Ttest")


def _check_labels(T: np.ndarray, num_classes: int, what: str = "labels") -> None:
    if T.size and (T.min() < 0 or T.max() >= num_classes):
        found = int(T.min()) if T.min() < 0 else int(T.max())
        raise DataError(f"{what}: expected class labels in [0, {num_classes}), found {found}")


def _integer_labels(x, what: str = "labels") -> np.ndarray:
    """x as int64 host labels; a value that is not a whole number is a DataError."""
    T = to_numpy(x)
    if T.dtype.kind not in "biuf":
        raise DataError(f"{what}: expected integer class labels, found {T.dtype} values")
    whole = np.isfinite(T) & (np.floor(T) == T) if T.dtype.kind == "f" else np.ones(T.shape, bool)
    if not np.all(whole):
        found = T[~whole].flat[0].item()
        raise DataError(f"{what}: expected integer class labels, found {found!r}")
    return T.astype(np.int64)


def _targets(T: np.ndarray) -> np.ndarray:
    """Host targets: an (N, 1) column holds class labels (as in Nerva), not a 1-wide one-hot."""
    return T[:, 0] if T.ndim == 2 and T.shape[1] == 1 else T


def to_one_hot(x, num_classes: int, device=None) -> Matrix:
    """(len(x), num_classes) in the run's dtype, with a 1 at [i, x_i]."""
    d = as_device(device)
    labels = _integer_labels(_targets(to_numpy(x)))
    if labels.ndim != 1:
        raise DataError(f"labels: expected a vector (N,) or a column (N, 1), got {labels.shape}")
    _check_labels(labels, num_classes)
    T = np.zeros((labels.shape[0], num_classes))
    T[np.arange(labels.shape[0]), labels] = 1.0
    return d.asarray(T)


def from_one_hot(T: Matrix) -> Matrix:
    """The class index of each row: argmax along axis 1."""
    return array_namespace(T).argmax(T, axis=1)


def max_(X: Matrix) -> float:
    """The largest element of X, as a Python number."""
    return float(array_namespace(X).max(X))


def infer_num_classes(Ttrain, Ttest) -> int:
    """The one-hot width when a target is 2-D, else max(label over train and test) + 1."""
    Ttrain, Ttest = _targets(to_numpy(Ttrain)), _targets(to_numpy(Ttest))
    widths = {int(T.shape[1]) for T in (Ttrain, Ttest) if T.ndim == 2}
    if len(widths) > 1:
        raise DataError(f"one-hot targets: train and test widths differ, {sorted(widths)}")
    if widths:
        return widths.pop()
    labels = [T for T in (Ttrain, Ttest) if T.shape[0] > 0]
    return max(int(T.max()) for T in labels) + 1


class DataLoader:
    """Batches (X, T) of a dataset on the device: X (B, D) and one-hot T (B, K), the run's dtype.

    Batches are consecutive slices of ``batch_size``; the last, partial batch is kept. With
    ``shuffle=True`` every pass draws one ``rng.permutation(N)``; ``in_file_order()`` never draws.
    """

    def __init__(
        self, Xdata, Tdata, batch_size: int, num_classes=0, shuffle=False, rng=None, device=None
    ):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size}")
        d = as_device(device)
        self.device = d
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.rng = rng
        self.Xdata = d.asarray(to_numpy(Xdata))
        T = _targets(to_numpy(Tdata))
        rows = T.shape[0] if T.ndim else "no"
        if rows != self.Xdata.shape[0]:
            raise DataError(f"DataLoader: X has {self.Xdata.shape[0]} rows but T has {rows}")
        if T.ndim == 2:
            self.num_classes = int(T.shape[1])
            self.Tdata = d.asarray(T)
        else:
            labels = _integer_labels(T)
            self.num_classes = int(num_classes) if num_classes else int(labels.max(initial=-1)) + 1
            _check_labels(labels, self.num_classes)
            self.Tdata = d.asarray(labels, dtype=d.int_dtype)
            self._classes = d.xp.arange(self.num_classes, dtype=d.int_dtype, device=d.device)

    @property
    def dataset(self) -> Matrix:
        """The inputs (nerva-torch's name)."""
        return self.Xdata

    @property
    def dataset_size(self) -> int:
        return int(self.Xdata.shape[0])

    def __len__(self) -> int:
        return math.ceil(self.dataset_size / self.batch_size)

    def _one_hot(self, T: Matrix) -> Matrix:
        if T.ndim == 2:
            return T
        return self.device.xp.astype(T[:, None] == self._classes[None, :], self.device.dtype)

    def _batches(self, order: Matrix | None):
        xp, N, B = self.device.xp, self.dataset_size, self.batch_size
        for start in range(0, N, B):
            stop = min(start + B, N)
            if order is None:
                X, T = self.Xdata[start:stop, ...], self.Tdata[start:stop, ...]
            else:
                index = order[start:stop]
                X, T = xp.take(self.Xdata, index, axis=0), xp.take(self.Tdata, index, axis=0)
            yield X, self._one_hot(T)

    def __iter__(self):
        if not self.shuffle:
            return self._batches(None)
        permutation = resolve_rng(self.rng).permutation(self.dataset_size)
        return self._batches(self.device.asarray(permutation, dtype=self.device.int_dtype))

    def in_file_order(self):
        """The batches in file order, drawing no random numbers (used by the statistics)."""
        return self._batches(None)


def _validate_inputs(data: dict, fail) -> None:
    for key in ("Xtrain", "Xtest"):
        X = data[key]
        if X.ndim != 2:
            fail(key, f"has shape {shape_text(X.shape)}; expected (N, D), one example per row")
        if X.dtype.kind not in "iuf":
            fail(key, f"holds {X.dtype} values; expected numbers")
        if not np.all(np.isfinite(X)):
            fail(key, "holds NaN or Inf values; expected finite numbers")
    if data["Xtrain"].shape[1] != data["Xtest"].shape[1]:
        widths = f"{data['Xtrain'].shape[1]} and {data['Xtest'].shape[1]}"
        fail("Xtest", f"has {data['Xtest'].shape[1]} features; Xtrain has {widths.split()[0]}")
    if data["Xtrain"].shape[0] == 0:
        fail("Xtrain", "has zero samples; expected at least one")


def _check_file_labels(key: str, T: np.ndarray, fail) -> None:
    """(N,) class labels in a dataset file: whole numbers >= 0 (else fail with the first one)."""
    bad = np.flatnonzero((T < 0) | (np.floor(T) != T))
    if bad.size:
        value = T[bad[0]].item()
        fail(key, f"holds the label {value:g} (row {bad[0]}); expected class labels 0, 1, 2, ...")


def _validate_targets(data: dict, fail) -> None:
    for key, X in (("Ttrain", data["Xtrain"]), ("Ttest", data["Xtest"])):
        T = data[key]
        if T.ndim not in (1, 2) or (T.ndim == 2 and T.shape[1] < 2):
            fail(key, f"has shape {shape_text(T.shape)}; expected (N,) labels or (N, K) one-hot")
        if T.shape[0] != X.shape[0]:
            fail(key, f"has {T.shape[0]} rows; X{key[1:]} has {X.shape[0]}")
        if T.dtype.kind not in "iuf":
            fail(key, f"holds {T.dtype} values; expected numbers")
        if not np.all(np.isfinite(T)):
            fail(key, "holds NaN or Inf values; expected finite numbers")
        if T.ndim == 1:
            _check_file_labels(key, T, fail)
        elif T.size and T.min() < 0:  # one-hot, or more generally non-negative weights (§5)
            fail(key, f"holds the value {T.min().item():g}; expected one-hot targets (values >= 0)")
    widths = [T.shape[1] for T in (data["Ttrain"], data["Ttest"]) if T.ndim == 2]
    if len(set(widths)) > 1:
        fail("Ttest", f"has one-hot width {widths[1]}; Ttrain has {widths[0]}")
    for key, other in (("Ttrain", "Ttest"), ("Ttest", "Ttrain")):
        T, K = data[key], data[other].shape[-1]
        if T.ndim == 1 and data[other].ndim == 2 and T.size and T.max() >= K:
            fail(
                key,
                f"holds the label {T.max().item():g}; expected labels below {K}, {other}'s width",
            )


def validate_dataset(data: dict, path: str) -> None:
    """Check the four arrays of a dataset file against spec §15.2; raise DataError otherwise."""

    def fail(key: str, problem: str):
        raise DataError(f'dataset file "{path}": key "{key}" {problem}')

    _validate_inputs(data, fail)
    _validate_targets(data, fail)


def load_npz_dataset(filename) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(Xtrain, Ttrain, Xtest, Ttest) of a dataset file, validated, as host arrays."""
    path = os.fspath(filename)
    data = load_dict_from_npz(path, required=DATASET_KEYS, kind="dataset", keys=DATASET_KEYS)
    validate_dataset(data, path)
    return tuple(data[key] for key in DATASET_KEYS)


def embedded_dataset_path() -> str:
    """The path of the embedded digits dataset (spec §14.2) inside the installed package."""
    return str(resources.files("nerva_xp") / "data" / "digits.npz")


def load_embedded_dataset():
    """(Xtrain, Ttrain, Xtest, Ttest) of the embedded 8×8 digits: 1500 train, 297 test rows."""
    return load_npz_dataset(embedded_dataset_path())


def make_dataloaders(
    Xtrain, Ttrain, Xtest, Ttest, batch_size: int, shuffle=False, rng=None, device=None
) -> tuple[DataLoader, DataLoader]:
    """Train and test loaders with the same batch size and the inferred number of classes."""
    num_classes = infer_num_classes(Ttrain, Ttest)
    d: Device = as_device(device)
    train = DataLoader(Xtrain, Ttrain, batch_size, num_classes, shuffle, rng=rng, device=d)
    test = DataLoader(Xtest, Ttest, batch_size, num_classes, shuffle=False, device=d)
    return train, test


def create_npz_dataloaders(filename, batch_size: int, shuffle=False, rng=None, device=None):
    """Print ``Loading dataset from file <path>`` and return (train_loader, test_loader)."""
    print(f"Loading dataset from file {filename}")
    return make_dataloaders(*load_npz_dataset(filename), batch_size, shuffle, rng, device)
