"""Spec strings (spec §11) for every kind of item, checked against the spec's tables.

Kinds and their parse functions: layers (§7.3), activations (§4), optimizers (§9), weight
initializers (§8), loss functions (§5) and learning-rate schedulers (§10). The tests cover the
grammar (§11.1), argument binding (§11.2), the one-line error messages (§11.3), command-line lists
(§11.4) and the canonical repr with its round trip (§11.5), plus hypothesis properties: arbitrary
text only ever raises SpecError, and generated valid specs parse and round-trip.

The expected tables below are copied from the spec, not from the code.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nerva_xp import spec_strings, utilities
from nerva_xp.activation_functions import (
    AllReLUActivation,
    HyperbolicTangentActivation,
    LeakyReLUActivation,
    ReLUActivation,
    SigmoidActivation,
    SReLUActivation,
    parse_activation,
)
from nerva_xp.device import select_device
from nerva_xp.layers import parse_layer
from nerva_xp.learning_rate import (
    ConstantScheduler,
    ExponentialScheduler,
    MultiStepLRScheduler,
    StepBasedScheduler,
    TimeBasedScheduler,
    parse_learning_rate,
)
from nerva_xp.loss_functions import (
    CrossEntropyLossFunction,
    LogisticCrossEntropyLossFunction,
    NegativeLogLikelihoodLossFunction,
    SquaredErrorLossFunction,
    StableSoftmaxCrossEntropyLossFunction,
    parse_loss_function,
)
from nerva_xp.optimizers import (
    GradientDescentOptimizer,
    MomentumOptimizer,
    NesterovOptimizer,
    parse_optimizer,
)
from nerva_xp.spec_strings import split_list
from nerva_xp.utilities import SpecError
from nerva_xp.weight_initializers import parse_weight_initializer

# ---- the spec's tables (§11.2 declared parameters, §4/§5/§7.3/§8/§9/§10 names) ----

REQ = object()  # a required parameter (no default)
LIST = "list"  # marks MultiStepLR's milestones

PARSERS = {
    "layer": parse_layer,
    "activation": parse_activation,
    "optimizer": parse_optimizer,
    "weight initializer": parse_weight_initializer,
    "loss function": parse_loss_function,
    "learning rate scheduler": parse_learning_rate,
}
KINDS = list(PARSERS)

_ALPHA = (("alpha", REQ),)
_SRELU = (("al", 0.0), ("tl", 0.0), ("ar", 0.0), ("tr", 1.0))
_AB = (("a", 0.0), ("b", 1.0))

TABLES = {
    "layer": {
        "Linear": (),
        "ReLU": (),
        "Sigmoid": (),
        "HyperbolicTangent": (),
        "Softmax": (),
        "LogSoftmax": (),
        "AllReLU": _ALPHA,
        "LeakyReLU": _ALPHA,
        "SReLU": _SRELU,
        "BatchNormalization": (),
    },
    "activation": {
        "ReLU": (),
        "Sigmoid": (),
        "HyperbolicTangent": (),
        "LeakyReLU": _ALPHA,
        "AllReLU": _ALPHA,
        "SReLU": _SRELU,
    },
    "optimizer": {"GradientDescent": (), "Momentum": (("mu", REQ),), "Nesterov": (("mu", REQ),)},
    "weight initializer": {
        "XavierNormal": (),
        "XavierUniform": (),
        "HeNormal": (),
        "HeUniform": (),
        "Uniform": _AB,
        "Normal": _AB,
        "Zero": (),
    },
    "loss function": {
        "SquaredError": (),
        "CrossEntropy": (),
        "LogisticCrossEntropy": (),
        "NegativeLogLikelihood": (),
        "SoftmaxCrossEntropy": (),
    },
    "learning rate scheduler": {
        "Constant": (("lr", REQ),),
        "TimeBased": (("lr", REQ), ("decay", REQ)),
        "StepBased": (("lr", REQ), ("drop_rate", REQ), ("change_rate", REQ)),
        "MultiStepLR": (("lr", REQ), ("milestones", LIST), ("gamma", REQ)),
        "Exponential": (("lr", REQ), ("change_rate", REQ)),
    },
}
ALIASES = {"learning rate scheduler": {"MultistepLR": "MultiStepLR"}}

ACTIVATION_CLASSES = {
    "ReLU": ReLUActivation,
    "Sigmoid": SigmoidActivation,
    "HyperbolicTangent": HyperbolicTangentActivation,
    "LeakyReLU": LeakyReLUActivation,
    "AllReLU": AllReLUActivation,
    "SReLU": SReLUActivation,
}
LOSS_CLASSES = {
    "SquaredError": SquaredErrorLossFunction,
    "CrossEntropy": CrossEntropyLossFunction,
    "LogisticCrossEntropy": LogisticCrossEntropyLossFunction,
    "NegativeLogLikelihood": NegativeLogLikelihoodLossFunction,
    "SoftmaxCrossEntropy": StableSoftmaxCrossEntropyLossFunction,
}
OPTIMIZER_CLASSES = {
    "GradientDescent": GradientDescentOptimizer,
    "Momentum": MomentumOptimizer,
    "Nesterov": NesterovOptimizer,
}
SCHEDULER_CLASSES = {
    "Constant": ConstantScheduler,
    "TimeBased": TimeBasedScheduler,
    "StepBased": StepBasedScheduler,
    "MultiStepLR": MultiStepLRScheduler,
    "Exponential": ExponentialScheduler,
}


def canonical(kind: str, name: str, values: dict) -> str:
    """The canonical spec of §11.5, written independently of the code under test."""
    if not values:
        return "GradientDescent()" if name == "GradientDescent" else name
    parts = []
    for param, _ in TABLES[kind][name]:
        value = values[param]
        if isinstance(value, list):
            text = "[" + ", ".join(str(v) for v in value) + "]"
        elif kind == "activation" and name == "SReLU":  # shortest decimal of its float32 value
            text = repr(float(np.format_float_positional(np.float32(value), unique=True)))
        else:
            text = repr(float(value))
        parts.append(f"{param}={text}")
    return f"{name}({', '.join(parts)})"


def error_of(kind: str, text: str) -> str:
    """The message of the SpecError that parsing ``text`` as ``kind`` raises."""
    with pytest.raises(SpecError) as info:
        PARSERS[kind](text)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, f"message is not one line: {message!r}"
    return message


def prefix(kind: str, text: str) -> str:
    return f'invalid {kind} "{text.strip()}": '


# ---- documented specs: (text, canonical repr) per kind ----

ACTIVATION_SPECS = [
    ("ReLU", "ReLU"),
    ("ReLU()", "ReLU"),
    ("Sigmoid", "Sigmoid"),
    ("Sigmoid()", "Sigmoid"),
    ("HyperbolicTangent", "HyperbolicTangent"),
    ("HyperbolicTangent()", "HyperbolicTangent"),
    ("LeakyReLU(0.1)", "LeakyReLU(alpha=0.1)"),
    ("LeakyReLU(0.5)", "LeakyReLU(alpha=0.5)"),
    ("LeakyReLU(alpha=0.5)", "LeakyReLU(alpha=0.5)"),
    ("AllReLU(0.3)", "AllReLU(alpha=0.3)"),
    ("AllReLU(alpha=0.3)", "AllReLU(alpha=0.3)"),
    ("SReLU", "SReLU(al=0.0, tl=0.0, ar=0.0, tr=1.0)"),
    ("SReLU()", "SReLU(al=0.0, tl=0.0, ar=0.0, tr=1.0)"),
    ("SReLU(0.5)", "SReLU(al=0.5, tl=0.0, ar=0.0, tr=1.0)"),
    ("SReLU(al=0.25, tr=2)", "SReLU(al=0.25, tl=0.0, ar=0.0, tr=2.0)"),
    ("SReLU(0.25, -1, 0.5, 1)", "SReLU(al=0.25, tl=-1.0, ar=0.5, tr=1.0)"),
    ("SReLU(al=0, tl=0, ar=1, tr=1)", "SReLU(al=0.0, tl=0.0, ar=1.0, tr=1.0)"),
]

LAYER_SPECS = [
    ("Linear", ("Linear", {})),
    ("Linear()", ("Linear", {})),
    ("ReLU", ("ReLU", {})),
    ("Sigmoid", ("Sigmoid", {})),
    ("HyperbolicTangent()", ("HyperbolicTangent", {})),
    ("Softmax", ("Softmax", {})),
    ("LogSoftmax", ("LogSoftmax", {})),
    ("BatchNormalization", ("BatchNormalization", {})),
    ("BatchNormalization()", ("BatchNormalization", {})),
    ("AllReLU(0.3)", ("AllReLU", {"alpha": 0.3})),
    ("LeakyReLU(alpha=0.1)", ("LeakyReLU", {"alpha": 0.1})),
    ("SReLU", ("SReLU", {"al": 0.0, "tl": 0.0, "ar": 0.0, "tr": 1.0})),
    ("SReLU(0.5)", ("SReLU", {"al": 0.5, "tl": 0.0, "ar": 0.0, "tr": 1.0})),
    ("SReLU(al=0.1, tr=2)", ("SReLU", {"al": 0.1, "tl": 0.0, "ar": 0.0, "tr": 2.0})),
    ("SReLU(0.2,-1,0.5,1)", ("SReLU", {"al": 0.2, "tl": -1.0, "ar": 0.5, "tr": 1.0})),
]

OPTIMIZER_SPECS = [
    ("GradientDescent", "GradientDescent()"),
    ("GradientDescent()", "GradientDescent()"),
    ("Momentum(0.9)", "Momentum(mu=0.9)"),
    ("Momentum(mu=0.9)", "Momentum(mu=0.9)"),
    ("Momentum(0)", "Momentum(mu=0.0)"),
    ("Momentum(-0.5)", "Momentum(mu=-0.5)"),
    ("Nesterov(0.9)", "Nesterov(mu=0.9)"),
    ("Nesterov(mu=0.75)", "Nesterov(mu=0.75)"),
]

WEIGHT_SPECS = [
    ("XavierNormal", "XavierNormal"),
    ("XavierNormal()", "XavierNormal"),
    ("XavierUniform", "XavierUniform"),
    ("HeNormal", "HeNormal"),
    ("HeUniform()", "HeUniform"),
    ("Zero", "Zero"),
    ("Zero()", "Zero"),
    ("Uniform", "Uniform(a=0.0, b=1.0)"),
    ("Uniform()", "Uniform(a=0.0, b=1.0)"),
    ("Uniform(a=-1,b=1)", "Uniform(a=-1.0, b=1.0)"),
    ("Uniform(-0.5, 0.5)", "Uniform(a=-0.5, b=0.5)"),
    ("Uniform(1, 1)", "Uniform(a=1.0, b=1.0)"),
    ("Uniform(b=2)", "Uniform(a=0.0, b=2.0)"),
    ("Normal", "Normal(a=0.0, b=1.0)"),
    ("Normal()", "Normal(a=0.0, b=1.0)"),
    ("Normal(0,0.1)", "Normal(a=0.0, b=0.1)"),
    ("Normal(a=3, b=0)", "Normal(a=3.0, b=0.0)"),
    ("Normal(-2)", "Normal(a=-2.0, b=1.0)"),
]

LOSS_SPECS = [(name, name) for name in LOSS_CLASSES] + [
    (f"{name}()", name) for name in LOSS_CLASSES
]

_MS = "MultiStepLR(lr=0.1, milestones=[1, 3, 5], gamma=0.2)"
SCHEDULER_SPECS = [
    ("Constant(0.01)", "Constant(lr=0.01)"),
    ("Constant(lr=0.01)", "Constant(lr=0.01)"),
    ("TimeBased(0.1, 0.5)", "TimeBased(lr=0.1, decay=0.5)"),
    ("TimeBased(0.1,0.5)", "TimeBased(lr=0.1, decay=0.5)"),
    ("StepBased(1.0,0.5,2)", "StepBased(lr=1.0, drop_rate=0.5, change_rate=2.0)"),
    ("MultiStepLR(1.0;1,3,5;0.1)", "MultiStepLR(lr=1.0, milestones=[1, 3, 5], gamma=0.1)"),
    ("MultiStepLR(0.1;1,3,5;0.2)", _MS),
    ("MultiStepLR(0.1, [1,3,5], 0.2)", _MS),
    ("MultiStepLR(lr=0.1, milestones=[1,3,5], gamma=0.2)", _MS),
    ("MultiStepLR(lr=0.1; milestones=1,3,5; gamma=0.2)", _MS),
    ("MultiStepLR(0.1;[1,3,5];0.2)", _MS),
    ("MultistepLR(0.1;1,3,5;0.2)", _MS),
    ("MultistepLR(0.1, [1,3,5], 0.2)", _MS),
    ("MultistepLR(lr=0.1, milestones=[1,3,5], gamma=0.2)", _MS),
    ("MultiStepLR(0.1;2;0.2)", "MultiStepLR(lr=0.1, milestones=[2], gamma=0.2)"),
    ("MultiStepLR(0.1, [], 0.2)", "MultiStepLR(lr=0.1, milestones=[], gamma=0.2)"),
    ("MultiStepLR(0.1, [0], 0.2)", "MultiStepLR(lr=0.1, milestones=[0], gamma=0.2)"),
    ("Exponential(2.0, 0.5)", "Exponential(lr=2.0, change_rate=0.5)"),
]

DOCUMENTED = (
    [("activation", t, r) for t, r in ACTIVATION_SPECS]
    + [("optimizer", t, r) for t, r in OPTIMIZER_SPECS]
    + [("weight initializer", t, r) for t, r in WEIGHT_SPECS]
    + [("loss function", t, r) for t, r in LOSS_SPECS]
    + [("learning rate scheduler", t, r) for t, r in SCHEDULER_SPECS]
)


# ---- SpecError (§11.3) ----


def test_spec_error_is_value_error_and_runtime_error():
    assert issubclass(SpecError, ValueError)
    assert issubclass(SpecError, RuntimeError)
    assert utilities.SpecError is spec_strings.SpecError


@pytest.mark.parametrize("kind", KINDS)
def test_nerva_code_catching_runtime_error_keeps_working(kind):
    with pytest.raises(RuntimeError):
        PARSERS[kind]("NoSuchName")


# ---- documented specs parse, with the canonical repr (§4, §5, §8, §9, §10, §11.5) ----


@pytest.mark.parametrize(("kind", "text", "expected"), DOCUMENTED)
def test_documented_spec_has_canonical_repr(kind, text, expected):
    assert repr(PARSERS[kind](text)) == expected


@pytest.mark.parametrize(("kind", "text", "expected"), DOCUMENTED)
def test_documented_spec_round_trips(kind, text, expected):
    parse = PARSERS[kind]
    x = parse(text)
    assert parse(repr(x)) == x
    assert repr(parse(repr(x))) == repr(x)
    assert parse(expected) == x


@pytest.mark.parametrize(("text", "expected"), LAYER_SPECS)
def test_documented_layer_spec(text, expected):
    assert parse_layer(text) == expected


@pytest.mark.parametrize(("text", "expected"), LAYER_SPECS)
def test_layer_canonical_form_round_trips(text, expected):
    name, values = parse_layer(text)
    assert parse_layer(canonical("layer", name, values)) == (name, values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ReLU", ReLUActivation()),
        ("Sigmoid()", SigmoidActivation()),
        ("HyperbolicTangent", HyperbolicTangentActivation()),
        ("LeakyReLU(0.1)", LeakyReLUActivation(0.1)),
        ("AllReLU(alpha=0.3)", AllReLUActivation(0.3)),
        ("SReLU", SReLUActivation()),
        ("SReLU()", SReLUActivation(0.0, 0.0, 0.0, 1.0)),
        ("SReLU(0.5)", SReLUActivation(al=0.5, tl=0.0, ar=0.0, tr=1.0)),
        ("SReLU(al=0.1, tr=2)", SReLUActivation(al=0.1, tl=0.0, ar=0.0, tr=2.0)),
        ("SReLU(0.2, -1, 0.5, 1)", SReLUActivation(0.2, -1.0, 0.5, 1.0)),
    ],
)
def test_activation_class_and_values(text, expected):
    act = parse_activation(text)
    assert type(act) is type(expected)
    assert act == expected


def test_srelu_single_positional_fills_al_only():
    """§11.2 behaviour change: SReLU(0.5) = SReLU(al=0.5, tl=0, ar=0, tr=1), not all four."""
    assert parse_activation("SReLU(0.5)") != SReLUActivation(0.5, 0.5, 0.5, 0.5)
    assert parse_activation("SReLU(0.5)") == parse_activation("SReLU(al=0.5, tl=0, ar=0, tr=1)")


@pytest.mark.parametrize("name", list(LOSS_CLASSES))
@pytest.mark.parametrize("form", ["{}", "{}()", " {} ( ) "])
def test_loss_class(name, form):
    loss = parse_loss_function(form.format(name))
    assert type(loss) is LOSS_CLASSES[name]
    assert repr(loss) == name


@pytest.mark.parametrize(("text", "expected"), OPTIMIZER_SPECS)
def test_optimizer_factory_builds_its_class(text, expected):
    factory = parse_optimizer(text)
    x, Dx = np.zeros(2), np.array([1.0, -2.0])
    optimizer = factory(x, Dx)
    assert type(optimizer) is OPTIMIZER_CLASSES[expected.split("(")[0]]
    assert repr(optimizer) == expected


def test_optimizer_factory_binds_mu():
    x, Dx = np.zeros(2), np.array([1.0, -2.0])
    optimizer = parse_optimizer("Momentum(0.9)")(x, Dx)
    optimizer.update(0.1)
    optimizer.update(0.1)
    np.testing.assert_allclose(x, [-0.29, 0.58])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Constant(0.01)", ConstantScheduler(lr=0.01)),
        ("TimeBased(0.1, 0.5)", TimeBasedScheduler(lr=0.1, decay=0.5)),
        ("StepBased(1.0,0.5,2)", StepBasedScheduler(lr=1.0, drop_rate=0.5, change_rate=2.0)),
        ("MultiStepLR(0.1;1,3,5;0.2)", MultiStepLRScheduler(0.1, [1, 3, 5], 0.2)),
        ("MultiStepLR(0.1, [1,3,5], 0.2)", MultiStepLRScheduler(0.1, [1, 3, 5], 0.2)),
        ("MultistepLR(0.1;1,3,5;0.2)", MultiStepLRScheduler(0.1, [1, 3, 5], 0.2)),
        ("MultiStepLR(0.1, [5,1,3], 0.2)", MultiStepLRScheduler(0.1, [5, 1, 3], 0.2)),
        ("Exponential(2.0, 0.5)", ExponentialScheduler(lr=2.0, change_rate=0.5)),
    ],
)
def test_scheduler_class_and_values(text, expected):
    scheduler = parse_learning_rate(text)
    assert type(scheduler) is type(expected)
    assert scheduler == expected


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("StepBased(1.0, 0.5, 2)", [1, 0.5, 0.5, 0.25]),
        ("MultiStepLR(1.0;1,3,5;0.1)", [1, 0.1, 0.1, 0.01]),
        ("MultiStepLR(lr=1.0, milestones=[1,3,5], gamma=0.1)", [1, 0.1, 0.1, 0.01]),
        ("TimeBased(0.1, 0.5)", [0.1, 0.1 / 1.5, 0.1 / 3.0]),
    ],
)
def test_parsed_scheduler_reference_values(text, values):
    scheduler = parse_learning_rate(text)
    assert [scheduler(e) for e in range(len(values))] == pytest.approx(values, rel=1e-12)


# ---- grammar details: whitespace and numbers (§11.1) ----


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("activation", "  ReLU  ", "ReLU"),
        ("activation", "ReLU ( )", "ReLU"),
        ("activation", " LeakyReLU ( alpha = 0.1 ) ", "LeakyReLU(alpha=0.1)"),
        ("activation", "SReLU(\tal = 0.5 ,\n tr=2 )", "SReLU(al=0.5, tl=0.0, ar=0.0, tr=2.0)"),
        ("optimizer", "Momentum (0.9)", "Momentum(mu=0.9)"),
        ("optimizer", "\tNesterov( mu=0.75 )\n", "Nesterov(mu=0.75)"),
        ("weight initializer", "Uniform( a = -1 , b = 1 )", "Uniform(a=-1.0, b=1.0)"),
        ("loss function", "  CrossEntropy ", "CrossEntropy"),
        ("learning rate scheduler", "MultiStepLR( 0.1 ; 1 , 3 , 5 ; 0.2 )", _MS),
        ("learning rate scheduler", "MultiStepLR(0.1, [ 1 , 3 , 5 ], 0.2)", _MS),
        ("learning rate scheduler", "MultiStepLR(0.1 , [1,3,5] , 0.2)", _MS),
    ],
)
def test_whitespace_between_tokens(kind, text, expected):
    assert repr(PARSERS[kind](text)) == expected


@pytest.mark.parametrize(
    ("number", "value"),
    [
        ("1e-3", 0.001),
        (".5", 0.5),
        ("+2", 2.0),
        ("3.", 3.0),
        ("1E5", 1e5),
        ("-0.25", -0.25),
        ("1.5e+2", 150.0),
        ("2.5E-1", 0.25),
        ("0", 0.0),
        ("007", 7.0),
        ("+.5e1", 5.0),
        ("-3.e0", -3.0),
    ],
)
def test_number_forms(number, value):
    assert repr(parse_optimizer(f"Momentum({number})")) == f"Momentum(mu={value!r})"
    assert parse_learning_rate(f"Constant(lr={number})") == ConstantScheduler(value)


@pytest.mark.parametrize("milestones", ["+1,3", "[+1, 3]", "[1,+3]"])
def test_signed_integer_milestones(milestones):
    scheduler = parse_learning_rate(f"MultiStepLR(0.1;{milestones};0.2)")
    assert scheduler == MultiStepLRScheduler(0.1, [1, 3], 0.2)


# ---- unknown names (§11.3, §7.3, §8) ----


def _listed_names(message: str) -> list[str]:
    return message.split("; expected one of ", 1)[1].split(", ")


def _assert_lists_all_names(kind: str, message: str) -> None:
    listed = set(_listed_names(message))
    names = set(TABLES[kind])
    assert names <= listed <= names | set(ALIASES.get(kind, {}))


@pytest.mark.parametrize(
    ("kind", "text", "name", "suggestion"),
    [
        ("activation", "Relu", "Relu", "ReLU"),
        ("activation", "relu", "relu", "ReLU"),
        ("activation", "Sigmod", "Sigmod", "Sigmoid"),
        ("activation", "LeakyRelu(0.1)", "LeakyRelu", "LeakyReLU"),
        ("layer", "Relu", "Relu", "ReLU"),
        ("layer", "Batchnormalization", "Batchnormalization", "BatchNormalization"),
        ("layer", "LogSoftMax", "LogSoftMax", "LogSoftmax"),
        ("optimizer", "momentum(0.9)", "momentum", "Momentum"),
        ("optimizer", "Nesterow(0.9)", "Nesterow", "Nesterov"),
        ("optimizer", "GradientDecent", "GradientDecent", "GradientDescent"),
        ("weight initializer", "XavierNormel", "XavierNormel", "XavierNormal"),
        ("weight initializer", "Uniforn(0, 1)", "Uniforn", "Uniform"),
        ("loss function", "SquaredErrors", "SquaredErrors", "SquaredError"),
        ("loss function", "crossentropy", "crossentropy", "CrossEntropy"),
        ("learning rate scheduler", "Constnt(0.1)", "Constnt", "Constant"),
        ("learning rate scheduler", "Multisteplr(0.1;1;0.2)", "Multisteplr", "MultiStepLR"),
        ("learning rate scheduler", "Exponentail(1, 2)", "Exponentail", "Exponential"),
    ],
)
def test_unknown_name_with_suggestion(kind, text, name, suggestion):
    message = error_of(kind, text)
    head = prefix(kind, text) + f'unknown name "{name}" (did you mean "{suggestion}"?); '
    assert message.startswith(head + "expected one of ")
    _assert_lists_all_names(kind, message)


@pytest.mark.parametrize(
    ("kind", "text", "name"),
    [
        ("activation", "Foo", "Foo"),
        ("layer", "Conv2d(3)", "Conv2d"),
        ("optimizer", "Adam", "Adam"),
        ("weight initializer", "Orthogonal", "Orthogonal"),
        ("loss function", "Hinge()", "Hinge"),
        ("learning rate scheduler", "Cosine(1)", "Cosine"),
    ],
)
def test_unknown_name_without_suggestion(kind, text, name):
    message = error_of(kind, text)
    assert message.startswith(prefix(kind, text) + f'unknown name "{name}"; expected one of ')
    assert "did you mean" not in message
    _assert_lists_all_names(kind, message)


def test_unknown_layer_lists_names_in_spec_order():
    message = error_of("layer", "Relu")
    assert message.split("; ", 1)[1].startswith("expected one of Linear, ReLU, Sigmoid, ")


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("weight initializer", "Xavier"),
        ("weight initializer", "XavierNormalized"),
        ("weight initializer", "He"),
        ("activation", "Linear"),
        ("activation", "Softmax"),
        ("activation", "LogSoftmax"),
        ("activation", "BatchNormalization"),
        ("optimizer", "ReLU"),
        ("loss function", "SoftmaxCrossEntropyLossFunction"),
        ("layer", "MultistepLR(0.1;1;0.2)"),
        ("learning rate scheduler", "MultiStep(0.1;1;0.2)"),
    ],
)
def test_names_that_are_not_accepted(kind, text):
    name = re.match(r"\w+", text).group()
    assert error_of(kind, text).startswith(prefix(kind, text) + f'unknown name "{name}"')


# ---- syntax errors (§11.1, §11.3) ----


def test_syntax_error_example_from_spec():
    assert error_of("activation", "LeakyReLU(1) junk") == (
        'invalid activation "LeakyReLU(1) junk": syntax error at position 13: '
        'expected end of text, got "junk"'
    )


@pytest.mark.parametrize(
    ("kind", "text", "position", "got"),
    [
        ("activation", "ReLU junk", 5, "junk"),
        ("activation", "  ReLU junk  ", 5, "junk"),
        ("optimizer", "Momentum(0.9) x", 14, "x"),
        ("optimizer", "GradientDescent() more", 18, "more"),
        ("loss function", "SquaredError junk", 13, "junk"),
        ("weight initializer", "Normal(0, 1) x", 13, "x"),
        ("learning rate scheduler", "Constant(0.1) Constant(0.2)", 14, "Constant"),
        ("layer", "Linear junk", 7, "junk"),
    ],
)
def test_trailing_junk(kind, text, position, got):
    message = error_of(kind, text)
    assert message.startswith(
        prefix(kind, text) + f"syntax error at position {position}: expected "
    )
    assert message.endswith(f', got "{got}"')


@pytest.mark.parametrize(
    ("kind", "text", "position"),
    [
        ("activation", "ReLU(", 5),
        ("activation", "ReLU)", 4),
        ("activation", "LeakyReLU(0.1", 13),
        ("activation", "LeakyReLU(0.1))", 14),
        ("activation", "LeakyReLU((0.1)", 10),
        ("activation", "ReLU()()", 6),
        ("activation", "(ReLU)", 0),
        ("activation", "1ReLU", 0),
        ("activation", "", 0),
        ("activation", "   ", 0),
        ("layer", "Linear;", 6),
        ("layer", "SReLU(1,,2)", 8),
        ("optimizer", "Momentum(,)", 9),
        ("optimizer", "Momentum(0.9,)", 13),
        ("optimizer", "Momentum(mu=)", 12),
        ("optimizer", "Momentum(=0.9)", 9),
        ("optimizer", "Momentum(0.9 0.8)", 13),
        ("optimizer", "Momentum(1.2.3)", 12),
        ("weight initializer", "Uniform(a=-1 b=1)", 13),
        ("loss function", "CrossEntropy(", 13),
        ("learning rate scheduler", "MultiStepLR(0.1, [1,3,5", 23),
        ("learning rate scheduler", "MultiStepLR(0.1, [1,3,5]], 0.2)", 24),
        ("learning rate scheduler", "MultiStepLR(0.1, [1,,3], 0.2)", 20),
        ("learning rate scheduler", "TimeBased(0.1;)", 14),
        ("optimizer", "Momentum(mu=0.9,)", 16),  # an empty argument after a named one
        ("layer", "SReLU(al=0.1,,tl=0)", 13),
        ("weight initializer", "Uniform(a=-1,", 13),
        ("layer", "Linéar", 3),  # not "unknown name Lin": the word typed goes on
        ("activation", "Re-LU", 2),
        ("optimizer", "Momentum.9", 8),
    ],
)
def test_syntax_error_position(kind, text, position):
    message = error_of(kind, text)
    assert message.startswith(
        prefix(kind, text) + f"syntax error at position {position}: expected "
    )


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("learning rate scheduler", "MultiStepLR(0.1, [1.5], 0.2)"),
        ("learning rate scheduler", "MultiStepLR(0.1;1.5,3;0.2)"),
        ("learning rate scheduler", "MultiStepLR(0.1, 1,3,5; 0.2)"),
        ("learning rate scheduler", "MultiStepLR(0.1, [1,3,5, 0.2)"),
    ],
)
def test_malformed_lists_are_rejected(kind, text):
    assert error_of(kind, text).startswith(prefix(kind, text))


def _check_rejected_literal(kind, text, param, token, start):
    """A non-decimal literal is rejected, as a syntax error inside it or as non-numeric."""
    message = error_of(kind, text)
    head = prefix(kind, text)
    syntax = [f"{head}syntax error at position {p}: expected " for p in range(start, start + 4)]
    non_numeric = f'{head}parameter {param}: expected a number, got "{token}"'
    assert message == non_numeric or any(message.startswith(s) for s in syntax), message


@pytest.mark.parametrize(
    ("kind", "text", "param", "token", "start"),
    [
        ("optimizer", "Momentum(0x10)", "mu", "0x10", 9),
        ("optimizer", "Momentum(1_000)", "mu", "1_000", 9),
        ("optimizer", "Momentum(nan)", "mu", "nan", 9),
        ("optimizer", "Momentum(inf)", "mu", "inf", 9),
        ("optimizer", "Momentum(-inf)", "mu", "-inf", 9),
        ("activation", "LeakyReLU(alpha=NaN)", "alpha", "NaN", 16),
        ("activation", "LeakyReLU(Infinity)", "alpha", "Infinity", 10),
        ("learning rate scheduler", "Constant(lr=0X1p3)", "lr", "0X1p3", 12),
        ("weight initializer", "Normal(0, 1_0)", "b", "1_0", 10),
    ],
)
def test_non_decimal_literals_are_rejected(kind, text, param, token, start):
    _check_rejected_literal(kind, text, param, token, start)


@pytest.mark.parametrize(
    ("kind", "text", "param", "token", "start"),
    [
        ("learning rate scheduler", "Constant(\u0663)", "lr", "\u0663", 9),  # Arabic-Indic 3
        ("optimizer", "Momentum(mu=\uff10.9)", "mu", "\uff10.9", 12),  # fullwidth 0
    ],
)
def test_only_ascii_digits_are_numbers(kind, text, param, token, start):
    """DIGITS := [0-9]+ (spec §11.1), although Python's float() takes any Unicode digit."""
    _check_rejected_literal(kind, text, param, token, start)


