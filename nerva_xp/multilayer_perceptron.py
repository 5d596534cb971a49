"""MultilayerPerceptron (spec §7): a list of layers, weight files, and the network parser.

Linear-type layers (Linear, Activation, SReLU, Softmax, LogSoftmax) are numbered i = 1, 2, ... and
BatchNormalization layers j = 1, 2, ... separately; weight files use the keys W{i}, b{i}, srelu{i},
gamma{j}, beta{j}.
"""

from __future__ import annotations

import functools
import inspect
import re

from array_api_compat import array_namespace

from nerva_xp.device import as_device, assign_from_host, numpy_dtype
from nerva_xp.layers import (
    BatchNormalizationLayer,
    Layer,
    LinearLayer,
    SReLULayer,
    parse_layer,
    parse_linear_layer,
)
from nerva_xp.matrix_operations import Matrix
from nerva_xp.npz import DataError, check_weight_array, npz_path, save_dict_to_npz
from nerva_xp.optimizers import parse_optimizer
from nerva_xp.spec_strings import SpecError
from nerva_xp.utilities import load_dict_from_npz, pp
from nerva_xp.weight_initializers import parse_weight_initializer


@functools.cache
def _can_skip_DX(layer_class: type) -> bool:
    """Whether the class's backpropagate takes ``skip_DX`` (the built-in linear and
    batch-normalization layers do; a subclass overriding it with (Y, DY) does not)."""
    if not issubclass(layer_class, (LinearLayer, BatchNormalizationLayer)):
        return False
    return "skip_DX" in inspect.signature(layer_class.backpropagate).parameters


class MultilayerPerceptron:
    """``feedforward`` chains the layers; ``backpropagate`` walks them in reverse."""

    def __init__(self, layers: list[Layer] | None = None):
        self.layers: list[Layer] = [] if layers is None else list(layers)

    def _dtype(self):
        for layer in self.layers:
            for name in ("W", "gamma"):
                if hasattr(layer, name):
                    return getattr(layer, name).dtype
        return None

    def feedforward(self, X: Matrix) -> Matrix:
        if X.ndim != 2:
            raise ValueError(f"feedforward: X has shape {tuple(X.shape)}; expected (N, D)")
        dtype = self._dtype()
        if dtype is not None and X.dtype != dtype:
            X = array_namespace(X).astype(X, dtype)
        for layer in self.layers:
            X = layer.feedforward(X)
        return X

    def backpropagate(self, Y: Matrix, DY: Matrix) -> None:
        """Each layer's backward, last to first; the first layer's DX is not computed where its
        backpropagate can skip it (a user subclass may define the plain (Y, DY) form)."""
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            if index == 0 and _can_skip_DX(type(layer)):
                layer.backpropagate(Y, DY, skip_DX=True)
            else:
                layer.backpropagate(Y, DY)
            Y, DY = layer.X, layer.DX

    def optimize(self, eta: float) -> None:
        for layer in self.layers:
            layer.optimize(eta)

    def set_weight_update_folding(self, enabled: bool = True) -> None:
        """Opt-in for every linear layer: W's update consumes DZ^T X directly, DW is not written
        (see ``LinearLayer.set_weight_update_folding``)."""
        for layer in self.linear_layers():
            layer.set_weight_update_folding(enabled)

    def linear_layers(self) -> list[LinearLayer]:
        return [layer for layer in self.layers if isinstance(layer, LinearLayer)]

    def batch_normalization_layers(self) -> list[BatchNormalizationLayer]:
        return [layer for layer in self.layers if isinstance(layer, BatchNormalizationLayer)]

    def info(self) -> None:
        """Print W{i} and b{i} of every linear-type layer."""
        for i, layer in enumerate(self.linear_layers(), start=1):
            pp(f"W{i}", layer.W)
            pp(f"b{i}", layer.b)

    def weights_dict(self) -> dict[str, Matrix]:
        """The weight-file arrays of spec §7.2, in layer order."""
        data: dict[str, Matrix] = {}
        i = j = 0
        for layer in self.layers:
            if isinstance(layer, LinearLayer):
                i += 1
                data[f"W{i}"], data[f"b{i}"] = layer.W, layer.b
                if isinstance(layer, SReLULayer):
                    data[f"srelu{i}"] = layer.act.x
            elif isinstance(layer, BatchNormalizationLayer):
                j += 1
                data[f"gamma{j}"], data[f"beta{j}"] = layer.gamma, layer.beta
        return data

    def save_weights_and_bias(self, filename) -> str:
        """Write W{i}, b{i}, srelu{i}, gamma{j}, beta{j} to ``filename`` (atomically)."""
        print(f"Saving weights and bias to {npz_path(filename)}")
        return save_dict_to_npz(filename, self.weights_dict())

    def load_weights_and_bias(self, filename) -> None:
        """Read a weight file into the existing arrays (cast to the model's dtype).

        W{i} and b{i} are required; srelu{i}, gamma{j}, beta{j} are used when present; other keys
        are ignored. Optimizer state is unchanged, and so is every array if the file is bad.
        """
        print(f"Loading weights and bias from {filename}")
        targets = self.weights_dict()
        data = load_dict_from_npz(filename, kind="weights", keys=targets)
        updates = []
        for key, target in targets.items():
            if key in data:
                value = check_weight_array(
                    filename, key, data[key], tuple(target.shape), dtype=numpy_dtype(target.dtype)
                )
                updates.append((target, value.reshape(target.shape)))
            elif re.fullmatch(r"[Wb]\d+", key):
                raise DataError(f'cannot read weights file "{filename}": key "{key}" is missing')
        for target, value in updates:  # all keys are checked before any array changes
            assign_from_host(target, value)

    def __repr__(self) -> str:
        return f"MultilayerPerceptron({self.layers!r})"


