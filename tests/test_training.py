"""Training (spec §12, §13.1): the loop, the statistics, the table, non-finite stops, backends."""

import numpy as np
import pytest

from nerva_xp.datasets import DataLoader, load_embedded_dataset, make_dataloaders
from nerva_xp.device import select_device
from nerva_xp.learning_rate import parse_learning_rate
from nerva_xp.loss_functions import parse_loss_function
from nerva_xp.multilayer_perceptron import parse_multilayer_perceptron
from nerva_xp.training import (
    NonFiniteGradientError,
    TrainOptions,
    compute_accuracy,
    compute_loss,
    compute_statistics,
    stochastic_gradient_descent,
    stochastic_gradient_descent_plain,
)

from conftest import host

HEADER = [
    "-" * 80,
    "epoch |           lr |         loss |    train_acc |     test_acc |     time (s)",
    "-" * 80,
]


def small_problem(device=None, seed=0, layers=("ReLU", "Linear"), optimizer="Momentum(0.9)"):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((30, 4))
    T = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    linear = sum(1 for layer in layers if layer != "BatchNormalization")
    sizes = [4] + [8] * (linear - 1) + [3]
    M = parse_multilayer_perceptron(
        list(layers), sizes, [optimizer], ["XavierNormal"], device=device, rng=rng
    )
    train, test = make_dataloaders(X, T, X[:10], T[:10], 8, shuffle=True, rng=rng, device=device)
    return M, train, test, rng


def run(device, seed=0, epochs=3, **kwargs):
    M, train, test, _ = small_problem(device, seed, **kwargs)
    loss = parse_loss_function("SoftmaxCrossEntropy")
    rows = stochastic_gradient_descent(
        M, epochs, loss, parse_learning_rate("Constant(0.1)"), train, test
    )
    return M, rows


def test_table_format(capsys):
    _, rows = run(None)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == HEADER and lines[-2] == "-" * 80
    assert lines[-1].startswith("Total training time: ") and lines[-1].endswith(" s")
    body = lines[3:-2]
    assert len(body) == 4 and [row.epoch for row in rows] == [0, 1, 2, 3]
    for line, row in zip(body, rows, strict=True):
        assert len(line) == 80
        assert line == (
            f"{row.epoch:5d} | {row.lr:12.6f} | {row.loss:12.6f} | {row.train_accuracy:12.6f} | "
            f"{row.test_accuracy:12.6f} | {row.seconds:12.6f}"
        )
    assert rows[0].seconds == 0.0


def test_lr_column_of_timebased(capsys):
    M, train, test, _ = small_problem()
    loss = parse_loss_function("SoftmaxCrossEntropy")
    rows = stochastic_gradient_descent(
        M, 3, loss, parse_learning_rate("TimeBased(0.1,0.5)"), train, test
    )
    assert [f"{row.lr:.6f}" for row in rows] == ["0.100000", "0.100000", "0.066667", "0.033333"]


def test_print_statistics_off_prints_only_epochs(capsys, monkeypatch):
    """Only the printing changes (spec §12.3): the rows still hold the statistics."""
    _, rows_on = run(None, epochs=2)
    capsys.readouterr()
    monkeypatch.setattr(TrainOptions, "print_statistics", False)
    _, rows_off = run(None, epochs=2)
    assert capsys.readouterr().out.splitlines() == ["epoch   0", "epoch   1", "epoch   2"]
    assert [row[:5] for row in rows_off] == [row[:5] for row in rows_on]


@pytest.mark.parametrize(
    "layers", [("ReLU", "Linear"), ("BatchNormalization", "SReLU", "BatchNormalization", "Softmax")]
)
def test_strict_second_device_run_equals_the_numpy_run(layers, capsys):
    """The whole core runs on array_api_strict; the same seed gives the same weights."""
    cpu, cpu_rows = run(select_device("cpu"), seed=3, layers=layers, optimizer="Nesterov(0.9)")
    strict, strict_rows = run(
        select_device("strict"), seed=3, layers=layers, optimizer="Nesterov(0.9)"
    )
    assert [row[:5] for row in cpu_rows] == [row[:5] for row in strict_rows]
    for key, value in cpu.weights_dict().items():
        np.testing.assert_array_equal(host(strict.weights_dict()[key]), host(value))


def test_float32_runs_create_no_float64_arrays(capsys):
    M, _ = run(select_device("strict", "float32"), epochs=1, layers=("SReLU", "Softmax"))
    for layer in M.layers:
        for name, value in vars(layer).items():
            if hasattr(value, "dtype"):
                assert "float64" not in str(value.dtype), name


def test_statistics_draw_no_random_numbers_and_use_file_order(capsys):
    M, train, test, rng = small_problem()
    state = rng.bit_generator.state
    loss = parse_loss_function("SoftmaxCrossEntropy")
    row = compute_statistics(M, 0.1, loss, train, test, epoch=0)
    assert rng.bit_generator.state == state
    assert row.loss == pytest.approx(compute_loss(M, train, loss))
    assert row.train_accuracy == compute_accuracy(M, train)


