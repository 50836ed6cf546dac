"""Durations: how long a phase of a schedule lasts.

A duration is written as an ``int`` (in the schedule's interval units: steps for
``interval="step"``, epochs for ``interval="epoch"``), ``"10ep"`` (epochs), ``"500st"`` (optimizer
steps) or ``"25%"`` (of the whole run). It is parsed when the schedule is made and resolved to a
count once, by :class:`Run`, when the run length is known.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from lightning_lrsched.errors import InvalidType, InvalidValue

Unit = Literal["int", "ep", "st", "%"]
Interval = Literal["step", "epoch"]
INTERVALS: tuple[Interval, ...] = ("step", "epoch")

_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ep|st|%)\s*$")
_FORMS = 'an int, "10ep" (epochs), "500st" (steps) or "25%" (of the run)'


@dataclass(frozen=True)
class Duration:
    """A parsed duration: ``amount`` in ``unit`` (see the module docstring)."""

    amount: float
    unit: Unit

    def __str__(self) -> str:
        if self.unit == "int":
            return str(int(self.amount))
        amount = int(self.amount) if self.amount == int(self.amount) else self.amount
        return f"{amount}{self.unit}"


def parse_duration(name: str, value: Any, minimum: int = 0) -> Duration:
    """Parse ``value`` as a duration, raising an error that names the parameter ``name``.

    ``minimum`` is the smallest count given as an int (1 for a length, such as a period, that
    cannot be empty); a duration in epochs or percent is checked once resolved.

    Example:
        >>> parse_duration("warmup", "5%")
        Duration(amount=5.0, unit='%')
        >>> parse_duration("step_size", 30)
        Duration(amount=30, unit='int')
    """
    if isinstance(value, Duration):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidType(f"`{name}` must be {_FORMS}: got {value!r} ({type(value).__name__})")
    if isinstance(value, int):
        if value < minimum:
            raise InvalidValue(f"`{name}` must be >= {minimum}: got {name}={value}")
        return Duration(value, "int")
    match = _PATTERN.match(value)
    if match is None:
        if value.strip().isdigit():
            return Duration(int(value), "int")
        raise InvalidValue(f"`{name}` must be {_FORMS}: got {name}={value!r}")
    amount, unit = float(match.group(1)), match.group(2)
    if unit == "%" and amount > 100:
        raise InvalidValue(f"`{name}` must be at most 100% of the run: got {name}={value!r}")
    if unit != "%" and amount != int(amount):
        raise InvalidValue(f"`{name}` must be a whole number of {'epochs' if unit == 'ep' else 'steps'}: got {value!r}")
    return Duration(amount, unit)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Run:
    """What is known about the run when a schedule is built.

    Attributes:
        interval: the schedule's time unit; every count this run resolves is in this unit.
        total_steps: optimizer steps in the whole run, or ``None`` when unknown.
        steps_per_epoch: optimizer steps per epoch (1 when unknown: an epoch is one step).
        base_lr: the optimizer's default learning rate (used by ``warmup_polynomial``'s ``lr_end``).
        num_groups: the optimizer's number of param groups.
        span: for a part of a composite schedule (``join``), the interval units the part lasts
            (``None``: to the end of the run); run-length defaults (``T_max``, ``total_steps``,
            ``total``) cover the span, while ``"25%"`` always means a share of the whole run.
    """

    interval: Interval
    total_steps: int | None = None
    steps_per_epoch: int = 1
    base_lr: float = 1.0
    num_groups: int = 1
    span: int | None = None

    @property
    def length(self) -> int | None:
        """The whole run's length in interval units (a partial last epoch counts as an epoch)."""
        if self.total_steps is None:
            return None
        if self.interval == "step":
            return self.total_steps
        return math.ceil(self.total_steps / self.steps_per_epoch)

    @property
    def remaining(self) -> int | None:
        """Interval units this schedule lasts (the default for run-length arguments): its span, else the run."""
        return self.length if self.span is None else self.span

    def default_length(self, name: str, value: Duration | None) -> int:
        """Resolve a run-length argument that defaults to the rest of the run."""
        if value is not None:
            return self.count(name, value)
        remaining = self.remaining
        if remaining is None:
            raise InvalidValue(
                f"`{name}` defaults to the length of the run, but the run length is unknown: "
                f"pass {name}=..., total_steps to build(), or use lightning_config() with a Trainer "
                "that has max_epochs or max_steps"
            )
        return remaining

    def count(self, name: str, duration: Duration) -> int:
        """Resolve ``duration`` to a whole count of interval units."""
        if duration.unit == "int":
            return int(duration.amount)
        if duration.unit == "%":
            length = self.length
            if length is None:
                raise InvalidValue(
                    f"`{name}`={str(duration)!r} is a share of the run, but the run length is unknown: "
                    "pass total_steps to build(), or use lightning_config() with a Trainer that has "
                    "max_epochs or max_steps"
                )
            return math.floor(duration.amount / 100 * length + 0.5)
        steps_per_unit = 1 if self.interval == "step" else self.steps_per_epoch
        if duration.unit == "ep":
            steps = int(duration.amount) * self.steps_per_epoch
        else:
            steps = int(duration.amount)
        if steps % steps_per_unit:
            raise InvalidValue(
                f"`{name}`={str(duration)!r} is not a whole number of epochs "
                f"({self.steps_per_epoch} steps each) for an interval='epoch' schedule: "
                "give it in epochs (\"3ep\") or use interval='step'"
            )
        return steps // steps_per_unit
