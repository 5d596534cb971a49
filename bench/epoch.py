"""Training-step benchmark: nerva-xp against this machine's GEMM peak, the step's bare-GEMM floor
and plain PyTorch, all measured in one run on the same synthetic data.

    python bench/epoch.py                      # both MLP shapes, NumPy, BLAS default threads
    python bench/epoch.py --threads 2 --shape cifar --device cuda
    python bench/epoch.py --memory             # peak RSS of CIFAR-shaped `nerva-xp train` runs
    python bench/epoch.py --plot steps.png     # the step times as bar charts too

One step = feedforward, loss gradient, backpropagation, update: MLP (ReLU, ReLU, Linear), batch 100,
Momentum(0.9), SoftmaxCrossEntropy, float32; 6·N·Σ(in·out) floating-point operations. Rounds of the
implementations are interleaved (the baselines, PyTorch and nerva-numpy, in child processes that
take their turn each round) and medians reported, so machine drift hits them alike. The
PyTorch baseline runs on the benchmarked device: the CPU, or with --device cuda the same GPU (a CUDA
build of torch is needed; without one the row is left out).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# nerva_xp is imported inside the functions that use it: the baseline children (--baseline) run
# in interpreters that may have only PyTorch or nerva-numpy installed.

SHAPES = {"cifar": [3072, 1024, 512, 10], "mnist": [784, 1024, 512, 10]}
BATCH = 100
BATCHES = 10  # distinct batches the steps cycle through


def pairs(sizes: list[int]) -> list[tuple[int, int]]:
    """(input, output) size of each layer."""
    return list(zip(sizes[:-1], sizes[1:], strict=True))


def step_flops(sizes: list[int], batch: int) -> float:
    return 6.0 * batch * sum(a * b for a, b in pairs(sizes))


def gemm_peak(device, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of one large square float32 GEMM: this machine's practical peak."""
    rng = np.random.default_rng(0)
    A, B = (device.asarray(rng.random((n, n))) for _ in range(2))
    C = A @ B
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        C = A @ B
        device.synchronize()
        best = min(best, time.perf_counter() - start)
    del C
    return 2.0 * n**3 / best / 1e9


