"""``nerva-xp train`` (spec §13, §14.1, §14.2): options, run order, outputs.

Run order: (1) parse and validate every option (merging a --resume checkpoint's), (2) select the
device and print the device line, (3) load and check the dataset, (4) build the network (drawing
the weights; a resumed run then restores its state), (5) --load-weights, then
--save-initial-weights, then --save-dataset, (6) train (with --checkpoint after every epoch),
(7) --save-weights, --metrics, --plot.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import secrets
from dataclasses import dataclass

import numpy as np

from nerva_xp import inplace
from nerva_xp.atomic_files import accepts_new_files, write_atomically
from nerva_xp.checkpoint import load_checkpoint, merge_options, restore, save_checkpoint
from nerva_xp.cli import UsageError
from nerva_xp.datasets import (
    DATASET_KEYS,
    embedded_dataset_path,
    infer_num_classes,
    load_npz_dataset,
    make_dataloaders,
)
from nerva_xp.device import DeviceError, select_device, to_numpy
from nerva_xp.errors import describe_error
from nerva_xp.layers import parse_layer
from nerva_xp.learning_rate import parse_learning_rate
from nerva_xp.loss_functions import parse_loss_function
from nerva_xp.multilayer_perceptron import check_network_specs, parse_multilayer_perceptron
from nerva_xp.npz import DataError, npz_path, save_dict_to_npz
from nerva_xp.optimizers import parse_optimizer
from nerva_xp.plots import image_format, plot_training_curves
from nerva_xp.progress import ProgressBar
from nerva_xp.spec_strings import SpecError, split_list
from nerva_xp.training import EpochStatistics, TrainOptions, stochastic_gradient_descent
from nerva_xp.utilities import set_numpy_options
from nerva_xp.weight_initializers import parse_weight_initializer

EMBEDDED_DEFAULTS = {
    "layers": "ReLU;ReLU;Linear",
    "layer_sizes": "64;64;64;10",
    "learning_rate": "Constant(0.1)",
    "loss": "SoftmaxCrossEntropy",
}

_COUNT_OPTIONS = {
    "optimizers:": "--optimizers:",
    "layer weights:": "--layer-weights:",
    "layer sizes:": "--layer-sizes:",
}


@dataclass
class TrainPlan:
    """The validated options of one run."""

    layers: list[str]
    sizes: list[int]
    optimizers: list[str]
    initializers: list[str]
    learning_rate: object
    loss: object


@contextlib.contextmanager
def _option(name: str):
    """Turn a SpecError raised inside the block into a UsageError naming the option."""
    try:
        yield
    except SpecError as error:
        raise UsageError(f"{name}: {error}") from None


def _list(option: str, text: str, separators: str = ";") -> list[str]:
    items = split_list(text, separators)
    for position, item in enumerate(items):
        if not item:
            raise UsageError(f"{option}: item {position + 1} of {text!r} is empty")
    return items


def _required(args, name: str) -> str:
    value = getattr(args, name)
    if value is not None:
        return value
    if args.load_dataset is None:
        return EMBEDDED_DEFAULTS[name]
    raise UsageError(f"--{name.replace('_', '-')}: required with --load-dataset")


def _check_given_specs(args) -> None:
    """Each spec string present in args parses. With --resume this runs before the checkpoint
    is read (spec §14.1 step 1); counts and required options are checked once the checkpoint's
    options are merged in."""
    dtype = args.dtype or "float32"
    lists = {
        "--layers": lambda text: parse_layer(text, dtype),
        "--optimizers": parse_optimizer,
        "--layer-weights": parse_weight_initializer,
    }
    singles = {"--learning-rate": parse_learning_rate, "--loss": parse_loss_function}
    for option, parse in {**lists, **singles}.items():
        value = _given_path(args, option)
        if value is None:
            continue
        with _option(option):
            for text in _list(option, value) if option in lists else [value]:
                parse(text)


def _check_specs(args) -> TrainPlan:
    """Step 1: every spec string and the list counts, as the run's plan."""
    layers = _list("--layers", _required(args, "layers"))
    sizes_text = _list("--layer-sizes", _required(args, "layer_sizes"), ";,")
    optimizers = _list("--optimizers", args.optimizers)
    initializers = _list("--layer-weights", args.layer_weights)
    _check_given_specs(args)
    with _option("--learning-rate"):
        learning_rate = parse_learning_rate(_required(args, "learning_rate"))
    with _option("--loss"):
        loss = parse_loss_function(_required(args, "loss"))
    try:
        _, sizes, optimizers, initializers = check_network_specs(
            layers, sizes_text, optimizers, initializers, args.dtype or "float32"
        )
    except SpecError as error:
        message = str(error)
        for prefix, option in _COUNT_OPTIONS.items():
            message = re.sub(f"^{prefix}", option, message)
        raise UsageError(message) from None
    return TrainPlan(layers, sizes, optimizers, initializers, learning_rate, loss)


