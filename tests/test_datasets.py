"""Datasets (spec §12.1, §14.2, §15.2): loaders, one-hot helpers, embedded digits, validation."""

import numpy as np
import pytest

from nerva_xp.datasets import (
    DataLoader,
    create_npz_dataloaders,
    from_one_hot,
    infer_num_classes,
    load_embedded_dataset,
    load_npz_dataset,
    to_one_hot,
)
from nerva_xp.device import select_device
from nerva_xp.npz import DataError

from conftest import host


def labels(n=10, k=3):
    return np.arange(n) % k


def test_embedded_digits_dataset_matches_the_spec():
    Xtrain, Ttrain, Xtest, Ttest = load_embedded_dataset()
    assert Xtrain.shape == (1500, 64) and Xtest.shape == (297, 64)
    assert Ttrain.shape == (1500,) and Ttest.shape == (297,)
    assert Xtrain.dtype == np.float32 and Ttrain.dtype == np.int32
    for X in (Xtrain, Xtest):
        assert X.min() == 0.0 and X.max() == 1.0
        np.testing.assert_array_equal(X * 16, np.round(X * 16))  # pixel / 16, pixels 0..16
    for T in (Ttrain, Ttest):
        assert set(np.unique(T)) == set(range(10))


def test_loader_batches_keep_the_last_partial_batch(device_any):
    loader = DataLoader(np.ones((10, 2)), labels(), 4, device=device_any)
    sizes = [X.shape[0] for X, _ in loader]
    assert sizes == [4, 4, 2] and len(loader) == 3 and loader.dataset_size == 10


def test_loader_one_hot_targets_in_the_run_dtype(device_any):
    loader = DataLoader(np.zeros((5, 2)), labels(5), 5, device=device_any)
    X, T = next(iter(loader))
    assert X.dtype == device_any.dtype and T.dtype == device_any.dtype
    np.testing.assert_array_equal(host(T), np.eye(3)[labels(5)])


def test_loader_passes_one_hot_targets_through():
    T = np.eye(4)[[0, 3, 1]]
    loader = DataLoader(np.zeros((3, 2)), T, 2)
    assert loader.num_classes == 4
    np.testing.assert_array_equal(np.concatenate([host(t) for _, t in loader]), T)


def test_batch_larger_than_the_dataset_is_one_batch():
    loader = DataLoader(np.zeros((3, 2)), labels(3), 100)
    assert [X.shape[0] for X, _ in loader] == [3]


def test_shuffle_draws_one_permutation_per_pass_from_the_generator():
    X = np.arange(20.0).reshape(10, 2)
    loader = DataLoader(X, labels(), 4, shuffle=True, rng=np.random.default_rng(5))
    order = np.random.default_rng(5).permutation(10)
    first = np.concatenate([host(x) for x, _ in loader])
    np.testing.assert_array_equal(first, X[order])
    second = np.concatenate([host(x) for x, _ in loader])
    assert sorted(second[:, 0]) == sorted(X[:, 0]) and not np.array_equal(first, second)


def test_in_file_order_draws_no_random_numbers():
    rng = np.random.default_rng(1)
    loader = DataLoader(np.arange(10.0)[:, None], labels(), 3, shuffle=True, rng=rng)
    state = rng.bit_generator.state
    batches = np.concatenate([host(x) for x, _ in loader.in_file_order()])
    np.testing.assert_array_equal(batches[:, 0], np.arange(10.0))
    assert rng.bit_generator.state == state


def test_labels_outside_the_classes_are_rejected_at_construction():
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        DataLoader(np.zeros((2, 2)), np.array([0, 3]), 1, num_classes=3)


@pytest.mark.parametrize("labels", [[0.0, 1.5], [0.0, -0.2], [0.0, np.nan], [0.0, np.inf]])
def test_non_integer_labels_are_errors_not_truncated(labels):
    with pytest.raises(DataError, match="expected integer class labels"):
        DataLoader(np.zeros((2, 2)), np.array(labels), 1, num_classes=3)
    with pytest.raises(DataError, match="expected integer class labels"):
        to_one_hot(np.array(labels), 3)


def test_whole_number_float_labels_are_integers():
    loader = DataLoader(np.zeros((3, 2)), np.array([2.0, 0.0, 1.0]), 3)
    assert loader.num_classes == 3
    np.testing.assert_array_equal(host(next(iter(loader))[1]), np.eye(3)[[2, 0, 1]])
    np.testing.assert_array_equal(host(to_one_hot(np.array([1.0]), 2)), [[0.0, 1.0]])


def test_a_label_column_is_labels_not_a_one_hot_matrix():
    """An (N, 1) T holds class labels (as in Nerva); a 1-wide one-hot would be meaningless."""
    column = np.array([[2], [0], [1]])
    loader = DataLoader(np.zeros((3, 2)), column, 3, num_classes=4)
    assert loader.num_classes == 4
    np.testing.assert_array_equal(host(next(iter(loader))[1]), np.eye(4)[[2, 0, 1]])
    np.testing.assert_array_equal(host(to_one_hot(column, 3)), np.eye(3)[[2, 0, 1]])
    assert infer_num_classes(column, np.array([[4]])) == 5
    with pytest.raises(DataError, match="expected a vector"):
        to_one_hot(np.zeros((2, 2), int), 3)


