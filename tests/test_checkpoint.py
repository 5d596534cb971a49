"""Checkpoints (spec §14.1): --checkpoint saves the whole state after every epoch, and --resume
continues so that an interrupted-and-resumed run ends with exactly the uninterrupted weights."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from nerva_xp import host_blas
from nerva_xp.npz import load_dict_from_npz

NETWORK = [
    "--layers=SReLU;BatchNormalization;ReLU;Linear",
    "--layer-sizes=6;16;8;3",
    "--optimizers=Momentum(0.9);Nesterov(0.8);GradientDescent;Momentum(0.5)",
    "--learning-rate=TimeBased(0.05,0.1)",
    "--loss=SoftmaxCrossEntropy",
    "--batch-size=16",
    "--seed=11",
]


def nerva_xp(*args, cwd) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nerva_xp", "train", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def work(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 6)).astype(np.float32)
    T = np.argmax(X[:, :3], axis=1)
    np.savez(tmp_path / "data.npz", Xtrain=X[:90], Ttrain=T[:90], Xtest=X[90:], Ttest=T[90:])
    return tmp_path


def run(work, *args):
    result = nerva_xp("--load-dataset=data.npz", *NETWORK, *args, cwd=work)
    assert result.returncode == 0, result.stderr
    return result


def test_resumed_run_ends_with_exactly_the_uninterrupted_weights(work):
    run(work, "--epochs=5", "--save-weights=full.npz", "--metrics=full.jsonl")
    run(work, "--epochs=2", "--checkpoint=ck.npz")
    resumed = run(work, "--resume=ck.npz", "--epochs=5", "--save-weights=resumed.npz",
                  "--metrics=resumed.jsonl")  # fmt: skip
    assert "Resuming from checkpoint ck.npz after epoch 2" in resumed.stdout
    full, again = load_dict_from_npz(work / "full.npz"), load_dict_from_npz(work / "resumed.npz")
    assert list(full) == list(again)
    for key in full:
        np.testing.assert_array_equal(again[key], full[key])
    rows = [json.loads(line) for line in (work / "resumed.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (work / "full.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert [r["loss"] for r in rows] == [r["loss"] for r in expected]


def test_resumed_run_is_exact_where_delta_is_kept_scaled(work):
    """Weights of over 16384 elements take the BLAS path, where Δ is kept as a scale times an
    array (inplace.ScaledArray); the scale is multiplied in at each epoch's end."""
    if not host_blas.available():
        pytest.skip("NumPy's bundled OpenBLAS was not found; Δ is never scaled")
    network = [
        "--load-dataset=data.npz", "--layers=ReLU;ReLU;Linear", "--layer-sizes=6;2800;8;3",
        "--optimizers=Momentum(0.9);Nesterov(0.8);Momentum(0.5)", "--learning-rate=Constant(0.01)",
        "--loss=SoftmaxCrossEntropy", "--batch-size=16", "--seed=11",
    ]  # fmt: skip
    for args in (
        ["--epochs=4", "--save-weights=full.npz"],
        ["--epochs=2", "--checkpoint=ck.npz"],
        ["--resume=ck.npz", "--epochs=4", "--save-weights=resumed.npz"],
    ):
        result = nerva_xp(*network, *args, cwd=work)
        assert result.returncode == 0, result.stderr
    full, again = load_dict_from_npz(work / "full.npz"), load_dict_from_npz(work / "resumed.npz")
    for key in full:
        np.testing.assert_array_equal(again[key], full[key])


def test_checkpoint_holds_the_whole_state_without_pickles(work):
    run(work, "--epochs=2", "--checkpoint=ck")
    data = load_dict_from_npz(work / "ck.npz")
    assert int(data["epoch"]) == 2 and int(data["format"]) == 1
    for key in ("W1", "b1", "srelu1", "gamma1", "beta1", "W2", "b2", "W3", "b3"):
        assert key in data
    # SReLU W, b, x (Momentum): opt1-3; BN beta, gamma (Nesterov): opt4-5; ReLU W, b (plain
    # gradient descent keeps no buffer): opt6-7; Linear W, b (Momentum): opt8-9
    buffers = [k for k in data if re.fullmatch(r"opt\d+_\w+", k)]
    assert buffers == [f"opt{k}_delta_x" for k in (1, 2, 3, 4, 5, 8, 9)]
    assert str(data["scheduler"][()]) == "TimeBased(lr=0.05, decay=0.1)"
    assert json.loads(str(data["rng_state"][()]))["bit_generator"] == "PCG64"
    assert json.loads(str(data["options"][()]))["seed"] == 11
    assert all(value.dtype != object for value in data.values())


