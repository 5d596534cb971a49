"""Reference values embedded as literals (spec §16), on every backend and dtype.

Where the numbers come from:
- losses: the table of spec §5.1 (SE and SCE by PyTorch with reduction='sum', NLL, CE and LCE by
  nerva-torch, all re-checked with plain NumPy);
- activations: the worked values of spec §4; SReLU parameter gradient: the worked example of §6.3;
- optimizers: Nerva's unit tests, quoted in spec §9; schedulers: spec §10;
- batch-norm standardisation: Nerva's C++ test and a hand computation, spec §16.2;
- stable softmax: the examples of spec §3.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

import nerva_xp.matrix_operations as matrix_operations
from nerva_xp import loss_functions as lf
from nerva_xp.activation_functions import (
    All_relu,
    All_relu_gradient,
    AllReLUActivation,
    Leaky_relu,
    Leaky_relu_gradient,
    LeakyReLUActivation,
    Relu,
    Relu_gradient,
    ReLUActivation,
    Srelu,
    Srelu_gradient,
    SReLUActivation,
)
from nerva_xp.layers import BatchNormalizationLayer, SReLULayer
from nerva_xp.learning_rate import (
    ConstantScheduler,
    ExponentialScheduler,
    MultiStepLRScheduler,
    StepBasedScheduler,
    TimeBasedScheduler,
    parse_learning_rate,
)
from nerva_xp.optimizers import (
    GradientDescentOptimizer,
    MomentumOptimizer,
    NesterovOptimizer,
    parse_optimizer,
)
from nerva_xp.softmax_functions import log_softmax, softmax, stable_log_softmax, stable_softmax

from conftest import host, tolerance

# ---- §5.1 losses ----

# (Y rows, T as class indices, {loss: full sum})
LOSS_CASES = [
    (
        [
            [0.23759169, 0.42272727, 0.33968104],
            [0.43770149, 0.28115265, 0.28114586],
            [0.20141643, 0.45190243, 0.34668113],
            [0.35686849, 0.17944701, 0.46368450],
            [0.48552814, 0.26116029, 0.25331157],
        ],
        [0, 0, 1, 2, 0],
        {
            "SE": 2.6550281475767563,
            "SCE": 5.106889686512423,
            "NLL": 4.548777728936653,
            "CE": 4.548777728936653,
            "LCE": 2.539463487358204,
        },
    ),
    (
        [
            [0.24335898, 0.40191852, 0.35472250],
            [0.21134093, 0.53408849, 0.25457058],
            [0.24788846, 0.42021140, 0.33190014],
            [0.40312318, 0.24051313, 0.35636369],
            [0.43329234, 0.34433141, 0.22237625],
        ],
        [0, 2, 1, 1, 0],
        {
            "SE": 3.6087104890568256,
            "SCE": 5.5889911807479065,
            "NLL": 5.90971538007391,
            "CE": 5.909715380073911,
            "LCE": 2.7376380548462254,
        },
    ),
    (
        [
            [0.23774258, 0.42741216, 0.33484526],
            [0.29687977, 0.43115409, 0.27196615],
            [0.43420442, 0.22655227, 0.33924331],
            [0.28599538, 0.35224692, 0.36175770],
            [0.20014798, 0.43868708, 0.36116494],
        ],
        [1, 1, 1, 0, 2],
        {
            "SE": 3.289394384977318,
            "SCE": 5.441938177932827,
            "NLL": 5.44627595910772,
            "CE": 5.44627595910772,
            "LCE": 2.678127590042374,
        },
    ),
    (
        [
            [0.26787616, 0.35447135, 0.37765249],
            [0.26073833, 0.45527664, 0.28398503],
            [0.31560020, 0.41003295, 0.27436685],
            [0.37231605, 0.17984538, 0.44783858],
            [0.49308039, 0.27786731, 0.22905230],
        ],
        [1, 2, 0, 2, 2],
        {
            "SE": 3.521376994732803,
            "SCE": 5.548304798627446,
            "NLL": 5.726367921857207,
            "CE": 5.726367921857208,
            "LCE": 2.7197402348335156,
        },
    ),
    (
        [
            [0.29207765, 0.40236525, 0.30555710],
            [0.38987005, 0.36536339, 0.24476656],
            [0.24441444, 0.32191037, 0.43367519],
            [0.38397493, 0.35636403, 0.25966104],
            [0.29902507, 0.25018760, 0.45078733],
        ],
        [2, 0, 0, 1, 2],
        {
            "SE": 3.2404999669186503,
            "SCE": 5.4240756991825645,
            "NLL": 5.365012502539291,
            "CE": 5.365012502539292,
            "LCE": 2.6711745146065176,
        },
    ),
]

# (column of the table, loss class, CLI name or None, lowercase row function)
LOSSES = [
    ("SE", lf.SquaredErrorLossFunction, "SquaredError", lf.squared_error_loss),
    (
        "SCE",
        lf.StableSoftmaxCrossEntropyLossFunction,
        "SoftmaxCrossEntropy",
        lf.stable_softmax_cross_entropy_loss,
    ),
    ("SCE", lf.SoftmaxCrossEntropyLossFunction, None, lf.softmax_cross_entropy_loss),
    (
        "NLL",
        lf.NegativeLogLikelihoodLossFunction,
        "NegativeLogLikelihood",
        lf.negative_log_likelihood_loss,
    ),
    ("CE", lf.CrossEntropyLossFunction, "CrossEntropy", lf.cross_entropy_loss),
    (
        "LCE",
        lf.LogisticCrossEntropyLossFunction,
        "LogisticCrossEntropy",
        lf.logistic_cross_entropy_loss,
    ),
]

loss_cases = pytest.mark.parametrize(
    "Y, labels, expected", LOSS_CASES, ids=[f"case{i}" for i in range(1, 6)]
)
losses = pytest.mark.parametrize(
    "column, cls, name, row_function", LOSSES, ids=[c.__name__ for _, c, _, _ in LOSSES]
)


def loss_rtol(d) -> float:
    return 1e-6 if d.dtype_name == "float64" else 1e-5


def one_hot(labels, K=3):
    return np.eye(K)[labels]


@loss_cases
@losses
def test_loss_class(device_any, Y, labels, expected, column, cls, name, row_function):
    d = device_any
    Yd, Td = d.asarray(Y), d.asarray(one_hot(labels))
    value = cls()(Yd, Td)
    assert value.ndim == 0
    assert value.dtype == d.dtype
    assert_allclose(host(value), expected[column], rtol=loss_rtol(d))


# the non-stable SoftmaxCrossEntropyLossFunction has no CLI name (spec §5)
PARSED_LOSSES = [(column, cls, name) for column, cls, name, _ in LOSSES if name is not None]


@loss_cases
@pytest.mark.parametrize("column, cls, name", PARSED_LOSSES, ids=[n for _, _, n in PARSED_LOSSES])
@pytest.mark.parametrize("suffix", ["", "()"])
def test_loss_parsed(device_any, Y, labels, expected, column, cls, name, suffix):
    d = device_any
    loss = lf.parse_loss_function(name + suffix)
    assert isinstance(loss, cls)
    value = loss(d.asarray(Y), d.asarray(one_hot(labels)))
    assert value.ndim == 0
    assert value.dtype == d.dtype
    assert_allclose(host(value), expected[column], rtol=loss_rtol(d))


@loss_cases
@losses
def test_loss_row_functions_summed(
    device_any, Y, labels, expected, column, cls, name, row_function
):
    d = device_any
    Yd, Td = d.asarray(Y), d.asarray(one_hot(labels))
    values = [row_function(Yd[i, :], Td[i, :]) for i in range(Yd.shape[0])]
    assert all(v.ndim == 0 and v.dtype == d.dtype for v in values)
    assert_allclose(sum(float(host(v)) for v in values), expected[column], rtol=loss_rtol(d))


ONE_HOT_GRADIENTS = [
    (lf.Softmax_cross_entropy_loss_gradient_one_hot, lf.Softmax_cross_entropy_loss_gradient),
    (
        lf.Stable_softmax_cross_entropy_loss_gradient_one_hot,
        lf.Stable_softmax_cross_entropy_loss_gradient,
    ),
    (lf.softmax_cross_entropy_loss_gradient_one_hot, lf.softmax_cross_entropy_loss_gradient),
    (
        lf.stable_softmax_cross_entropy_loss_gradient_one_hot,
        lf.stable_softmax_cross_entropy_loss_gradient,
    ),
]


@loss_cases
@pytest.mark.parametrize(
    "one_hot_gradient, gradient", ONE_HOT_GRADIENTS, ids=[f.__name__ for f, _ in ONE_HOT_GRADIENTS]
)
def test_one_hot_gradients_equal_the_general_ones(
    device_any, Y, labels, expected, one_hot_gradient, gradient
):
    """softmax(Y) − T: the general gradient for one-hot T (spec §5), matrix and row forms."""
    d = device_any
    Yd, Td = d.asarray(Y), d.asarray(one_hot(labels))
    if one_hot_gradient.__name__[0].islower():
        Yd, Td = Yd[0, :], Td[0, :]
    result = one_hot_gradient(Yd, Td)
    assert result.shape == Yd.shape and result.dtype == d.dtype
    assert_allclose(host(result), host(gradient(Yd, Td)), rtol=1e-5, atol=1e-7)
    assert_allclose(host(result), host(softmax(Yd)) - host(Td), rtol=1e-5, atol=1e-7)


# ---- §4 activations ----

X_RELUS = [-2.0, 0.0, 3.0]
X_SRELU = [-2.0, -0.5, 0.5, 2.0]
SRELU_PARAMS = (0.2, -1.0, 0.5, 1.0)

# (id, activation object, value function, derivative function, x, values, derivatives)
ACTIVATION_CASES = [
    ("ReLU", ReLUActivation(), Relu, Relu_gradient, X_RELUS, [0, 0, 3], [0, 0, 1]),
    (
        "LeakyReLU(0.1)",
        LeakyReLUActivation(0.1),
        Leaky_relu(0.1),
        Leaky_relu_gradient(0.1),
        X_RELUS,
        [-0.2, 0, 3],
        [0.1, 0.1, 1],
    ),
    (
        "AllReLU(0.3)",
        AllReLUActivation(0.3),
        All_relu(0.3),
        All_relu_gradient(0.3),
        X_RELUS,
        [-0.6, 0, 3],
        [0.3, 1, 1],
    ),
    (
        "SReLU(0.2,-1,0.5,1)",
        None,  # built per device in the test
        Srelu(*SRELU_PARAMS),
        Srelu_gradient(*SRELU_PARAMS),
        X_SRELU,
        [-1.2, -0.5, 0.5, 1.5],
        [0.2, 1, 1, 0.5],
    ),
]

activation_cases = pytest.mark.parametrize(
    "act, f, df, x, values, derivatives",
    [case[1:] for case in ACTIVATION_CASES],
    ids=[case[0] for case in ACTIVATION_CASES],
)


def check_array(d, result, expected):
    assert result.dtype == d.dtype
    assert result.shape == (1, len(expected))
    assert_allclose(host(result), [expected], **tolerance(d))


@activation_cases
def test_activation_class(device_any, act, f, df, x, values, derivatives):
    d = device_any
    act = SReLUActivation(*SRELU_PARAMS, device=d) if act is None else act
    X = d.asarray([x])
    check_array(d, act(X), values)
    check_array(d, act.gradient(X), derivatives)


@activation_cases
def test_activation_functions(device_any, act, f, df, x, values, derivatives):
    d = device_any
    X = d.asarray([x])
    check_array(d, f(X), values)
    check_array(d, df(X), derivatives)


# ---- §6.3 SReLU parameter gradient ----


def test_srelu_layer_parameter_gradient(device_any):
    d = device_any
    layer = SReLULayer(3, 3, SReLUActivation(*SRELU_PARAMS), device=d)
    layer.W[...] = d.asarray(np.eye(3))
    layer.b[...] = d.asarray(np.zeros(3))
    X = d.asarray([[-2.0, 0.5, 2.0]])
    Y = layer.feedforward(X)
    assert_allclose(host(layer.Z), [[-2.0, 0.5, 2.0]], **tolerance(d))
    layer.backpropagate(Y, d.asarray([[1.0, 1.0, 1.0]]))
    assert layer.act.Dx.dtype == d.dtype
    assert_allclose(host(layer.act.Dx), [-1.0, 0.8, 1.0, 0.5], **tolerance(d))


# ---- §9 optimizers ----

# (id, class, constructor arguments after (x, Dx), spec, x, Dx, eta, expected after each update)
OPTIMIZER_CASES = [
    ("GD", GradientDescentOptimizer, (), "GradientDescent", [1, -2], [0.5, -1], 0.2, [[0.9, -1.8]]),
    (
        "Momentum",
        MomentumOptimizer,
        (0.9,),
        "Momentum(0.9)",
        [0, 0],
        [1, -2],
        0.1,
        [[-0.1, 0.2], [-0.29, 0.58]],
    ),
    ("Nesterov", NesterovOptimizer, (0.9,), "Nesterov(0.9)", [0, 0], [1, -2], 0.1, [[-0.19, 0.38]]),
]

optimizer_cases = pytest.mark.parametrize(
    "cls, args, spec, x0, Dx0, eta, expected",
    [case[1:] for case in OPTIMIZER_CASES],
    ids=[case[0] for case in OPTIMIZER_CASES],
)


def check_updates(d, optimizer, x, eta, expected):
    """Each update(eta) changes the very array x to the next expected value."""
    for values in expected:
        optimizer.update(eta)
        assert x.dtype == d.dtype
        assert_allclose(host(x), values, **tolerance(d))


@optimizer_cases
def test_optimizer_class(device_any, cls, args, spec, x0, Dx0, eta, expected):
    d = device_any
    x, Dx = d.asarray(x0), d.asarray(Dx0)
    check_updates(d, cls(x, Dx, *args), x, eta, expected)


@optimizer_cases
def test_optimizer_parsed(device_any, cls, args, spec, x0, Dx0, eta, expected):
    d = device_any
    x, Dx = d.asarray(x0), d.asarray(Dx0)
    optimizer = parse_optimizer(spec)(x, Dx)
    assert isinstance(optimizer, cls)
    check_updates(d, optimizer, x, eta, expected)


# ---- §10 schedulers (pure functions of the epoch: no arrays, so no device) ----

# (scheduler, spec, lr at e = 0, 1, ...)
SCHEDULER_CASES = [
    (StepBasedScheduler(1.0, 0.5, 2), "StepBased(1.0, 0.5, 2)", [1, 0.5, 0.5, 0.25]),
    (MultiStepLRScheduler(1.0, [1, 3, 5], 0.1), "MultiStepLR(1.0;1,3,5;0.1)", [1, 0.1, 0.1, 0.01]),
    (ExponentialScheduler(2.0, 0.5), "Exponential(2.0, 0.5)", [2.0, 1.2130613194252668]),
    (
        TimeBasedScheduler(1.0, 0.5),
        "TimeBased(1.0, 0.5)",
        [1, 0.6666667, 0.3333333, 0.1333333],
    ),
    (TimeBasedScheduler(0.1, 0.5), "TimeBased(0.1, 0.5)", [0.1, 0.0666667, 0.0333333]),
    (ConstantScheduler(0.01), "Constant(0.01)", [0.01, 0.01, 0.01, 0.01]),
]

# TimeBased values are quoted to 7 decimals in the spec: half a unit of the last digit
SCHEDULER_TOL = {"rtol": 1e-12, "atol": 5e-8}

scheduler_cases = pytest.mark.parametrize(
    "scheduler, spec, expected", SCHEDULER_CASES, ids=[case[1] for case in SCHEDULER_CASES]
)


@scheduler_cases
def test_scheduler_class(scheduler, spec, expected):
    assert_allclose([scheduler(e) for e in range(len(expected))], expected, **SCHEDULER_TOL)


@scheduler_cases
def test_scheduler_parsed(scheduler, spec, expected):
    parsed = parse_learning_rate(spec)
    assert parsed == scheduler
    assert_allclose([parsed(e) for e in range(len(expected))], expected, **SCHEDULER_TOL)


def test_time_based_strictly_decreasing():
    lr = TimeBasedScheduler(1.0, 0.5)
    values = [lr(e) for e in range(6)]
    assert np.all(np.diff(values) < 0)


# ---- §16.2 batch-norm standardisation ----


def test_batch_normalization_standardises(device_any):
    d = device_any
    layer = BatchNormalizationLayer(2, device=d)
    Y = layer.feedforward(d.asarray([[1.0, 3.0], [2.0, 7.0], [3.0, 2.0]]))
    expected = [[-1.22474487, -0.46291005], [0.0, 1.38873015], [1.22474487, -0.9258201]]
    assert Y.dtype == d.dtype
    assert_allclose(host(Y), expected, atol=1e-6)
    assert_allclose(host(layer.Z), expected, atol=1e-6)


def test_batch_normalization_without_epsilon(device_any, monkeypatch):
    d = device_any
    monkeypatch.setattr(matrix_operations, "epsilon", 0)
    layer = BatchNormalizationLayer(2, device=d)
    Y = layer.feedforward(d.asarray([[1.0, 2.0], [3.0, 6.0]]))
    assert_allclose(host(Y), [[-1.0, -1.0], [1.0, 1.0]], **tolerance(d))


# ---- §3 stable softmax ----


def test_stable_softmax_large_equal_inputs(device_any):
    d = device_any
    Y = stable_softmax(d.asarray([[1000.0, 1000.0]]))
    assert Y.dtype == d.dtype
    assert_allclose(host(Y), [[0.5, 0.5]], **tolerance(d))


def test_stable_log_softmax_large_input(device_any):
    d = device_any
    Y = stable_log_softmax(d.asarray([[1000.0, 0.0]]))
    assert Y.dtype == d.dtype
    assert_allclose(host(Y), [[0.0, -1000.0]], **tolerance(d))


def test_plain_forms_overflow_where_stable_ones_do_not(device_any):
    d = device_any
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        plain_softmax = host(softmax(d.asarray([[1000.0, 1000.0]])))
        plain_log_softmax = host(log_softmax(d.asarray([[1000.0, 0.0]])))
    assert np.all(np.isnan(plain_softmax))
    assert np.all(np.isneginf(plain_log_softmax))
