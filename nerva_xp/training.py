"""Training (spec §12, §13): stochastic gradient descent, the statistics and the epoch table.

DY = loss.gradient(Y, T) / N_batch with N_batch the actual size of the batch. A non-finite DY stops
the run at the end of its epoch: each batch folds ``all(isfinite(DY))`` into a flag on the device,
which is read once per epoch (NumPy checks every batch and names the first bad one).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from array_api_compat import array_namespace

from nerva_xp.datasets import DataLoader, create_npz_dataloaders, to_one_hot
from nerva_xp.device import as_device, default_device, device_of, to_numpy
from nerva_xp.errors import describe_error
from nerva_xp.learning_rate import LearningRateScheduler, parse_learning_rate
from nerva_xp.loss_functions import LossFunction, parse_loss_function
from nerva_xp.matrix_operations import Matrix
from nerva_xp.multilayer_perceptron import MultilayerPerceptron, parse_multilayer_perceptron
from nerva_xp.utilities import StopWatch, pp, resolve_rng, set_numpy_options

RULE = "-" * 80


class TrainOptions:
    debug = False
    print_statistics = True
    print_digits = 6


class TrainingError(RuntimeError):
    """Training cannot go on: a run-time error (exit code 1) with a one-line message."""


class NonFiniteGradientError(TrainingError):
    """A loss gradient with NaN or Inf: training stopped (spec §12.2)."""

    def __init__(self, epoch: int, batch: int):
        super().__init__(
            f"training: non-finite loss gradient in epoch {epoch} (first at batch {batch})"
        )
        self.epoch = epoch
        self.batch = batch


class EpochStatistics(NamedTuple):
    epoch: int
    lr: float
    loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float


def print_epoch_header() -> None:
    if not TrainOptions.print_statistics:
        return
    width = TrainOptions.print_digits + 6
    names = ["lr", "loss", "train_acc", "test_acc", "time (s)"]
    print(RULE)
    print(" | ".join([f"{'epoch':>5}"] + [f"{name:>{width}}" for name in names]))
    print(RULE)


def print_epoch_footer(total_time: float) -> None:
    if not TrainOptions.print_statistics:
        return
    print(RULE)
    print(f"Total training time: {total_time:.{TrainOptions.print_digits}f} s")


def print_epoch_line(epoch, lr, loss, train_accuracy, test_accuracy, elapsed) -> None:
    """One table row: epoch width 5, the other columns width 12 with ``print_digits`` decimals."""
    digits = TrainOptions.print_digits
    values = [lr, loss, train_accuracy, test_accuracy, elapsed]
    print(" | ".join([f"{epoch:5d}"] + [f"{float(v):{digits + 6}.{digits}f}" for v in values]))


def print_batch_debug_info(epoch: int, k: int, M: MultilayerPerceptron, X, Y, DY) -> None:
    """The ``--debug`` dump of one batch (spec §13.2)."""
    print(f"epoch: {epoch} batch: {k}")
    M.info()
    pp("X", X)
    pp("Y", Y)
    pp("DY", DY)


def _batches_in_file_order(loader):
    """The loader's batches in file order; a loader of another kind (the manual's PyTorch-style
    loaders: iterable, with ``dataset_size``) is iterated as it is."""
    in_file_order = getattr(loader, "in_file_order", None)
    return in_file_order() if in_file_order is not None else iter(loader)


def _dataset_size(loader) -> int:
    """N: ``loader.dataset_size``, or the length of a PyTorch-style loader's ``dataset``."""
    size = getattr(loader, "dataset_size", None)
    return size if size is not None else len(loader.dataset)


def compute_loss(M: MultilayerPerceptron, loader: DataLoader, loss: LossFunction) -> float:
    """(Σ over the batches of loss(M.feedforward(X), T)) / dataset_size, in file order."""
    total = None
    for X, T in _batches_in_file_order(loader):
        value = loss(M.feedforward(X), T)
        total = value if total is None else total + value
    return math.nan if total is None else float(total) / _dataset_size(loader)


def compute_accuracy(M: MultilayerPerceptron, loader: DataLoader) -> float:
    """The fraction of rows where argmax(Y) = argmax(T), in file order (ties: first maximum);
    NaN for a loader without rows (an empty test set), as for the loss."""
    correct = None
    for X, T in _batches_in_file_order(loader):
        Y = M.feedforward(X)
        xp = array_namespace(Y)
        hits = xp.sum(xp.astype(xp.argmax(Y, axis=1) == xp.argmax(T, axis=1), xp.int64))
        correct = hits if correct is None else correct + hits
    return math.nan if correct is None else int(correct) / _dataset_size(loader)


