"""bench/epoch.py runs end to end (one round of one step), so its table never rots; CI runs this
with the benchmarks untimed (``pytest bench --benchmark-disable``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("epoch.py")


def test_epoch_script_prints_the_step_table(tmp_path):
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (a test extra)")
    command = [sys.executable, str(SCRIPT), "--shape", "mnist", "--steps", "1", "--rounds", "1"]
    command += ["--plot", str(tmp_path / "steps.png")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "steps.png").read_bytes().startswith(b"\x89PNG")
    rows = [line.split(" | ")[0] for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows[1:4] == [
        "| nerva-xp step",
        "| nerva-xp step, --fold-updates",
        "| bare GEMMs (floor)",
    ]
    assert "× the bare step loop" in result.stdout
    (phases,) = [line for line in result.stdout.splitlines() if "step by phase" in line]
    shares = re.findall(
        r"(feedforward|loss gradient|backpropagate|optimize) [0-9.]+ ms \((\d+)%\)", phases
    )
    assert [name for name, _ in shares] == [
        "feedforward",
        "loss gradient",
        "backpropagate",
        "optimize",
    ]
    assert 98 <= sum(int(share) for _, share in shares) <= 102  # rounded percentages of one sum


def _epoch_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("epoch_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pytorch_baseline_runs_on_the_benchmarked_device():
    from types import SimpleNamespace

    epoch = _epoch_module()
    args = SimpleNamespace(nerva_numpy_python="python-with-nerva-numpy")
    on_cpu = epoch.baselines(args, SimpleNamespace(name="cpu"))
    on_gpu = epoch.baselines(args, SimpleNamespace(name="cuda:0"))
    assert set(on_cpu) == {"PyTorch (plain)", "nerva-numpy 1.0"}
    assert set(on_gpu) == {"PyTorch (plain)"}  # nerva-numpy has no GPU backend
    X, T = epoch.make_data(epoch.SHAPES["mnist"])
    try:
        import torch

        gpu_usable = torch.cuda.is_available()
    except ImportError:
        gpu_usable = False
    if not gpu_usable:  # the child prints nothing and the row is left out
        assert epoch.torch_step(epoch.SHAPES["mnist"], X, T, None, "cuda:0") is None


def test_interleaved_rounds_alternate_the_order():
    from types import SimpleNamespace

    epoch = _epoch_module()
    calls = []
    functions = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    samples = epoch.interleaved_samples(functions, SimpleNamespace(synchronize=lambda: None), 1, 3)
    assert calls == list("abc") + list("abc") + list("cba") + list("abc")  # warm-up, 3 rounds
    assert all(len(values) == 3 for values in samples.values())


def test_a_baseline_child_takes_its_turn_in_every_round(monkeypatch):
    from types import SimpleNamespace

    epoch = _epoch_module()
    monkeypatch.setattr(epoch, "SETTLE", 0.0)
    calls = []

    class Remote:  # what interleaved_samples sees of a BaselineChild
        def measure(self, steps):
            calls.append(f"remote x{steps}")
            return 0.5

    functions = {"a": lambda: calls.append("a"), "remote": Remote()}
    samples = epoch.interleaved_samples(functions, SimpleNamespace(synchronize=lambda: None), 2, 2)
    assert calls == ["a"] + ["a", "a", "remote x2"] + ["remote x2", "a", "a"]  # no remote warm-up
    assert samples["remote"] == [0.5, 0.5]


def _child_args():
    from types import SimpleNamespace

    return SimpleNamespace(shape_now="mnist", threads=None, device_now="cpu")


def test_a_missing_baseline_child_is_left_out():
    import importlib.util

    if importlib.util.find_spec("nerva_numpy") is not None:
        pytest.skip("nerva-numpy is installed here, so its child would start")
    child = _epoch_module().BaselineChild("nerva-numpy", sys.executable, _child_args())
    assert not child.ready() and child.process.returncode == 1


def test_the_pytorch_child_serves_timed_rounds():
    pytest.importorskip("torch", reason="the PyTorch baseline needs torch (not a test extra)")
    child = _epoch_module().BaselineChild("torch", sys.executable, _child_args())
    try:
        assert child.ready()
        assert [child.measure(1) > 0, child.measure(2) > 0] == [True, True]
    finally:
        child.close()
    assert child.process.returncode == 0


def test_the_phase_split_is_seconds_per_step_of_each_phase():
    epoch = _epoch_module()
    costs = dict(zip(epoch.PHASES, (0.004, 0.001, 0.003, 0.002), strict=True))

    def phased_step(seconds):
        for phase, cost in costs.items():
            seconds[phase] += cost

    split = epoch.phase_split(phased_step, 5)
    assert list(split) == list(epoch.PHASES)
    assert split == pytest.approx(costs)


def test_an_unusable_device_is_one_usage_line():
    from nerva_xp.device import DeviceError, select_device

    try:
        select_device("cuda")
        pytest.skip("a CUDA device is usable here")
    except DeviceError:
        pass
    command = [sys.executable, str(SCRIPT), "--device", "cuda"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("epoch.py: error: --device=cuda: ")
    assert "Traceback" not in result.stderr