_INPUTS = ("--load-dataset", "--load-weights", "--resume")
_NPZ_OUTPUTS = ("--save-weights", "--save-initial-weights", "--save-dataset", "--checkpoint")


def _check_input_names(args) -> None:
    """An input option given an empty value is an error, not the option left out."""
    for option in _INPUTS:
        if _given_path(args, option) == "":
            raise UsageError(f'{option}: "" names no file; expected a file name')


def _given_path(args, option: str) -> str | None:
    """The value given for ``option`` (e.g. the path of ``--save-weights``), as typed."""
    return getattr(args, option[2:].replace("-", "_"))


def _outputs(args) -> dict[str, str]:
    """The files this run writes, by option, with the names they will really have."""
    outputs = {}
    for option in (*_NPZ_OUTPUTS, "--metrics", "--plot"):
        path = _given_path(args, option)
        if path is not None:
            outputs[option] = npz_path(path) if option in _NPZ_OUTPUTS else path
    return outputs


def _check_file_name(option: str, raw: str, path: str, folder: str) -> None:
    """``raw`` (as given) names a file, and ``path`` (as written) fits the file system's limit."""
    if raw == "" or raw.endswith(("/", os.sep)):
        raise UsageError(f'{option}: "{raw}" names no file; expected a file name')
    try:
        longest = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return
    if len(os.fsencode(os.path.basename(path))) > longest:
        raise UsageError(f"{option}: the file name is longer than the {longest} bytes allowed")


def _check_outputs(args) -> None:
    dataset = args.load_dataset or embedded_dataset_path()
    inputs = {os.path.realpath(p) for p in (dataset, args.load_weights, args.resume) if p}
    written: dict[str, str] = {}  # real path -> the option writing it
    for option, path in _outputs(args).items():
        folder = os.path.dirname(os.path.realpath(path))  # a link is written at its target
        if not os.path.isdir(folder):
            raise UsageError(f'{option}: folder "{folder}" does not exist')
        if not accepts_new_files(folder):
            raise UsageError(f'{option}: folder "{folder}" is not writable')
        _check_file_name(option, _given_path(args, option), path, folder)
        if os.path.isdir(path):
            raise UsageError(f'{option}: "{path}" is a directory; expected a file name')
        if os.path.realpath(path) in inputs:
            raise UsageError(f'{option}: "{path}" is an input of this run; it is never overwritten')
        other = written.setdefault(os.path.realpath(path), option)
        if other != option:
            raise UsageError(f'{option}: "{path}" is also the file of {other}; expected another')
    if args.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")  # as plots.py: files only, whatever MPLBACKEND says
            from matplotlib import pyplot  # noqa: F401
        except ImportError:
            raise UsageError("--plot: needs matplotlib: pip install 'nerva-xp[plot]'") from None
        except Exception as error:  # noqa: BLE001 (matplotlib can fail to start in many ways)
            raise UsageError(
                f"--plot: matplotlib does not start ({describe_error(error)})"
            ) from None
        try:
            image_format(args.plot)
        except ValueError as error:
            raise UsageError(f"--plot: {error}") from None


def _load_dataset(args):
    if args.load_dataset is None:
        data = load_npz_dataset(embedded_dataset_path())
        Xtrain, Ttrain, Xtest, _ = data
        classes = infer_num_classes(data[1], data[3])
        print(
            f"Loading embedded dataset digits ({Xtrain.shape[0]} train, {Xtest.shape[0]} test, "
            f"{Xtrain.shape[1]} features, {classes} classes)"
        )
        return data
    print(f"Loading dataset from file {args.load_dataset}")
    return load_npz_dataset(args.load_dataset)


