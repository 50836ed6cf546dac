"""The closed form every schedule reduces to, and the catalog it is registered in.

A schedule bound to a run is a :class:`Curve`: for an array of times ``t`` (in interval units) it
returns :class:`Weights`, and the learning rate of param group ``g`` is

.. math::  \\mathrm{lr}_g(t) = a(t)\\,\\mathrm{peak}_g + b(t)\\,\\mathrm{floor}_g

where ``peak_g`` is the group's own LR (or an absolute ``max_lr``) and ``floor_g`` an absolute
floor (``eta_min``, CyclicLR's ``base_lr``; 0 for purely multiplicative schedules). Momentum, for
the schedules that cycle it, is ``u(t) * low_g + (1 - u(t)) * high_g``. Every formula is written
once, over NumPy arrays: the torch scheduler reads it in chunks and :func:`preview` in one call.
Composite schedules are curves made of curves: :func:`join` (one after another, each on its own
clock), :func:`chain` (a product) and :func:`ramp` (a linear warmup), which every warmup here is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
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
        plateau: the reduce-on-plateau rule, for the metric-driven ``plateau`` schedule (or a
            composite that contains it).
        parts: for a composite schedule (``join``, ``chain``), each of its parts' start in this curve's
            time and its curve (a generic warmup in front moves the starts); empty otherwise.
    """

    weights: Callable[[np.ndarray], Weights]
    peak: PerGroup | None = None
    floor: PerGroup = 0.0
    momentum: tuple[PerGroup, PerGroup] | None = None
    length: int | None = None
    warmup: int = 0
    plateau: PlateauRule | None = None
    parts: tuple[tuple[int, Curve], ...] = ()


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
            A composite's interval comes from its parts (see ``get_schedule``); this is unused for it.
        own_warmup: ``warmup`` is an argument of its own formula (the warmup family), not a generic
            warmup put in front.
        end_arg: the argument at which its shape is complete (``Curve.length``); a value of ``None``
            for it means "the rest of the run" (``T_max``, ``total``, ``total_steps``).
        ends_with_run: its shape is meant to end when the run does (a decay to its final LR), so
            ending well before or well after the run is a mistake; otherwise only an end that the
            run never reaches is (a milestone after the run, a ``total_iters`` longer than it).
        durations: the arguments that are durations (``int``, ``"10ep"``, ``"500st"``, ``"25%"``).
        first_change_arg: the duration after which the LR first changes (past any warmup), for a
            schedule that holds its LR until then (``step``'s ``step_size``): a run shorter than it
            never changes the LR.
        parts: for a composite, how its parts (the ``schedules`` argument) cover the run:
            ``"sequence"`` (one after the other, the last one to the end of the run: ``join``) or
            ``"product"`` (each over the whole run: ``chain``); ``None`` for a plain schedule.
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
    parts: str | None = None
    first_change_arg: str | None = None

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
    parts: str | None = None,
    first_change_arg: str | None = None,
) -> Callable[[Callable[..., Binder]], Callable[..., Binder]]:
    """Add a schedule constructor to the catalog under ``name`` (see :class:`Entry` for the arguments)."""

    def add(constructor: Callable[..., Binder]) -> Callable[..., Binder]:
        accepted = inspect.signature(constructor).parameters
        unknown = [arg for arg in (end_arg, first_change_arg, *durations) if arg is not None and arg not in accepted]
        if unknown:
            raise InvalidType(f"register({name!r}): {unknown} are not arguments of {constructor.__name__}")
        doc = inspect.getdoc(constructor) or ""
        summary = doc.splitlines()[0] if doc else ""
        CATALOG[name] = Entry(
            name, constructor, interval, own_warmup, summary, end_arg, ends_with_run, durations, parts, first_change_arg
        )
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


# -- combinators: composite schedules are curves made of curves ------------------------------------------
def check_warmup(warmup: int, length: int | None, interval: Interval) -> None:
    """The one check of a warmup's length: it must end before the schedule does (``length``; ``None``: unknown)."""
    if length is not None and warmup >= length:
        unit = f"{interval}s"
        raise InvalidValue(f"`warmup` must be shorter than the run: got warmup={warmup} {unit}, total={length} {unit}")