def compute_statistics(
    M, lr, loss, train_loader, test_loader, epoch, elapsed_seconds=0.0
) -> EpochStatistics:
    """Training loss, training and test accuracy; prints the table row (only ``epoch {e:3}`` with
    ``TrainOptions.print_statistics`` False) and returns it."""
    row = EpochStatistics(
        epoch,
        float(lr),
        compute_loss(M, train_loader, loss),
        compute_accuracy(M, train_loader),
        compute_accuracy(M, test_loader),
        float(elapsed_seconds),
    )
    if TrainOptions.print_statistics:
        print_epoch_line(*row)
    else:
        print(f"epoch {epoch:3}")
    return row


class _FiniteCheck:
    """Tracks whether every DY of an epoch was finite, without a host sync per batch on a GPU."""

    def __init__(self, per_batch: bool):
        self.per_batch = per_batch
        self.flag = None
        self.first_bad = None

    def add(self, DY: Matrix, k: int) -> None:
        xp = array_namespace(DY)
        finite = xp.all(xp.isfinite(DY))
        if self.per_batch:
            if self.first_bad is None and not bool(finite):
                self.first_bad = k
        else:
            self.flag = finite if self.flag is None else xp.logical_and(self.flag, finite)

    def check(self, epoch: int) -> None:
        if self.per_batch and self.first_bad is not None:
            raise NonFiniteGradientError(epoch, self.first_bad)
        if self.flag is not None and not bool(self.flag):
            raise NonFiniteGradientError(epoch, 0)


def _is_host_backend(X: Matrix) -> bool:
    return array_namespace(X).__name__ in ("array_api_compat.numpy", "numpy")


def train_epoch(M, loss, lr: float, batches: Iterable, epoch: int) -> None:
    """One pass of feedforward, loss gradient, backpropagation and update over ``batches``;
    raises NonFiniteGradientError if a loss gradient was not finite."""
    check = run_batches(M, loss, lr, batches, epoch)
    _make_optimizer_state_exact(M)
    if check is not None:
        check.check(epoch)


def _make_optimizer_state_exact(M) -> None:
    """Multiplies the scale of every scaled Δ into its array (``inplace.ScaledArray``), as reading
    Δ for a checkpoint does, so that a run resumed from any epoch's checkpoint continues bit for
    bit like the uninterrupted run (one pass over Δ per epoch). Layers and optimizers without
    the hook (a user's own) are passed over."""
    for layer in M.layers:
        optimizer = getattr(layer, "optimizer", None)
        getattr(optimizer, "make_state_exact", lambda: None)()


def run_batches(M, loss, lr: float, batches: Iterable, epoch: int):
    """The batch loop of an epoch, with no device-to-host copy on a GPU (unless debugging);
    returns the epoch's finiteness check (None when there were no batches)."""
    check = None
    for k, (X, T) in enumerate(batches):
        if check is None:
            check = _FiniteCheck(per_batch=_is_host_backend(X))
        Y = M.feedforward(X)
        DY = loss.gradient(Y, T) / X.shape[0]
        check.add(DY, k)
        if TrainOptions.debug:
            print_batch_debug_info(epoch, k, M, X, Y, DY)
        M.backpropagate(Y, DY)
        M.optimize(lr)
    return check


def stochastic_gradient_descent(
    M: MultilayerPerceptron,
    epochs: int,
    loss: LossFunction,
    learning_rate: LearningRateScheduler,
    train_loader: DataLoader,
    test_loader: DataLoader,
    progress=None,
    first_epoch: int = 0,
    after_epoch=None,
) -> list[EpochStatistics]:
    """Train M for ``epochs`` epochs, printing the table of spec §13.1; returns its rows.

    Args:
        progress: optional ``f(batches, epoch)`` wrapping each epoch's batches (a progress bar).
        first_epoch: epochs already done (a resumed run); its first row restates that epoch.
        after_epoch: optional ``f(epochs_done, rows)`` called after each epoch's row.
    """
    print_epoch_header()
    lr = learning_rate_at(learning_rate, max(first_epoch - 1, 0))
    rows = [compute_statistics(M, lr, loss, train_loader, test_loader, epoch=first_epoch)]
    training_time = 0.0
    for epoch in range(first_epoch, epochs):
        timer = StopWatch()
        lr = learning_rate_at(learning_rate, epoch)
        batches = train_loader if progress is None else progress(train_loader, epoch)
        train_epoch(M, loss, lr, batches, epoch)
        (getattr(train_loader, "device", None) or model_device(M)).synchronize()
        seconds = timer.seconds()
        training_time += seconds
        rows.append(compute_statistics(M, lr, loss, train_loader, test_loader, epoch + 1, seconds))
        if after_epoch is not None:
            after_epoch(epoch + 1, rows)
    print_epoch_footer(training_time)
    return rows


