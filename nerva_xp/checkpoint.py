"""Training checkpoints (spec §14.1 ``--checkpoint`` / ``--resume``): one NPZ file, no pickles.

Keys: the weight-file keys of spec §7.2 (W{i}, b{i}, srelu{i}, gamma{j}, beta{j}); ``opt{k}_{name}``
for each buffer of the k-th optimizer (k = 1, 2, ... over every layer's optimizers, in layer
order); ``epoch`` (epochs completed); ``scheduler`` (its spec); ``rng_state`` (the PCG64
``bit_generator.state`` as JSON); ``options`` (the run's options as JSON); ``rows`` (the statistics
rows so far, as JSON); ``format`` (the version). Strings are stored as 0-d unicode arrays.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from nerva_xp.device import assign_from_host, numpy_dtype
from nerva_xp.errors import describe_error
from nerva_xp.inplace import MAX_THREADS
from nerva_xp.layers import parse_layer
from nerva_xp.learning_rate import parse_learning_rate
from nerva_xp.loss_functions import parse_loss_function
from nerva_xp.npz import DataError, check_weight_array, load_dict_from_npz, save_dict_to_npz
from nerva_xp.optimizers import parse_optimizer
from nerva_xp.spec_strings import SpecError, format_spec, split_list
from nerva_xp.weight_initializers import parse_weight_initializer

FORMAT = 1
_TEXT_KEYS = ("scheduler", "rng_state", "options", "rows")


@dataclass
class Checkpoint:
    """The contents of a checkpoint file."""

    epoch: int
    arrays: dict[str, np.ndarray]  # weights and optimizer buffers
    scheduler: str
    rng_state: dict
    options: dict
    rows: list[list]


def optimizer_buffers(M) -> dict[str, object]:
    """``opt{k}_{name}`` -> buffer for every optimizer of every layer, in layer order."""
    buffers, k = {}, 0
    for layer in M.layers:
        composite = layer.optimizer
        for optimizer in getattr(composite, "optimizers", [composite] if composite else []):
            k += 1
            for name, buffer in optimizer.buffers().items():
                buffers[f"opt{k}_{name}"] = buffer
    return buffers


def save_checkpoint(path, M, epoch: int, scheduler, rng, options: dict, rows) -> str:
    """Write the whole training state after ``epoch`` completed epochs, atomically."""
    data = dict(M.weights_dict())
    data.update(optimizer_buffers(M))
    data["epoch"] = np.array(epoch)
    data["format"] = np.array(FORMAT)
    data["scheduler"] = np.array(repr(scheduler))
    data["rng_state"] = np.array(json.dumps(rng.bit_generator.state))
    data["options"] = np.array(json.dumps(options, sort_keys=True))
    data["rows"] = np.array(json.dumps([list(row) for row in rows]))
    return save_dict_to_npz(path, data)


def load_checkpoint(path) -> Checkpoint:
    """Read and check a checkpoint file (DataError naming the file on any problem)."""
    required = ("format", "epoch", *_TEXT_KEYS)
    data = load_dict_from_npz(path, required=required, kind="checkpoint")

    def fail(problem: str):
        raise DataError(f'cannot read checkpoint file "{path}": {problem}')

    for key in ("format", "epoch"):
        if data[key].shape != () or data[key].dtype.kind not in "iu":
            fail(f"{key} is {data[key]!r}; expected an integer")
    if int(data["format"]) != FORMAT:
        fail(f"format {int(data['format'])}; expected {FORMAT}")
    try:
        texts = {key: json.loads(str(data[key][()])) for key in _TEXT_KEYS if key != "scheduler"}
    except (ValueError, TypeError, RecursionError) as error:
        fail(f"damaged state ({describe_error(error)})")
    epoch = int(data["epoch"])
    _check_state(epoch, texts, fail)
    arrays = {k: v for k, v in data.items() if k not in ("format", "epoch", *_TEXT_KEYS)}
    return Checkpoint(
        epoch, arrays, str(data["scheduler"][()]), texts["rng_state"], texts["options"],
        texts["rows"],
    )  # fmt: skip


# the types of the stored train options (cli.py): integers with their bounds, flags, else text
_INTEGER_OPTIONS = {
    "epochs": (0, None),
    "batch_size": (1, None),
    "seed": (0, None),
    "threads": (1, MAX_THREADS),
}
_FLAG_OPTIONS = ("no_shuffle", "fold_updates", "debug")


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, float) or _is_integer(value)


def _option_problem(key: str, value) -> str | None:
    """What is wrong with a stored option's value, or None."""
    if key in _INTEGER_OPTIONS:
        low, high = _INTEGER_OPTIONS[key]
        if value is None and key in ("seed", "threads"):
            return None
        if not _is_integer(value) or value < low or (high is not None and value > high):
            return f"an integer >= {low}" + (f" and <= {high}" if high else "")
    elif key in _FLAG_OPTIONS:
        return None if isinstance(value, bool) else "true or false"
    elif key == "dtype":
        return None if value in ("float32", "float64") else "float32 or float64"
    elif value is not None and not isinstance(value, str):
        return "text"
    return None


