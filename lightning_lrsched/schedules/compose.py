"""Composite schedules: ``join`` (one after another, optax ``join_schedules``) and ``chain`` (a product, torch
``ChainedScheduler``).

Both are closed forms like every other schedule (:func:`~lightning_lrsched.schedules.curve.join`,
:func:`~lightning_lrsched.schedules.curve.chain`), so a resumed run continues exactly, also in the
middle of a part, and ``preview`` shows them. Their parts are any schedules of the catalog, composites
included, given as names, spec dicts or ``Schedule`` objects; all parts run on the composite's clock
(its ``interval``). ``plateau`` may be the last part of a join (a warmup, then reduce-on-plateau) and
any one part of a chain (a shape whose peak plateaus lower).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.schedules import curve
from lightning_lrsched.schedules.curve import Binder, Curve, register
from lightning_lrsched.schedules.duration import Run, parse_duration


def _part_curve(name: str, i: int, part: Any, run: Run, where: str) -> Curve:
    """Resolve one part, naming it (and the span it was resolved for) in any error."""
    try:
        return part.curve(run)
    except (InvalidType, InvalidValue) as error:
        raise type(error)(f"`schedules[{i}]` of `{name}` ({part.name}, {where}): {error}") from error


@register("join", interval="step", durations=("boundaries",), parts="sequence")
def join(schedules: list[Any], boundaries: list[int | str]) -> Binder:
    r"""One schedule after another, each on its own clock from its boundary (optax ``join_schedules``).

    Part ``i`` runs from ``boundaries[i-1]`` (0 for the first) to ``boundaries[i]`` (the end of the run
    for the last), with its time restarted at 0:

    .. math:: \mathrm{lr}(t) = \mathrm{lr}_i(t - b_{i-1}) \quad (b_{i-1} \le t < b_i)

    Boundaries are durations from the start of the run (``int``, ``"10ep"``, ``"500st"``, ``"25%"`` of
    the run), strictly increasing and inside the run. Each part keeps its own defaults, resolved
    against its own span (``cosine``'s ``T_max`` defaults to the part's length). ``plateau`` may be
    the last part: a validation judged before it starts already counts, and a reduction lowers the
    peak that the parts before it climb to (torch's ``SequentialLR`` cannot hold ``ReduceLROnPlateau``).

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> warm = {"name": "linear", "start_factor": 0.25, "total_iters": 3}
        >>> s = get_schedule("join", schedules=[warm, "cosine"], boundaries=[3])
        >>> preview(s, 8).round(4).tolist()
        [0.25, 0.5, 0.75, 1.0, 0.9045, 0.6545, 0.3455, 0.0955]
    """
    if not isinstance(boundaries, (list, tuple)):
        raise InvalidType(f"`boundaries` must be a list of durations, one per part after the first: got {boundaries!r}")
    if len(boundaries) != len(schedules) - 1:
        raise InvalidValue(
            f"`boundaries` must have one duration per part after the first ({len(schedules) - 1}): "
            f"got {len(boundaries)} for {len(schedules)} schedules"
        )
    marks = [parse_duration(f"boundaries[{i}]", b) for i, b in enumerate(boundaries)]
    plateau = [i for i, part in enumerate(schedules[:-1]) if part.is_plateau]
    if plateau:
        raise InvalidValue(
            f"only the last part of `join` may be driven by a metric (plateau): schedules[{plateau[0]}] is "
            f"{schedules[plateau[0]].name!r}; put it last"
        )

    def bind(run: Run) -> Curve:
        counts = [run.count(f"boundaries[{i}]", m) for i, m in enumerate(marks)]
        span = run.remaining
        unit = f"{run.interval}s"
        if counts[0] < 1 or any(b <= a for a, b in itertools.pairwise(counts)):
            raise InvalidValue(
                f"`boundaries` must be strictly increasing and >= 1: got boundaries={[str(m) for m in marks]} "
                f"= {counts} {unit}"
            )
        if span is not None and counts[-1] >= span:
            what = "run" if run.span is None else "span"
            raise InvalidValue(
                f"`boundaries` must lie inside the {what}, so that every part runs: got boundaries="
                f"{[str(m) for m in marks]} = {counts} {unit}, {what}={span} {unit}"
            )
        starts, ends = [0, *counts], [*counts, span]
        curves = []
        for i, (part, start, end) in enumerate(zip(schedules, starts, ends, strict=True)):
            length = None if end is None else end - start
            where = f"{run.interval}s {start}..{'end' if end is None else end}"
            curves.append(_part_curve("join", i, part, replace(run, span=length), where))
        return curve.join(curves, counts)

    return bind


@register("chain", interval="step", parts="product")
def chain(schedules: list[Any]) -> Binder:
    r"""The product of the schedules' multipliers, all over the whole run (torch ``ChainedScheduler``).

    .. math:: \mathrm{lr}(t) = \mathrm{lr}_0 \prod_i m_i(t)

    where :math:`m_i` is part ``i``'s LR divided by the optimizer's. A part with a floor (``eta_min``)
    is scaled as a whole: :math:`(\prod_{i \ne j} m_i)(a_j\,\mathrm{lr}_0 + b_j\,\eta_{min})`. At most
    one part may set absolute LRs (``max_lr``), have a floor, cycle momentum, or be ``plateau``
    (whose reductions then lower the whole product).

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> s = get_schedule("chain", schedules=[{"name": "constant", "factor": 0.5, "total_iters": 2},
        ...                                      {"name": "exponential", "gamma": 0.9}])
        >>> preview(s, 4).round(4).tolist()
        [0.5, 0.45, 0.81, 0.729]
    """

    def bind(run: Run) -> Curve:
        where = f"over the whole {'run' if run.span is None else 'part'}"
        return curve.chain([_part_curve("chain", i, part, run, where) for i, part in enumerate(schedules)])

    return bind
