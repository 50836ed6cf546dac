"""The schedules of ``torch.optim.lr_scheduler``, as closed forms with torch's argument names.

Each one, stepped ``N`` times, gives the LR that the torch scheduler of the same name gives after
``N`` steps (``get_last_lr()``), for every param group. Time ``t`` counts scheduler steps (epochs
unless ``interval="step"``); every duration argument also takes ``"10ep"``, ``"500st"``, ``"25%"``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.schedules.curve import Binder, Curve, Weights, positive_count, register
from lightning_lrsched.schedules.duration import Duration, Run, parse_duration
from lightning_lrsched.validation import (
    check_bool,
    check_choice,
    check_int,
    check_non_negative,
    check_per_group,
    check_positive,
    check_range,
)


def _optional_duration(name: str, value: object, minimum: int = 0) -> Duration | None:
    return None if value is None else parse_duration(name, value, minimum)


@register("step", interval="epoch", durations=("step_size",), first_change_arg="step_size")
def step(step_size: int | str, gamma: float = 0.1) -> Binder:
    r"""StepLR: multiply the LR by ``gamma`` every ``step_size``.

    .. math:: \mathrm{lr}(t) = \mathrm{lr}_0\,\gamma^{\lfloor t / s \rfloor}

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> preview(get_schedule("step", step_size=2, gamma=0.5), 6).tolist()
        [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    """
    size = parse_duration("step_size", step_size, minimum=1)
    gamma = check_positive("gamma", gamma)

    def bind(run: Run) -> Curve:
        n = positive_count(run, "step_size", size)
        return Curve(lambda t: Weights(gamma ** (t // n)))

    return bind


@register("multistep", interval="epoch", end_arg="milestones", durations=("milestones",))
def multistep(milestones: list[int | str], gamma: float = 0.1) -> Binder:
    r"""MultiStepLR: multiply the LR by ``gamma`` at each milestone.

    .. math:: \mathrm{lr}(t) = \mathrm{lr}_0\,\gamma^{|\{m_i \le t\}|}

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> preview(get_schedule("multistep", milestones=[1, 3], gamma=0.1), 4).round(6).tolist()
        [1.0, 0.1, 0.1, 0.01]
    """
    if not isinstance(milestones, (list, tuple)) or not milestones:
        raise InvalidType(f"`milestones` must be a non-empty list of durations: got {milestones!r}")
    marks = [parse_duration(f"milestones[{i}]", m) for i, m in enumerate(milestones)]
    gamma = check_positive("gamma", gamma)

    def bind(run: Run) -> Curve:
        counts = [run.count(f"milestones[{i}]", m) for i, m in enumerate(marks)]
        if any(b <= a for a, b in itertools.pairwise(counts)) or counts[0] < 1:
            raise InvalidValue(
                f"`milestones` must be strictly increasing and >= 1: got milestones={[str(m) for m in marks]} "
                f"= {counts} {run.interval}s"
            )
        edges = np.asarray(counts)
        return Curve(lambda t: Weights(gamma ** np.searchsorted(edges, t, side="right")), length=counts[-1])

    return bind


@register("exponential", interval="epoch")
def exponential(gamma: float) -> Binder:
    r"""ExponentialLR: multiply the LR by ``gamma`` every step.

    .. math:: \mathrm{lr}(t) = \mathrm{lr}_0\,\gamma^{t}

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> preview(get_schedule("exponential", gamma=0.5), 3).tolist()
        [1.0, 0.5, 0.25]
    """
    gamma = check_positive("gamma", gamma)
    return lambda run: Curve(lambda t: Weights(gamma ** t.astype(np.float64)))


def _cosine(t: np.ndarray, period: np.ndarray | int) -> Weights:
    c = (1.0 + np.cos(np.pi * t / period)) / 2.0
    return Weights(c, 1.0 - c)


@register("cosine", interval="epoch", end_arg="T_max", ends_with_run=True, durations=("T_max",))
def cosine(T_max: int | str | None = None, eta_min: float = 0.0) -> Binder:
    r"""CosineAnnealingLR: half a cosine from the LR down to ``eta_min`` over ``T_max``.

    .. math:: \mathrm{lr}(t) = \eta_{min} + (\mathrm{lr}_0 - \eta_{min})\,\tfrac{1}{2}(1 + \cos(\pi t / T_{max}))

    ``T_max`` defaults to the whole run. Like torch's, the curve is periodic past ``T_max``.

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> preview(get_schedule("cosine", T_max=4), 5).round(4).tolist()
        [1.0, 0.8536, 0.5, 0.1464, 0.0]
    """
    period = _optional_duration("T_max", T_max, minimum=1)
    eta_min = check_non_negative("eta_min", eta_min)

    def bind(run: Run) -> Curve:
        n = run.default_length("T_max", period)
        if n < 1:
            raise InvalidValue(f"`T_max` must be at least 1 {run.interval}: got T_max={n}")
        return Curve(lambda t: _cosine(t, n), floor=eta_min, length=n)

    return bind


@register("cosine_restarts", interval="epoch", durations=("T_0",))
def cosine_restarts(T_0: int | str, T_mult: int = 1, eta_min: float = 0.0) -> Binder:
    r"""CosineAnnealingWarmRestarts (SGDR): cosine cycles of ``T_0``, each ``T_mult`` times longer.

    .. math:: \mathrm{lr}(t) = \eta_{min} + (\mathrm{lr}_0 - \eta_{min})\,\tfrac{1}{2}(1 + \cos(\pi T_{cur}/T_i))

    where cycle ``i`` lasts ``T_i = T_0 T_{mult}^i`` and ``T_cur`` is the time since it began.

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> preview(get_schedule("cosine_restarts", T_0=2), 4).round(4).tolist()
        [1.0, 0.5, 1.0, 0.5]
    """
    first = parse_duration("T_0", T_0, minimum=1)
    T_mult = check_int("T_mult", T_mult, minimum=1)
    eta_min = check_non_negative("eta_min", eta_min)

    def bind(run: Run) -> Curve:
        t0 = positive_count(run, "T_0", first)

        def weights(t: np.ndarray) -> Weights:
            if T_mult == 1:
                return _cosine(t % t0, t0)
            # Cycle n starts at T_0 (T_mult^n - 1) / (T_mult - 1); the float log can land one cycle
            # off at the boundaries, so it is corrected in exact integer arithmetic.
            n = np.floor(np.log(t / t0 * (T_mult - 1) + 1) / math.log(T_mult)).astype(np.int64)
            start = lambda k: t0 * (T_mult**k - 1) // (T_mult - 1)  # noqa: E731
            n = np.where(start(n + 1) <= t, n + 1, n)
            n = np.where(start(n) > t, n - 1, n)
            return _cosine(t - start(n), t0 * T_mult**n)

        return Curve(weights, floor=eta_min)

    return bind


@register("polynomial", interval="epoch", end_arg="total_iters", ends_with_run=True, durations=("total_iters",))
def polynomial(total_iters: int | str = 5, power: float = 1.0) -> Binder:
    r"""PolynomialLR: decay to 0 over ``total_iters`` along a polynomial of degree ``power``.

    .. math:: \mathrm{lr}(t) = \mathrm{lr}_0\,(1 - \min(t, T)/T)^{p}

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> preview(get_schedule("polynomial", total_iters=4, power=2.0), 5).tolist()
        [1.0, 0.5625, 0.25, 0.0625, 0.0]
    """
    iters = parse_duration("total_iters", total_iters, minimum=1)
    power = check_non_negative("power", power)

    def bind(run: Run) -> Curve:
        n = positive_count(run, "total_iters", iters)
        return Curve(lambda t: Weights((1.0 - np.minimum(n, t) / n) ** power), length=n)

    return bind


@register("linear", interval="epoch", end_arg="total_iters", durations=("total_iters",))
def linear(start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int | str = 5) -> Binder:
    r"""LinearLR: scale the LR by a factor moving linearly from ``start_factor`` to ``end_factor``.

    .. math:: \mathrm{lr}(t) = \mathrm{lr}_0\,(f_s + (f_e - f_s)\min(t, T)/T)

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> preview(get_schedule("linear", start_factor=0.5, total_iters=2), 4).tolist()
        [0.5, 0.75, 1.0, 1.0]
    """
    start = check_range("start_factor", start_factor, 0.0, 1.0, low_open=True)
    end = check_range("end_factor", end_factor, 0.0, 1.0)
    iters = parse_duration("total_iters", total_iters, minimum=1)

    def bind(run: Run) -> Curve:
        n = positive_count(run, "total_iters", iters)
        return Curve(lambda t: Weights(start + (end - start) * np.minimum(n, t) / n), length=n)

    return bind


@register("constant", interval="epoch", end_arg="total_iters", durations=("total_iters",))
def constant(factor: float = 1.0 / 3, total_iters: int | str = 5) -> Binder:
    r"""ConstantLR: scale the LR by ``factor`` until ``total_iters``, then use it unscaled.

    .. math:: \mathrm{lr}(t) = \mathrm{lr}_0 \cdot (f \text{ if } t < T \text{ else } 1)

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> preview(get_schedule("constant", factor=0.5, total_iters=2), 3).tolist()
        [0.5, 0.5, 1.0]
    """
    factor = check_range("factor", factor, 0.0, 1.0)
    iters = parse_duration("total_iters", total_iters)

    def bind(run: Run) -> Curve:
        n = run.count("total_iters", iters)
        return Curve(lambda t: Weights(np.where(t < n, factor, 1.0)), length=n)

    return bind


def _momentum_range(
    cycle_momentum: bool, base_momentum: Any, max_momentum: Any
) -> tuple[float | tuple[float, ...], float | tuple[float, ...]] | None:
    if not check_bool("cycle_momentum", cycle_momentum):
        return None
    low = check_per_group("base_momentum", base_momentum, lambda n, v: check_range(n, v, 0.0, 1.0))
    high = check_per_group("max_momentum", max_momentum, lambda n, v: check_range(n, v, 0.0, 1.0))
    return low, high


@register("cyclic", interval="step", durations=("step_size_up", "step_size_down"))
def cyclic(
    base_lr: float | list[float],
    max_lr: float | list[float],
    step_size_up: int | str = 2000,
    step_size_down: int | str | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    cycle_momentum: bool = True,
    base_momentum: float | list[float] = 0.8,
    max_momentum: float | list[float] = 0.9,
) -> Binder:
    r"""CyclicLR: triangular cycles between ``base_lr`` and ``max_lr`` (Smith, 2017).

    .. math:: \mathrm{lr}(t) = \mathrm{base} + (\mathrm{max} - \mathrm{base})\, h(t)\, s(t)

    ``h`` is the triangle (up over ``step_size_up``, down over ``step_size_down``) and ``s`` the
    amplitude: 1 (``triangular``), :math:`2^{-(c-1)}` in cycle ``c`` (``triangular2``) or
    :math:`\gamma^t` (``exp_range``). Momentum cycles the other way, ``max_momentum`` to
    ``base_momentum``. LRs are absolute: the optimizer's own LR is not used.

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> s = get_schedule("cyclic", base_lr=0.1, max_lr=1.0, step_size_up=2, cycle_momentum=False)
        >>> preview(s, 5).round(4).tolist()
        [0.1, 0.55, 1.0, 0.55, 0.1]
    """
    low = check_per_group("base_lr", base_lr, check_positive)
    high = check_per_group("max_lr", max_lr, check_positive)
    # Per-group lists are compared group by group; a length mismatch is reported at build.
    groups = max(len(v) if isinstance(v, tuple) else 1 for v in (low, high))
    lows, highs = (v if isinstance(v, tuple) else (v,) * groups for v in (low, high))
    if any(h < lo for lo, h in zip(lows, highs, strict=False)):
        raise InvalidValue(f"`max_lr` must be >= `base_lr`: got max_lr={max_lr}, base_lr={base_lr}")
    up = parse_duration("step_size_up", step_size_up, minimum=1)
    down = _optional_duration("step_size_down", step_size_down, minimum=1)
    mode = check_choice("mode", mode, ("triangular", "triangular2", "exp_range"))
    gamma = check_positive("gamma", gamma)
    momentum = _momentum_range(cycle_momentum, base_momentum, max_momentum)

    def bind(run: Run) -> Curve:
        n_up = float(positive_count(run, "step_size_up", up))
        n_down = n_up if down is None else float(positive_count(run, "step_size_down", down))
        total_size = n_up + n_down
        step_ratio = n_up / total_size

        def weights(t: np.ndarray) -> Weights:
            cycle = np.floor(1 + t / total_size)
            x = 1.0 + t / total_size - cycle
            height = np.where(x <= step_ratio, x / step_ratio, (x - 1) / (step_ratio - 1))
            scale: float | np.ndarray
            if mode == "triangular":
                scale = 1.0
            elif mode == "triangular2":
                scale = 1 / 2.0 ** (cycle - 1)
            else:
                scale = gamma ** t.astype(np.float64)
            a = height * scale
            return Weights(a, 1.0 - a, a)

        return Curve(weights, peak=high, floor=low, momentum=momentum)

    return bind


def _anneal(strategy: str, start: Any, end: Any, pct: np.ndarray) -> np.ndarray:
    if strategy == "cos":
        return end + (start - end) / 2.0 * (np.cos(np.pi * pct) + 1)
    return (end - start) * pct + start


@register("onecycle", interval="step", end_arg="total_steps", ends_with_run=True, durations=("total_steps",))
def onecycle(
    max_lr: float | list[float],
    total_steps: int | str | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    cycle_momentum: bool = True,
    base_momentum: float | list[float] = 0.85,
    max_momentum: float | list[float] = 0.95,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Binder:
    r"""OneCycleLR: up from ``max_lr/div_factor`` to ``max_lr``, then down to a tiny LR (Smith, 2018).

    Phase 1 anneals from :math:`\mathrm{max}/d` to ``max_lr`` over ``pct_start`` of ``total_steps``;
    phase 2 anneals to :math:`\mathrm{max}/(d f)` (``three_phase``: back to :math:`\mathrm{max}/d`
    first, then down). ``total_steps`` defaults to the whole run; from step ``total_steps`` on the LR
    stays at the final value (torch raises past it, and at it extrapolates beyond the final value,
    to a negative LR with ``anneal_strategy="linear"``). Momentum moves opposite to the LR.

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> s = get_schedule("onecycle", max_lr=1.0, total_steps=5, pct_start=0.4,
        ...                  anneal_strategy="linear", cycle_momentum=False)
        >>> preview(s, 5).round(4).tolist()
        [0.04, 1.0, 0.6667, 0.3333, 0.0]
    """
    high = check_per_group("max_lr", max_lr, check_positive)
    steps = _optional_duration("total_steps", total_steps)
    pct_start = check_range("pct_start", pct_start, 0.0, 1.0)
    anneal_strategy = check_choice("anneal_strategy", anneal_strategy, ("cos", "linear"))
    momentum = _momentum_range(cycle_momentum, base_momentum, max_momentum)
    div_factor = check_positive("div_factor", div_factor)
    final_div_factor = check_positive("final_div_factor", final_div_factor)
    three_phase = check_bool("three_phase", three_phase)

    def bind(run: Run) -> Curve:
        total = run.default_length("total_steps", steps)
        if total < 1:
            raise InvalidValue(f"`total_steps` must be at least 1: got total_steps={total}")
        initial, low = 1.0 / div_factor, 1.0 / div_factor / final_div_factor
        # (end_step, lr weight at start, at end, momentum weight at start, at end), as torch lays them out
        if three_phase:
            phases = [
                (float(pct_start * total) - 1, initial, 1.0, 0.0, 1.0),
                (float(2 * pct_start * total) - 2, 1.0, initial, 1.0, 0.0),
                (total - 1, initial, low, 0.0, 0.0),
            ]
        else:
            phases = [(float(pct_start * total) - 1, initial, 1.0, 0.0, 1.0), (total - 1, 1.0, low, 1.0, 0.0)]
        starts = [0.0] + [p[0] for p in phases[:-1]]
        for (end, *_), start in zip(phases, starts, strict=True):
            if end == start:
                raise InvalidValue(
                    f"`pct_start`={pct_start} with total_steps={total} gives a phase of zero steps: "
                    "use a longer run or another pct_start"
                )

        def weights(t: np.ndarray) -> Weights:
            tt = np.minimum(t, total).astype(np.float64)
            lr, mom = np.empty(tt.shape), np.empty(tt.shape)
            todo = np.ones(tt.shape, dtype=bool)
            for i, ((end, lr0, lr1, m0, m1), start) in enumerate(zip(phases, starts, strict=True)):
                here = todo & ((tt <= end) | (i == len(phases) - 1))
                pct = (tt[here] - start) / (end - start)
                lr[here] = _anneal(anneal_strategy, lr0, lr1, pct)
                mom[here] = _anneal(anneal_strategy, m0, m1, pct)
                todo &= ~here
            # Step `total` lies past the last phase's end (total - 1): extrapolating would overshoot.
            past = t >= total
            lr[past], mom[past] = low, phases[-1][4]
            return Weights(lr, None, mom)

        return Curve(weights, peak=high, momentum=momentum, length=total)

    return bind