def test_only_ascii_digits_are_milestones():
    with pytest.raises(SpecError):
        parse_learning_rate("MultiStepLR(0.1;\u0661,\u0663;0.2)")


@pytest.mark.parametrize("text", ["Constant(1e999)", "Constant(-1e400)", "Constant(lr=1e309)"])
def test_overflowing_numbers_are_rejected(text):
    """Values are finite decimal numbers (§11.1); 1e999 matches NUMBER but is not finite."""
    message = error_of("learning rate scheduler", text)
    assert message.startswith(prefix("learning rate scheduler", text) + "parameter lr: expected ")


# ---- binding errors (§11.2, §11.3) ----


@pytest.mark.parametrize(
    ("kind", "text", "problem"),
    [
        ("activation", "LeakyReLU(beta=1)", 'unknown parameter "beta"; expected alpha'),
        ("activation", "ReLU(x=1)", 'unknown parameter "x"; takes no parameters'),
        ("layer", "Linear(x=1)", 'unknown parameter "x"; takes no parameters'),
        ("layer", "AllReLU(beta=1)", 'unknown parameter "beta"; expected alpha'),
        ("optimizer", "Momentum(alpha=0.9)", 'unknown parameter "alpha"; expected mu'),
        ("optimizer", "GradientDescent(mu=0.9)", 'unknown parameter "mu"; takes no parameters'),
        ("loss function", "SquaredError(x=1)", 'unknown parameter "x"; takes no parameters'),
        ("weight initializer", "HeNormal(gain=2)", 'unknown parameter "gain"; takes no parameters'),
        ("learning rate scheduler", "Constant(rate=0.1)", 'unknown parameter "rate"; expected lr'),
    ],
)
def test_unknown_parameter(kind, text, problem):
    assert error_of(kind, text) == prefix(kind, text) + problem