def ramp(warmup: int) -> Curve:
    """A linear warmup: ``t / W`` from 0 at ``t = 0`` up to 1 at ``t = W``, then 1.

    Example:
        >>> ramp(4).weights(np.arange(6)).peak.tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    return Curve(lambda t: Weights(np.minimum(linear_ramp(t, warmup), 1.0)), length=warmup, warmup=warmup)


def hold(curve: Curve, at: int = 0) -> Curve:
    """``curve``'s weights at time ``at``, for all time (its anchors, not its plateau rule).

    Chained after :func:`ramp`, it makes the generic warmup: a ramp up to a schedule's first value.
    """
    w = curve.weights(np.array([at], dtype=np.int64)).at(0)

    def weights(t: np.ndarray) -> Weights:
        full = lambda x: None if x is None else np.full(t.shape, float(x))  # noqa: E731
        return Weights(np.full(t.shape, float(w.peak)), full(w.floor), full(w.momentum))

    return Curve(weights, peak=curve.peak, floor=curve.floor, momentum=curve.momentum, length=0)


def _nonzero(value: PerGroup) -> bool:
    return any(v != 0 for v in (value if isinstance(value, tuple) else (value,)))


def _shared_anchor(what: str, values: list[Any], parts: list[int], rescale: bool = True) -> tuple[Any, list[float]]:
    """One anchor for the parts that use one, and the factor that rescales each part's weight onto it.

    Equal anchors are shared as they are; scalar anchors that differ are rescaled onto the first one.
    Per-group anchors that differ cannot be (one weight serves every group), nor can a part anchored
    to each group's own LR join a part with an absolute LR.
    """
    scales = [1.0] * len(values)
    if not parts:
        return None, scales
    first = values[parts[0]]
    for i in parts:
        value = values[i]
        if value == first:
            continue
        if not rescale or isinstance(value, tuple) or isinstance(first, tuple) or first == 0:
            note = " (per-group values must be equal)" if rescale else ""
            raise InvalidValue(
                f"the parts of a composite schedule must share their {what}: part {parts[0]} has {first!r}, "
                f"part {i} has {value!r}{note}"
            )
        scales[i] = float(value) / float(first)
    return first, scales


def join(curves: Sequence[Curve], boundaries: Sequence[int]) -> Curve:
    """Curve ``i`` on its own clock from ``boundaries[i-1]`` to ``boundaries[i]`` (optax ``join_schedules``).

    .. math:: w(t) = w_i(t - b_{i-1}) \\quad \\text{for } b_{i-1} \\le t < b_i \\quad (b_{-1} = 0, b_n = \\infty)

    The parts share one set of anchors: parts anchored to the groups' own LRs cannot join parts with
    an absolute LR (``max_lr``), and different floors are rescaled onto one. A part that does not
    cycle momentum holds the momentum of the nearest part that does (the next one, else the one
    before). Only the last part may be ``plateau`` (its reductions lower the peak from then on).

    Example:
        >>> up, down = ramp(2), Curve(lambda t: Weights(0.5 ** t.astype(float)))
        >>> join([up, down], [2]).weights(np.arange(5)).peak.tolist()
        [0.0, 0.5, 1.0, 0.5, 0.25]
    """
    curves, edges = list(curves), [int(b) for b in boundaries]
    if len(edges) != len(curves) - 1:
        raise InvalidValue(f"a join of {len(curves)} parts needs {len(curves) - 1} boundaries: got {edges}")
    if any(c.plateau is not None for c in curves[:-1]):
        raise InvalidValue("only the last part of a join may be `plateau`: its reductions last to the end of the run")
    starts = [0, *edges]
    n = len(curves)
    absolute = [i for i, c in enumerate(curves) if c.peak is not None]
    if absolute and len(absolute) != n:
        raise InvalidValue(
            f"part {absolute[0]} of the join sets absolute LRs (max_lr) while part "
            f"{min(set(range(n)) - set(absolute))} scales each group's own LR: a join cannot mix them "
            "(put a `warmup` on the absolute part instead: it ramps up to that part's first LR)"
        )
    peak, peak_scales = _shared_anchor("peak LR (max_lr)", [c.peak for c in curves], absolute)
    floored = [i for i, c in enumerate(curves) if _nonzero(c.floor)]
    floor, floor_scales = _shared_anchor("floor LR", [c.floor for c in curves], floored)
    cycling = [i for i, c in enumerate(curves) if c.momentum is not None]
    momentum, _ = _shared_anchor("momentum range", [c.momentum for c in curves], cycling, rescale=False)
    held = _held_momentum(curves, starts, cycling)
    edges_array = np.asarray(edges, dtype=np.int64)

    def weights(t: np.ndarray) -> Weights:
        part = np.searchsorted(edges_array, t, side="right")
        a = np.zeros(t.shape)
        b = np.zeros(t.shape) if floored else None
        u = np.zeros(t.shape) if cycling else None
        for i, (curve, start) in enumerate(zip(curves, starts, strict=True)):
            here = part == i
            if not here.any():
                continue
            w = curve.weights(t[here] - start)
            a[here] = w.peak * peak_scales[i]
            if b is not None and i in floored and w.floor is not None:
                b[here] = w.floor * floor_scales[i]
            if u is not None:
                u[here] = w.momentum if curve.momentum is not None else held[i]
        return Weights(a, b, u)

    last = curves[-1]
    return Curve(
        weights,
        peak=peak,
        floor=0.0 if floor is None else floor,
        momentum=momentum,
        length=None if last.length is None else starts[-1] + last.length,
        warmup=min(curves[0].warmup, edges[0]) if edges else curves[0].warmup,
        plateau=last.plateau,
        parts=tuple(zip(starts, curves, strict=True)),
    )


def _held_momentum(curves: list[Curve], starts: list[int], cycling: list[int]) -> list[float]:
    """For each part that does not cycle momentum, the momentum weight it holds (see :func:`join`)."""
    held = [0.0] * len(curves)
    for i in range(len(curves)):
        after = [j for j in cycling if j > i]
        before = [j for j in cycling if j < i]
        if after:
            t = 0
            j = after[0]
        elif before:
            j = before[-1]
            t = max(0, starts[j + 1] - starts[j] - 1)
        else:
            continue
        momentum = curves[j].weights(np.array([t], dtype=np.int64)).momentum
        held[i] = 0.0 if momentum is None else float(momentum[0])
    return held


def chain(curves: Sequence[Curve]) -> Curve:
    """The product of the curves' multipliers, all on one clock (torch ``ChainedScheduler``).

    .. math:: \\mathrm{lr}(t) = \\textstyle\\prod_{i \\ne j} a_i(t)\\,(a_j(t)\\,P + b_j(t)\\,F_j)

    where ``P`` is the peak and part ``j`` the one with a floor ``F_j`` (``eta_min``; at most one part
    has one). At most one part may set an absolute LR (``max_lr``), cycle momentum, or be ``plateau``.

    Example:
        >>> half = Curve(lambda t: Weights(np.where(t < 2, 0.5, 1.0)))
        >>> decay = Curve(lambda t: Weights(0.9 ** t.astype(float)))
        >>> chain([half, decay]).weights(np.arange(4)).peak.round(4).tolist()
        [0.5, 0.45, 0.81, 0.729]
    """
    curves = list(curves)
    for what, which in (
        ("set absolute LRs (max_lr)", [i for i, c in enumerate(curves) if c.peak is not None]),
        ("have a floor LR (eta_min, base_lr)", [i for i, c in enumerate(curves) if _nonzero(c.floor)]),
        ("cycle momentum", [i for i, c in enumerate(curves) if c.momentum is not None]),
        ("be `plateau`", [i for i, c in enumerate(curves) if c.plateau is not None]),
    ):
        if len(which) > 1:
            raise InvalidValue(f"at most one part of a chain may {what}: parts {which} do")
    floored = next((i for i, c in enumerate(curves) if _nonzero(c.floor)), None)
    owner = lambda attr: next((c for c in curves if getattr(c, attr) is not None), None)  # noqa: E731

    def weights(t: np.ndarray) -> Weights:
        parts = [c.weights(t) for c in curves]
        a = parts[0].peak
        for w in parts[1:]:
            a = a * w.peak
        b = None
        if floored is not None and parts[floored].floor is not None:
            b = parts[floored].floor
            for i, w in enumerate(parts):
                if i != floored:
                    b = b * w.peak
        u = next((w.momentum for w, c in zip(parts, curves, strict=True) if c.momentum is not None), None)
        return Weights(a, b, u)

    lengths = [c.length for c in curves]
    peak_owner, momentum_owner, plateau_owner = owner("peak"), owner("momentum"), owner("plateau")
    return Curve(
        weights,
        peak=None if peak_owner is None else peak_owner.peak,
        floor=0.0 if floored is None else curves[floored].floor,
        momentum=None if momentum_owner is None else momentum_owner.momentum,
        length=None if any(n is None for n in lengths) else max(lengths),  # type: ignore[type-var]
        warmup=max(c.warmup for c in curves),
        plateau=None if plateau_owner is None else plateau_owner.plateau,
        parts=tuple((0, c) for c in curves),
    )
