"""The nerva-xp command line (spec §13, §14): ``nerva-xp train | inspect | prepare-data``.

Every user error is one line on stderr, ``nerva-xp: error: <option or file>: <problem>``, with exit
code 2 for usage errors found before any work starts, 1 for data and run-time errors, 130 on Ctrl-C.
``--debug`` also prints the traceback behind a message.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import traceback

from nerva_xp import __version__

# NumPy and the library are imported in _run, where Ctrl-C during the imports is caught too.


class UsageError(Exception):
    """A bad option found before any work starts (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line ``nerva-xp: error: --option: problem`` format."""

    def error(self, message: str):
        message = re.sub(r"^argument ([^:]*?)(?:/\S+)?: ", r"\1: ", message)
        raise UsageError(message)


def _int_at_least(minimum: int, maximum: int | None = None):
    def parse(text: str) -> int:
        # ASCII digits, as in spec strings (int() also takes "1_000" and other scripts' digits)
        value = int(text) if re.fullmatch(r"\s*[+-]?[0-9]+\s*", text) else None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise argparse.ArgumentTypeError(f'expected an integer {bounds}, got "{text[:40]}"')
        return value

    return parse


# the train options whose default is not None (or False, for flags)
TRAIN_DEFAULTS = {
    "layer_weights": "XavierNormal",
    "optimizers": "GradientDescent",
    "epochs": 100,
    "batch_size": 100,
    "device": "auto",
    "dtype": "float32",
}


def _add_train(commands, defaults: bool = True) -> None:
    from nerva_xp.inplace import MAX_THREADS
    from nerva_xp.train_command import run_train

    train = commands.add_parser(
        "train",
        help="train a multilayer perceptron (Nerva's mlp.py)",
        argument_default=None if defaults else argparse.SUPPRESS,
    )
    add = train.add_argument
    add("--layers", metavar="SPECS", help='";"-list of layer specs, e.g. "ReLU;ReLU;Linear"')
    add(
        "--layer-sizes",
        metavar="SIZES",
        help='input size, then one output size per linear layer: "64;64;64;10"',
    )
    add(
        "--layer-weights",
        metavar="SPECS",
        help="weight initializers: 1, or one per linear layer (default XavierNormal)",
    )
    add(
        "--optimizers",
        metavar="SPECS",
        help="optimizers: 1, or 1 per layer, BN too (default GradientDescent)",
    )
    add("--learning-rate", metavar="SPEC", help='one scheduler, e.g. "Constant(0.01)"')
    add("--loss", metavar="NAME", help="SquaredError, CrossEntropy, LogisticCrossEntropy, "
        "NegativeLogLikelihood or SoftmaxCrossEntropy")  # fmt: skip
    add("--epochs", metavar="N", type=_int_at_least(0), help="number of epochs (default 100)")
    add("--batch-size", metavar="N", type=_int_at_least(1), help="batch size (default 100)")
    add("--load-dataset", metavar="FILE", help="dataset NPZ (default: the embedded digits)")
    add("--load-weights", metavar="FILE", help="weights NPZ loaded after construction")
    add("--save-weights", metavar="FILE", help="save the weights after training")
    add("--save-initial-weights", metavar="FILE", help="save the weights before training")
    add("--save-dataset", metavar="FILE", help="save the dataset as loaded")
    add(
        "--seed",
        metavar="N",
        type=_int_at_least(0),
        help="random seed (default: drawn from OS entropy)",
    )
    add("--device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N (default auto)")
    add("--dtype", choices=["float32", "float64"], help="number type (default float32)")
    add("--no-shuffle", action="store_true", help="train in file order")
    add(
        "--threads",
        metavar="N",
        type=_int_at_least(1, MAX_THREADS),
        help=f"BLAS and element-wise threads (1 to {MAX_THREADS})",
    )
    add(
        "--fold-updates",
        action="store_true",
        help="compute each weight update inside its gradient GEMM (faster on the CPU; "
        "the layers' DW arrays are then not written)",
    )
    add("--debug", action="store_true", help="per-batch dump; tracebacks behind errors")
    add("--metrics", metavar="FILE", help="write one JSON line per epoch")
    add("--checkpoint", metavar="FILE", help="save the whole training state after every epoch")
    add("--resume", metavar="FILE", help="continue the run saved in a checkpoint")
    add(
        "--plot",
        metavar="FILE.png",
        help="plot loss and accuracy curves; the suffix picks the format (needs matplotlib)",
    )
    train.set_defaults(run=run_train, **(TRAIN_DEFAULTS if defaults else {}))


def _add_inspect(commands) -> None:
    from nerva_xp.inspect_npz import run_inspect

    inspect = commands.add_parser("inspect", help="list the arrays of an NPZ file")
    inspect.add_argument("file", metavar="FILE")
    inspect.add_argument("--shapes-only", action="store_true", help="print only names and shapes")
    inspect.set_defaults(run=run_inspect)


def _add_prepare_data(commands) -> None:
    prepare = commands.add_parser(
        "prepare-data", help="convert MNIST or CIFAR-10 to NPZ, or write the embedded digits"
    )
    prepare.add_argument("--dataset", required=True, choices=["mnist", "cifar10", "digits"])
    prepare.add_argument("--download", action="store_true", help="fetch missing source files")
    prepare.add_argument("--data-dir", default=".", help="folder of sources and outputs")
    prepare.set_defaults(run=_run_prepare_data)


def _run_prepare_data(args) -> int:
    from nerva_xp.atomic_files import accepts_new_files
    from nerva_xp.prepare_data import prepare_data

    if args.data_dir == "":  # not "." by accident (say, an unset shell variable)
        raise UsageError('--data-dir: "" names no folder; expected a folder name')
    folder = os.path.abspath(args.data_dir)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f'--data-dir: "{folder}" is not a folder')
    if not os.path.isdir(folder):
        raise UsageError(f'--data-dir: folder "{folder}" does not exist')
    if not accepts_new_files(folder):
        raise UsageError(f'--data-dir: folder "{folder}" is not writable')
    prepare_data(args.dataset, args.data_dir, args.download)
    return 0


def build_parser(prog: str = "nerva-xp", defaults: bool = True) -> argparse.ArgumentParser:
    """The parser; with ``defaults=False``, train options not on the command line stay unset."""
    parser = _Parser(prog=prog, description="Nerva multilayer perceptrons on NumPy or CuPy.")
    parser.add_argument("--version", action="version", version=f"nerva-xp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(commands, defaults)
    _add_inspect(commands)
    _add_prepare_data(commands)
    return parser


def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    one_line = message.replace("\r", "\\r").replace("\n", "\\n")  # newlines from user input
    print(f"nerva-xp: error: {one_line}", file=sys.stderr)
    return code


class _Terminated(BaseException):
    """SIGTERM, raised so that atomic writes in progress remove their temporary files."""


def _raise_terminated(signum, frame):
    raise _Terminated


def main(argv: list[str] | None = None, prog: str = "nerva-xp") -> int:
    """Run the command line; returns the exit code."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave SIGTERM alone
        previous = None
    try:
        return _run(sys.argv[1:] if argv is None else argv, prog)
    except _Terminated:
        print("nerva-xp: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupted() -> int:
    print("nerva-xp: interrupted", file=sys.stderr)
    return 130


def _run(argv: list[str], prog: str) -> int:
    debug = "--debug" in argv
    try:
        from nerva_xp.device import DeviceError
        from nerva_xp.npz import DataError
        from nerva_xp.spec_strings import SpecError
        from nerva_xp.training import TrainingError
    except KeyboardInterrupt:
        return _interrupted()
    try:
        args = build_parser(prog).parse_args(argv)
        if args.command == "train":  # which options were given matters to --resume
            args.given = sorted(vars(build_parser(prog, defaults=False).parse_args(argv)))
        return args.run(args)
    except (UsageError, SpecError, DeviceError) as error:
        return _fail(str(error), 2, debug)
    except (DataError, TrainingError) as error:
        return _fail(str(error), 1, debug)
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        return _fail(f"{where}{error.strerror or error}", 1, debug)
    except MemoryError as error:
        return _fail(str(error) or "out of memory", 1, debug)
    except KeyboardInterrupt:
        return _interrupted()


def entry_point() -> None:
    """The ``nerva-xp`` console script."""
    sys.exit(main())