def make_data(sizes, device=None, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((BATCH * BATCHES, sizes[0])).astype(np.float32)
    T = rng.integers(0, sizes[-1], BATCH * BATCHES)
    return X, T


PHASES = ("feedforward", "loss gradient", "backpropagate", "optimize")


def nerva_step(sizes, device, X, T, fold_updates=False):
    """Closures: one nerva-xp training step per call, cycling through the batches; an epoch as
    `nerva-xp train` runs it; and the step timed by phase (``phased_step(seconds)`` adds each
    phase's seconds, the device synchronised after it, to ``seconds[phase]``)."""
    from nerva_xp.datasets import DataLoader
    from nerva_xp.loss_functions import parse_loss_function
    from nerva_xp.multilayer_perceptron import parse_multilayer_perceptron
    from nerva_xp.training import train_epoch

    M = parse_multilayer_perceptron(
        ["ReLU", "ReLU", "Linear"], sizes, ["Momentum(0.9)"], ["XavierNormal"],
        device=device, rng=np.random.default_rng(1),
    )  # fmt: skip
    M.set_weight_update_folding(fold_updates)
    loss = parse_loss_function("SoftmaxCrossEntropy")
    loader = DataLoader(
        X, T, BATCH, sizes[-1], shuffle=True, rng=np.random.default_rng(3), device=device
    )
    batches = list(loader.in_file_order())
    counter = iter(range(10**9))

    def step():
        Xb, Tb = batches[next(counter) % len(batches)]
        Y = M.feedforward(Xb)
        DY = loss.gradient(Y, Tb) / Xb.shape[0]
        M.backpropagate(Y, DY)
        M.optimize(0.001)

    def epoch_loop():  # what `nerva-xp train` runs per epoch: shuffled batches, finiteness check
        train_epoch(M, loss, 0.001, loader, epoch=0)

    def phased_step(seconds: dict[str, float]) -> None:
        Xb, Tb = batches[next(counter) % len(batches)]

        def timed(phase, function, *args):
            start = time.perf_counter()
            result = function(*args)
            device.synchronize()
            seconds[phase] += time.perf_counter() - start
            return result

        Y = timed("feedforward", M.feedforward, Xb)
        DY = timed("loss gradient", lambda: loss.gradient(Y, Tb) / Xb.shape[0])
        timed("backpropagate", M.backpropagate, Y, DY)
        timed("optimize", M.optimize, 0.001)

    return step, epoch_loop, phased_step


def gemm_floor_step(sizes, device, X):
    """The step's GEMMs only, without the first layer's DX (what any NumPy backend must do), in
    the forms nerva-xp computes them: Z = (W X^T)^T, DW = DZ^T X, DX = (W^T DZ^T)^T."""
    from nerva_xp import inplace

    rng = np.random.default_rng(2)
    Ws = [device.asarray(rng.standard_normal((k, d)) * 0.01) for d, k in pairs(sizes)]
    Xb = device.asarray(X[:BATCH])
    outs = [device.zeros(W.shape) for W in Ws]

    def step():
        activations = [Xb]
        for W in Ws:
            activations.append((W @ activations[-1].T).T)
        DZ = activations[-1]
        for i in range(len(Ws) - 1, -1, -1):
            inplace.matmul_into(DZ.T, activations[i], outs[i])
            if i > 0:
                DZ = (Ws[i].T @ DZ.T).T

    return step


def torch_step(sizes, X, T, threads, device="cpu"):
    """A plain PyTorch step on the same data on ``device`` (cpu or cuda:N), or None without torch
    (or without a GPU that torch can use)."""
    try:
        import torch
    except ImportError:
        return None
    if device != "cpu" and not torch.cuda.is_available():
        return None
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    layers = []
    for d, k in pairs(sizes):
        layers += [torch.nn.Linear(d, k), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1]).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    loss = torch.nn.CrossEntropyLoss(reduction="sum")
    Xt, Tt = torch.from_numpy(X).to(device), torch.from_numpy(T.astype(np.int64)).to(device)
    counter = iter(range(10**9))

    def step():
        k = next(counter) % BATCHES
        xb, tb = Xt[k * BATCH : (k + 1) * BATCH], Tt[k * BATCH : (k + 1) * BATCH]
        optimizer.zero_grad(set_to_none=False)
        (loss(model(xb), tb) / BATCH).backward()
        optimizer.step()

    return step