def test_to_one_hot_and_back(device_any):
    T = to_one_hot(np.array([2, 0, 1]), 3, device=device_any)
    assert T.dtype == device_any.dtype
    np.testing.assert_array_equal(host(T), np.eye(3)[[2, 0, 1]])
    np.testing.assert_array_equal(host(from_one_hot(T)), [2, 0, 1])
    with pytest.raises(DataError):
        to_one_hot(np.array([3]), 3)


def test_infer_num_classes():
    assert infer_num_classes(np.array([0, 4]), np.array([7])) == 8
    assert infer_num_classes(np.eye(5), np.array([1])) == 5
    with pytest.raises(DataError):
        infer_num_classes(np.eye(5), np.eye(4))


def write_dataset(path, **overrides):
    data = {
        "Xtrain": np.zeros((4, 3), np.float32),
        "Ttrain": np.array([0, 1, 2, 1]),
        "Xtest": np.zeros((2, 3), np.float32),
        "Ttest": np.array([1, 0]),
    }
    data.update(overrides)
    np.savez(path, **{k: v for k, v in data.items() if v is not None})
    return path


def test_create_npz_dataloaders_prints_and_infers_classes(tmp_path, capsys):
    path = write_dataset(tmp_path / "d.npz")
    train, test = create_npz_dataloaders(path, 3, device=select_device("strict"))
    assert capsys.readouterr().out == f"Loading dataset from file {path}\n"
    assert (train.num_classes, test.num_classes, len(train), len(test)) == (3, 3, 2, 1)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"Ttest": None}, 'required key "Ttest" is missing'),
        ({"Xtrain": np.zeros((4, 3, 1))}, 'key "Xtrain" has shape (4, 3, 1); expected (N, D)'),
        ({"Xtest": np.zeros((2, 5))}, 'key "Xtest" has 5 features'),
        ({"Ttrain": np.array([0, 1, 2])}, 'key "Ttrain" has 3 rows; Xtrain has 4'),
        ({"Ttrain": np.array([0, -1, 2, 1])}, 'key "Ttrain" holds the label -1 (row 1); expected'),
        ({"Ttrain": np.array([0, 0.5, 2, 1])}, 'key "Ttrain" holds the label 0.5 (row 1)'),
        ({"Ttrain": np.array([0, np.nan, 2, 1])}, 'key "Ttrain" holds NaN or Inf values'),
        (
            {"Ttrain": -np.eye(3)[[0, 1, 2, 1]], "Ttest": np.eye(3)[[0, 1]]},
            'key "Ttrain" holds the value -1; expected one-hot targets (values >= 0)',
        ),
        ({"Xtrain": np.full((4, 3), np.nan)}, "NaN or Inf"),
        ({"Xtrain": np.zeros((0, 3)), "Ttrain": np.zeros(0, int)}, "zero samples"),
        (
            {"Ttrain": np.eye(3)[[0, 1, 2, 1]], "Ttest": np.eye(4)[[0, 1]]},
            'key "Ttest" has one-hot width 4; Ttrain has 3',
        ),
        ({"Xtrain": np.array([["a"] * 3] * 4)}, "expected numbers"),
        ({"Xtrain": np.ones((4, 3), bool)}, 'key "Xtrain" holds bool values; expected numbers'),
        ({"Ttrain": np.ones(4, bool)}, 'key "Ttrain" holds bool values'),
        (
            {"Ttrain": np.eye(3)[[0, 1, 2, 1]], "Ttest": np.array([1, 5])},
            'key "Ttest" holds the label 5; expected labels below 3, Ttrain\'s width',
        ),
        (
            {"Ttrain": np.array([0, 1, 3, 1]), "Ttest": np.eye(3)[[0, 1]]},
            'key "Ttrain" holds the label 3; expected labels below 3, Ttest\'s width',
        ),
    ],
)
def test_invalid_datasets_name_the_key(tmp_path, overrides, expected):
    path = write_dataset(tmp_path / "d.npz", **overrides)
    with pytest.raises(DataError) as error:
        load_npz_dataset(path)
    assert expected in str(error.value) and str(path) in str(error.value)


def test_other_keys_of_a_dataset_are_never_read(tmp_path):
    path = write_dataset(tmp_path / "d.npz", extra=np.array([{"a": 1}], dtype=object))
    assert load_npz_dataset(path)[0].shape == (4, 3)


def test_whole_number_float_labels_are_accepted(tmp_path):
    path = write_dataset(tmp_path / "d.npz", Ttrain=np.array([0.0, 1.0, 2.0, 1.0]))
    assert load_npz_dataset(path)[1].shape == (4,)
