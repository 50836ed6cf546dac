"""Every torch-named schedule against ``torch.optim.lr_scheduler``, step for step.

Each case steps our scheduler and torch's (on two optimizers with two param groups of different
LRs) at least 1000 times and compares ``get_last_lr()`` after every step to 1e-9 of the group's
largest LR; ``cyclic`` and ``onecycle`` also compare the momentum (SGD) or beta1 (Adam).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as tl

from lightning_lrsched.schedules import get_schedule

STEPS = 1200
SETTINGS = settings(max_examples=25, deadline=None)


def _compare(make_optimizer, record, assert_tracks, name, params, torch_scheduler, *, kind="sgd", steps=STEPS):
    """Run ours and torch's side by side; return (our LRs, torch's LRs) after asserting they agree."""
    ours_opt, torch_opt = make_optimizer(kind), make_optimizer(kind)
    ours, ours_mom = record(ours_opt, get_schedule(name, **params).build(ours_opt), steps)
    ref, ref_mom = record(torch_opt, torch_scheduler(torch_opt), steps)
    assert ours.shape == (steps + 1, 2)
    assert_tracks(ours, ref)
    # Momenta are compared always: schedules that do not cycle them must leave them alone.
    np.testing.assert_allclose(ours_mom, ref_mom, rtol=0, atol=1e-9, equal_nan=True)
    return ours, ref


TABLE = [
    # step
    pytest.param("step", {"step_size": 3, "gamma": 0.5}, lambda o: tl.StepLR(o, 3, 0.5), id="step-3-0.5"),
    pytest.param("step", {"step_size": 7, "gamma": 0.97}, lambda o: tl.StepLR(o, 7, 0.97), id="step-7-0.97"),
    pytest.param("step", {"step_size": 1, "gamma": 0.995}, lambda o: tl.StepLR(o, 1, 0.995), id="step-1"),
    pytest.param("step", {"step_size": 400}, lambda o: tl.StepLR(o, 400), id="step-default-gamma"),
    # multistep
    pytest.param(
        "multistep",
        {"milestones": [10, 100, 500], "gamma": 0.3},
        lambda o: tl.MultiStepLR(o, [10, 100, 500], 0.3),
        id="multistep-3",
    ),
    pytest.param(
        "multistep", {"milestones": [1, 2, 3]}, lambda o: tl.MultiStepLR(o, [1, 2, 3]), id="multistep-adjacent"
    ),
    pytest.param(
        "multistep",
        {"milestones": [1199], "gamma": 0.5},
        lambda o: tl.MultiStepLR(o, [1199], 0.5),
        id="multistep-at-end",
    ),
    # exponential
    pytest.param("exponential", {"gamma": 0.999}, lambda o: tl.ExponentialLR(o, 0.999), id="exponential-0.999"),
    pytest.param("exponential", {"gamma": 0.99}, lambda o: tl.ExponentialLR(o, 0.99), id="exponential-0.99"),
    pytest.param("exponential", {"gamma": 1.0005}, lambda o: tl.ExponentialLR(o, 1.0005), id="exponential-growth"),
    # cosine (periodic past T_max, like torch's)
    pytest.param(
        "cosine",
        {"T_max": 100, "eta_min": 0.001},
        lambda o: tl.CosineAnnealingLR(o, 100, 0.001),
        id="cosine-periodic",
    ),
    pytest.param("cosine", {"T_max": 1200}, lambda o: tl.CosineAnnealingLR(o, 1200), id="cosine-whole-run"),
    pytest.param("cosine", {"T_max": 7, "eta_min": 0.02}, lambda o: tl.CosineAnnealingLR(o, 7, 0.02), id="cosine-7"),
    pytest.param("cosine", {"T_max": 1}, lambda o: tl.CosineAnnealingLR(o, 1), id="cosine-1"),
    # cosine_restarts
    pytest.param("cosine_restarts", {"T_0": 10}, lambda o: tl.CosineAnnealingWarmRestarts(o, 10), id="restarts-10"),
    pytest.param(
        "cosine_restarts",
        {"T_0": 5, "T_mult": 2, "eta_min": 0.01},
        lambda o: tl.CosineAnnealingWarmRestarts(o, 5, 2, 0.01),
        id="restarts-mult2",
    ),
    pytest.param(
        "cosine_restarts",
        {"T_0": 1, "T_mult": 3},
        lambda o: tl.CosineAnnealingWarmRestarts(o, 1, 3),
        id="restarts-mult3",
    ),
    pytest.param(
        "cosine_restarts",
        {"T_0": 7, "T_mult": 5, "eta_min": 0.001},
        lambda o: tl.CosineAnnealingWarmRestarts(o, 7, 5, 0.001),
        id="restarts-mult5",
    ),
    # polynomial
    pytest.param(
        "polynomial",
        {"total_iters": 500, "power": 2.0},
        lambda o: tl.PolynomialLR(o, 500, 2.0),
        id="polynomial-500-2",
    ),
    pytest.param(
        "polynomial",
        {"total_iters": 1000, "power": 0.5},
        lambda o: tl.PolynomialLR(o, 1000, 0.5),
        id="polynomial-sqrt",
    ),
    pytest.param("polynomial", {}, lambda o: tl.PolynomialLR(o), id="polynomial-defaults"),
    # linear
    pytest.param(
        "linear",
        {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 800},
        lambda o: tl.LinearLR(o, 0.25, 1.0, 800),
        id="linear-up",
    ),
    pytest.param(
        "linear",
        {"start_factor": 1.0, "end_factor": 0.1, "total_iters": 300},
        lambda o: tl.LinearLR(o, 1.0, 0.1, 300),
        id="linear-down",
    ),
    pytest.param(
        "linear",
        {"start_factor": 0.5, "end_factor": 0.0, "total_iters": 1000},
        lambda o: tl.LinearLR(o, 0.5, 0.0, 1000),
        id="linear-to-zero",
    ),
    pytest.param("linear", {}, lambda o: tl.LinearLR(o), id="linear-defaults"),
    # constant
    pytest.param(
        "constant", {"factor": 0.5, "total_iters": 100}, lambda o: tl.ConstantLR(o, 0.5, 100), id="constant-100"
    ),
    pytest.param(
        "constant", {"factor": 0.1, "total_iters": 1000}, lambda o: tl.ConstantLR(o, 0.1, 1000), id="constant-1000"
    ),
    pytest.param("constant", {}, lambda o: tl.ConstantLR(o), id="constant-defaults"),
]


@pytest.mark.parametrize(("name", "params", "torch_scheduler"), TABLE)
def test_matches_torch(make_optimizer, record, assert_tracks, name, params, torch_scheduler):
    ours, _ = _compare(make_optimizer, record, assert_tracks, name, params, torch_scheduler)
    # The two groups keep their own LRs: the schedule scales each group's LR (above the absolute
    # eta_min floor), not the optimizer's default LR.
    floor = params.get("eta_min", 0.0)
    np.testing.assert_allclose((ours[:, 1] - floor) / (0.03 - floor), (ours[:, 0] - floor) / (0.1 - floor), atol=1e-9)


def _cyclic(o, **kw):
    return tl.CyclicLR(o, **kw)


CYCLIC_TABLE = [
    pytest.param(
        {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 100, "cycle_momentum": False},
        "sgd",
        id="triangular",
    ),
    pytest.param(
        {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 50, "step_size_down": 150, "mode": "triangular2"},
        "sgd",
        id="triangular2-asymmetric-sgd-momentum",
    ),
    pytest.param(
        {"base_lr": 0.001, "max_lr": 0.2, "step_size_up": 30, "mode": "exp_range", "gamma": 0.998},
        "adam",
        id="exp_range-adam-betas",
    ),
    pytest.param(
        {
            "base_lr": [0.01, 0.001],
            "max_lr": [0.1, 0.05],
            "step_size_up": 70,
            "step_size_down": 20,
            "base_momentum": [0.8, 0.7],
            "max_momentum": [0.95, 0.9],
        },
        "sgd",
        id="per-group-lists-momentum",
    ),
    pytest.param(
        {"base_lr": [0.01, 0.001], "max_lr": 0.1, "step_size_up": 1, "mode": "triangular2"},
        "adam",
        id="per-group-base-step1",
    ),
    pytest.param(
        {"base_lr": 0.05, "max_lr": 0.05, "step_size_up": 11, "mode": "exp_range", "gamma": 0.9},
        "sgd",
        id="flat",
    ),
]


@pytest.mark.parametrize(("params", "kind"), CYCLIC_TABLE)
def test_cyclic_matches_torch(make_optimizer, record, assert_tracks, params, kind):
    ours, _ = _compare(
        make_optimizer, record, assert_tracks, "cyclic", params, lambda o: _cyclic(o, **params), kind=kind
    )
    base, top = np.broadcast_to(params["base_lr"], 2), np.broadcast_to(params["max_lr"], 2)
    assert np.all(ours >= base - 1e-12) and np.all(ours <= top + 1e-12)
    # Without exp_range's decay, every cycle touches both ends.
    if params.get("mode") != "exp_range":
        np.testing.assert_allclose(ours.max(axis=0), top, rtol=1e-12)
        np.testing.assert_allclose(ours.min(axis=0), base, rtol=1e-12)


ONECYCLE_TABLE = [
    pytest.param({"max_lr": 1.0, "total_steps": 1200}, "sgd", id="cos-sgd"),
    pytest.param({"max_lr": 0.5, "total_steps": 1000, "anneal_strategy": "linear"}, "sgd", id="linear-sgd"),
    pytest.param({"max_lr": 1.0, "total_steps": 1100, "three_phase": True}, "adam", id="three-phase-cos-adam"),
    pytest.param(
        {"max_lr": [1.0, 0.3], "total_steps": 1001, "three_phase": True, "anneal_strategy": "linear"},
        "sgd",
        id="three-phase-linear-per-group",
    ),
    pytest.param(
        {
            "max_lr": [0.4, 0.2],
            "total_steps": 1500,
            "pct_start": 0.1,
            "div_factor": 10.0,
            "final_div_factor": 100.0,
            "base_momentum": [0.8, 0.7],
            "max_momentum": [0.9, 0.99],
        },
        "adam",
        id="per-group-momentum-adam",
    ),
    pytest.param(
        {"max_lr": 0.3, "total_steps": 1024, "pct_start": 0.45, "cycle_momentum": False},
        "sgd",
        id="no-momentum",
    ),
]


@pytest.mark.parametrize(("params", "kind"), ONECYCLE_TABLE)
def test_onecycle_matches_torch(make_optimizer, record, assert_tracks, params, kind):
    total = params["total_steps"]
    ours, _ = _compare(
        make_optimizer,
        record,
        assert_tracks,
        "onecycle",
        params,
        lambda o: tl.OneCycleLR(o, **params),
        kind=kind,
        steps=total - 1,
    )
    top = np.broadcast_to(params["max_lr"], 2)
    low = top / params.get("div_factor", 25.0) / params.get("final_div_factor", 1e4)
    np.testing.assert_allclose(ours[total - 1], low, rtol=1e-9)
    assert np.all(ours <= top * (1 + 1e-12)) and np.all(ours.max(axis=0) > 0.99 * top)


# -- Hypothesis-drawn arguments -------------------------------------------------------------------
gammas = st.floats(0.05, 1.0)


@SETTINGS
@given(step_size=st.integers(1, 300), gamma=gammas)
def test_step_matches_torch_drawn(make_optimizer, record, assert_tracks, step_size, gamma):
    params = {"step_size": step_size, "gamma": gamma}
    _compare(make_optimizer, record, assert_tracks, "step", params, lambda o: tl.StepLR(o, step_size, gamma))


@SETTINGS
@given(milestones=st.lists(st.integers(1, 1300), min_size=1, max_size=6, unique=True).map(sorted), gamma=gammas)
def test_multistep_matches_torch_drawn(make_optimizer, record, assert_tracks, milestones, gamma):
    params = {"milestones": milestones, "gamma": gamma}
    _compare(make_optimizer, record, assert_tracks, "multistep", params, lambda o: tl.MultiStepLR(o, milestones, gamma))


@SETTINGS
@given(gamma=st.floats(0.98, 1.002))
def test_exponential_matches_torch_drawn(make_optimizer, record, assert_tracks, gamma):
    _compare(
        make_optimizer, record, assert_tracks, "exponential", {"gamma": gamma}, lambda o: tl.ExponentialLR(o, gamma)
    )


@SETTINGS
@given(T_max=st.integers(1, 1500), eta_min=st.floats(0.0, 0.05))
def test_cosine_matches_torch_drawn(make_optimizer, record, assert_tracks, T_max, eta_min):
    params = {"T_max": T_max, "eta_min": eta_min}
    _compare(make_optimizer, record, assert_tracks, "cosine", params, lambda o: tl.CosineAnnealingLR(o, T_max, eta_min))


@SETTINGS
@given(T_0=st.integers(1, 200), T_mult=st.integers(1, 4), eta_min=st.floats(0.0, 0.02))
def test_cosine_restarts_matches_torch_drawn(make_optimizer, record, assert_tracks, T_0, T_mult, eta_min):
    params = {"T_0": T_0, "T_mult": T_mult, "eta_min": eta_min}
    _compare(
        make_optimizer,
        record,
        assert_tracks,
        "cosine_restarts",
        params,
        lambda o: tl.CosineAnnealingWarmRestarts(o, T_0, T_mult, eta_min),
    )


@SETTINGS
@given(total_iters=st.integers(1, 1500), power=st.floats(0.25, 4.0))
def test_polynomial_matches_torch_drawn(make_optimizer, record, assert_tracks, total_iters, power):
    params = {"total_iters": total_iters, "power": power}
    _compare(
        make_optimizer, record, assert_tracks, "polynomial", params, lambda o: tl.PolynomialLR(o, total_iters, power)
    )


@SETTINGS
@given(start=st.floats(0.05, 1.0), end=st.floats(0.0, 1.0), total_iters=st.integers(1, 1500))
def test_linear_matches_torch_drawn(make_optimizer, record, assert_tracks, start, end, total_iters):
    params = {"start_factor": start, "end_factor": end, "total_iters": total_iters}
    _compare(make_optimizer, record, assert_tracks, "linear", params, lambda o: tl.LinearLR(o, start, end, total_iters))


@SETTINGS
@given(factor=st.floats(0.05, 1.0), total_iters=st.integers(1, 1500))
def test_constant_matches_torch_drawn(make_optimizer, record, assert_tracks, factor, total_iters):
    params = {"factor": factor, "total_iters": total_iters}
    _compare(make_optimizer, record, assert_tracks, "constant", params, lambda o: tl.ConstantLR(o, factor, total_iters))


lr_pairs = st.tuples(st.floats(1e-4, 0.1), st.floats(1.0, 20.0)).map(lambda p: (p[0], p[0] * p[1]))
momentum_pairs = st.tuples(st.floats(0.5, 0.9), st.floats(0.0, 0.099)).map(lambda p: (p[0], p[0] + p[1]))


@st.composite
def per_group(draw, pairs):
    """A (low, high) pair for every group, given as scalars or as per-group lists."""
    if draw(st.booleans()):
        return draw(pairs)
    (low0, high0), (low1, high1) = draw(pairs), draw(pairs)
    return [low0, low1], [high0, high1]


@SETTINGS
@given(
    lrs=per_group(lr_pairs),
    up=st.integers(1, 300),
    down=st.one_of(st.none(), st.integers(1, 300)),
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    gamma=st.floats(0.99, 1.0),
    cycle_momentum=st.booleans(),
    momenta=per_group(momentum_pairs),
    kind=st.sampled_from(["sgd", "adam"]),
)
def test_cyclic_matches_torch_drawn(
    make_optimizer, record, assert_tracks, lrs, up, down, mode, gamma, cycle_momentum, momenta, kind
):
    params = {
        "base_lr": lrs[0],
        "max_lr": lrs[1],
        "step_size_up": up,
        "step_size_down": down,
        "mode": mode,
        "gamma": gamma,
        "cycle_momentum": cycle_momentum,
        "base_momentum": momenta[0],
        "max_momentum": momenta[1],
    }
    _compare(make_optimizer, record, assert_tracks, "cyclic", params, lambda o: _cyclic(o, **params), kind=kind)


@SETTINGS
@given(
    max_lr=st.one_of(st.floats(0.01, 2.0), st.lists(st.floats(0.01, 2.0), min_size=2, max_size=2)),
    total=st.integers(1000, 1500),
    pct_start=st.floats(0.05, 0.45),
    anneal=st.sampled_from(["cos", "linear"]),
    three_phase=st.booleans(),
    div_factor=st.floats(2.0, 50.0),
    final_div_factor=st.floats(10.0, 1e4),
    cycle_momentum=st.booleans(),
    momenta=per_group(momentum_pairs),
    kind=st.sampled_from(["sgd", "adam"]),
)
def test_onecycle_matches_torch_drawn(
    make_optimizer,
    record,
    assert_tracks,
    max_lr,
    total,
    pct_start,
    anneal,
    three_phase,
    div_factor,
    final_div_factor,
    cycle_momentum,
    momenta,
    kind,
):
    params = {
        "max_lr": max_lr,
        "total_steps": total,
        "pct_start": pct_start,
        "anneal_strategy": anneal,
        "three_phase": three_phase,
        "div_factor": div_factor,
        "final_div_factor": final_div_factor,
        "cycle_momentum": cycle_momentum,
        "base_momentum": momenta[0],
        "max_momentum": momenta[1],
    }
    _compare(
        make_optimizer,
        record,
        assert_tracks,
        "onecycle",
        params,
        lambda o: tl.OneCycleLR(o, **params),
        kind=kind,
        steps=total - 1,
    )


@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_onecycle_holds_the_final_value_from_total_steps_on(make_optimizer, record, anneal, kind):
    # torch raises past total_steps and, at it, extrapolates the last phase beyond its end: with
    # linear annealing that is a negative LR. The schedule holds the final LR and momentum instead.
    params = {"max_lr": [1.0, 0.5], "total_steps": 100, "anneal_strategy": anneal}
    optimizer = make_optimizer(kind)
    lrs, moms = record(optimizer, get_schedule("onecycle", **params).build(optimizer), 130)
    np.testing.assert_allclose(lrs[99:], np.broadcast_to([1.0 / 25e4, 0.5 / 25e4], (32, 2)), rtol=1e-9)
    np.testing.assert_allclose(moms[99:], 0.95, rtol=1e-9)
    assert np.all(lrs[100:] == lrs[100])
    torch_opt = make_optimizer(kind)
    torch_lrs, _ = record(torch_opt, tl.OneCycleLR(torch_opt, **params), 100)
    np.testing.assert_allclose(lrs[:100], torch_lrs[:100], rtol=1e-12)
    assert np.all(torch_lrs[100] != lrs[100])  # the step where torch overshoots


# -- plateau: identical metric sequences -------------------------------------------------------------
def _compare_plateau(make_optimizer, record, params, metrics):
    ours_opt, torch_opt = make_optimizer(), make_optimizer()
    ours, _ = record(ours_opt, get_schedule("plateau", **params).build(ours_opt), len(metrics), metrics)
    torch_params = {k: v for k, v in params.items() if k != "monitor"}
    ref, _ = record(torch_opt, tl.ReduceLROnPlateau(torch_opt, **torch_params), len(metrics), metrics)
    np.testing.assert_array_equal(ours, ref)
    return ours


FLAT = [1.0] * 30
PLATEAU_TABLE = [
    pytest.param({"patience": 2, "factor": 0.5}, [3.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0], 2, id="min-rel"),
    pytest.param({"patience": 0}, FLAT, 7, id="patience0-repeats"),
    pytest.param(
        {"mode": "max", "threshold_mode": "abs", "threshold": 0.1, "patience": 1, "factor": 0.5},
        [0.5, 0.55, 0.58, 0.7, 0.75, 0.79, 0.95, 0.9, 0.8],
        3,
        id="max-abs",
    ),
    pytest.param({"mode": "max", "patience": 1}, [1.0, 1.00001, 1.00002, 0.5, 2.0, 2.0, 2.0], 2, id="max-rel"),
    pytest.param({"patience": 1, "cooldown": 3, "factor": 0.5}, FLAT, 6, id="cooldown"),
    pytest.param({"patience": 0, "factor": 0.5, "min_lr": 0.02}, FLAT, 3, id="min-lr-floor"),
    pytest.param({"patience": 0, "factor": 0.5, "min_lr": [0.02, 0.001]}, FLAT, 5, id="min-lr-per-group"),
    pytest.param({"patience": 0, "factor": 0.5, "eps": 0.02}, FLAT, 2, id="eps-skips-small-changes"),
    pytest.param(
        {"patience": 0, "threshold": 0.1, "factor": 0.5},
        [1.0, 0.95, 0.91, 0.89, 0.85, 0.8],
        3,
        id="threshold-rel-blocks-small-gains",
    ),
    pytest.param(
        {"patience": 1, "threshold_mode": "abs", "threshold": 0.0},
        [1.0, math.nan, math.nan, 0.5, math.nan, -1.0, -1.0, -1.0],
        2,
        id="nan-is-never-better",
    ),
    pytest.param(
        {"patience": 3, "monitor": "train_loss"}, [-1.0, -2.0, -1.0, -1.5, -1.9, -1.99, -1.0], 1, id="negative"
    ),
]


@pytest.mark.parametrize(("params", "metrics", "reductions"), PLATEAU_TABLE)
def test_plateau_matches_torch(make_optimizer, record, params, metrics, reductions):
    ours = _compare_plateau(make_optimizer, record, params, metrics)
    # Each case really reduces (a table of flat LRs would pass vacuously): count the steps that lower any group.
    assert int(np.sum(np.any(np.diff(ours, axis=0) < 0, axis=1))) == reductions


metric_values = st.one_of(
    st.sampled_from([1.0, 0.5, 0.25, 2.0, 0.0, -1.0, 0.9999, math.nan]), st.floats(-10.0, 10.0, width=16)
)


@SETTINGS
@given(
    metrics=st.lists(metric_values, min_size=1, max_size=200),
    mode=st.sampled_from(["min", "max"]),
    threshold_mode=st.sampled_from(["rel", "abs"]),
    threshold=st.sampled_from([0.0, 1e-4, 0.01, 0.5]),
    factor=st.sampled_from([0.1, 0.5, 0.9, 0.999]),
    patience=st.integers(0, 5),
    cooldown=st.integers(0, 4),
    min_lr=st.one_of(st.sampled_from([0.0, 0.001, 0.05]), st.just([0.01, 0.002])),
    eps=st.sampled_from([1e-8, 1e-4, 0.01]),
)
def test_plateau_matches_torch_drawn(
    make_optimizer, record, metrics, mode, threshold_mode, threshold, factor, patience, cooldown, min_lr, eps
):
    params = {
        "mode": mode,
        "threshold_mode": threshold_mode,
        "threshold": threshold,
        "factor": factor,
        "patience": patience,
        "cooldown": cooldown,
        "min_lr": min_lr,
        "eps": eps,
    }
    _compare_plateau(make_optimizer, record, params, metrics)
