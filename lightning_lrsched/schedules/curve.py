"""The closed form every schedule reduces to, and the catalog it is registered in.

A schedule bound to a run is a :class:`Curve`: for an array of times ``t`` (in interval units) it
returns :class:`Weights`, and the learning rate of param group ``g`` is

.. math::  \\mathrm{lr}_g(t) = a(t)\\,\\mathrm{peak}_g + b(t)\\,\\mathrm{floor}_g

where ``peak_g`` is the group's own LR (or an absolute ``max_lr``) and ``floor_g`` an absolute
floor (``eta_min``, CyclicLR's ``base_lr``; 0 for purely multiplicative schedules). Momentum, for
the schedules that cycle it, is ``u(t) * low_g + (1 - u(t)) * high_g``. Every formula is written
once, over NumPy arrays: the torch scheduler reads it in chunks and :func:`preview` in one call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.schedules.duration import Duration, Interval, Run
from lightning_lrsched.schedules.plateau_rule import PlateauRule

PerGroup = float | tuple[float, ...]


@dataclass(frozen=True)
class Weights:
    """Coefficients of a curve at an array of times (see the module docstring)."""

    peak: np.ndarray
    floor: np.ndarray | None = None
    momentum: np.ndarray | None = None

    def at(self, index: int | np.ndarray) -> Weights:
        return Weights(
            self.peak[index],
            None if self.floor is None else self.floor[index],
            None if self.momentum is None else self.momentum[index],
        )


@dataclass(frozen=True)
class Curve:
    """A schedule resolved against a run.

    Attributes:
        weights: ``t -> Weights`` for an int64 array of times in interval units.
        peak: absolute peak LR (one, or one per group); ``None`` means each group's own LR.
        floor: absolute floor LR (one, or one per group).
        momentum: ``(low, high)`` momentum (or Adam beta1) range, for schedules that cycle it.
        length: interval units after which the schedule's shape is complete (``None``: never).
        warmup: interval units of warmup at the start.
        plateau: the reduce-on-plateau rule, for the metric-driven ``plateau`` schedule.
    """

    weights: Callable[[np.ndarray], Weights]
    peak: PerGroup | None = None
    floor: PerGroup = 0.0
    momentum: tuple[PerGroup, PerGroup] | None = None
    length: int | None = None
    warmup: int = 0
    plateau: PlateauRule | None = None


Binder = Callable[[Run], Curve]


@dataclass(frozen=True)
class Entry:
    """A registered schedule: its constructor and what kind of schedule it is.

    What a checker or a run needs to know about a schedule lives here, next to its formula, instead of
    in tables keyed by name elsewhere.

    Attributes:
        name: the catalog name.
        constructor: ``(**params) -> Binder``.
        interval: the interval it is meant to be stepped at: ``"step"`` for schedules meant to change
            the LR every optimizer step (onecycle, cyclic, the warmup family), ``"epoch"`` otherwise.
        own_warmup: ``warmup`` is an argument of its own formula (the warmup family), not a generic
            warmup put in front.
        end_arg: the argument at which its shape is complete (``Curve.length``); a value of ``None``
            for it means "the rest of the run" (``T_max``, ``total``, ``total_steps``).
        ends_with_run: its shape is meant to end when the run does (a decay to its final LR), so
            ending well before or well after the run is a mistake; otherwise only an end that the
            run never reaches is (a milestone after the run, a ``total_iters`` longer than it).
        durations: the arguments that are durations (``int``, ``"10ep"``, ``"500st"``, ``"25%"``).
        summary: the first line of its docstring.
    """

    name: str
    constructor: Callable[..., Binder]
    interval: Interval
    own_warmup: bool
    summary: str
    end_arg: str | None = None
    ends_with_run: bool = False
    durations: tuple[str, ...] = ()

    def parameters(self) -> dict[str, Any]:
        """Argument name -> default (``inspect.Parameter.empty`` when required)."""
        return {name: p.default for name, p in inspect.signature(self.constructor).parameters.items()}

    def end_defaults_to_run(self) -> bool:
        """Whether leaving ``end_arg`` unset makes the schedule end with the run."""
        return self.end_arg is not None and self.parameters().get(self.end_arg, inspect.Parameter.empty) is None


CATALOG: dict[str, Entry] = {}


def register(
    name: str,
    *,
    interval: Interval,
    own_warmup: bool = False,
    end_arg: str | None = None,
    ends_with_run: bool = False,
    durations: tuple[str, ...] = (),
):
    """Add a schedule constructor to the catalog under ``name`` (see :class:`Entry` for the arguments)."""

    def add(constructor: Callable[..., Binder]) -> Callable[..., Binder]:
        accepted = inspect.signature(constructor).parameters
        unknown = [arg for arg in (end_arg, *durations) if arg is not None and arg not in accepted]
        if unknown:
            raise InvalidType(f"register({name!r}): {unknown} are not arguments of {constructor.__name__}")
        doc = inspect.getdoc(constructor) or ""
        summary = doc.splitlines()[0] if doc else ""
        CATALOG[name] = Entry(name, constructor, interval, own_warmup, summary, end_arg, ends_with_run, durations)
        return constructor

    return add


def positive_count(run: Run, name: str, duration: Duration) -> int:
    """Resolve a duration that must last at least one interval unit."""
    count = run.count(name, duration)
    if count < 1:
        unit = "steps" if run.interval == "step" else "epochs"
        raise InvalidValue(f"`{name}` must last at least 1 {unit[:-1]}: got {name}={str(duration)!r} = {count} {unit}")
    return count


def linear_ramp(t: np.ndarray, warmup: int) -> np.ndarray:
    """``t / max(1, warmup)``: the linear warmup every schedule here uses (as Hugging Face does)."""
    return t / float(max(1, warmup))


def constant_weights(t: np.ndarray) -> Weights:
    return Weights(np.ones(t.shape))


def combine(a: Any, b: Any, peak: Any, floor: Any) -> Any:
    """``a * peak + b * floor``: the one place a curve's weights become an LR (scalars or arrays).

    Example:
        >>> combine(0.5, 0.5, 1.0, 0.1)
        0.55
    """
    return a * peak + b * floor
