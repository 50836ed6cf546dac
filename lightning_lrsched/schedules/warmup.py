"""The warmup family, ``wsd`` and ``inverse_sqrt``: Hugging Face transformers' schedules.

Each reproduces the curve of ``transformers.get_scheduler`` named in its docstring, step for step.
``warmup`` and ``total`` are durations (``int`` steps, ``"10ep"``, ``"500st"``, ``"5%"``);
``total`` defaults to the whole run. During warmup the LR rises linearly from 0:
:math:`\\mathrm{lr}(t) = \\mathrm{lr}_0\\, t / W`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lightning_lrsched.errors import InvalidValue
from lightning_lrsched.schedules.curve import Binder, Curve, Weights, check_warmup, join, ramp, register
from lightning_lrsched.schedules.duration import Duration, Run, parse_duration
from lightning_lrsched.validation import check_choice, check_non_negative, check_positive, check_range

# Catalog metadata shared by the family: stepped per optimizer step, with `warmup` in its own formula;
# most decay to their final LR at `total`, which defaults to the end of the run.
_FAMILY: dict[str, Any] = {"interval": "step", "own_warmup": True}
_DECAYS_TO_TOTAL: dict[str, Any] = {**_FAMILY, "end_arg": "total", "ends_with_run": True}


def _phases(run: Run, warmup: Duration, total: Duration | None) -> tuple[int, int]:
    """Resolve ``warmup`` and ``total`` and check that the warmup fits in the schedule."""
    w = run.count("warmup", warmup)
    n = run.default_length("total", total)
    check_warmup(w, n, run.interval)
    return w, n


def _after_warmup(w: int, decay: Callable[[np.ndarray], np.ndarray], n: int | None) -> Curve:
    """``join([ramp(w), decay], [w])``; ``decay`` is written in the run's time ``t``, ``n`` is where it ends."""
    after = Curve(lambda s: Weights(decay(s + w)), length=None if n is None else n - w)
    return join([ramp(w), after], [w])


def _progress(t: np.ndarray, w: int, n: int) -> np.ndarray:
    return (t - w) / float(max(1, n - w))


@register("warmup_constant", **_FAMILY, durations=("warmup",))
def warmup_constant(warmup: int | str) -> Binder:
    r"""Linear warmup, then constant: HF ``constant_with_warmup``.

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> preview(get_schedule("warmup_constant", warmup=2), 4).tolist()
        [0.0, 0.5, 1.0, 1.0]
    """
    rise = parse_duration("warmup", warmup)

    def bind(run: Run) -> Curve:
        w = run.count("warmup", rise)
        return _after_warmup(w, lambda t: np.ones(t.shape), w)

    return bind


@register("warmup_linear", **_DECAYS_TO_TOTAL, durations=("warmup", "total"))
def warmup_linear(warmup: int | str, total: int | str | None = None) -> Binder:
    r"""Linear warmup, then linear decay to 0 at ``total``: HF ``linear``.

    .. math:: \mathrm{lr}(t) = \mathrm{lr}_0 \max(0, (N - t)/(N - W)) \quad (t \ge W)

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> preview(get_schedule("warmup_linear", warmup=1, total=3), 4).tolist()
        [0.0, 1.0, 0.5, 0.0]
    """
    rise, end = parse_duration("warmup", warmup), None if total is None else parse_duration("total", total)

    def bind(run: Run) -> Curve:
        w, n = _phases(run, rise, end)
        return _after_warmup(w, lambda t: np.maximum(0.0, (n - t) / float(max(1, n - w))), n)

    return bind