@pytest.mark.parametrize(
    ("kind", "text", "param", "expected"),
    [
        ("activation", "SReLU(foo=1)", "foo", ["al", "tl", "ar", "tr"]),
        ("weight initializer", "Uniform(mean=0)", "mean", ["a", "b"]),
        ("learning rate scheduler", "TimeBased(lr=1, decay_rate=1)", "decay_rate", ["lr", "decay"]),
        (
            "learning rate scheduler",
            "MultiStepLR(lr=1, milestones=[1], gamma=0.1, step=2)",
            "step",
            ["lr", "milestones", "gamma"],
        ),
    ],
)
def test_unknown_parameter_lists_declared_parameters(kind, text, param, expected):
    message = error_of(kind, text)
    head = prefix(kind, text) + f'unknown parameter "{param}"; expected '
    assert message.startswith(head)
    assert re.findall(r"\w+", message[len(head) :]) == expected


@pytest.mark.parametrize(
    ("kind", "text", "param"),
    [
        ("activation", "SReLU(al=1, al=2)", "al"),
        ("activation", "SReLU(1, al=2)", "al"),
        ("activation", "SReLU(1, 2, tl=3)", "tl"),
        ("layer", "LeakyReLU(0.1, alpha=0.2)", "alpha"),
        ("optimizer", "Momentum(0.9, mu=0.8)", "mu"),
        ("optimizer", "Nesterov(mu=0.9, mu=0.9)", "mu"),
        ("weight initializer", "Uniform(a=0, a=1)", "a"),
        ("learning rate scheduler", "TimeBased(0.1, 0.5, decay=0.2)", "decay"),
        ("learning rate scheduler", "MultiStepLR(0.1;1,3;0.2;lr=1)", "lr"),
    ],
)
def test_parameter_given_twice(kind, text, param):
    assert error_of(kind, text) == prefix(kind, text) + f"parameter {param} given twice"