def _expand(items: list, count: int, what: str, unit: str) -> list:
    if len(items) == count:
        return list(items)
    if len(items) == 1:
        return list(items) * count
    raise SpecError(f"{what}: expected 1 or {count} entries ({unit}), got {len(items)}")


def _layer_sizes(sizes: list, count: int) -> list[int]:
    if len(sizes) != count:
        raise SpecError(
            f"layer sizes: expected {count} entries (input size, then one output size per linear "
            f"layer), got {len(sizes)}"
        )
    result = []
    for size in sizes:
        text = str(size).strip()
        if not re.fullmatch(r"[0-9]{1,18}", text) or int(text) == 0:  # 18 digits: below 2^63
            raise SpecError(
                f'layer sizes: expected positive integers below 10^18, got "{text[:40]}"'
            )
        result.append(int(text))
    return result


def check_network_specs(
    layer_specifications,
    linear_layer_sizes,
    optimizers,
    linear_layer_weight_initializers,
    dtype_name: str = "float32",
) -> tuple[list[str], list[int], list[str], list[str]]:
    """Validate every spec and count of a network (spec §7.3) without building it, for
    parameters of dtype ``dtype_name`` (SReLU's values must fit it).

    Returns the layer names, the sizes, one optimizer per layer and one initializer per linear
    layer; raises SpecError (for counts, the message starts with ``optimizers:``,
    ``layer weights:`` or ``layer sizes:``).
    """
    names = [parse_layer(text, dtype_name)[0] for text in layer_specifications]
    linear_count = sum(1 for name in names if name != "BatchNormalization")
    sizes = _layer_sizes(list(linear_layer_sizes), linear_count + 1)
    optimizers = _expand(
        list(optimizers), len(names), "optimizers", "one per layer, BatchNormalization included"
    )
    initializers = _expand(
        list(linear_layer_weight_initializers),
        linear_count,
        "layer weights",
        "one per linear layer",
    )
    for text in optimizers:
        parse_optimizer(text)
    for text in initializers:
        parse_weight_initializer(text)
    return names, sizes, optimizers, initializers


def parse_multilayer_perceptron(
    layer_specifications: list[str],
    linear_layer_sizes: list[int],
    optimizers: list[str],
    linear_layer_weight_initializers: list[str],
    device=None,
    rng=None,
) -> MultilayerPerceptron:
    """Build an MLP from spec strings (spec §7.3); every spec is checked before any weight is drawn.

    Args:
        layer_specifications: one spec per layer, e.g. ``["ReLU", "BatchNormalization", "Linear"]``.
        linear_layer_sizes: the input size, then the output size of each linear-type layer.
        optimizers: one optimizer spec per layer (BatchNormalization included), or one for all.
        linear_layer_weight_initializers: one initializer per linear-type layer, or one for all.
        device: where parameters live (default: the default device).
        rng: the host generator for the initial weights (default: the global one).
    """
    device = as_device(device)
    names, sizes, optimizers, initializers = check_network_specs(
        layer_specifications,
        linear_layer_sizes,
        optimizers,
        linear_layer_weight_initializers,
        device.dtype_name,
    )
    layers: list[Layer] = []
    D, k = sizes[0], 0
    for text, name, optimizer in zip(layer_specifications, names, optimizers, strict=True):
        if name == "BatchNormalization":
            layer = BatchNormalizationLayer(D, device=device)
            layer.set_optimizer(optimizer)
        else:
            K = sizes[k + 1]
            layer = parse_linear_layer(text, D, K, optimizer, initializers[k], device, rng)
            D, k = K, k + 1
        layers.append(layer)
    return MultilayerPerceptron(layers)
