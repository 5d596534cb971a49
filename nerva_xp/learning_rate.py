"""Learning-rate schedulers (spec §10): pure functions of the 0-based epoch index e.

``scheduler(e)`` is called once per epoch, never per batch. Every parameter is required; the repr
is the canonical spec and ``parse_learning_rate`` reads it back.
"""

from __future__ import annotations

import math

from nerva_xp.spec_strings import Param, format_spec, parse_spec


class LearningRateScheduler:
    """lr(e) for epoch e = 0, 1, ...; equal when class and parameters are."""

    spec_name = ""

    def __call__(self, epoch: int) -> float:
        raise NotImplementedError

    def parameters(self) -> dict:
        return dict(vars(self))

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.parameters() == other.parameters()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        return format_spec(self.spec_name, self.parameters())


class ConstantScheduler(LearningRateScheduler):
    """lr(e) = lr."""

    spec_name = "Constant"

    def __init__(self, lr: float):
        self.lr = float(lr)

    def __call__(self, epoch: int) -> float:
        return self.lr


class TimeBasedScheduler(LearningRateScheduler):
    """lr(e) = lr / Π_{j=1..e} (1 + decay·j); lr(0) = lr."""

    spec_name = "TimeBased"

    def __init__(self, lr: float, decay: float):
        self.lr = float(lr)
        self.decay = float(decay)

    def __call__(self, epoch: int) -> float:
        lr = self.lr
        for j in range(1, epoch + 1):
            lr /= 1.0 + self.decay * j
        return lr


class StepBasedScheduler(LearningRateScheduler):
    """lr(e) = lr · drop_rate^⌊(1 + e) / change_rate⌋."""

    spec_name = "StepBased"

    def __init__(self, lr: float, drop_rate: float, change_rate: float):
        self.lr = float(lr)
        self.drop_rate = float(drop_rate)
        self.change_rate = float(change_rate)

    def __call__(self, epoch: int) -> float:
        return self.lr * self.drop_rate ** math.floor((1 + epoch) / self.change_rate)


class MultiStepLRScheduler(LearningRateScheduler):
    """lr(e) = lr · gamma^c, c = the number of milestones m with m ≤ e."""

    spec_name = "MultiStepLR"

    def __init__(self, lr: float, milestones: list[int], gamma: float):
        self.lr = float(lr)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)

    def __call__(self, epoch: int) -> float:
        count = sum(1 for m in self.milestones if m <= epoch)
        return self.lr * self.gamma**count


class ExponentialScheduler(LearningRateScheduler):
    """lr(e) = lr · exp(−change_rate · e)."""

    spec_name = "Exponential"

    def __init__(self, lr: float, change_rate: float):
        self.lr = float(lr)
        self.change_rate = float(change_rate)

    def __call__(self, epoch: int) -> float:
        return self.lr * math.exp(-self.change_rate * epoch)


_POSITIVE = (lambda value, _: value > 0, "a number > 0")
_NON_NEGATIVE_INTS = (lambda values, _: all(v >= 0 for v in values), "non-negative integers")

SCHEDULER_PARAMETERS = {
    "Constant": (Param("lr"),),
    "TimeBased": (Param("lr"), Param("decay")),
    "StepBased": (Param("lr"), Param("drop_rate"), Param("change_rate", check=_POSITIVE)),
    "MultiStepLR": (
        Param("lr"),
        Param("milestones", is_list=True, check=_NON_NEGATIVE_INTS),
        Param("gamma"),
    ),
    "Exponential": (Param("lr"), Param("change_rate")),
}

_SCHEDULER_CLASSES = {
    cls.spec_name: cls
    for cls in (
        ConstantScheduler,
        TimeBasedScheduler,
        StepBasedScheduler,
        MultiStepLRScheduler,
        ExponentialScheduler,
    )
}


def parse_learning_rate(text: str) -> LearningRateScheduler:
    """The scheduler for a spec such as ``Constant(0.01)`` or ``MultiStepLR(0.1;1,3,5;0.2)``."""
    name, values = parse_spec(
        text,
        "learning rate scheduler",
        SCHEDULER_PARAMETERS,
        aliases={"MultistepLR": "MultiStepLR"},
    )
    return _SCHEDULER_CLASSES[name](**values)