@pytest.mark.parametrize(
    ("kind", "text", "problem"),
    [
        ("optimizer", "Momentum(0.9, 0.8)", "takes at most 1 (mu), got 2"),
        ("optimizer", "Nesterov(1;2;3)", "takes at most 1 (mu), got 3"),
        ("activation", "LeakyReLU(0.1, 0.2)", "takes at most 1 (alpha), got 2"),
        ("activation", "SReLU(1, 2, 3, 4, 5)", "takes at most 4 (al, tl, ar, tr), got 5"),
        ("layer", "SReLU(1, 2, 3, 4, 5)", "takes at most 4 (al, tl, ar, tr), got 5"),
        ("weight initializer", "Normal(0, 1, 2)", "takes at most 2 (a, b), got 3"),
        ("learning rate scheduler", "Constant(0.1, 0.2)", "takes at most 1 (lr), got 2"),
        (
            "learning rate scheduler",
            "MultiStepLR(0.1, 1,3,5, 0.2)",
            "takes at most 3 (lr, milestones, gamma), got 5",
        ),
    ],
)
def test_too_many_arguments(kind, text, problem):
    assert error_of(kind, text) == prefix(kind, text) + "too many arguments: " + problem


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("optimizer", "GradientDescent(3)"),
        ("activation", "ReLU(1)"),
        ("activation", "Sigmoid(0.5)"),
        ("layer", "BatchNormalization(1)"),
        ("layer", "Softmax(1)"),
        ("loss function", "CrossEntropy(0)"),
        ("weight initializer", "Zero(0)"),
        ("weight initializer", "XavierUniform(1)"),
    ],
)
def test_arguments_to_parameterless_items_are_rejected(kind, text):
    message = error_of(kind, text)
    assert message.startswith(prefix(kind, text) + "too many arguments: ")
    assert message.endswith("got 1")