def _check_state(epoch: int, texts: dict, fail) -> None:
    """The JSON parts of a checkpoint: options, rows and generator state (DataError if damaged)."""
    options, rows = texts["options"], texts["rows"]
    if not isinstance(options, dict):
        fail("options: expected a JSON object")
    for key, value in options.items():
        problem = _option_problem(key, value)
        if problem:
            fail(f"option {key} is {value!r}; expected {problem}")
    if epoch < 0 or not isinstance(rows, list) or len(rows) != epoch + 1:
        fail(f"epoch {epoch} with {len(rows) if isinstance(rows, list) else 'no'} rows; "
             "expected epoch + 1 statistics rows")  # fmt: skip
    if not all(isinstance(r, list) and len(r) == 6 and all(map(_is_number, r)) for r in rows):
        fail("rows: expected lists of 6 numbers (epoch, lr, loss, accuracies, seconds)")
    try:
        np.random.PCG64().state = texts["rng_state"]
    except (ValueError, TypeError, KeyError, OverflowError) as error:
        fail(f"rng_state is not a PCG64 state ({describe_error(error)})")


def restore(path, M, rng, checkpoint: Checkpoint) -> None:
    """Write the checkpoint's parameters and optimizer buffers into M and its generator state
    into rng; every array is checked before any is written."""
    targets = dict(M.weights_dict())
    targets.update(optimizer_buffers(M))
    missing = sorted(set(targets) - set(checkpoint.arrays))
    extra = sorted(set(checkpoint.arrays) - set(targets))
    if missing or extra:
        raise DataError(
            f'checkpoint file "{path}" is for another network: '
            f"missing {', '.join(missing) or 'nothing'}, unexpected {', '.join(extra) or 'nothing'}"
        )
    updates = []
    for key, target in targets.items():
        value = check_weight_array(
            path, key, checkpoint.arrays[key], tuple(target.shape), "checkpoint",
            numpy_dtype(target.dtype),
        )  # fmt: skip
        updates.append((target, value.reshape(target.shape)))
    for target, value in updates:
        assign_from_host(target, value)
    rng.bit_generator.state = checkpoint.rng_state


# options that define the network, the data or the optimizer: a resumed run must keep them
DEFINING_OPTIONS = (
    "layers", "layer_sizes", "layer_weights", "optimizers", "learning_rate", "loss",
    "batch_size", "load_dataset", "dtype", "no_shuffle", "seed",
)  # fmt: skip
# options that act once, or name the file being resumed from: never taken from a checkpoint
ONE_TIME_OPTIONS = ("load_weights", "save_initial_weights", "save_dataset", "resume", "checkpoint")


# each spec option's items, parsed into a canonical text (defaults filled in, numbers as floats)
_CANONICAL_ITEM = {
    "layers": lambda text: format_spec(*parse_layer(text)),
    "layer_weights": lambda text: repr(parse_weight_initializer(text)),
    "optimizers": lambda text: repr(parse_optimizer(text)),
    "learning_rate": lambda text: repr(parse_learning_rate(text)),
    "loss": lambda text: type(parse_loss_function(text)).__name__,
    "layer_sizes": int,
}
_ONE_FOR_ALL = ("layer_weights", "optimizers")  # one item stands for one per layer


def _canonical_items(key: str, text: str) -> list:
    """The canonical items of a spec option's text, e.g. ["Momentum(mu=0.9)"] for both
    "Momentum(0.9)" and "Momentum(mu=0.9)", [4, 8, 3] for "4,8,3" and "4;8;3"."""
    return [
        _CANONICAL_ITEM[key](item)
        for item in split_list(text, ";," if key == "layer_sizes" else ";")
    ]


def _same_option(key: str, given, stored) -> bool:
    """Whether two values of an option mean the same: a dataset path the same file, a spec the
    same items (as parsed; one optimizer or initializer equals that one repeated per layer)."""
    if given is None or stored is None or given == stored:
        return given == stored
    if key == "load_dataset":
        return os.path.realpath(given) == os.path.realpath(stored)
    if key not in _CANONICAL_ITEM or not isinstance(given, str) or not isinstance(stored, str):
        return False
    try:
        a, b = _canonical_items(key, given), _canonical_items(key, stored)
    except (SpecError, ValueError):
        return False
    if key in _ONE_FOR_ALL and len(a) != len(b) and 1 in (len(a), len(b)):
        a, b = (a * len(b), b) if len(a) == 1 else (a, b * len(a))
    return a == b


def merge_options(path, stored: dict, options: dict, given: set) -> dict:
    """The options of a resumed run: the stored ones, overridden by those ``given`` on the command
    line (even at their default values); a given option that defines the network, data or
    optimizer must equal the stored one (else ValueError naming the first difference)."""
    merged = dict(options)
    for key, value in stored.items():
        if key in ONE_TIME_OPTIONS or key not in options:
            continue
        explicit = key in given
        if explicit and key in DEFINING_OPTIONS and not _same_option(key, options[key], value):
            option = "--" + key.replace("_", "-")
            raise ValueError(
                f"{option} is {options[key]!r} here but {value!r} in the checkpoint "
                f'"{path}"; a resumed run keeps the network, data and optimizer'
            )
        if not explicit:
            merged[key] = value
    return merged