def learning_rate_at(scheduler: LearningRateScheduler, epoch: int) -> float:
    """scheduler(epoch), which must be a finite number (TrainingError otherwise: e.g.
    TimeBased(0.1, -1) divides by zero at epoch 1, Exponential(0.1, -1000) overflows)."""
    try:
        lr = float(scheduler(epoch))
    except ArithmeticError as error:  # ZeroDivisionError, OverflowError
        lr, why = math.nan, f" ({describe_error(error)})"
    else:
        why = ""
    if not math.isfinite(lr):
        raise TrainingError(
            f"learning rate: {scheduler!r} has no finite value at epoch {epoch}{why}"
        )
    return lr


def model_device(M: MultilayerPerceptron):
    """The Device of M's first parameter (the default device for a network without any)."""
    for layer in M.layers:
        for _name, parameter, _gradient in layer.named_parameters():
            return device_of(parameter)
    return default_device()


def stochastic_gradient_descent_plain(
    M: MultilayerPerceptron,
    Xtrain,
    Ttrain,
    loss: LossFunction,
    learning_rate: LearningRateScheduler,
    epochs: int,
    batch_size: int,
    shuffle: bool,
    rng=None,
    device=None,
) -> None:
    """SGD on raw arrays: ⌊N / batch_size⌋ full batches per epoch (the remainder is dropped). The
    data is copied to ``device``, by default the device and dtype of M's parameters."""
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size}")
    d = model_device(M) if device is None else as_device(device)
    X_all = d.asarray(to_numpy(Xtrain))
    T_host = to_numpy(Ttrain)
    if T_host.shape[0] != X_all.shape[0]:
        raise ValueError(f"Ttrain has {T_host.shape[0]} rows; expected {X_all.shape[0]}, as Xtrain")
    if T_host.ndim == 2 and T_host.shape[1] > 1:  # an (N, 1) column holds labels
        T_all = d.asarray(T_host)
    else:
        T_all = to_one_hot(T_host, M.layers[-1].output_size(), device=d)
    N = X_all.shape[0]
    K = N // batch_size
    xp = d.xp
    for epoch in range(epochs):
        lr = learning_rate_at(learning_rate, epoch)
        order = resolve_rng(rng).permutation(N) if shuffle else None
        index = None if order is None else d.asarray(order, dtype=d.int_dtype)
        train_epoch(M, loss, lr, _plain_batches(xp, X_all, T_all, index, K, batch_size), epoch)


def _plain_batches(xp, X, T, index, count: int, batch_size: int):
    for k in range(count):
        start, stop = k * batch_size, (k + 1) * batch_size
        if index is None:
            yield X[start:stop, ...], T[start:stop, ...]
        else:
            batch = index[start:stop]
            yield xp.take(X, batch, axis=0), xp.take(T, batch, axis=0)


def train(
    layer_specifications: list[str],
    linear_layer_sizes: list[int],
    linear_layer_optimizers: list[str],
    linear_layer_weight_initializers: list[str],
    batch_size: int,
    epochs: int,
    loss: str,
    learning_rate: str,
    weights_and_bias_file: str | None,
    dataset_file: str,
    debug: bool = False,
    shuffle: bool = False,
    device=None,
    rng=None,
) -> list[EpochStatistics]:
    """Parse a network, loss and scheduler from spec strings and train it on an NPZ dataset."""
    TrainOptions.debug = debug
    set_numpy_options()
    loss_function = parse_loss_function(loss)
    scheduler = parse_learning_rate(learning_rate)
    M = parse_multilayer_perceptron(
        layer_specifications,
        linear_layer_sizes,
        linear_layer_optimizers,
        linear_layer_weight_initializers,
        device=device,
        rng=rng,
    )
    if weights_and_bias_file:
        M.load_weights_and_bias(weights_and_bias_file)
    train_loader, test_loader = create_npz_dataloaders(
        dataset_file, batch_size, shuffle=shuffle, rng=rng, device=device
    )
    return stochastic_gradient_descent(
        M, epochs, loss_function, scheduler, train_loader, test_loader
    )