@pytest.mark.parametrize(
    ("kind", "text", "position"),
    [
        ("activation", "SReLU(al=1, 2)", 12),
        ("optimizer", "Momentum(mu=0.9, 0.8)", 17),
        ("learning rate scheduler", "TimeBased(lr=0.1,0.5)", 17),
        ("weight initializer", "Uniform(a=0, 1)", 13),
        ("layer", "SReLU(tl=1;2)", 11),
    ],
)
def test_positional_after_named(kind, text, position):
    problem = f"positional argument after named argument at position {position}"
    assert error_of(kind, text) == prefix(kind, text) + problem


@pytest.mark.parametrize(
    ("kind", "text", "param"),
    [
        ("optimizer", "Momentum", "mu"),
        ("optimizer", "Momentum()", "mu"),
        ("optimizer", "Nesterov", "mu"),
        ("optimizer", " Nesterov( ) ", "mu"),
        ("activation", "LeakyReLU", "alpha"),
        ("activation", "AllReLU()", "alpha"),
        ("layer", "LeakyReLU", "alpha"),
        ("learning rate scheduler", "Constant", "lr"),
        ("learning rate scheduler", "Constant()", "lr"),
        ("learning rate scheduler", "TimeBased(0.1)", "decay"),
        ("learning rate scheduler", "StepBased(lr=1, change_rate=2)", "drop_rate"),
        ("learning rate scheduler", "MultiStepLR(0.1, gamma=0.2)", "milestones"),
        ("learning rate scheduler", "MultiStepLR(lr=0.1, milestones=[1])", "gamma"),
        ("learning rate scheduler", "Exponential(2.0)", "change_rate"),
    ],
)
def test_missing_required_parameter(kind, text, param):
    assert error_of(kind, text) == prefix(kind, text) + f"missing required parameter {param}"