def interleaved_samples(
    functions: dict, device, steps: int, rounds: int, steps_per_call: dict | None = None
) -> dict[str, list[float]]:
    """Seconds per step of each function in each of ``rounds`` interleaved rounds of ``steps``
    steps (a function listed in ``steps_per_call`` runs that many steps per call; an object with
    ``measure(steps)``, a BaselineChild, times itself). Every other round runs the functions in
    reverse order, so none gains from always following another."""
    per_call = {name: (steps_per_call or {}).get(name, 1) for name in functions}
    local = {name: f for name, f in functions.items() if not hasattr(f, "measure")}
    for function in local.values():
        function()
        device.synchronize()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for round_ in range(rounds):
        order = list(functions.items())
        for name, function in order if round_ % 2 == 0 else reversed(order):
            if name not in local:  # a BaselineChild times its own steps
                samples[name].append(function.measure(steps))
                continue
            calls = max(1, steps // per_call[name])
            start = time.perf_counter()
            for _ in range(calls):
                function()
            device.synchronize()
            samples[name].append((time.perf_counter() - start) / (calls * per_call[name]))
    return samples


def phase_split(phased_step, steps: int) -> dict[str, float]:
    """Seconds per step of each phase of ``steps`` phased steps."""
    seconds = dict.fromkeys(PHASES, 0.0)
    for _ in range(steps):
        phased_step(seconds)
    return {phase: total / steps for phase, total in seconds.items()}


def paired_ratio(samples: dict, name: str, reference: str) -> float:
    """Median over rounds of name's time / reference's time in the same round: the rounds run
    back to back, so a drift of the machine's speed cancels in each ratio."""
    pairs = zip(samples[name], samples[reference], strict=True)
    return statistics.median(a / b for a, b in pairs)


def report(shape: str, sizes, device, results, peak, epoch_seconds, epoch_ratio, samples) -> None:
    flops = step_flops(sizes, BATCH)
    floor, torch = results["bare GEMMs (floor)"], results.get("PyTorch (plain)")
    print(f"\nMLP {'-'.join(map(str, sizes))} ({shape}), batch {BATCH}, {device.describe()}")
    print(
        f"{flops / 1e9:.2f} GFLOP per step (6·N·Σ(in·out), the 9 GEMMs of a full step; nerva-xp "
        "and the floor skip the first layer's DX, so their rate can exceed the peak); "
        f"GEMM peak measured now: {peak:.0f} GFLOP/s"
    )
    print("| implementation | ms per step | GFLOP/s | of GEMM peak | × GEMM floor | × PyTorch |")
    print("|---|---|---|---|---|---|")
    for name, seconds in results.items():
        vs_torch = f"{seconds / torch:.2f}" if torch else "n/a"
        print(
            f"| {name} | {seconds * 1e3:.2f} | {flops / seconds / 1e9:.0f} | "
            f"{flops / seconds / 1e9 / peak:.0%} | {seconds / floor:.2f} | {vs_torch} |"
        )
    for baseline in ("PyTorch (plain)", "nerva-numpy 1.0"):
        if baseline in results:
            default = paired_ratio(samples, baseline, "nerva-xp step")
            folded = paired_ratio(samples, baseline, "nerva-xp step, --fold-updates")
            print(
                f"nerva-xp is {default:.2f} × as fast as {baseline} ({folded:.2f} × with "
                "--fold-updates; medians of the per-round ratios)"
            )
    print(
        f"nerva-xp training epoch (shuffled DataLoader, finiteness check): "
        f"{epoch_seconds * 1e3:.2f} ms per step, {epoch_ratio:.2f} × the bare step loop "
        "(median of the per-round ratios)"
    )


def nerva_numpy_step(sizes, X, T):
    """A nerva-numpy 1.0 step (its own API) on the same data, or None without nerva-numpy."""
    try:
        from nerva_numpy.loss_functions import parse_loss_function
        from nerva_numpy.multilayer_perceptron import parse_multilayer_perceptron
    except ImportError:
        return None
    M = parse_multilayer_perceptron(
        ["ReLU", "ReLU", "Linear"], sizes, ["Momentum(0.9)"] * 3, ["XavierNormal"] * 3
    )
    loss = parse_loss_function("SoftmaxCrossEntropy")
    one_hot = np.eye(sizes[-1], dtype=np.float32)[T]
    counter = iter(range(10**9))

    def step():
        k = next(counter) % BATCHES
        xb, tb = X[k * BATCH : (k + 1) * BATCH], one_hot[k * BATCH : (k + 1) * BATCH]
        Y = M.feedforward(xb)
        M.backpropagate(Y, loss.gradient(Y, tb) / BATCH)
        M.optimize(0.001)

    return step


SETTLE = 0.3  # seconds of idleness around a child's round: idle BLAS/OpenMP threads stop spinning


class BaselineChild:
    """A baseline (PyTorch or nerva-numpy) served by its own interpreter: ``measure(steps)`` runs
    that many steps there and returns the seconds per step, so its rounds interleave with ours.
    A child process, because in one process torch's OpenMP threads and OpenBLAS's spin-waiting
    threads slow each other down; each round is framed by SETTLE seconds of idleness."""

    def __init__(self, mode: str, python: str, args):
        command = [python, __file__, "--baseline", mode, "--shape", args.shape_now]
        command += ["--threads", str(args.threads)] if args.threads else []
        command += ["--device", args.device_now]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        if self.process.stdout.readline().strip() != "ready":  # missing torch or nerva-numpy
            self.close()

    def ready(self) -> bool:
        return self.process.returncode is None

    def measure(self, steps: int) -> float:
        time.sleep(SETTLE)
        self.process.stdin.write(f"{steps}\n")
        self.process.stdin.flush()
        seconds = float(self.process.stdout.readline())
        time.sleep(SETTLE)
        return seconds

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def serve_baseline(args) -> None:
    """Child mode: build the baseline, print "ready", then answer each line "STEPS" on stdin with
    the seconds per step of that many steps (exit 1 at once if the baseline is missing)."""
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    sizes = SHAPES[args.shape]
    X, T = make_data(sizes)
    if args.baseline == "torch":
        step = torch_step(sizes, X, T, args.threads, args.device)
    else:
        step = nerva_numpy_step(sizes, X, T)
    if step is None:
        sys.exit(1)
    clock = _TorchCudaClock() if args.device != "cpu" else _HostClock()
    for _ in range(3):
        step()
    clock.synchronize()
    print("ready", flush=True)
    for line in sys.stdin:
        steps = int(line)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        clock.synchronize()
        print((time.perf_counter() - start) / steps, flush=True)


class _HostClock:
    def synchronize(self) -> None:
        pass


class _TorchCudaClock:
    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize()


def baselines(args, device) -> dict[str, tuple[str, str]]:
    """name -> (child mode, interpreter) of the baselines this run measures: PyTorch on the same
    device (CPU or GPU), nerva-numpy (CPU only)."""
    chosen = {"PyTorch (plain)": ("torch", sys.executable)}
    if args.nerva_numpy_python and device.name == "cpu":
        chosen["nerva-numpy 1.0"] = ("nerva-numpy", args.nerva_numpy_python)
    return chosen


def benchmark_shape(shape: str, device, args) -> dict[str, float]:
    """Benchmark one MLP shape, print its table; returns median seconds per step by row."""
    sizes = SHAPES[shape]
    X, T = make_data(sizes)
    step, epoch_loop, phased_step = nerva_step(sizes, device, X, T)
    args.shape_now, args.device_now = shape, device.name
    children = {
        name: BaselineChild(*chosen, args) for name, chosen in baselines(args, device).items()
    }
    functions = {  # the epoch next to the step it is compared with
        "nerva-xp step": step,
        "epoch": epoch_loop,
        "nerva-xp step, --fold-updates": nerva_step(sizes, device, X, T, fold_updates=True)[0],
        "bare GEMMs (floor)": gemm_floor_step(sizes, device, X),
        **{name: child for name, child in children.items() if child.ready()},
    }
    try:
        samples = interleaved_samples(
            functions, device, args.steps, args.rounds, {"epoch": BATCHES}
        )
    finally:
        for child in children.values():
            if child.ready():
                child.close()
    epoch_ratio = paired_ratio(samples, "epoch", "nerva-xp step")
    results = {name: statistics.median(values) for name, values in samples.items()}
    epoch = results.pop("epoch")
    peak = gemm_peak(device)
    report(shape, sizes, device, results, peak, epoch, epoch_ratio, samples)
    report_phases(phase_split(phased_step, args.steps * args.rounds))
    return results


def report_phases(phases: dict[str, float]) -> None:
    total = sum(phases.values())
    split = ", ".join(
        f"{phase} {seconds * 1e3:.2f} ms ({seconds / total:.0%})"
        for phase, seconds in phases.items()
    )
    print(
        f"nerva-xp step by phase (separate steps, the device synchronised after each phase; "
        f"{total * 1e3:.2f} ms in all): {split}"
    )


def plot_steps(measured: dict[str, dict[str, float]], where: str, path: str) -> None:
    """One panel per MLP shape: ms per step of each row, labelled with its multiple of the floor."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, panels = pyplot.subplots(
        1, len(measured), figsize=(6 * len(measured), 3.2), constrained_layout=True, squeeze=False
    )
    for panel, (shape, results) in zip(panels[0], measured.items(), strict=True):
        names = list(results)[::-1]
        floor = results["bare GEMMs (floor)"]
        milliseconds = [results[name] * 1e3 for name in names]
        colors = ["tab:blue" if name.startswith("nerva-xp") else "tab:gray" for name in names]
        panel.barh(names, milliseconds, color=colors)
        for y, (name, ms) in enumerate(zip(names, milliseconds, strict=True)):
            panel.text(ms, y, f" {results[name] / floor:.2f} × floor", va="center", fontsize=8)
        panel.set(xlabel="ms per step (median)", title=f"{'-'.join(map(str, SHAPES[shape]))}")
        panel.set_xlim(0, max(milliseconds) * 1.3)
    figure.suptitle(f"One training step, batch {BATCH}, {where}", fontsize=10)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    print(f"\nplot written to {path}")


def peak_rss_mib(epochs: int, dataset: Path) -> float:
    """Peak RSS of a CIFAR-shaped `nerva-xp train` run, from the child's rusage."""
    code = (
        "import resource, sys; from nerva_xp.cli import main; "
        f"main(['train', '--load-dataset={dataset}', '--layers=ReLU;ReLU;Linear', "
        "'--layer-sizes=3072;1024;512;10', '--optimizers=Momentum(0.9)', "
        "'--learning-rate=Constant(0.001)', '--loss=SoftmaxCrossEntropy', "
        f"'--epochs={epochs}', '--seed=1']); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return int(output.stdout.split()[-1]) / 1024


def memory_report(train_rows: int) -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        dataset = Path(folder) / "cifar-like.npz"
        X = rng.random((train_rows + train_rows // 5, 3072), dtype=np.float32)
        T = rng.integers(0, 10, X.shape[0]).astype(np.int32)
        np.savez(dataset, Xtrain=X[:train_rows], Ttrain=T[:train_rows], Xtest=X[train_rows:],
                 Ttest=T[train_rows:])  # fmt: skip
        data_mib = X.nbytes / 2**20
        params_mib = sum(a * b + b for a, b in pairs(SHAPES["cifar"])) * 4 / 2**20
        del X
        one, three = peak_rss_mib(1, dataset), peak_rss_mib(3, dataset)
    budget = 1.3 * (data_mib + 3 * params_mib)
    print(f"\nCIFAR-shaped run, {train_rows} training rows: dataset {data_mib:.0f} MiB, "
          f"parameters {params_mib:.0f} MiB; budget 1.3 × (dataset + 3 × parameters) = "
          f"{budget:.0f} MiB")  # fmt: skip
    print(f"peak RSS: {one:.0f} MiB after 1 epoch, {three:.0f} MiB after 3 epochs "
          f"({one / budget:.2f} × budget)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["cifar", "mnist", "both"], default="both")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="BLAS and element-wise threads")
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--rounds", type=int, default=11, help="interleaved rounds")
    parser.add_argument("--memory", action="store_true", help="also measure peak RSS")
    parser.add_argument("--memory-rows", type=int, default=50000)
    parser.add_argument(
        "--nerva-numpy-python", metavar="PYTHON", help="an interpreter with nerva-numpy 1.0"
    )
    parser.add_argument("--plot", metavar="FILE.png", help="also draw the step times as bars")
    parser.add_argument("--baseline", choices=["torch", "nerva-numpy"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        serve_baseline(args)
        return
    from nerva_xp import inplace
    from nerva_xp.device import DeviceError, select_device

    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        inplace.set_threads(args.threads)
    try:
        device = select_device(args.device)
    except DeviceError as error:
        parser.error(f"--device={args.device}: {error}")  # one line, exit 2
    shapes = ["cifar", "mnist"] if args.shape == "both" else [args.shape]
    measured = {shape: benchmark_shape(shape, device, args) for shape in shapes}
    if args.plot:
        plot_steps(measured, device.describe(), args.plot)
    if args.memory:
        memory_report(args.memory_rows)


if __name__ == "__main__":
    main()