def test_resume_refuses_another_network(work):
    run(work, "--epochs=1", "--checkpoint=ck.npz")
    before = (work / "ck.npz").read_bytes()
    result = nerva_xp("--resume=ck.npz", "--layers=ReLU;Linear", cwd=work)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("nerva-xp: error: --resume: --layers is 'ReLU;Linear' here")
    assert (work / "ck.npz").read_bytes() == before


def test_an_option_given_at_its_default_value_is_still_given(work):
    """--epochs=100 (the default) on resume means 100 epochs, not the stored 2; --batch-size=100
    (the default) is refused when the checkpoint's run used 16."""
    run(work, "--epochs=2", "--checkpoint=ck.npz")
    resumed = nerva_xp("--resume=ck.npz", "--epochs=100", "--metrics=m.jsonl", cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    rows = [json.loads(line) for line in (work / "m.jsonl").read_text().splitlines()]
    assert rows[-1]["epoch"] == 100
    refused = nerva_xp("--resume=ck.npz", "--batch-size=100", cwd=work)
    assert refused.returncode == 2
    assert "--batch-size is 100 here but 16 in the checkpoint" in refused.stderr


def test_resume_works_from_another_folder_with_the_same_dataset(work):
    run(work, "--epochs=1", "--checkpoint=ck.npz")
    (work / "sub").mkdir()
    for extra in ([], ["--load-dataset=../data.npz"]):
        result = nerva_xp("--resume=../ck.npz", "--epochs=2", *extra, cwd=work / "sub")
        assert result.returncode == 0, result.stderr


def test_an_embedded_run_resumes_with_its_network_named_explicitly(work):
    result = nerva_xp("--epochs=1", "--seed=3", "--checkpoint=ck.npz", cwd=work)
    assert result.returncode == 0, result.stderr
    result = nerva_xp(
        "--resume=ck.npz", "--epochs=2", "--layers=ReLU;ReLU;Linear", "--layer-sizes=64;64;64;10",
        cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    refused = nerva_xp("--resume=ck.npz", "--layer-sizes=64;32;64;10", cwd=work)
    assert refused.returncode == 2 and "'64;64;64;10' in the checkpoint" in refused.stderr


def test_a_network_spelled_otherwise_is_the_same_network(work):
    """Options are compared as parsed: positional or named arguments, "," or ";" between sizes,
    spaces, and one optimizer for one per layer all mean the same."""
    run(work, "--epochs=1", "--checkpoint=ck.npz")
    respelled = [
        "--layers=SReLU; BatchNormalization; ReLU; Linear",
        "--layer-sizes=6,16,8,3",
        "--optimizers=Momentum(mu=0.9);Nesterov(mu=0.8);GradientDescent;Momentum(0.50)",
        "--learning-rate=TimeBased(lr=0.05, decay=0.1)",
        "--loss=SoftmaxCrossEntropy()",
    ]
    result = nerva_xp("--resume=ck.npz", "--epochs=2", *respelled, cwd=work)
    assert result.returncode == 0, result.stderr
    for changed in ("--learning-rate=TimeBased(lr=0.05, decay=0.2)", "--layer-sizes=6,16,8,4"):
        refused = nerva_xp("--resume=ck.npz", "--epochs=2", changed, cwd=work)
        assert refused.returncode == 2 and "in the checkpoint" in refused.stderr


def test_one_optimizer_equals_that_optimizer_for_every_layer(work):
    network = [o for o in NETWORK if not o.startswith("--optimizers")]
    first = nerva_xp("--load-dataset=data.npz", *network, "--optimizers=Momentum(0.9)",
                     "--epochs=1", "--checkpoint=ck.npz", cwd=work)  # fmt: skip
    assert first.returncode == 0, first.stderr
    every = "--optimizers=" + ";".join(["Momentum(mu=0.9)"] * 4)
    result = nerva_xp("--resume=ck.npz", "--epochs=2", every, cwd=work)
    assert result.returncode == 0, result.stderr
    refused = nerva_xp("--resume=ck.npz", "--optimizers=Momentum(0.8)", cwd=work)
    assert refused.returncode == 2 and "in the checkpoint" in refused.stderr


def test_resume_refuses_a_checkpoint_whose_arrays_do_not_fit(work):
    run(work, "--epochs=1", "--checkpoint=ck.npz")
    data = load_dict_from_npz(work / "ck.npz")
    data.pop("opt1_delta_x")
    np.savez(work / "other.npz", **data)
    result = nerva_xp("--resume=other.npz", cwd=work)
    assert (
        result.returncode == 1 and "is for another network: missing opt1_delta_x" in result.stderr
    )


def _with_options(**changes):
    def change(data):
        options = json.loads(str(data["options"][()]))
        data["options"] = np.array(json.dumps(options | changes))

    return change


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.update(options=np.array("[]")), "options: expected a JSON object"),
        (lambda d: d.update(options=np.array("{")), "damaged state"),
        (_with_options(layers=5), "option layers is 5; expected text"),
        (_with_options(batch_size=0), "option batch_size is 0; expected an integer >= 1"),
        (_with_options(seed="x"), "option seed is 'x'; expected an integer >= 0"),
        (_with_options(threads=10**30), "expected an integer >= 1 and <= 1024"),
        (_with_options(no_shuffle=1), "option no_shuffle is 1; expected true or false"),
        (lambda d: d.update(rng_state=np.array("{}")), "rng_state is not a PCG64 state"),
        (lambda d: d.update(rows=np.array("[[1, 2]]")), "expected epoch + 1 statistics rows"),
        (lambda d: d.update(epoch=np.array(-1)), "expected epoch + 1 statistics rows"),
        (lambda d: d.update(epoch=np.array(1.5)), "epoch is array(1.5); expected an integer"),
        (lambda d: d.update(format=np.array("1")), "expected an integer"),
    ],
)
def test_a_damaged_checkpoint_is_one_line_exit_1(work, change, problem):
    run(work, "--epochs=1", "--checkpoint=ck.npz")
    data = load_dict_from_npz(work / "ck.npz")
    change(data)
    np.savez(work / "bad.npz", **data)
    result = nerva_xp("--resume=bad.npz", cwd=work)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith('nerva-xp: error: cannot read checkpoint file "bad.npz": ')
    assert problem in result.stderr