def _check_range(args, data, device) -> None:
    """Inputs must stay finite in the run's dtype (a float64 file may hold 1e300)."""
    largest = float(np.finfo(device.dtype_name).max)
    for key, X in (("Xtrain", data[0]), ("Xtest", data[2])):
        if X.size and X.dtype.itemsize > np.dtype(device.dtype_name).itemsize:
            extreme = max(abs(float(X.min())), abs(float(X.max())))
            if extreme > largest:
                raise DataError(
                    f'dataset file "{args.load_dataset}": key "{key}" holds values up to '
                    f"{extreme:.3g}, beyond the {device.dtype_name} range; expected |x| <= "
                    f"{largest:.3g}"
                )


def _check_widths(args, plan: TrainPlan, data) -> None:
    where = f'dataset file "{args.load_dataset}"' if args.load_dataset else "embedded dataset"
    features, classes = data[0].shape[1], infer_num_classes(data[1], data[3])
    if features != plan.sizes[0]:
        raise DataError(
            f"{where}: Xtrain has {features} features but --layer-sizes starts with "
            f"{plan.sizes[0]}; they must be equal"
        )
    if classes != plan.sizes[-1]:
        raise DataError(
            f"{where}: the targets have {classes} classes but --layer-sizes ends with "
            f"{plan.sizes[-1]}; they must be equal"
        )


def _save_dataset(path: str, data, device) -> None:
    print(f"Saving dataset to {npz_path(path)}")
    arrays = dict(zip(DATASET_KEYS, data, strict=True))
    for key in ("Xtrain", "Xtest"):
        arrays[key] = arrays[key].astype(device.dtype_name)
    save_dict_to_npz(path, arrays)


def _json_number(value: float):
    """value, or None (JSON null) where it is NaN or infinite, which JSON cannot hold."""
    return value if math.isfinite(value) else None


def _write_metrics(path: str, rows) -> None:
    lines = [
        json.dumps(
            {
                "epoch": row.epoch,
                "lr": row.lr,
                "loss": _json_number(row.loss),
                "train_acc": _json_number(row.train_accuracy),
                "test_acc": _json_number(row.test_accuracy),
                "seconds": row.seconds,
            },
            allow_nan=False,
        )
        for row in rows
    ]
    text = "".join(line + "\n" for line in lines).encode()
    write_atomically(path, lambda file: file.write(text))