def test_compute_loss_is_the_mean_per_example_sum_over_classes():
    M, _, _, _ = small_problem()
    X = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    T = np.array([0, 1, 2, 1, 0])
    loader = DataLoader(X, T, 2, num_classes=3)
    loss = parse_loss_function("SquaredError")
    expected = float(loss(M.feedforward(X), np.eye(3, dtype=np.float32)[T])) / 5
    assert compute_loss(M, loader, loss) == pytest.approx(expected, rel=1e-5)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_gradient_stops_with_the_epoch_and_batch(capsys):
    M, train, test, _ = small_problem()
    M.layers[0].W[0, 0] = np.inf
    with pytest.raises(NonFiniteGradientError) as error:
        stochastic_gradient_descent(
            M, 2, parse_loss_function("SoftmaxCrossEntropy"), parse_learning_rate("Constant(0.1)"),
            train, test,
        )  # fmt: skip
    assert str(error.value) == "training: non-finite loss gradient in epoch 0 (first at batch 0)"
    assert "    1 |" not in capsys.readouterr().out


def test_a_device_backend_checks_finiteness_once_per_epoch(capsys):
    """Off the host (here array-api-strict, standing in for CuPy) the batches fold a device flag
    that is read once at the end of the epoch; a non-finite gradient in a later batch still
    stops the run, reported at the epoch's first batch (spec §12.2)."""
    strict = select_device("strict", "float32")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    X[20, 1] = np.inf  # in the third batch of 8, file order
    T = rng.integers(0, 3, 40)
    loss, lr = parse_loss_function("SoftmaxCrossEntropy"), parse_learning_rate("Constant(0.1)")

    def train(X):
        M = parse_multilayer_perceptron(["ReLU", "Linear"], [4, 8, 3], ["GradientDescent"],
                                        ["XavierNormal"], device=strict, rng=rng)  # fmt: skip
        loader = DataLoader(X, T, 8, 3, device=strict)
        return stochastic_gradient_descent(M, 2, loss, lr, loader, loader)

    with pytest.raises(NonFiniteGradientError) as error, np.errstate(all="ignore"):
        train(X)
    assert str(error.value) == "training: non-finite loss gradient in epoch 0 (first at batch 0)"
    assert "    1 |" not in capsys.readouterr().out
    X[20, 1] = 0.0
    assert len(train(X)) == 3