def test_checkpoint_may_not_overwrite_the_checkpoint_being_resumed(work):
    run(work, "--epochs=1", "--checkpoint=ck.npz")
    result = nerva_xp("--resume=ck.npz", "--checkpoint=ck.npz", cwd=work)
    assert result.returncode == 2 and "--checkpoint" in result.stderr


def test_damaged_checkpoint_is_a_data_error(work):
    (work / "bad.npz").write_bytes(b"not a checkpoint")
    result = nerva_xp("--resume=bad.npz", cwd=work)
    assert result.returncode == 1
    assert result.stderr.startswith('nerva-xp: error: cannot read checkpoint file "bad.npz"')


def test_a_resumed_run_keeps_the_stored_rows_with_their_times(work):
    """The resumed run's first row restates the checkpoint's epoch with no training time; the
    metrics and the checkpoint keep the stored row (its time was replaced by 0.0)."""
    run(work, "--epochs=2", "--checkpoint=ck.npz", "--metrics=first.jsonl")
    run(work, "--resume=ck.npz", "--epochs=3", "--checkpoint=ck2.npz", "--metrics=resumed.jsonl")
    first = (work / "first.jsonl").read_text().splitlines()
    resumed = (work / "resumed.jsonl").read_text().splitlines()
    assert resumed[:3] == first and json.loads(first[2])["seconds"] > 0
    assert [json.loads(line)["epoch"] for line in resumed] == [0, 1, 2, 3]
    run(work, "--resume=ck2.npz", "--epochs=3", "--metrics=again.jsonl")  # nothing to train
    assert (work / "again.jsonl").read_text().splitlines() == resumed


def test_resume_refuses_fewer_epochs_than_the_checkpoint_holds(work):
    run(work, "--epochs=3", "--checkpoint=ck.npz")
    result = nerva_xp("--resume=ck.npz", "--epochs=1", "--save-weights=w.npz", cwd=work)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--epochs: 1 is below the 3 epochs of the checkpoint" in result.stderr
    assert not (work / "w.npz").exists()
    assert run(work, "--resume=ck.npz", "--epochs=3").returncode == 0  # restates epoch 3
