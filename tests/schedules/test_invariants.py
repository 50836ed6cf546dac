"""Hypothesis invariants for every schedule in the catalog.

For each name in ``available_schedules()`` a strategy draws valid arguments; the tests then check,
on ``preview`` (and on the scheduler a ``build`` makes), that the LR stays within the documented
bounds, that warmups rise monotonically and join the schedule after them without a jump, that the
documented values are hit at the documented steps (end values, phase joins), and that ``preview``
is exactly what the built scheduler sets step by step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_lrsched.schedules import available_schedules, get_schedule, preview

SETTINGS = settings(max_examples=25, deadline=None)
TINY = 1e-12

Params = dict[str, Any]
Landmark = tuple[int, float]


@dataclass(frozen=True)
class Spec:
    """How to draw a schedule's arguments and what its documentation promises.

    ``params(total, lr0)`` draws arguments valid for a run of ``total`` scheduler steps and an
    optimizer LR ``lr0``; ``bounds(p, lr0, t)`` gives the documented ``(low, high)`` at times ``t``;
    ``landmarks(p, lr0, total)`` gives ``(t, lr)`` pairs the documentation states exactly.
    """

    params: Callable[..., st.SearchStrategy[Params]]
    bounds: Callable[[Params, float, np.ndarray], tuple[Any, Any]]
    landmarks: Callable[[Params, float, int], list[Landmark]]


def _within(lo: float, hi: float) -> Callable[..., tuple[float, float]]:
    """Bounds ``lo * lr0 .. hi * lr0`` for every time."""
    return lambda p, lr0, t: (lo * lr0, hi * lr0)


fractions = st.floats(0.0, 1.0)


# -- torch's schedules -------------------------------------------------------------------------------
@st.composite
def step_params(draw, total, lr0):
    return {"step_size": draw(st.integers(1, total)), "gamma": draw(st.floats(0.05, 1.0))}


def step_landmarks(p, lr0, total):
    s, g = p["step_size"], p["gamma"]
    drops = range(1, (total - 1) // s + 1)
    return [(0, lr0)] + [(k * s, lr0 * g**k) for k in drops] + [(k * s - 1, lr0 * g ** (k - 1)) for k in drops]


@st.composite
def multistep_params(draw, total, lr0):
    marks = draw(st.lists(st.integers(1, max(1, total - 1)), min_size=1, max_size=5, unique=True))
    return {"milestones": sorted(marks), "gamma": draw(st.floats(0.05, 1.0))}


def multistep_landmarks(p, lr0, total):
    g, marks = p["gamma"], p["milestones"]
    return [(m, lr0 * g ** (i + 1)) for i, m in enumerate(marks)] + [(m - 1, lr0 * g**i) for i, m in enumerate(marks)]


@st.composite
def exponential_params(draw, total, lr0):
    return {"gamma": draw(st.floats(0.9, 1.0))}


@st.composite
def cosine_params(draw, total, lr0):
    return {"T_max": draw(st.one_of(st.none(), st.integers(1, total))), "eta_min": draw(fractions) * lr0}


def cosine_landmarks(p, lr0, total):
    T, floor = p["T_max"] or total, p["eta_min"]
    marks = [(0, lr0), (T, floor), (2 * T, lr0)]  # periodic past T_max, like torch's
    if T % 2 == 0:
        marks.append((T // 2, (lr0 + floor) / 2))
    return marks


@st.composite
def cosine_restarts_params(draw, total, lr0):
    return {
        "T_0": draw(st.integers(1, total)),
        "T_mult": draw(st.integers(1, 3)),
        "eta_min": draw(fractions) * lr0,
    }


def cosine_restarts_landmarks(p, lr0, total):
    marks, start, length = [], 0, p["T_0"]
    while start < total:
        marks.append((start, lr0))
        if length % 2 == 0:  # the middle of every cycle is halfway down
            marks.append((start + length // 2, (lr0 + p["eta_min"]) / 2))
        start, length = start + length, length * p["T_mult"]
    return marks


@st.composite
def polynomial_params(draw, total, lr0):
    return {"total_iters": draw(st.integers(1, total + 5)), "power": draw(st.floats(0.25, 4.0))}


def polynomial_landmarks(p, lr0, total):
    n = p["total_iters"]
    return [(0, lr0), (n, 0.0), (n + 3, 0.0)]


@st.composite
def linear_params(draw, total, lr0):
    return {
        "start_factor": draw(st.floats(0.01, 1.0)),
        "end_factor": draw(fractions),
        "total_iters": draw(st.integers(1, total + 5)),
    }


def linear_bounds(p, lr0, t):
    a, b = p["start_factor"], p["end_factor"]
    return min(a, b) * lr0, max(a, b) * lr0


def linear_landmarks(p, lr0, total):
    n, a, b = p["total_iters"], p["start_factor"], p["end_factor"]
    marks = [(0, a * lr0), (n, b * lr0), (n + 2, b * lr0)]
    return [*marks, (n // 2, lr0 * (a + (b - a) * (n // 2) / n))]


@st.composite
def constant_params(draw, total, lr0):
    return {"factor": draw(st.floats(0.01, 1.0)), "total_iters": draw(st.integers(0, total))}


def constant_landmarks(p, lr0, total):
    n = p["total_iters"]
    return [(n, lr0), (n + 1, lr0)] + ([(0, p["factor"] * lr0), (n - 1, p["factor"] * lr0)] if n else [])


@st.composite
def cyclic_params(draw, total, lr0):
    base = draw(st.floats(1e-4, 1.0))
    return {
        "base_lr": base,
        "max_lr": base * draw(st.floats(1.0, 50.0)),
        "step_size_up": draw(st.integers(1, max(1, total // 2))),
        "step_size_down": draw(st.one_of(st.none(), st.integers(1, max(1, total // 2)))),
        "mode": draw(st.sampled_from(["triangular", "triangular2", "exp_range"])),
        "gamma": draw(st.floats(0.9, 1.0)),
    }


def cyclic_bounds(p, lr0, t):
    return p["base_lr"], p["max_lr"]


def cyclic_landmarks(p, lr0, total):
    base, top, up = p["base_lr"], p["max_lr"], p["step_size_up"]
    cycle = up + (p["step_size_down"] or up)
    if p["mode"] == "triangular":
        return [(0, base), (up, top), (cycle, base), (cycle + up, top)]
    if p["mode"] == "triangular2":
        return [(0, base), (up, top), (cycle, base), (cycle + up, base + (top - base) / 2)]
    return [(0, base), (up, base + (top - base) * p["gamma"] ** up), (cycle, base)]


@st.composite
def onecycle_params(draw, total, lr0):
    return {
        "max_lr": draw(st.floats(1e-3, 10.0)),
        "total_steps": draw(st.one_of(st.none(), st.integers(30, total))),
        "pct_start": draw(st.floats(0.05, 0.45)),
        "anneal_strategy": draw(st.sampled_from(["cos", "linear"])),
        "div_factor": draw(st.floats(1.5, 100.0)),
        "final_div_factor": draw(st.floats(1.5, 1e4)),
        "three_phase": draw(st.booleans()),
    }


def onecycle_bounds(p, lr0, t):
    top = p["max_lr"]
    return top / (p["div_factor"] * p["final_div_factor"]), top


def onecycle_landmarks(p, lr0, total):
    top, T = p["max_lr"], p["total_steps"] or total
    start, low = top / p["div_factor"], top / (p["div_factor"] * p["final_div_factor"])
    marks = [(0, start), (T - 1, low), (T, low), (T + 9, low)]
    peak = p["pct_start"] * T - 1
    if peak == int(peak):
        marks.append((int(peak), top))
    if p["three_phase"] and 2 * peak == int(2 * peak):
        marks.append((int(2 * peak), start))  # three_phase comes back to max_lr / div_factor first
    return marks


@st.composite
def plateau_params(draw, total, lr0):
    return {
        "mode": draw(st.sampled_from(["min", "max"])),
        "factor": draw(st.floats(0.01, 0.99)),
        "patience": draw(st.integers(0, 10)),
        "min_lr": draw(fractions) * lr0,
    }


def plateau_landmarks(p, lr0, total):
    return [(0, lr0), (total - 1, lr0)]  # preview shows no reductions: they depend on metrics


# -- the warmup family ---------------------------------------------------------------------------------
@st.composite
def phase_params(draw, total, lr0, *, with_total=True):
    """``warmup`` and (optionally) ``total``; ``total`` is None (the whole run) or fits in it."""
    end = draw(st.one_of(st.none(), st.integers(2, total))) if with_total else None
    warmup = draw(st.integers(0, (end or total) - 1))
    return {"warmup": warmup} if not with_total else {"warmup": warmup, "total": end}


def _end(p, total):
    return p.get("total") or total


def ramp_landmarks(p, lr0, total):
    """A linear warmup from 0 reaches ``lr0`` at ``warmup`` and is at half of it half way."""
    w = p["warmup"]
    marks = [(w, lr0)]
    if w >= 1:
        marks.append((0, 0.0))
    if w >= 2 and w % 2 == 0:
        marks.append((w // 2, lr0 / 2))
    return marks


@st.composite
def warmup_constant_params(draw, total, lr0):
    return draw(phase_params(total, lr0, with_total=False))


def warmup_constant_landmarks(p, lr0, total):
    return [*ramp_landmarks(p, lr0, total), (total - 1, lr0)]


@st.composite
def warmup_linear_params(draw, total, lr0):
    return draw(phase_params(total, lr0))


def warmup_linear_landmarks(p, lr0, total):
    w, n = p["warmup"], _end(p, total)
    return [*ramp_landmarks(p, lr0, total), (n, 0.0), (n + 4, 0.0), (w + 1, lr0 * (n - w - 1) / (n - w))]


@st.composite
def warmup_cosine_params(draw, total, lr0):
    return {
        **draw(phase_params(total, lr0)),
        "num_cycles": draw(st.one_of(st.just(0.5), st.floats(0.1, 3.0))),
        "min_lr_ratio": draw(fractions),
    }


def warmup_cosine_bounds(p, lr0, t):
    return np.where(t < p["warmup"], 0.0, p["min_lr_ratio"] * lr0), lr0


def warmup_cosine_landmarks(p, lr0, total):
    w, n, r = p["warmup"], _end(p, total), p["min_lr_ratio"]
    marks = ramp_landmarks(p, lr0, total)
    if p["num_cycles"] == 0.5:
        marks.append((n, r * lr0))
        if (n - w) % 2 == 0:
            marks.append((w + (n - w) // 2, lr0 * (1 + r) / 2))
    return marks


@st.composite
def warmup_cosine_restarts_params(draw, total, lr0):
    return {**draw(phase_params(total, lr0)), "num_cycles": draw(st.integers(1, 5))}


def warmup_cosine_restarts_landmarks(p, lr0, total):
    w, n, c = p["warmup"], _end(p, total), p["num_cycles"]
    marks = [*ramp_landmarks(p, lr0, total), (n, 0.0), (n + 1, 0.0)]
    # each cycle restarts at lr0 where c * progress is a whole number
    return marks + [(w + k * (n - w) // c, lr0) for k in range(c) if (k * (n - w)) % c == 0]


@st.composite
def warmup_polynomial_params(draw, total, lr0):
    return {
        **draw(phase_params(total, lr0)),
        "lr_end": draw(st.floats(0.0, 0.99)) * lr0,
        "power": draw(st.floats(0.25, 4.0)),
    }


def warmup_polynomial_bounds(p, lr0, t):
    return np.where(t < p["warmup"], 0.0, p["lr_end"]), lr0


def warmup_polynomial_landmarks(p, lr0, total):
    n = _end(p, total)
    return [*ramp_landmarks(p, lr0, total), (n, p["lr_end"]), (n + 1, p["lr_end"]), (n + 10, p["lr_end"])]


@st.composite
def inverse_sqrt_params(draw, total, lr0):
    return {
        **draw(phase_params(total, lr0, with_total=False)),
        "timescale": draw(st.one_of(st.none(), st.integers(1, total))),
    }


def inverse_sqrt_landmarks(p, lr0, total):
    w = p["warmup"]
    tau = p["timescale"] or w or 10000
    return [*ramp_landmarks(p, lr0, total), (w + 3 * tau, lr0 / 2), (w + 8 * tau, lr0 / 3)]


@st.composite
def wsd_params(draw, total, lr0):
    phase = draw(phase_params(total, lr0))
    n = _end(phase, total)
    return {
        **phase,
        "decay": draw(st.integers(0, n - phase["warmup"])),
        "warmup_type": draw(st.sampled_from(["linear", "cosine", "1-sqrt"])),
        "decay_type": draw(st.sampled_from(["linear", "cosine", "1-sqrt"])),
        "min_lr_ratio": draw(fractions),
        "num_cycles": draw(st.one_of(st.just(0.5), st.floats(0.1, 2.0))),
    }


def wsd_bounds(p, lr0, t):
    return p["min_lr_ratio"] * lr0, lr0


def wsd_landmarks(p, lr0, total):
    w, n, r = p["warmup"], _end(p, total), p["min_lr_ratio"]
    stable_end = n - p["decay"]
    marks = [(w, lr0), (stable_end, lr0 if stable_end < n else r * lr0), (n, r * lr0), (n + 5, r * lr0)]
    if w >= 1:
        marks.append((0, r * lr0))  # wsd warms up from min_lr_ratio, not from 0
    if p["decay_type"] != "cosine" or p["num_cycles"] == 0.5:
        marks.append((n - 1, lr0 * (r + (1 - r) * _last_decay_step(p["decay_type"], p["decay"]))))
    return marks


def _last_decay_step(shape: str, decay: int) -> float:
    """The documented decay factor one step before the end (progress (d - 1) / d)."""
    if decay == 0:
        return 1.0
    x = (decay - 1) / decay
    return {"linear": 1 - x, "cosine": 0.5 * (1 + math.cos(math.pi * x)), "1-sqrt": 1 - math.sqrt(x)}[shape]


# -- composites ------------------------------------------------------------------------------------------
@st.composite
def join_params(draw, total, lr0):
    """A LinearLR warmup over the first part, then a cosine over the rest of the run (its own span)."""
    b = draw(st.integers(1, total - 1))
    warm = {"name": "linear", "start_factor": draw(st.floats(0.01, 1.0)), "total_iters": b}
    return {"schedules": [warm, {"name": "cosine", "eta_min": draw(fractions) * lr0}], "boundaries": [b]}


def join_landmarks(p, lr0, total):
    b, s = p["boundaries"][0], p["schedules"][0]["start_factor"]
    floor = p["schedules"][1]["eta_min"]
    # The cosine restarts its clock at b and its T_max defaults to its span, total - b.
    return [(0, s * lr0), (b - 1, lr0 * (s + (1 - s) * (b - 1) / b)), (b, lr0), (total, floor)]


@st.composite
def chain_params(draw, total, lr0):
    """ConstantLR times a cosine with a floor: the product scales the floor too."""
    factor = {"name": "constant", "factor": draw(st.floats(0.01, 1.0)), "total_iters": draw(st.integers(1, total - 1))}
    return {"schedules": [factor, {"name": "cosine", "eta_min": draw(fractions) * lr0}]}


def chain_landmarks(p, lr0, total):
    f, k = p["schedules"][0]["factor"], p["schedules"][0]["total_iters"]
    floor = p["schedules"][1]["eta_min"]
    cosine = lambda t: floor + (lr0 - floor) * (1 + math.cos(math.pi * t / total)) / 2  # noqa: E731
    # Scaled by `factor` (floor included) before k, the plain cosine from k on.
    return [(0, f * lr0), (k - 1, f * cosine(k - 1)), (k, cosine(k)), (total, floor)]


SPECS: dict[str, Spec] = {
    "step": Spec(step_params, lambda p, lr0, t: (lr0 * p["gamma"] ** (t // p["step_size"]),) * 2, step_landmarks),
    "multistep": Spec(multistep_params, _within(0.0, 1.0), multistep_landmarks),
    "exponential": Spec(
        exponential_params,
        lambda p, lr0, t: (lr0 * p["gamma"] ** (t[-1]), lr0),
        lambda p, lr0, total: [(k, lr0 * p["gamma"] ** k) for k in (0, 1, total - 1)],
    ),
    "cosine": Spec(cosine_params, lambda p, lr0, t: (p["eta_min"], lr0), cosine_landmarks),
    "cosine_restarts": Spec(cosine_restarts_params, lambda p, lr0, t: (p["eta_min"], lr0), cosine_restarts_landmarks),
    "polynomial": Spec(polynomial_params, _within(0.0, 1.0), polynomial_landmarks),
    "linear": Spec(linear_params, linear_bounds, linear_landmarks),
    "constant": Spec(constant_params, lambda p, lr0, t: (p["factor"] * lr0, lr0), constant_landmarks),
    "cyclic": Spec(cyclic_params, cyclic_bounds, cyclic_landmarks),
    "onecycle": Spec(onecycle_params, onecycle_bounds, onecycle_landmarks),
    "plateau": Spec(plateau_params, _within(1.0, 1.0), plateau_landmarks),
    "warmup_constant": Spec(warmup_constant_params, _within(0.0, 1.0), warmup_constant_landmarks),
    "warmup_linear": Spec(warmup_linear_params, _within(0.0, 1.0), warmup_linear_landmarks),
    "warmup_cosine": Spec(warmup_cosine_params, warmup_cosine_bounds, warmup_cosine_landmarks),
    "warmup_cosine_restarts": Spec(warmup_cosine_restarts_params, _within(0.0, 1.0), warmup_cosine_restarts_landmarks),
    "warmup_polynomial": Spec(warmup_polynomial_params, warmup_polynomial_bounds, warmup_polynomial_landmarks),
    "inverse_sqrt": Spec(inverse_sqrt_params, _within(0.0, 1.0), inverse_sqrt_landmarks),
    "wsd": Spec(wsd_params, wsd_bounds, wsd_landmarks),
    "join": Spec(
        join_params,
        lambda p, lr0, t: (min(p["schedules"][0]["start_factor"] * lr0, p["schedules"][1]["eta_min"]), lr0),
        join_landmarks,
    ),
    "chain": Spec(
        chain_params,
        lambda p, lr0, t: (p["schedules"][0]["factor"] * p["schedules"][1]["eta_min"], lr0),
        chain_landmarks,
    ),
}
FAMILY = [
    "warmup_constant",
    "warmup_linear",
    "warmup_cosine",
    "warmup_cosine_restarts",
    "warmup_polynomial",
    "inverse_sqrt",
    "wsd",
]
OTHERS = [name for name in SPECS if name not in FAMILY]

runs = st.integers(30, 400)
lrs = st.floats(1e-4, 10.0)


def test_every_schedule_has_a_spec():
    assert sorted(SPECS) == available_schedules()


def _draw(data, name):
    total, lr0 = data.draw(runs, label="total"), data.draw(lrs, label="lr0")
    return total, lr0, data.draw(SPECS[name].params(total, lr0), label="params")


@pytest.mark.parametrize("name", sorted(SPECS))
@SETTINGS
@given(data=st.data())
def test_stays_within_documented_bounds(name, data):
    total, lr0, params = _draw(data, name)
    lr = preview(get_schedule(name, **params), total, base_lr=lr0)
    lo, hi = SPECS[name].bounds(params, lr0, np.arange(total))
    assert lr.shape == (total,) and np.all(np.isfinite(lr))
    scale = max(lr0, float(np.max(hi)))
    assert np.all(lr >= lo - TINY * scale), f"below {lo}: min {lr.min()}"
    assert np.all(lr <= hi + TINY * scale), f"above {hi}: max {lr.max()}"


@pytest.mark.parametrize("name", sorted(SPECS))
@SETTINGS
@given(data=st.data())
def test_hits_documented_values(make_optimizer, record, name, data):
    total, lr0, params = _draw(data, name)
    marks = SPECS[name].landmarks(params, lr0, total)
    # Built for a run of `total` steps and stepped past its end, so end values are checked too.
    optimizer = make_optimizer(lrs=(lr0,))
    schedule = get_schedule(name, **params, interval="step")
    lr = record(optimizer, schedule.build(optimizer, total_steps=total), total + 12)[0][:, 0]
    checked = [(t, v) for t, v in marks if 0 <= t < len(lr)]
    assert checked, "no landmark inside the run"
    scale = max(lr0, max(abs(v) for _, v in checked))
    for t, expected in checked:
        assert abs(lr[t] - expected) <= 1e-9 * scale, f"t={t}: {lr[t]!r} != {expected!r}"


@pytest.mark.parametrize("name", FAMILY)
@SETTINGS
@given(data=st.data())
def test_family_warmup_rises_and_joins(name, data):
    total, lr0, params = _draw(data, name)
    w = params["warmup"]
    lr = preview(get_schedule(name, **params), total, base_lr=lr0)
    assert np.all(np.diff(lr[: w + 1]) >= -TINY * lr0), "warmup is not monotone"
    assert lr[w] == pytest.approx(lr0, rel=1e-12)
    if w >= 1:
        # The ramp's last step is its usual size: no jump onto the schedule after it.
        jump = lr0 / w
        if params.get("warmup_type") == "1-sqrt":
            jump = lr0 * math.sqrt(1 / w)  # 1 - sqrt(1 - p) is steep at p = 1, by design
        assert 0 <= lr[w] - lr[w - 1] <= jump + TINY * lr0


@pytest.mark.parametrize("name", OTHERS)
@SETTINGS
@given(data=st.data(), warmup=st.integers(1, 60))
def test_generic_warmup_rises_and_joins(name, data, warmup):
    total, lr0, params = _draw(data, name)
    inner = preview(get_schedule(name, **params), total, base_lr=lr0)
    lr = preview(get_schedule(name, **params, warmup=warmup), warmup + total, base_lr=lr0)
    # After the warmup, the schedule runs exactly as it would without one (run-length defaults
    # such as T_max cover the rest of the run)...
    np.testing.assert_allclose(lr[warmup:], inner, rtol=1e-12, atol=0)
    # ...and the warmup is a linear ramp from 0 up to the schedule's first value.
    ramp = np.arange(warmup + 1) / warmup * inner[0]
    tiny = TINY * inner[0]  # cyclic and onecycle LRs are absolute: they need not be near lr0
    np.testing.assert_allclose(lr[: warmup + 1], ramp, rtol=1e-12, atol=tiny)
    assert lr[0] == 0.0
    assert np.all(np.diff(lr[: warmup + 1]) >= 0)
    assert abs(lr[warmup] - lr[warmup - 1]) <= lr[warmup] / warmup + tiny


@pytest.mark.parametrize("name", sorted(SPECS))
@SETTINGS
@given(data=st.data(), kind=st.sampled_from(["sgd", "adam"]))
def test_preview_is_what_the_step_scheduler_sets(make_optimizer, record, name, data, kind):
    total, lr0, params = _draw(data, name)
    schedule = get_schedule(name, **params, interval="step")
    optimizer = make_optimizer(kind, lrs=(lr0,))
    lrs, _ = record(optimizer, schedule.build(optimizer, total_steps=total), total - 1)
    np.testing.assert_allclose(lrs[:, 0], preview(schedule, total, base_lr=lr0), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", sorted(SPECS))
@SETTINGS
@given(
    data=st.data(),
    steps_per_epoch=st.integers(1, 9),
    short=st.integers(0, 8),
    warmup=st.one_of(st.none(), st.integers(1, 5)),
)
def test_preview_is_what_the_epoch_scheduler_sets(make_optimizer, record, name, data, steps_per_epoch, short, warmup):
    epochs, lr0, params = _draw(data, name)
    if warmup is not None and name not in FAMILY:
        params = {**params, "warmup": warmup}
        epochs += warmup
    # The last epoch may be partial: the run still has `epochs` epochs.
    total_steps = epochs * steps_per_epoch - short % steps_per_epoch
    schedule = get_schedule(name, **params, interval="epoch")
    optimizer = make_optimizer(lrs=(lr0,))
    per_epoch, _ = record(
        optimizer, schedule.build(optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch), epochs - 1
    )
    expected = per_epoch[np.arange(total_steps) // steps_per_epoch, 0]
    actual = preview(schedule, total_steps, base_lr=lr0, steps_per_epoch=steps_per_epoch)
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=0)