def _limit_threads(count: int) -> None:
    """BLAS threads (through threadpoolctl) and the element-wise update threads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(count)
    inplace.set_threads(count)


def _resume(args):
    """(args with a checkpoint's options merged in, the checkpoint), or (args, None)."""
    if not args.resume:
        return args, None
    if args.load_weights:
        raise UsageError("--load-weights: cannot be combined with --resume")
    stored = load_checkpoint(args.resume)
    given = set(getattr(args, "given", ()))  # set by cli.main; none: the stored options win
    try:
        merged = merge_options(args.resume, stored.options, vars(args), given)
    except ValueError as error:
        raise UsageError(f"--resume: {error}") from None
    if merged["epochs"] < stored.epoch:  # it would save the later weights as if trained less
        raise UsageError(
            f"--epochs: {merged['epochs']} is below the {stored.epoch} epochs of the checkpoint "
            f'"{args.resume}"; expected at least {stored.epoch}'
        )
    return argparse.Namespace(**merged), stored


def _stored_options(args, seed: int) -> dict:
    """The run's options for a checkpoint: the network as trained (the embedded defaults filled
    in) and the dataset as an absolute path, so a resume works from any folder."""
    options = {k: v for k, v in vars(args).items() if k not in ("run", "command", "given")}
    if args.load_dataset is None:
        options |= {key: _required(args, key) for key in EMBEDDED_DEFAULTS}
    else:
        options["load_dataset"] = os.path.abspath(args.load_dataset)
    return options | {"seed": seed}


def _select_device(args, seed: int):
    """Step 2: the device, and the device line."""
    if args.device == "strict":  # array-api-strict: a library device for the tests (spec §1.3)
        raise UsageError(
            '--device: unknown device "strict"; expected auto, cpu, cuda or cuda:N '
            "(strict is the test suite's array-api-strict device, not a training device)"
        )
    try:
        device = select_device(args.device, args.dtype)
    except DeviceError as error:
        raise UsageError(f"--device: {error}") from None
    threads = f", threads: {args.threads}" if args.threads else ""
    print(f"Device: {device.describe()}, dtype: {device.dtype_name}, seed: {seed}{threads}")
    return device


def _build_network(plan: TrainPlan, device, rng):
    """Step 4: the network, drawing its initial weights."""
    weights = sum(d * k for d, k in zip(plan.sizes[:-1], plan.sizes[1:], strict=True))
    try:
        if weights * np.dtype(device.dtype_name).itemsize >= 2**62:  # NumPy: "array is too big"
            raise MemoryError
        return parse_multilayer_perceptron(
            plan.layers, plan.sizes, plan.optimizers, plan.initializers, device=device, rng=rng
        )
    except MemoryError:  # a run-time error (exit 1): it depends on this machine's memory
        raise MemoryError(
            f"--layer-sizes: a network of sizes {plan.sizes} does not fit in memory"
        ) from None


def _check_initial_weights(args, plan: TrainPlan, M) -> None:
    """Initial weights drawn beyond the run's dtype (e.g. Normal(0,1e39) in float32 gives ±inf)
    are refused before anything is written, unless --load-weights or --resume replaces them."""
    if args.load_weights or args.resume:
        return
    for index, layer in enumerate(M.linear_layers()):
        if not np.all(np.isfinite(to_numpy(layer.W))):
            raise UsageError(
                f"--layer-weights: {plan.initializers[index]} draws weights beyond the "
                f"{layer.W.dtype} range for linear layer {index + 1} (they became infinite)"
            )


def _restore(args, M, rng, checkpoint) -> list[EpochStatistics]:
    """Resume: the checkpoint's state into M and rng; returns its rows up to its last epoch."""
    if checkpoint is None:
        return []
    restore(args.resume, M, rng, checkpoint)
    print(f"Resuming from checkpoint {args.resume} after epoch {checkpoint.epoch}")
    return [EpochStatistics(*row) for row in checkpoint.rows[: checkpoint.epoch + 1]]


def _joined(previous_rows: list, rows: list) -> list:
    """The rows of the whole run: a resumed run's first row restates the checkpoint's last epoch
    with no training time, so the stored row, with its time, stays in its place."""
    return previous_rows + rows[1:] if previous_rows else rows


def _before_training(args, M, data, device) -> None:
    """Step 5: --load-weights, then --save-initial-weights, then --save-dataset."""
    if args.load_weights:
        M.load_weights_and_bias(args.load_weights)
    if args.save_initial_weights:
        M.save_weights_and_bias(args.save_initial_weights)
    if args.save_dataset:
        _save_dataset(args.save_dataset, data, device)


def _after_training(args, M, rows) -> None:
    """Step 7: --save-weights, --metrics, --plot."""
    if args.save_weights:
        M.save_weights_and_bias(args.save_weights)
    if args.metrics:
        _write_metrics(args.metrics, rows)
    if args.plot:
        plot_training_curves(rows, args.plot)


def run_train(args) -> int:
    """The whole ``train`` command; returns the exit code (errors are raised)."""
    _check_input_names(args)
    if args.resume:  # step 1 for the options given, before the checkpoint is read
        _check_given_specs(args)
        _check_outputs(args)
    args, checkpoint = _resume(args)
    plan = _check_specs(args)
    _check_outputs(args)
    if args.threads:
        _limit_threads(args.threads)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    device = _select_device(args, seed)
    TrainOptions.debug = args.debug
    if args.debug:
        set_numpy_options()
    rng = np.random.default_rng(seed)
    data = _load_dataset(args)
    _check_widths(args, plan, data)
    _check_range(args, data, device)
    M = _build_network(plan, device, rng)
    _check_initial_weights(args, plan, M)
    M.set_weight_update_folding(args.fold_updates)
    previous_rows = _restore(args, M, rng, checkpoint)
    options = _stored_options(args, seed)

    def after_epoch(epochs_done: int, rows) -> None:
        if args.checkpoint:
            all_rows = _joined(previous_rows, rows)
            save_checkpoint(
                args.checkpoint, M, epochs_done, plan.learning_rate, rng, options, all_rows
            )
            if args.metrics:
                _write_metrics(args.metrics, all_rows)

    _before_training(args, M, data, device)
    train_loader, test_loader = make_dataloaders(
        *data, args.batch_size, shuffle=not args.no_shuffle, rng=rng, device=device
    )
    with np.errstate(all="ignore"):  # non-finite values are detected and reported (spec §12.2)
        rows = stochastic_gradient_descent(
            M, args.epochs, plan.loss, plan.learning_rate, train_loader, test_loader,
            progress=ProgressBar(args.epochs), first_epoch=max(len(previous_rows) - 1, 0),
            after_epoch=after_epoch,
        )  # fmt: skip
    _after_training(args, M, _joined(previous_rows, rows))
    return 0
