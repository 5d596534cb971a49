"""The command line (spec §13, §14), driven through the real console script in a subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nerva_xp.npz import load_dict_from_npz

ROOT = Path(__file__).resolve().parents[1]
NERVA_XP = shutil.which("nerva-xp") or ""
ROW = re.compile(r"^ {0,4}\d+ \| (?: *-?\d+\.\d{6} \| ){4} *\d+\.\d{6}$")


def nerva_xp(*args, cwd=None) -> subprocess.CompletedProcess:
    command = [NERVA_XP] if NERVA_XP else [sys.executable, "-m", "nerva_xp"]
    return subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def make_dataset(path: Path, n=60, d=5, k=3, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    X = rng.random((n + n // 2, d)).astype(np.float32)
    T = np.argmax(X[:, :k], axis=1).astype(np.int64)
    np.savez(path, Xtrain=X[:n], Ttrain=T[:n], Xtest=X[n:], Ttest=T[n:])
    return path


def small_run(dataset, *extra):
    return nerva_xp(
        "train", "--layers=ReLU;Linear", "--layer-sizes=5;8;3", "--learning-rate=Constant(0.1)",
        "--loss=SoftmaxCrossEntropy", "--batch-size=16", f"--load-dataset={dataset}", *extra,
    )  # fmt: skip


def table_rows(stdout: str) -> list[list[str]]:
    return [line.split(" | ") for line in stdout.splitlines() if ROW.match(line)]


def assert_one_line_error(result, code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("nerva-xp: error: ") and text in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "data.npz")


def test_training_output_line_by_line(dataset):
    result = small_run(dataset, "--epochs=2", "--seed=1234")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(
        r"Device: cpu \(numpy; cuda unavailable: .+\), dtype: float32, seed: 1234", lines[0]
    )
    assert lines[1] == f"Loading dataset from file {dataset}"
    assert lines[2] == lines[4] == lines[8] == "-" * 80
    assert (
        lines[3]
        == "epoch |           lr |         loss |    train_acc |     test_acc |     time (s)"
    )
    assert all(ROW.match(line) and len(line) == 80 for line in lines[5:8])
    assert [line[:5] for line in lines[5:8]] == ["    0", "    1", "    2"]
    assert lines[5].endswith("|     0.000000")
    assert re.fullmatch(r"Total training time: \d+\.\d{6} s", lines[9])
    assert len(lines) == 10 and result.stderr == ""


def test_embedded_default_dataset_and_architecture():
    result = nerva_xp("train", "--epochs=1", "--seed=3", "--device=cpu")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Device: cpu (numpy), dtype: float32, seed: 3"
    assert lines[1] == (
        "Loading embedded dataset digits (1500 train, 297 test, 64 features, 10 classes)"
    )
    assert len(table_rows(result.stdout)) == 2


def test_same_seed_gives_identical_runs(dataset):
    first = small_run(dataset, "--epochs=3", "--seed=7", "--optimizers=Momentum(0.9)")
    second = small_run(dataset, "--epochs=3", "--seed=7", "--optimizers=Momentum(0.9)")
    other = small_run(dataset, "--epochs=3", "--seed=8", "--optimizers=Momentum(0.9)")
    assert [row[:5] for row in table_rows(first.stdout)] == [
        row[:5] for row in table_rows(second.stdout)
    ]
    assert table_rows(first.stdout)[1][:5] != table_rows(other.stdout)[1][:5]


def test_save_weights_then_load_weights_reproduces_the_outputs(dataset, tmp_path):
    trained = small_run(dataset, "--epochs=2", "--seed=1", f"--save-weights={tmp_path / 'w'}")
    assert trained.stdout.splitlines()[-1] == f"Saving weights and bias to {tmp_path / 'w.npz'}"
    loaded = small_run(dataset, "--epochs=0", "--seed=5", f"--load-weights={tmp_path / 'w.npz'}")
    assert f"Loading weights and bias from {tmp_path / 'w.npz'}" in loaded.stdout
    assert table_rows(loaded.stdout)[0][1:5] == table_rows(trained.stdout)[-1][1:5]


def test_save_initial_weights_are_the_weights_the_run_started_from(dataset, tmp_path):
    init, final = tmp_path / "init.npz", tmp_path / "final.npz"
    first = small_run(
        dataset, "--epochs=2", "--seed=3", "--no-shuffle", f"--save-initial-weights={init}",
        f"--save-weights={final}",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    again = tmp_path / "again.npz"
    second = small_run(
        dataset, "--epochs=2", "--seed=99", "--no-shuffle", f"--load-weights={init}",
        f"--save-weights={again}",
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    expected, actual = load_dict_from_npz(final), load_dict_from_npz(again)
    assert list(expected) == ["W1", "b1", "W2", "b2"]
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key])
    assert not np.array_equal(load_dict_from_npz(init)["W1"], expected["W1"])


def test_save_dataset_keeps_the_data(dataset, tmp_path):
    result = small_run(dataset, "--epochs=0", "--dtype=float64", f"--save-dataset={tmp_path / 'd'}")
    assert f"Saving dataset to {tmp_path / 'd.npz'}" in result.stdout
    saved, source = load_dict_from_npz(tmp_path / "d.npz"), load_dict_from_npz(dataset)
    assert saved["Xtrain"].dtype == np.float64 and saved["Ttrain"].dtype == np.int64
    np.testing.assert_array_equal(saved["Xtest"], source["Xtest"])


def test_metrics_and_plot_files(dataset, tmp_path):
    result = small_run(
        dataset, "--epochs=3", f"--metrics={tmp_path / 'm.jsonl'}", f"--plot={tmp_path / 'p.png'}"
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2, 3]
    assert set(records[0]) == {"epoch", "lr", "loss", "train_acc", "test_acc", "seconds"}
    rows = table_rows(result.stdout)
    assert [f"{r['loss']:.6f}" for r in records] == [row[2].strip() for row in rows]
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("name", "magic"),
    [("p.pdf", b"%PDF"), ("p.SVG", b"<?xml"), ("curves", b"\x89PNG\r\n\x1a\n")],
)
def test_the_plot_format_follows_the_suffix(dataset, tmp_path, name, magic):
    pytest.importorskip("matplotlib", reason="matplotlib (the plot and test extras) is needed")
    result = small_run(dataset, "--epochs=1", f"--plot={tmp_path / name}")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / name).read_bytes().startswith(magic)


def test_a_plot_suffix_matplotlib_cannot_write_is_refused_before_training(dataset, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the plot and test extras) is needed")
    result = small_run(dataset, "--epochs=1", f"--plot={tmp_path / 'p.docx'}")
    assert_one_line_error(result, 2, '--plot: ".docx" is not an image format matplotlib writes')
    assert ".pdf" in result.stderr and ".pgf" not in result.stderr
    assert result.stdout == "" and list(tmp_path.iterdir()) == [dataset]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_folder_that_refuses_new_files_is_a_usage_error_even_for_root(dataset):
    """/proc passes os.access(W_OK) for root but takes no new file: refused before training."""
    result = small_run(dataset, "--epochs=1", "--save-weights=/proc/w.npz")
    assert_one_line_error(result, 2, '--save-weights: folder "/proc" is not writable')
    assert result.stdout == ""


def test_the_test_suites_strict_device_is_not_a_training_device(dataset):
    result = small_run(dataset, "--epochs=1", "--device=strict")
    assert_one_line_error(result, 2, '--device: unknown device "strict"; expected auto, cpu')
    assert result.stdout == ""


def test_srelu_values_beyond_float32_need_float64(dataset):
    layers = ["--layers=SReLU(al=1e39);Linear", "--epochs=0"]
    refused = small_run(dataset, *layers)
    assert_one_line_error(refused, 2, '--layers: invalid layer "SReLU(al=1e39)": parameter al')
    assert refused.stdout == ""
    accepted = small_run(dataset, *layers, "--dtype=float64")
    assert accepted.returncode == 0, accepted.stderr


def test_manual_cifar10_command_line_runs_as_written(tmp_path):
    dataset = make_dataset(tmp_path / "cifar10-flattened.npz", n=200, d=3072, k=10)
    result = nerva_xp(
        "train",
        "--layers=ReLU;ReLU;Linear",
        "--layer-sizes=3072;1024;512;10",
        "--layer-weights=XavierNormal;XavierNormal;XavierNormal",
        "--optimizers=Momentum(0.9);Momentum(0.9);Momentum(0.9)",
        "--batch-size=100",
        "--epochs=5",
        "--loss=SoftmaxCrossEntropy",
        "--learning-rate=Constant(0.01)",
        f"--load-dataset={dataset}",
    )
    assert result.returncode == 0, result.stderr
    assert len(table_rows(result.stdout)) == 6


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--device=cuda"], "--device: cuda is unavailable: "),
        (["--device=tpu"], '--device: unknown device "tpu"'),
        (["--epochs=-1"], '--epochs: expected an integer >= 0, got "-1"'),
        (["--batch-size=zero"], '--batch-size: expected an integer >= 1, got "zero"'),
        (["--epochs=1_0"], '--epochs: expected an integer >= 0, got "1_0"'),
        (["--seed=\u0663"], '--seed: expected an integer >= 0, got "\u0663"'),
        (["--layers=ReLU;Relu"], '--layers: invalid layer "Relu": unknown name "Relu" (did you'),
        (["--optimizers=Momentum"], '--optimizers: invalid optimizer "Momentum": missing'),
        (["--optimizers=GradientDescent;GradientDescent"], "--optimizers: expected 1 or 3"),
        (["--layer-sizes=64;10"], "--layer-sizes: expected 4 entries"),
        (
            ["--layer-sizes=64;64;\u00b2;10"],
            '--layer-sizes: expected positive integers below 10^18, got "\u00b2"',
        ),
        (["--layer-sizes=64;64;\u0663;10"], "--layer-sizes: expected positive integers"),
        (["--layer-sizes=64;64;9999999999999999999;10"], "--layer-sizes: expected positive"),
        (
            ["--layer-sizes=64;64;" + "9" * 5000 + ";10"],
            "--layer-sizes: expected positive integers",
        ),
        (["--threads=99999999999999999999"], "--threads: expected an integer in [1, 1024]"),
        (["--layers=ReLU;;Linear"], "--layers: item 2 of"),
        (["--learning-rate=StepBased(1,0.5,0)"], "--learning-rate: invalid learning rate"),
        (["--loss=MSE"], '--loss: invalid loss function "MSE": unknown name'),
        (["--dtype=float16"], "--dtype: invalid choice"),
        (["--load-dataset=x.npz"], "--layers: required with --load-dataset"),
        (["--save-weights=missing/w.npz"], "--save-weights: folder"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, args, text):
    result = nerva_xp("train", *args, cwd=tmp_path)
    assert_one_line_error(result, 2, text)
    assert list(tmp_path.iterdir()) == []


def test_output_equal_to_an_input_is_refused(dataset):
    before = dataset.read_bytes()
    result = small_run(dataset, f"--save-dataset={dataset}")
    assert_one_line_error(result, 2, "is an input of this run")
    assert dataset.read_bytes() == before


@pytest.mark.parametrize(
    ("first", "second"),
    [("--checkpoint=same.npz", "--save-weights=same.npz"), ("--metrics=m.npz", "--save-weights=m")],
)
def test_two_outputs_on_one_file_are_refused(tmp_path, first, second):
    result = nerva_xp("train", "--epochs=1", first, second, cwd=tmp_path)
    assert_one_line_error(result, 2, "is also the file of")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        ("--save-weights=", "names no file"),
        ("--metrics=", "names no file"),
        ("--save-weights=sub/", "names no file"),
        ("--metrics=" + "m" * 300, "the file name is longer than"),
    ],
)
def test_output_names_that_name_no_file_are_refused(tmp_path, option, problem):
    (tmp_path / "sub").mkdir()
    result = nerva_xp("train", "--epochs=1", option, cwd=tmp_path)
    assert_one_line_error(result, 2, problem)
    assert [p.name for p in tmp_path.iterdir()] == ["sub"] and not any((tmp_path / "sub").iterdir())


def test_an_output_that_is_a_link_writes_the_link_target(tmp_path):
    (tmp_path / "real.npz").write_bytes(b"old")
    (tmp_path / "link.npz").symlink_to("real.npz")
    result = nerva_xp("train", "--epochs=1", "--save-weights=link.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "link.npz").is_symlink()
    assert "W1" in load_dict_from_npz(tmp_path / "real.npz")


def test_messages_stay_on_one_line_whatever_the_input(tmp_path):
    result = nerva_xp("train", "--device=cpu\n", cwd=tmp_path)
    assert_one_line_error(result, 2, '--device: unknown device "cpu\\n"')
    result = nerva_xp("train", "--device=cuda:\u00b2", cwd=tmp_path)
    assert_one_line_error(result, 2, "--device: unknown device")


def test_an_output_linked_into_a_missing_folder_is_refused_before_training(tmp_path):
    (tmp_path / "out.npz").symlink_to("nodir/w.npz")
    result = nerva_xp("train", "--epochs=1", "--save-weights=out.npz", cwd=tmp_path)
    assert_one_line_error(result, 2, "--save-weights: folder")
    assert "Device:" not in result.stdout


def test_a_broken_matplotlib_is_a_usage_error(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the plot and test extras) is needed")
    env = dict(os.environ, MPLBACKEND="no-such-backend")
    command = [*([NERVA_XP] if NERVA_XP else [sys.executable, "-m", "nerva_xp"])]
    result = subprocess.run(
        [*command, "train", "--epochs=1", "--plot=p.png"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert_one_line_error(result, 2, "--plot: matplotlib does not start")
    assert list(tmp_path.iterdir()) == []


def test_metrics_write_null_where_a_value_is_not_finite(tmp_path, dataset):
    """CrossEntropy on logits: log of negative outputs gives a NaN loss, the gradient stays
    finite; JSON has no NaN, so the line holds null."""
    metrics = f"--metrics={tmp_path}/m"  # seeded: some seeds make the first gradient non-finite
    result = small_run(dataset, "--loss=CrossEntropy", "--epochs=1", "--seed=1", metrics)
    assert result.returncode == 0, result.stderr
    rows = [
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in the metrics"))
        for line in (tmp_path / "m").read_text().splitlines()
    ]
    assert rows[0]["loss"] is None


def test_sigterm_stops_cleanly_and_leaves_no_temporary_file(tmp_path):
    command = [*([NERVA_XP] if NERVA_XP else [sys.executable, "-m", "nerva_xp"])]
    args = ["train", "--epochs=100000", "--layer-sizes=64;256;256;10", "--checkpoint=ck.npz"]
    process = subprocess.Popen([*command, *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / "ck.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and stderr == "nerva-xp: terminated\n"
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]
    load_dict_from_npz(tmp_path / "ck.npz")  # complete


def test_a_fifo_is_not_read(tmp_path):
    fifo = tmp_path / "data.npz"
    os.mkfifo(fifo)
    assert_one_line_error(small_run(fifo), 1, "not a regular file")
    assert_one_line_error(nerva_xp("inspect", fifo), 1, "not a regular file")


def test_the_embedded_dataset_is_an_input_too(tmp_path):
    from nerva_xp.datasets import embedded_dataset_path

    embedded = Path(embedded_dataset_path())
    before = embedded.read_bytes()
    try:
        result = nerva_xp("train", "--epochs=1", f"--save-dataset={embedded}", cwd=tmp_path)
        assert_one_line_error(result, 2, "is an input of this run")
        assert embedded.read_bytes() == before
    finally:  # should the guard ever fail, the package's dataset is put back
        if embedded.read_bytes() != before:
            embedded.write_bytes(before)


def test_data_errors_exit_1(tmp_path):
    result = small_run(tmp_path / "none.npz")
    assert_one_line_error(result, 1, f'cannot read dataset file "{tmp_path / "none.npz"}"')
    wide = make_dataset(tmp_path / "wide.npz", d=7)
    assert_one_line_error(small_run(wide), 1, "has 7 features but --layer-sizes starts with 5")


@pytest.mark.parametrize(
    ("scheduler", "epoch"),
    [
        ("TimeBased(0.1,-1)", 1),  # 1 + decay·1 = 0
        ("Exponential(0.1,-1000)", 1),  # e^1000 overflows
        ("StepBased(0.1,0.5,5e-324)", 0),  # ⌊1 / 5e-324⌋ is infinite
        ("MultiStepLR(0.1;0,0,0;1e300)", 0),  # 1e900
    ],
)
def test_learning_rates_without_a_finite_value_stop_with_one_line(
    tmp_path, dataset, scheduler, epoch
):
    result = small_run(dataset, f"--learning-rate={scheduler}", f"--save-weights={tmp_path}/w")
    assert_one_line_error(result, 1, "learning rate: ")
    assert f"has no finite value at epoch {epoch}" in result.stderr
    assert not (tmp_path / "w.npz").exists()


@pytest.mark.parametrize(
    "initializer", ["Normal(0,1e308)", "Normal(0,1e39)", "Uniform(1e38,3.5e38)"]
)
def test_initial_weights_beyond_the_dtype_are_refused_before_anything_is_written(
    tmp_path, dataset, initializer
):
    """Drawn in float64 and rounded to float32 they became ±inf: the run trained, failed, and
    --save-initial-weights had written a file that --load-weights refuses."""
    saved = tmp_path / "init.npz"
    result = small_run(dataset, f"--layer-weights={initializer}", f"--save-initial-weights={saved}")
    message = f"--layer-weights: {initializer} draws weights beyond the float32 range for linear"
    assert_one_line_error(result, 2, message)
    assert not saved.exists()
    in_float64 = small_run(dataset, f"--layer-weights={initializer}", "--dtype=float64",
                           "--epochs=0", "--seed=1")  # fmt: skip
    if "1e308" in initializer:  # beyond float64 too
        assert_one_line_error(in_float64, 2, "beyond the float64 range for linear layer 1")
    else:
        assert in_float64.returncode == 0, in_float64.stderr


def test_debug_shows_batches_and_the_traceback_behind_errors(dataset):
    result = small_run(dataset, "--epochs=1", "--batch-size=60", "--debug")
    assert "epoch: 0 batch: 0" in result.stdout and "W1 (8x5)" in result.stdout
    assert "DY (60x3)" in result.stdout
    failed = nerva_xp("train", "--device=cuda", "--debug")
    assert "Traceback" in failed.stderr and failed.returncode == 2


def test_inspect(dataset):
    result = nerva_xp("inspect", dataset, "--shapes-only")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Xtrain   (60x5        )  inf-norm = 0.9")
    assert lines[1] == "Ttrain   (60          )  inf-norm = 2.00000000"
    assert len(lines) == 4
    full = nerva_xp("inspect", dataset).stdout
    assert "[[" in full and full.endswith("\n\n")


def test_prepare_data_digits_and_skip_existing(tmp_path):
    result = nerva_xp("prepare-data", "--dataset=digits", f"--data-dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert load_dict_from_npz(tmp_path / "digits.npz")["Xtrain"].shape == (1500, 64)
    again = nerva_xp("prepare-data", "--dataset=digits", f"--data-dir={tmp_path}")
    assert again.stdout == f"{tmp_path / 'digits.npz'} already exists, skipping\n"
    assert again.returncode == 0


def test_prepare_data_mnist_from_a_fabricated_file(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "mnist.npz",
        x_train=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        y_train=np.arange(6, dtype=np.uint8),
        x_test=rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        y_test=np.arange(2, dtype=np.uint8),
    )
    result = nerva_xp("prepare-data", "--dataset=mnist", f"--data-dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    data = load_dict_from_npz(tmp_path / "mnist-flattened.npz")
    assert data["Xtrain"].shape == (6, 784) and data["Xtrain"].dtype == np.float32
    assert data["Ttest"].dtype == np.uint8


def test_prepare_data_needs_an_existing_data_dir(tmp_path):
    result = nerva_xp("prepare-data", "--dataset=digits", f"--data-dir={tmp_path / 'none'}")
    assert_one_line_error(result, 2, f'--data-dir: folder "{tmp_path / "none"}" does not exist')
    assert result.stdout == "" and list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("")
    result = nerva_xp("prepare-data", "--dataset=digits", f"--data-dir={tmp_path / 'file'}")
    assert_one_line_error(result, 2, f'--data-dir: "{tmp_path / "file"}" is not a folder')
    result = nerva_xp("prepare-data", "--dataset=digits", "--data-dir=", cwd=tmp_path)
    assert_one_line_error(result, 2, '--data-dir: "" names no folder; expected a folder name')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_inspect_norms_of_integer_bool_and_text_arrays(tmp_path):
    path = tmp_path / "ints.npz"
    texts = np.array(["a", "bc"])  # checkpoints hold text arrays
    np.savez(
        path, a=np.array([-128, 3], np.int8), b=np.array([-(2**63)]), c=np.ones(2, bool), d=texts
    )
    result = nerva_xp("inspect", path, "--shapes-only")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("inf-norm = 128.00000000")
    assert lines[1].endswith("inf-norm = 9223372036854775808.00000000")
    assert lines[2].endswith("inf-norm = n/a") and lines[3].endswith("inf-norm = n/a")


def test_prepare_data_missing_source_suggests_download(tmp_path):
    result = nerva_xp("prepare-data", "--dataset=cifar10", f"--data-dir={tmp_path}")
    assert_one_line_error(result, 1, "--download")


def test_version_and_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "nerva_xp", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.startswith("nerva-xp ")


@pytest.mark.parametrize("tool", ["mlp.py", "inspect_npz.py", "prepare_data.py"])
def test_tools_wrappers(tool):
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / tool), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.startswith(f"usage: {tool}")


def test_tools_mlp_trains(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "mlp.py"), "--epochs=1", "--device=cpu"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0 and len(table_rows(result.stdout)) == 2


def test_plot_without_matplotlib_is_a_usage_error(dataset, tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None; from nerva_xp.cli import main; "
        f"sys.exit(main(['train', '--load-dataset={dataset}', '--layers=Linear', "
        f"'--layer-sizes=5;3', '--learning-rate=Constant(0.1)', '--loss=SquaredError', "
        f"'--plot={tmp_path / 'p.png'}']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert_one_line_error(result, 2, "--plot: needs matplotlib")
    assert not (tmp_path / "p.png").exists() and result.stdout == ""


def test_non_finite_gradient_stops_the_run_with_exit_1(dataset, tmp_path):
    result = nerva_xp(
        "train", "--layers=Linear", "--layer-sizes=5;3", "--learning-rate=Constant(1e30)",
        "--loss=SquaredError", f"--load-dataset={dataset}", "--epochs=5",
        f"--save-weights={tmp_path / 'w.npz'}", f"--metrics={tmp_path / 'm.jsonl'}",
    )  # fmt: skip
    assert_one_line_error(result, 1, "training: non-finite loss gradient in epoch ")
    assert re.search(r"in epoch \d+ \(first at batch \d+\)$", result.stderr.strip())
    assert not (tmp_path / "w.npz").exists() and not (tmp_path / "m.jsonl").exists()


def test_threads_are_reported_in_the_device_line():
    result = nerva_xp("train", "--epochs=0", "--device=cpu", "--threads=1", "--seed=2")
    assert (
        result.stdout.splitlines()[0] == "Device: cpu (numpy), dtype: float32, seed: 2, threads: 1"
    )


def test_a_closed_pipe_stops_quietly():
    command = [NERVA_XP] if NERVA_XP else [sys.executable, "-m", "nerva_xp"]
    result = subprocess.run(
        " ".join([*command, "train", "--epochs=3", "--device=cpu", "|", "head", "-1"]),
        shell=True, capture_output=True, text=True,
    )  # fmt: skip
    assert result.stdout.startswith("Device: ") and "Traceback" not in result.stderr
    assert "error" not in result.stderr


@pytest.mark.parametrize("fold", [False, True])
def test_fold_updates_folds_every_linear_layer_and_trains_alike(dataset, monkeypatch, fold):
    from nerva_xp.cli import main
    from nerva_xp.layers import LinearLayer

    flags = []
    real_optimize = LinearLayer.optimize

    def recording_optimize(layer, eta):
        flags.append(layer.fold_weight_update)
        real_optimize(layer, eta)

    monkeypatch.setattr(LinearLayer, "optimize", recording_optimize)
    extra = ["--fold-updates"] if fold else []
    options = ["--optimizers=Momentum(0.9)", "--epochs=2", "--seed=4"]
    args = ["train", "--layers=ReLU;Linear", "--layer-sizes=5;8;3", "--batch-size=16",
            "--learning-rate=Constant(0.1)", "--loss=SoftmaxCrossEntropy",
            f"--load-dataset={dataset}", *options, *extra]  # fmt: skip
    assert main(args) == 0
    assert flags and set(flags) == {fold}
    rows = table_rows(small_run(dataset, *options, *extra).stdout)
    assert len(rows) == 3
    assert [row[:-1] for row in rows] == [
        row[:-1] for row in table_rows(small_run(dataset, *options).stdout)
    ]


@pytest.mark.parametrize("option", ["--load-dataset", "--load-weights", "--resume"])
def test_an_empty_input_name_is_a_usage_error_not_the_option_left_out(tmp_path, option):
    """An empty value (say, an unset shell variable) trained from scratch without a word."""
    result = nerva_xp("train", "--epochs=1", f"{option}=", "--save-weights=w.npz", cwd=tmp_path)
    assert_one_line_error(result, 2, f'{option}: "" names no file; expected a file name')
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "option, message",
    [
        ("--loss=Foo", '--loss: invalid loss function "Foo"'),
        ("--layers=ReLU;Foo", '--layers: invalid layer "Foo"'),
        (
            "--save-weights=/nonexistent-folder/w.npz",
            '--save-weights: folder "/nonexistent-folder"',
        ),
    ],
)
def test_resume_checks_the_options_given_before_reading_the_checkpoint(tmp_path, option, message):
    """Spec §14.1 step 1: a usage error stops the run before any file is read, so it is not
    hidden behind the missing checkpoint's data error (exit 1)."""
    result = nerva_xp("train", "--resume=missing.npz", option, cwd=tmp_path)
    assert_one_line_error(result, 2, message)
