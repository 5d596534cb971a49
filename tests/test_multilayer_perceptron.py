"""MultilayerPerceptron (spec §7, §1.5): parsing, weight files, parameter identity."""

import re

import numpy as np
import pytest

from nerva_xp.activation_functions import LeakyReLUActivation, ReLUActivation
from nerva_xp.device import select_device
from nerva_xp.layers import (
    ActivationLayer,
    BatchNormalizationLayer,
    LinearLayer,
    SoftmaxLayer,
    SReLULayer,
)
from nerva_xp.multilayer_perceptron import MultilayerPerceptron, parse_multilayer_perceptron
from nerva_xp.npz import DataError, load_dict_from_npz, save_dict_to_npz
from nerva_xp.optimizers import CompositeOptimizer, MomentumOptimizer, NesterovOptimizer
from nerva_xp.utilities import SpecError
from nerva_xp.weight_initializers import set_bias_zero, set_weights_xavier_normal

from conftest import host

LAYERS = ["ReLU", "BatchNormalization", "SReLU", "BatchNormalization", "Linear"]
SIZES = [4, 8, 6, 3]


def example_mlp(device=None, seed=0):
    rng = np.random.default_rng(seed)
    return parse_multilayer_perceptron(
        LAYERS, SIZES, ["Momentum(0.9)"], ["XavierNormal"], device=device, rng=rng
    )


def test_parse_builds_the_layers_in_order():
    M = example_mlp()
    kinds = [type(layer) for layer in M.layers]
    assert kinds == [
        ActivationLayer,
        BatchNormalizationLayer,
        SReLULayer,
        BatchNormalizationLayer,
        LinearLayer,
    ]
    assert [layer.input_size() for layer in M.layers] == [4, 8, 8, 6, 6]
    assert [layer.output_size() for layer in M.layers] == [8, 8, 6, 6, 3]
    assert all(isinstance(layer.optimizer, CompositeOptimizer) for layer in M.layers)


def test_weight_keys_follow_the_numbering_of_the_spec():
    assert list(example_mlp().weights_dict()) == [
        "W1", "b1", "gamma1", "beta1", "W2", "b2", "srelu2", "gamma2", "beta2", "W3", "b3",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (LAYERS, SIZES, ["GradientDescent"] * 3, ["XavierNormal"]),
            "optimizers: expected 1 or 5 entries (one per layer, BatchNormalization included), "
            "got 3",
        ),
        (
            (["ReLU", "ReLU", "Linear"], [4, 5, 6, 3], ["GradientDescent"], ["HeNormal"] * 2),
            "layer weights: expected 1 or 3 entries (one per linear layer), got 2",
        ),
        (
            (["ReLU", "ReLU", "Linear"], [4, 5, 3], ["GradientDescent"], ["HeNormal"]),
            "layer sizes: expected 4 entries (input size, then one output size per linear "
            "layer), got 3",
        ),
        (
            (["ReLU", "Relu", "Linear"], [4, 5, 6, 3], ["GradientDescent"], ["HeNormal"]),
            'invalid layer "Relu": unknown name "Relu" (did you mean "ReLU"?)',
        ),
        (
            (["ReLU"], [4, 3], ["Momentum"], ["HeNormal"]),
            'invalid optimizer "Momentum": missing required parameter mu',
        ),
    ],
)
def test_bad_networks_raise_one_line_spec_errors(args, message):
    with pytest.raises(SpecError) as error:
        parse_multilayer_perceptron(*args)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_every_layer_name_builds():
    specs = ["Linear", "ReLU", "Sigmoid", "HyperbolicTangent", "AllReLU(0.3)", "LeakyReLU(0.1)"]
    specs += ["SReLU(al=0.1)", "BatchNormalization", "Softmax", "LogSoftmax"]
    M = parse_multilayer_perceptron(specs, [3] * 10, ["Nesterov(0.5)"], ["HeUniform"])
    assert len(M.layers) == 10
    assert isinstance(M.layers[-2], SoftmaxLayer)
    assert M.feedforward(np.ones((2, 3), np.float32)).shape == (2, 3)


