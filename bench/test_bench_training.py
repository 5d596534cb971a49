"""One whole training step of MNIST- and CIFAR-shaped MLPs, with two baselines in the same group.

The step is what ``training.run_batches`` does per batch, without its finiteness check: Y =
M.feedforward(X), DY = loss.gradient(Y, T) / N, M.backpropagate(Y, DY), M.optimize(lr), for
ReLU-ReLU-Linear layers with Momentum(0.9), XavierNormal weights and the SoftmaxCrossEntropy loss.
Every round repeats the step on the same seeded batch (float32, batch 100), so the model trains on
it; the small learning rate keeps the values ordinary over the thousands of rounds of a run.

``test_training_step_folded`` is the same step with the opt-in folded weight updates
(``M.set_weight_update_folding()``, ``nerva-xp train --fold-updates``): each DW = DZ^T X is
computed inside its optimizer update (one gemm into Δ on NumPy) instead of being stored.

Baselines (group ``training step <shape>``):
* ``test_training_step_baseline_gemms``: only the 8 GEMMs of the step, as bare ``@`` on the
  backend's arrays (plain NumPy on numpy), in LinearLayer's forms: Z = (W X^T)^T for the 3 layers,
  DW = DZ^T X for the 3 layers, DX = (W^T DZ^T)^T for layers 2 and 3 (the first layer's DX is
  never computed). A lower bound.
* ``test_training_step_baseline_torch``: the same network, initial weights and batch in PyTorch on
  the CPU: forward, CrossEntropyLoss(reduction="sum") / N, backward, torch.optim.SGD(momentum=0.9).
  It also computes the loss value, which the Nerva step does not need.
"""

from __future__ import annotations

import numpy as np
import pytest

from nerva_xp.device import to_numpy
from nerva_xp.loss_functions import parse_loss_function
from nerva_xp.multilayer_perceptron import parse_multilayer_perceptron

N = 100  # batch size
MLP_SHAPES = {"mnist": [784, 1024, 512, 10], "cifar": [3072, 1024, 512, 10]}
LAYERS = ["ReLU", "ReLU", "Linear"]
LEARNING_RATE = 1e-3
WEIGHT_SEED = 1


def _mlp(sizes, device):
    rng = np.random.default_rng(WEIGHT_SEED)
    return parse_multilayer_perceptron(
        LAYERS, sizes, ["Momentum(0.9)"], ["XavierNormal"], device=device, rng=rng
    )


def _batch(data, sizes):
    """X (N, D) with pixel-like values in [0, 1), class labels (host) and one-hot T (N, K)."""
    X = data.uniform((N, sizes[0]), 0.0, 1.0)
    labels = data.labels(N, sizes[-1])
    return X, labels, data.one_hot(labels, sizes[-1])


def _step(M, data, sizes):
    """One training step of M on a seeded batch, as a closure."""
    loss = parse_loss_function("SoftmaxCrossEntropy")
    X, _, T = _batch(data, sizes)

    def step():
        Y = M.feedforward(X)
        DY = loss.gradient(Y, T) / X.shape[0]
        M.backpropagate(Y, DY)
        M.optimize(LEARNING_RATE)

    return step


@pytest.mark.parametrize("shape", list(MLP_SHAPES))
def test_training_step(fused_mode, backend, run, data, shape):
    sizes = MLP_SHAPES[shape]
    run(f"training step {shape}", _step(_mlp(sizes, backend), data, sizes))


@pytest.mark.parametrize("shape", list(MLP_SHAPES))
def test_training_step_folded(backend, run, data, shape):
    sizes = MLP_SHAPES[shape]
    M = _mlp(sizes, backend)
    M.set_weight_update_folding()
    run(f"training step {shape}", _step(M, data, sizes))


@pytest.mark.parametrize("shape", list(MLP_SHAPES))
def test_training_step_baseline_gemms(run, data, benchmark, shape):
    """The step's 8 GEMMs alone, as bare ``@`` on the backend's arrays."""
    D0, D1, D2, D3 = MLP_SHAPES[shape]
    X = data.uniform((N, D0), 0.0, 1.0)
    W1, W2, W3 = data.normal((D1, D0)), data.normal((D2, D1)), data.normal((D3, D2))
    H1, H2 = data.normal((N, D1)), data.normal((N, D2))  # layer outputs
    DZ1, DZ2, DZ3 = data.normal((N, D1)), data.normal((N, D2)), data.normal((N, D3))

    def gemms():
        return (
            (W1 @ X.T).T,
            (W2 @ H1.T).T,
            (W3 @ H2.T).T,
            DZ3.T @ H2,
            DZ2.T @ H1,
            DZ1.T @ X,
            (W3.T @ DZ3.T).T,
            (W2.T @ DZ2.T).T,
        )

    benchmark.extra_info["baseline"] = True
    run(f"training step {shape}", gemms)


@pytest.mark.parametrize("shape", list(MLP_SHAPES))
def test_training_step_baseline_torch(torch_cpu, run_host, host_data, shape):
    """The same step in PyTorch on the CPU, from the same initial weights and batch."""
    torch = torch_cpu
    sizes = MLP_SHAPES[shape]
    linear = [torch.nn.Linear(D, K) for D, K in zip(sizes[:-1], sizes[1:], strict=False)]
    with torch.no_grad():
        for layer, nerva_layer in zip(linear, _mlp(sizes, "cpu").layers, strict=True):
            layer.weight.copy_(torch.from_numpy(to_numpy(nerva_layer.W)))
            layer.bias.copy_(torch.from_numpy(to_numpy(nerva_layer.b)))
    model = torch.nn.Sequential(linear[0], torch.nn.ReLU(), linear[1], torch.nn.ReLU(), linear[2])
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=0.9)
    cross_entropy = torch.nn.CrossEntropyLoss(reduction="sum")
    X, labels, _ = _batch(host_data, sizes)
    X, labels = torch.from_numpy(X), torch.from_numpy(labels)

    def step():
        optimizer.zero_grad()
        loss = cross_entropy(model(X), labels) / X.shape[0]
        loss.backward()
        optimizer.step()

    run_host(f"training step {shape}", "torch", step)