@register("warmup_cosine", **_DECAYS_TO_TOTAL, durations=("warmup", "total"))
def warmup_cosine(
    warmup: int | str, total: int | str | None = None, num_cycles: float = 0.5, min_lr_ratio: float = 0.0
) -> Binder:
    r"""Linear warmup, then cosine decay: HF ``cosine`` (``cosine_with_min_lr`` when ``min_lr_ratio`` > 0).

    .. math:: \mathrm{lr}(t) = \mathrm{lr}_0 \max(0, r + (1 - r)\tfrac{1}{2}(1 + \cos(2\pi c\,p)))
              \quad p = (t - W)/(N - W)

    with ``c = num_cycles`` (0.5: one half-cosine down to ``r = min_lr_ratio``).

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> preview(get_schedule("warmup_cosine", warmup=1, total=3, min_lr_ratio=0.1), 4).round(4).tolist()
        [0.0, 1.0, 0.55, 0.1]
    """
    rise, end = parse_duration("warmup", warmup), None if total is None else parse_duration("total", total)
    cycles = check_positive("num_cycles", num_cycles)
    floor = check_range("min_lr_ratio", min_lr_ratio, 0.0, 1.0)

    def bind(run: Run) -> Curve:
        w, n = _phases(run, rise, end)

        def decay(t: np.ndarray) -> np.ndarray:
            factor = 0.5 * (1.0 + np.cos(np.pi * cycles * 2.0 * _progress(t, w, n)))
            return np.maximum(0.0, factor * (1 - floor) + floor)

        return _after_warmup(w, decay, n)

    return bind


@register("warmup_cosine_restarts", **_DECAYS_TO_TOTAL, durations=("warmup", "total"))
def warmup_cosine_restarts(warmup: int | str, total: int | str | None = None, num_cycles: int = 1) -> Binder:
    r"""Linear warmup, then ``num_cycles`` hard-restarted cosines to 0: HF ``cosine_with_restarts``.

    .. math:: \mathrm{lr}(t) = \mathrm{lr}_0\,\tfrac{1}{2}(1 + \cos(\pi\,((c\,p) \bmod 1))) \quad (p < 1),
              \quad 0 \text{ after}

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> preview(get_schedule("warmup_cosine_restarts", warmup=1, total=5, num_cycles=2), 6).round(4).tolist()
        [0.0, 1.0, 0.5, 1.0, 0.5, 0.0]
    """
    rise, end = parse_duration("warmup", warmup), None if total is None else parse_duration("total", total)
    cycles = check_positive("num_cycles", num_cycles)

    def bind(run: Run) -> Curve:
        w, n = _phases(run, rise, end)

        def decay(t: np.ndarray) -> np.ndarray:
            progress = _progress(t, w, n)
            value = np.maximum(0.0, 0.5 * (1.0 + np.cos(np.pi * ((cycles * progress) % 1.0))))
            return np.where(progress >= 1.0, 0.0, value)

        return _after_warmup(w, decay, n)

    return bind


@register("warmup_polynomial", **_DECAYS_TO_TOTAL, durations=("warmup", "total"))
def warmup_polynomial(
    warmup: int | str, total: int | str | None = None, lr_end: float = 1e-7, power: float = 1.0
) -> Binder:
    r"""Linear warmup, then polynomial decay to the absolute LR ``lr_end``: HF ``polynomial``.

    .. math:: \mathrm{lr}(t) = (\mathrm{lr}_0 - \mathrm{lr}_{end})(1 - p)^{k} + \mathrm{lr}_{end}

    with ``p = (t - W)/(N - W)`` and ``k = power``. As in HF, ``lr_0`` is the optimizer's default
    LR and every param group is scaled by the same factor.

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> preview(get_schedule("warmup_polynomial", warmup=1, total=3, lr_end=0.1), 4).round(4).tolist()
        [0.0, 1.0, 0.55, 0.1]
    """
    rise, end = parse_duration("warmup", warmup), None if total is None else parse_duration("total", total)
    lr_end = check_non_negative("lr_end", lr_end)
    power = check_non_negative("power", power)

    def bind(run: Run) -> Curve:
        w, n = _phases(run, rise, end)
        lr_init = run.base_lr
        if not lr_init > lr_end:
            raise InvalidValue(f"`lr_end` must be below the optimizer's lr: got lr_end={lr_end}, lr={lr_init}")

        def decay(t: np.ndarray) -> np.ndarray:
            remaining = np.maximum(1 - (t - w) / (n - w), 0.0)
            return np.where(t > n, lr_end / lr_init, ((lr_init - lr_end) * remaining**power + lr_end) / lr_init)

        return _after_warmup(w, decay, n)

    return bind