def test_save_then_load_reproduces_the_outputs(tmp_path, capsys, device_any):
    M = example_mlp(device_any, seed=1)
    M.layers[2].act.x[...] = device_any.asarray([0.1, -0.2, 0.3, 0.9])
    M.layers[1].gamma[...] = device_any.asarray(np.linspace(0.5, 2, 8))
    path = M.save_weights_and_bias(tmp_path / "w")
    assert capsys.readouterr().out == f"Saving weights and bias to {tmp_path / 'w.npz'}\n"
    other = example_mlp(device_any, seed=2)
    other.load_weights_and_bias(path)
    assert capsys.readouterr().out == f"Loading weights and bias from {path}\n"
    X = device_any.asarray(np.random.default_rng(3).standard_normal((5, 4)))
    np.testing.assert_array_equal(host(other.feedforward(X)), host(M.feedforward(X)))


def test_saved_weights_are_in_the_model_dtype(tmp_path):
    M = example_mlp(select_device("cpu", "float64"))
    data = load_dict_from_npz(M.save_weights_and_bias(tmp_path / "w.npz"))
    assert all(value.dtype == np.float64 for value in data.values())


def test_nerva_weight_files_with_only_w_and_b_load(tmp_path):
    M = example_mlp()
    data = {k: host(v) for k, v in M.weights_dict().items() if re.fullmatch(r"[Wb]\d+", k)}
    assert "beta1" not in data and "b1" in data
    data["b1"] = data["b1"][None, :]  # Nerva may store b as (1, K)
    data["extra"] = np.zeros(2)
    data["pickled"] = np.array([{"a": 1}], dtype=object)  # other keys are never read
    np.savez(tmp_path / "nerva.npz", **data)
    other = example_mlp(seed=5)
    other.layers[1].beta[...] = 0.5  # no beta1 in the file: the current values stay
    other.load_weights_and_bias(tmp_path / "nerva.npz")
    np.testing.assert_array_equal(host(other.layers[0].b), data["b1"][0])
    np.testing.assert_array_equal(host(other.layers[1].gamma), np.ones(8))
    np.testing.assert_array_equal(host(other.layers[1].beta), np.full(8, 0.5))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("W2"), 'key "W2" is missing'),
        (lambda d: d.update(W1=np.zeros((4, 8))), 'key "W1" has shape (4, 8); expected (8, 4)'),
        (lambda d: d.update(b3=np.zeros(4)), 'key "b3" has shape (4,); expected (3,) or (1, 3)'),
        (lambda d: d.update(srelu2=np.zeros(3)), 'key "srelu2" has shape (3,); expected (4,)'),
        (lambda d: d.update(W3=np.full((3, 6), np.nan)), 'key "W3" holds NaN or Inf'),
        (lambda d: d.update(beta1=np.array(["x"] * 8)), 'key "beta1" holds <U1 values'),
        (lambda d: d.update(W1=np.ones((8, 4), bool)), 'key "W1" holds bool values'),
        (
            lambda d: d.update(W1=np.full((8, 4), 1e300)),
            'key "W1" holds values beyond the range of float32',
        ),
        (lambda d: d.update(beta1=np.zeros((1, 8))), 'key "beta1" has shape (1, 8); expected (8,)'),
    ],
)
def test_bad_weight_files_raise_one_line_errors(tmp_path, capsys, change, expected):
    M = example_mlp()
    data = {k: host(v) + 1 for k, v in M.weights_dict().items()}
    change(data)
    path = save_dict_to_npz(tmp_path / "w.npz", data)
    before = {k: host(v).copy() for k, v in M.weights_dict().items()}
    with pytest.raises(DataError) as error:
        M.load_weights_and_bias(path)
    assert str(error.value).startswith(f'cannot read weights file "{path}": {expected}')
    for key, value in M.weights_dict().items():  # nothing changed
        np.testing.assert_array_equal(host(value), before[key])


def test_large_float64_weights_load_into_a_float64_model(tmp_path):
    M = example_mlp(select_device("cpu", "float64"))
    data = {k: host(v) for k, v in M.weights_dict().items()}
    data["W1"] = np.full((8, 4), 1e300)
    M.load_weights_and_bias(save_dict_to_npz(tmp_path / "w.npz", data))
    assert host(M.layers[0].W)[0, 0] == 1e300