def test_non_numeric_example_from_spec():
    assert error_of("activation", "SReLU(al=x)") == (
        'invalid activation "SReLU(al=x)": parameter al: expected a number, got "x"'
    )


@pytest.mark.parametrize(
    ("kind", "text", "param", "got"),
    [
        ("activation", "LeakyReLU(alpha)", "alpha", "alpha"),
        ("activation", "SReLU(0, tr=high)", "tr", "high"),
        ("layer", "SReLU(al=x)", "al", "x"),
        ("optimizer", "Momentum(mu=fast)", "mu", "fast"),
        ("weight initializer", "Normal(0, sigma)", "b", "sigma"),
        ("learning rate scheduler", "Constant(lr=abc)", "lr", "abc"),
        ("learning rate scheduler", "TimeBased(0.1, d)", "decay", "d"),
    ],
)
def test_non_numeric_value(kind, text, param, got):
    problem = f'parameter {param}: expected a number, got "{got}"'
    assert error_of(kind, text) == prefix(kind, text) + problem


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("optimizer", "Momentum([1,2])"),
        ("activation", "LeakyReLU(alpha=[1])"),
        ("learning rate scheduler", "MultiStepLR(0.1, [1,3], [2])"),
        ("learning rate scheduler", "MultiStepLR(0.1, x, 0.2)"),
    ],
)
def test_list_or_name_where_not_allowed(kind, text):
    assert error_of(kind, text).startswith(prefix(kind, text))