@register("inverse_sqrt", **_FAMILY, durations=("warmup", "timescale"))
def inverse_sqrt(warmup: int | str, timescale: int | str | None = None) -> Binder:
    r"""Linear warmup, then decay with the inverse square root of time: HF ``inverse_sqrt``.

    .. math:: \mathrm{lr}(t) = \mathrm{lr}_0 / \sqrt{(t - W + \tau)/\tau} \quad (t \ge W)

    ``timescale`` (:math:`\tau`) defaults to ``warmup`` (10 000 when there is no warmup).

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> preview(get_schedule("inverse_sqrt", warmup=1, timescale=1), 5).round(4).tolist()
        [0.0, 1.0, 0.7071, 0.5774, 0.5]
    """
    rise = parse_duration("warmup", warmup)
    scale = None if timescale is None else parse_duration("timescale", timescale)

    def bind(run: Run) -> Curve:
        w = run.count("warmup", rise)
        tau = (w or 10000) if scale is None else run.count("timescale", scale)
        if tau < 1:
            raise InvalidValue(f"`timescale` must be >= 1: got timescale={tau}")
        return _after_warmup(w, lambda t: 1.0 / np.sqrt(np.maximum(t + (tau - w), 1) / tau), None)

    return bind


_SHAPES = ("linear", "cosine", "1-sqrt")


@register("wsd", **_DECAYS_TO_TOTAL, durations=("warmup", "decay", "total"))
def wsd(
    warmup: int | str,
    decay: int | str,
    total: int | str | None = None,
    warmup_type: str = "linear",
    decay_type: str = "cosine",
    min_lr_ratio: float = 0.0,
    num_cycles: float = 0.5,
) -> Binder:
    r"""Warmup-stable-decay: HF ``warmup_stable_decay``.

    Warmup from ``min_lr_ratio`` to 1 over ``warmup``, hold 1, then decay to ``min_lr_ratio`` over the
    last ``decay`` of ``total``; ``warmup_type``/``decay_type`` are ``linear``, ``cosine`` or
    ``1-sqrt`` (:math:`1 - \sqrt{p}`). The LR stays at ``min_lr_ratio`` after ``total``.

    Example:
        >>> from lightning_lrsched.schedules import get_schedule, preview
        >>> s = get_schedule("wsd", warmup=1, decay=2, total=5, decay_type="linear")
        >>> preview(s, 6).tolist()
        [0.0, 1.0, 1.0, 1.0, 0.5, 0.0]
    """
    rise, fall = parse_duration("warmup", warmup), parse_duration("decay", decay)
    end = None if total is None else parse_duration("total", total)
    warmup_type = check_choice("warmup_type", warmup_type, _SHAPES)
    decay_type = check_choice("decay_type", decay_type, _SHAPES)
    floor = check_range("min_lr_ratio", min_lr_ratio, 0.0, 1.0)
    cycles = check_positive("num_cycles", num_cycles)

    def bind(run: Run) -> Curve:
        w, n = _phases(run, rise, end)
        d = run.count("decay", fall)
        if w + d > n:
            raise InvalidValue(
                f"`warmup` + `decay` must fit in the run: got warmup={w} + decay={d} > total={n} {run.interval}s"
            )
        stable_end = n - d

        def weights(t: np.ndarray) -> Weights:
            up = np.clip(t / float(max(1, w)), 0.0, 1.0)
            rises = {"linear": up, "cosine": 0.5 * (1.0 - np.cos(np.pi * up)), "1-sqrt": 1.0 - np.sqrt(1.0 - up)}
            down = np.clip((t - stable_end) / float(max(1, d)), 0.0, 1.0)
            fall_ = {
                "linear": 1.0 - down,
                "cosine": 0.5 * (1.0 + np.cos(np.pi * cycles * 2.0 * down)),
                "1-sqrt": 1.0 - np.sqrt(down),
            }
            scaled = lambda f: np.maximum(0.0, f * (1.0 - floor) + floor)  # noqa: E731
            value = np.where(t < w, scaled(rises[warmup_type]), 1.0)
            value = np.where(t >= stable_end, scaled(fall_[decay_type]), value)
            return Weights(np.where(t >= n, floor, value))

        return Curve(weights, warmup=w, length=n)

    return bind