def test_manual_construction_of_the_manual_trains_the_layer_arrays():
    """The manual builds optimizers from arrays (spec §1.5)."""
    layer1 = ActivationLayer(6, 5, ReLUActivation())
    set_weights_xavier_normal(layer1.W, rng=np.random.default_rng(0))
    set_bias_zero(layer1.b)
    W, b = layer1.W, layer1.b
    layer1.optimizer = CompositeOptimizer(
        [MomentumOptimizer(layer1.W, layer1.DW, 0.9), NesterovOptimizer(layer1.b, layer1.Db, 0.75)]
    )
    layer2 = ActivationLayer(5, 4, LeakyReLUActivation(0.5))
    layer2.set_weights("XavierNormal", rng=np.random.default_rng(1))
    layer2.set_optimizer("Momentum(0.8)")
    layer3 = LinearLayer(4, 3)
    layer3.set_weights("HeNormal", rng=np.random.default_rng(2))
    layer3.set_optimizer("GradientDescent")
    M = MultilayerPerceptron()
    M.layers = [layer1, layer2, layer3]

    X = np.random.default_rng(3).standard_normal((7, 6)).astype(np.float32)
    W_before = host(W).copy()
    Y = M.feedforward(X)
    M.backpropagate(Y, Y - 1)
    M.optimize(0.1)
    assert layer1.W is W and layer1.b is b
    np.testing.assert_allclose(host(W), W_before - 0.1 * host(layer1.DW), rtol=1e-6)


class PlainLinearLayer(LinearLayer):
    """A user subclass with backpropagate as the spec writes it, (Y, DY) only (spec §6.1)."""

    def backpropagate(self, Y, DY):
        super().backpropagate(Y, DY)


class PlainBatchNormalizationLayer(BatchNormalizationLayer):
    def backpropagate(self, Y, DY):
        super().backpropagate(Y, DY)


@pytest.mark.parametrize("first", ["linear", "batch normalization"])
def test_a_first_layer_whose_backpropagate_takes_only_Y_and_DY_is_backpropagated(first):
    """The model skips the first layer's DX only where that layer's backpropagate can; a
    subclass with the plain (Y, DY) form gets the call the spec describes and computes DX."""
    rng = np.random.default_rng(0)
    head = PlainLinearLayer(6, 5) if first == "linear" else PlainBatchNormalizationLayer(6)
    built_in = LinearLayer(6, 5) if first == "linear" else BatchNormalizationLayer(6)
    last = LinearLayer(head.output_size(), 3)
    last.set_weights("XavierNormal", rng=np.random.default_rng(1))
    X = rng.standard_normal((4, 6)).astype(np.float32)
    gradients = []
    for layer in (head, built_in):
        if first == "linear":
            layer.set_weights("XavierNormal", rng=np.random.default_rng(2))
        M = MultilayerPerceptron()
        M.layers = [layer, last]
        Y = M.feedforward(X)
        M.backpropagate(Y, Y - 1)
        gradients.append([host(D).copy() for _, _, D in layer.named_parameters()])
    assert host(head.DX).shape == X.shape  # the plain form computes DX
    assert built_in.DX is None  # the built-in layer skips it
    for plain, skipped in zip(*gradients, strict=True):
        np.testing.assert_array_equal(plain, skipped)


def test_user_writes_into_parameters_are_trained():
    layer = LinearLayer(2, 2)
    layer.set_optimizer("GradientDescent")
    layer.W[...] = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    X = np.eye(2, dtype=np.float32)
    layer.backpropagate(layer.feedforward(X), np.ones((2, 2), np.float32))
    layer.optimize(1.0)
    np.testing.assert_array_equal(layer.W, [[0.0, 1.0], [2.0, 3.0]])


def test_feedforward_converts_inputs_to_the_model_dtype():
    M = example_mlp()
    assert M.feedforward(np.ones((3, 4), np.float64)).dtype == np.float32


def test_same_seed_gives_the_same_weights_on_every_backend():
    cpu = example_mlp(select_device("cpu"), seed=7).weights_dict()
    strict = example_mlp(select_device("strict"), seed=7).weights_dict()
    for key in cpu:
        np.testing.assert_array_equal(host(cpu[key]), host(strict[key]))