@pytest.mark.parametrize(
    ("text", "got"),
    [
        ("StepBased(1, 0.5, 0)", "0"),
        ("StepBased(1, 0.5, -2)", "-2"),
        ("StepBased(lr=1, drop_rate=0.5, change_rate=0.0)", "0.0"),
        ("StepBased(1;0.5;-1e-3)", "-1e-3"),
    ],
)
def test_out_of_range_change_rate(text, got):
    problem = f'parameter change_rate: expected a number > 0, got "{got}"'
    assert error_of("learning rate scheduler", text) == prefix("learning rate scheduler", text) + (
        problem
    )


@pytest.mark.parametrize(
    ("kind", "text", "params"),
    [
        ("weight initializer", "Uniform(1, 0)", "a|b"),
        ("weight initializer", "Uniform(a=2, b=-2)", "a|b"),
        ("weight initializer", "Uniform(b=-1)", "a|b"),
        ("weight initializer", "Uniform(2)", "a|b"),
        ("weight initializer", "Uniform(a=1.5)", "a|b"),
        ("weight initializer", "Normal(0, -1)", "b"),
        ("weight initializer", "Normal(b=-0.5)", "b"),
        ("weight initializer", "Uniform(-1e308, 1e308)", "b"),  # b − a overflows
        ("learning rate scheduler", "MultiStepLR(0.1, [-1, 2], 0.2)", "milestones"),
        ("learning rate scheduler", "MultiStepLR(0.1;-3;0.2)", "milestones"),
        (
            "learning rate scheduler",
            "MultiStepLR(lr=0.1, milestones=[1, -5], gamma=0.1)",
            "milestones",
        ),
    ],
)
def test_out_of_range(kind, text, params):
    message = error_of(kind, text)
    head = re.escape(prefix(kind, text))
    assert re.fullmatch(rf'{head}parameter ({params}): expected .+, got ".*"', message), message


# ---- messages (§11.3) ----


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("activation", "ReLU\njunk"),
        ("activation", "LeakyReLU(\nbeta=1)"),
        ("optimizer", "Momentum(0.9,\n0.8)"),
        ("learning rate scheduler", "MultiStepLR(0.1;\n-1;0.2)"),
        ("loss function", "Squared\rError"),
    ],
)
def test_message_is_one_line_even_for_multi_line_items(kind, text):
    error_of(kind, text)  # asserts one line


@pytest.mark.parametrize("kind", KINDS)
def test_item_is_quoted_stripped(kind):
    message = error_of(kind, "  \t NoSuchName(1)  \n")
    assert message.startswith(f'invalid {kind} "NoSuchName(1)": unknown name "NoSuchName"')


# ---- command-line lists (§11.4) ----


@pytest.mark.parametrize(
    ("text", "separators", "expected"),
    [
        ("ReLU", ";", ["ReLU"]),
        ("ReLU;Linear", ";", ["ReLU", "Linear"]),
        (" ReLU ; BatchNormalization ;Linear ", ";", ["ReLU", "BatchNormalization", "Linear"]),
        ("ReLU;MultiStepLR(0.1;1,3,5;0.2)", ";", ["ReLU", "MultiStepLR(0.1;1,3,5;0.2)"]),
        (
            "MultiStepLR(0.1;1,3,5;0.2); Momentum(0.9)",
            ";",
            ["MultiStepLR(0.1;1,3,5;0.2)", "Momentum(0.9)"],
        ),
        ("SReLU(al=1;tr=2);Linear", ";", ["SReLU(al=1;tr=2)", "Linear"]),
        ("X([1;2]);Y", ";", ["X([1;2])", "Y"]),
        ("784,128", ";", ["784,128"]),
        ("784,128;10", ",;", ["784", "128", "10"]),
        ("784, 128 ,10", ",;", ["784", "128", "10"]),
        ("SReLU(1,2);Linear", ",;", ["SReLU(1,2)", "Linear"]),
        ("Momentum(0.9);GradientDescent()", ";", ["Momentum(0.9)", "GradientDescent()"]),
    ],
)
def test_split_list(text, separators, expected):
    assert split_list(text, separators) == expected


def test_split_list_default_separator_is_semicolon():
    assert split_list("ReLU;SReLU(1,2)") == ["ReLU", "SReLU(1,2)"]


def test_split_list_items_parse_back():
    items = split_list("ReLU ; LeakyReLU(0.1) ; SReLU(0.5;0;0;1)")
    assert [parse_layer(item)[0] for item in items] == ["ReLU", "LeakyReLU", "SReLU"]
    assert parse_learning_rate(split_list("MultiStepLR(0.1;1,3,5;0.2)")[0]) == (
        MultiStepLRScheduler(0.1, [1, 3, 5], 0.2)
    )


@pytest.mark.parametrize("text", ["ReLU;;Linear", "ReLU;", ";ReLU", "ReLU; ;Linear"])
def test_split_list_does_not_drop_empty_items(text):
    """An empty item is an error (§11.4): split_list reports it or keeps it for the caller."""
    try:
        items = split_list(text)
    except (SpecError, ValueError):
        return
    assert "" in items


# ---- SReLU values that do not fit the run's dtype ----


def test_srelu_round_trip_for_a_finite_value_beyond_float32():
    """Every parsed activation round-trips (§11.5); SReLU(1e300) must not print as inf."""
    try:
        act = parse_activation("SReLU(1e300)")
    except SpecError:
        return
    assert parse_activation(repr(act)) == act