def test_plain_sgd_drops_the_remainder():
    M, _, _, _ = small_problem()
    calls = []
    M.optimize = lambda eta: calls.append(eta)
    X = np.zeros((10, 4), np.float32)
    stochastic_gradient_descent_plain(
        M, X, np.zeros(10, int), parse_loss_function("SquaredError"),
        parse_learning_rate("Constant(0.5)"), epochs=2, batch_size=4, shuffle=True,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    assert calls == [0.5] * 4


def test_an_optimizer_of_the_users_own_needs_only_update():
    """The epoch's end asks optimizers for their exact state only where they have the hook."""

    class Halving:  # duck-typed: no Optimizer base, no make_state_exact
        def __init__(self, x, Dx):
            self.x, self.Dx = x, Dx

        def update(self, eta):
            self.x -= 0.5 * eta * self.Dx

    M, _, _, _ = small_problem()
    for layer in M.layers:
        layer.optimizer = Halving(layer.W, layer.DW)
    X = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    W = np.asarray(M.layers[0].W).copy()
    stochastic_gradient_descent_plain(
        M, X, np.array([2, 0, 1, 1, 0, 2]), parse_loss_function("SoftmaxCrossEntropy"),
        parse_learning_rate("Constant(0.5)"), epochs=2, batch_size=3, shuffle=False,
    )  # fmt: skip
    assert not np.array_equal(np.asarray(M.layers[0].W), W)


def test_plain_sgd_takes_a_label_column_as_labels():
    """T (N, 1) trains like T (N,): one-hot encoded to the output width (as Nerva intends)."""
    X = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    labels = np.array([2, 0, 1, 1, 0, 2])
    weights = []
    for T in (labels, labels[:, None]):
        M, _, _, _ = small_problem()
        stochastic_gradient_descent_plain(
            M, X, T, parse_loss_function("SoftmaxCrossEntropy"),
            parse_learning_rate("Constant(0.5)"), epochs=2, batch_size=3, shuffle=False,
        )  # fmt: skip
        weights.append(np.asarray(M.layers[0].W).copy())
    np.testing.assert_array_equal(weights[1], weights[0])


@pytest.mark.parametrize(("name", "dtype"), [("cpu", "float64"), ("strict", "float32")])
def test_plain_sgd_puts_the_data_where_the_model_is(name, dtype):
    """Without device=, the data goes to the device and dtype of M's parameters (spec §1.2): a
    float64 model trains on float64 data, a model on another backend on that backend."""
    device = select_device(name, dtype)
    X = np.random.default_rng(0).standard_normal((6, 4))  # float64, not exact in float32
    labels = np.array([2, 0, 1, 1, 0, 2])
    weights = []
    for given in (device, None):
        M = parse_multilayer_perceptron(
            ["ReLU", "Linear"], [4, 5, 3], ["Momentum(0.9)"], ["XavierNormal"],
            device=device, rng=np.random.default_rng(1),
        )  # fmt: skip
        stochastic_gradient_descent_plain(
            M, X, labels, parse_loss_function("SoftmaxCrossEntropy"),
            parse_learning_rate("Constant(0.5)"), epochs=2, batch_size=3, shuffle=False,
            device=given,
        )  # fmt: skip
        weights.append(host(M.layers[0].W))
    np.testing.assert_array_equal(weights[1], weights[0])


@pytest.mark.parametrize("seed", [1, 2])
def test_default_architecture_learns_the_embedded_digits(seed, capsys):
    """Spec §14.2: ReLU;ReLU;Linear 64-64-64-10, Constant(0.1), batch 100, 100 epochs."""
    rng = np.random.default_rng(seed)
    M = parse_multilayer_perceptron(
        ["ReLU", "ReLU", "Linear"], [64, 64, 64, 10], ["GradientDescent"], ["XavierNormal"],
        rng=rng,
    )  # fmt: skip
    train, test = make_dataloaders(*load_embedded_dataset(), 100, shuffle=True, rng=rng)
    rows = stochastic_gradient_descent(
        M, 100, parse_loss_function("SoftmaxCrossEntropy"), parse_learning_rate("Constant(0.1)"),
        train, test,
    )  # fmt: skip
    assert rows[-1].test_accuracy >= 0.97


class ForeignLoader:
    """A PyTorch-style loader (the manual's): iterable batches of (X, one-hot T), ``len``, and
    ``dataset_size`` or only a ``dataset``; no ``in_file_order``, no ``device``."""

    def __init__(self, X, T, batch_size, with_size=True):
        self.batches = [(X[i : i + batch_size], T[i : i + batch_size]) for i in
                        range(0, X.shape[0], batch_size)]  # fmt: skip
        self.dataset = list(range(X.shape[0]))
        if with_size:
            self.dataset_size = X.shape[0]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


@pytest.mark.parametrize("with_size", [True, False])
def test_sgd_takes_a_pytorch_style_loader(capsys, with_size):
    """The manual's stochastic_gradient_descent accepts PyTorch-style loaders; their batches
    give the same table as nerva-xp's DataLoader over the same batches in file order."""
    Xtrain, Ttrain, Xtest, Ttest = load_embedded_dataset()
    Xtrain, Ttrain, Xtest, Ttest = Xtrain[:200], Ttrain[:200], Xtest[:50], Ttest[:50]
    rows = []
    for foreign in (True, False):
        M = parse_multilayer_perceptron(["ReLU", "Linear"], [64, 16, 10], ["Momentum(0.9)"],
                                        ["XavierNormal"], rng=np.random.default_rng(0))  # fmt: skip
        loss = parse_loss_function("SoftmaxCrossEntropy")
        if foreign:
            one_hot = [np.eye(10, dtype=np.float32)[T] for T in (Ttrain, Ttest)]
            loaders = (ForeignLoader(Xtrain, one_hot[0], 32, with_size),
                       ForeignLoader(Xtest, one_hot[1], 32, with_size))  # fmt: skip
        else:
            loaders = (DataLoader(Xtrain, Ttrain, 32, 10), DataLoader(Xtest, Ttest, 32, 10))
        lr = parse_learning_rate("Constant(0.1)")
        rows.append(stochastic_gradient_descent(M, 2, loss, lr, *loaders))
    strip = [[row[:-1] for row in run] for run in rows]  # the time column differs
    assert strip[0] == strip[1] and len(strip[0]) == 3


def test_an_empty_test_set_has_no_accuracy(capsys):
    """0 correct of 0 rows is not 0% accuracy: the row shows nan (the metrics file null)."""
    M, train, _, _ = small_problem()
    empty = DataLoader(np.zeros((0, 4)), np.zeros(0, np.int64), 8, 3)
    loss, lr = parse_loss_function("SoftmaxCrossEntropy"), parse_learning_rate("Constant(0.1)")
    rows = stochastic_gradient_descent(M, 1, loss, lr, train, empty)
    assert all(np.isnan(row.test_accuracy) for row in rows)
    assert all(0 <= row.train_accuracy <= 1 for row in rows)
    assert "|          nan |" in capsys.readouterr().out


def test_plain_sgd_checks_the_batch_size_and_the_row_counts():
    M, _, _, _ = small_problem()
    loss, lr = parse_loss_function("SoftmaxCrossEntropy"), parse_learning_rate("Constant(0.1)")
    X, T = np.zeros((5, 4)), np.zeros(5, np.int64)
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1, got 0"):
        stochastic_gradient_descent_plain(M, X, T, loss, lr, 1, 0, False)
    with pytest.raises(ValueError, match="Ttrain has 3 rows; expected 5, as Xtrain"):
        stochastic_gradient_descent_plain(M, X, T[:3], loss, lr, 1, 2, False)
