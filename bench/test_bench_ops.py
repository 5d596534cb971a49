"""Matrix operation families (spec §2): products, reductions and element-wise functions.

Products use the three GEMM shapes of the first layer of the CIFAR-shaped MLP (batch 100,
W of shape (1024, 3072)) and are compared with plain NumPy and PyTorch (CPU) GEMMs of the same
shapes; reductions and element-wise functions use a (100, 1024) activation matrix.
"""

from __future__ import annotations

import pytest
from array_api_compat import array_namespace

from nerva_xp import matrix_operations as mo
from nerva_xp.activation_functions import Relu

N, D, K = 100, 3072, 1024  # batch, input and output size of the product benchmarks
ACTIVATION = (100, 1024)

# id -> (left shape, right shape, which operand is used transposed): the layer's three GEMMs as
# the formulas read, with the transposes as views
PRODUCTS = {
    "XWT": ((N, D), (K, D), "right"),  # Z = X W^T: (100, 3072) x (3072, 1024)
    "DZTX": ((N, K), (N, D), "left"),  # DW = DZ^T X: (1024, 100) x (100, 3072)
    "DZW": ((N, K), (K, D), None),  # DX = DZ W: (100, 1024) x (1024, 3072)
}
GROUPS = {"XWT": "product Z = X W^T", "DZTX": "product DW = DZ^T X", "DZW": "product DX = DZ W"}


def _product_operands(data, name):
    """The two stored operands (C-contiguous, as a layer holds them)."""
    left, right, _ = PRODUCTS[name]
    return data.normal(left), data.normal(right)


def _product(name):
    """A function (A, B) -> the product ``name``, with its transposes as views."""
    transposed = PRODUCTS[name][2]
    if transposed == "left":
        return lambda A, B: mo.product(A.T, B)
    if transposed == "right":
        return lambda A, B: mo.product(A, B.T)
    return mo.product


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_product(run, data, name):
    """matrix_operations.product on the backend."""
    run(GROUPS[name], _product(name), *_product_operands(data, name))


# LinearLayer computes Z and DX as transposed products, transposed back (views): same sums
LAYER_FORMS = {
    "XWT": lambda X, W: mo.product(W, X.T).T,  # Z = (W X^T)^T
    "DZW": lambda DZ, W: mo.product(W.T, DZ.T).T,  # DX = (W^T DZ^T)^T
}


@pytest.mark.parametrize("name", list(LAYER_FORMS))
def test_product_as_the_layer_computes_it(run, data, name):
    """Z and DX in the form LinearLayer uses, against the plain forms of ``test_product``."""
    run(GROUPS[name], LAYER_FORMS[name], *_product_operands(data, name))


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_product_baseline_numpy(run_host, host_data, name):
    """Baseline: the same GEMM as a bare NumPy ``@`` (mo.product is ``@`` too)."""
    run_host(GROUPS[name], "numpy", _product(name), *_product_operands(host_data, name))


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_product_baseline_torch(torch_cpu, run_host, host_data, name):
    """Baseline: the same GEMM with PyTorch on the CPU (``@`` on tensors, transposes as views)."""
    A, B = (torch_cpu.from_numpy(M) for M in _product_operands(host_data, name))
    run_host(GROUPS[name], "torch", _product(name), A, B)


REDUCTIONS = {
    "columns_sum": mo.columns_sum,
    "rows_sum": mo.rows_sum,
    "rows_max": mo.rows_max,
    "columns_mean": mo.columns_mean,
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reduction(run, data, name):
    X = data.normal(ACTIVATION)
    run(f"reduction {name}", REDUCTIONS[name], X)


# name -> (function, number of operands, lower bound of the data: log and inv_sqrt need X > 0)
ELEMENTWISE = {
    "exp": (mo.exp, 1, -1.0),
    "log": (mo.log, 1, 0.1),
    "inv_sqrt": (mo.inv_sqrt, 1, 0.1),
    "log_sigmoid": (mo.log_sigmoid, 1, -1.0),
    "hadamard": (mo.hadamard, 2, -1.0),
}


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise(run, data, name):
    fn, arity, low = ELEMENTWISE[name]
    operands = [data.uniform(ACTIVATION, low, low + 2.0) for _ in range(arity)]
    run(f"elementwise {name}", fn, *operands)


# The layer's formulations against the plain ones, on a pre-activation as LinearLayer holds it: Z
# and DZ are transposed views of a GEMM result, (W X^T)^T, so column-major (100, 1024).
def _relu_with_zeros(X):
    xp = array_namespace(X)
    return xp.maximum(X, xp.zeros_like(X))


def _columns_sum_by_sum(X):
    return array_namespace(X).sum(X, axis=0)


def _bias_add_new(Z, b):
    return Z + b


def _bias_add_in_place(Z, b):
    Z += b
    return Z


FORMULATIONS = {  # group -> {name: function}
    "Relu": {"maximum(X, zeros_like(X))": _relu_with_zeros, "maximum(X, 0)": Relu},
    "columns_sum": {"sum(X, axis=0)": _columns_sum_by_sum, "ones @ X": mo.columns_sum},
    "bias add": {"Z + b": _bias_add_new, "Z += b": _bias_add_in_place},
}


@pytest.mark.parametrize(
    "group, name", [(group, name) for group, names in FORMULATIONS.items() for name in names]
)
@pytest.mark.parametrize("caches", ["warm", "cold"])
def test_layer_formulation(run, data, group, name, caches):
    """Each formulation nerva-xp uses (the second of each group) against the plain one, with the
    operands in cache (repeated calls) and out of it (as in a training step, after GEMMs)."""
    Z = data.normal(ACTIVATION[::-1]).T
    operands = [Z, data.normal(ACTIVATION[1:])] if group == "bias add" else [Z]
    title = f"layer formulation {group}" + (", caches cold" if caches == "cold" else "")
    run(title, FORMULATIONS[group][name], *operands, cold=caches == "cold")