def test_srelu_shows_the_numbers_it_was_given_in_float32_and_float64():
    """SReLU's values live in an array of the run's dtype; repr shows the shortest decimal that
    rounds to each, so SReLU(0.1) reads al=0.1 (not 0.10000000149011612) in float32 as well."""
    for dtype in ("float32", "float64"):
        device = select_device("cpu", dtype)
        act = parse_activation("SReLU(0.1, -0.3, 1e-7, 2.5)", device=device)
        assert repr(act) == "SReLU(al=0.1, tl=-0.3, ar=1e-07, tr=2.5)"
        again = parse_activation(repr(act), device=device)
        np.testing.assert_array_equal(np.asarray(again.x), np.asarray(act.x))


def test_srelu_values_must_fit_the_dtype_they_are_stored_in():
    """float32 holds at most ±3.4e38; float64 takes any finite number."""
    act = parse_activation("SReLU(al=1e39)", device=select_device("cpu", "float64"))
    assert repr(act) == "SReLU(al=1e+39, tl=0.0, ar=0.0, tr=1.0)"
    message = "parameter al: expected a number within ±3.4e38 (float32), got 1e+39"
    with pytest.raises(
        SpecError, match=re.escape(f'invalid activation "SReLU(al=1e39)": {message}')
    ):
        parse_activation("SReLU(al=1e39)")
    with pytest.raises(SpecError, match=re.escape(f'invalid layer "SReLU(1e39)": {message}')):
        parse_layer("SReLU(1e39)", "float32")
    assert parse_layer("SReLU(1e39)", "float64") == parse_layer("SReLU(1e39)")


# ---- properties (hypothesis) ----

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GRAMMAR_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_()[],;=.+-eE "
ALL_NAMES = sorted({name for table in TABLES.values() for name in table} | {"MultistepLR"})


def _parse_or_spec_error(kind: str, text: str) -> None:
    try:
        PARSERS[kind](text)
    except SpecError as error:
        assert str(error).startswith(f'invalid {kind} "')


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(text=st.text())
def test_arbitrary_text_raises_only_spec_error(kind, text):
    _parse_or_spec_error(kind, text)


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(text=st.text(alphabet=GRAMMAR_ALPHABET, max_size=40))
def test_grammar_alphabet_text_raises_only_spec_error(kind, text):
    _parse_or_spec_error(kind, text)


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(
    name=st.sampled_from(ALL_NAMES),
    body=st.text(alphabet=GRAMMAR_ALPHABET, max_size=30),
    close=st.sampled_from([")", "", "))", ") x"]),
)
def test_name_with_arbitrary_arguments_raises_only_spec_error(kind, name, body, close):
    _parse_or_spec_error(kind, f"{name}({body}{close}")


@FAST
@given(
    kind=st.sampled_from(KINDS),
    text=st.text(alphabet=GRAMMAR_ALPHABET + "\n\r\t\"'", max_size=30),
)
def test_error_messages_are_one_line(kind, text):
    try:
        PARSERS[kind](text)
    except SpecError as error:
        assert "\n" not in str(error) and "\r" not in str(error)


_SPACE = st.sampled_from(["", "", " ", "  ", "\t"])
_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
_FLOATS32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


def _number_text(draw, value: float) -> str:
    if value.is_integer() and abs(value) < 1e15 and draw(st.booleans()):
        sign = "-" if str(value).startswith("-") else draw(st.sampled_from(["", "+"]))
        return f"{sign}{abs(int(value))}"
    return repr(value)


def _satisfies_constraints(name: str, values: dict) -> bool:
    if name == "Uniform":
        return values["a"] <= values["b"]
    if name == "Normal":
        return values["b"] >= 0
    if name == "StepBased":
        return values["change_rate"] > 0
    return True


@st.composite
def valid_specs(draw, kind: str):
    """(text, canonical name, parameter values) of a random valid spec of ``kind``."""
    name = draw(st.sampled_from(sorted(TABLES[kind])))
    params = TABLES[kind][name]
    floats = _FLOATS32 if name == "SReLU" else _FLOATS  # SReLU values must fit float32
    given_values, values = {}, {}
    for param, default in params:
        if default is LIST:
            given_values[param] = draw(st.lists(st.integers(0, 10**9), max_size=5))
        elif default is REQ or draw(st.booleans()):
            given_values[param] = draw(floats)
        values[param] = given_values.get(param, default)
    assume(_satisfies_constraints(name, values))

    given_names = [p for p, _ in params if p in given_values]
    leading = 0
    while leading < len(params) and params[leading][0] in given_values:
        leading += 1
    n_positional = draw(st.integers(0, leading))
    named = draw(st.permutations(given_names[n_positional:]))
    order = [(None, p) for p in given_names[:n_positional]] + [(p, p) for p in named]
    semicolon = len(order) >= 2 and draw(st.booleans())

    args = []
    for label, param in order:
        value = given_values[param]
        if isinstance(value, list):
            items = [str(v) for v in value]
            if semicolon and items and draw(st.booleans()):
                text = ",".join(draw(_SPACE) + item + draw(_SPACE) for item in items)
            else:
                text = "[" + ",".join(draw(_SPACE) + item + draw(_SPACE) for item in items) + "]"
        else:
            text = _number_text(draw, value)
        if label is not None:
            text = f"{label}{draw(_SPACE)}={draw(_SPACE)}{text}"
        args.append(draw(_SPACE) + text + draw(_SPACE))

    shown = name
    if name == "MultiStepLR" and draw(st.booleans()):
        shown = "MultistepLR"
    if args:
        text = f"{shown}{draw(_SPACE)}({(';' if semicolon else ',').join(args)})"
    else:
        text = draw(st.sampled_from([shown, f"{shown}()", f"{shown}( )"]))
    return draw(_SPACE) + text + draw(_SPACE), name, values


def _expected_object(kind: str, name: str, values: dict):
    if kind == "activation":
        return ACTIVATION_CLASSES[name](**values)
    if kind == "loss function":
        return LOSS_CLASSES[name]()
    if kind == "learning rate scheduler":
        return SCHEDULER_CLASSES[name](**values)
    return None


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(data=st.data())
def test_generated_valid_specs_parse_and_round_trip(kind, data):
    text, name, values = data.draw(valid_specs(kind))
    x = PARSERS[kind](text)
    if kind == "layer":
        assert x == (name, values)
        assert parse_layer(canonical(kind, name, values)) == x
        return
    expected = _expected_object(kind, name, values)
    if expected is not None:
        assert type(x) is type(expected)
        assert x == expected
    assert repr(x) == canonical(kind, name, values)
    assert PARSERS[kind](repr(x)) == x
    assert repr(PARSERS[kind](repr(x))) == repr(x)
