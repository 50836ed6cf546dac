"""The range test's numbers without a Trainer: the LR sweep, the smoothing, and each rule on curves worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.finder.rules import (
    LIGHTNING_GRADIENT_PER_LR,
    MIN_STEPS,
    RULES,
    check_range_args,
    exponential_lrs,
    fastai_window,
    lightning,
    minimum,
    slide,
    smooth,
    steep,
    suggest,
    valley,
)


def test_sweep_starts_at_min_lr_ends_at_max_lr_with_a_constant_ratio():
    lrs = exponential_lrs(1e-6, 1.0, 61)
    assert lrs[0] == 1e-6 and lrs[-1] == 1.0
    ratios = lrs[1:] / lrs[:-1]
    np.testing.assert_allclose(ratios, 10 ** (6 / 60), rtol=1e-12)


@pytest.mark.parametrize(
    ("min_lr", "max_lr", "num_steps", "error", "match"),
    [
        (1.0, 1.0, 100, InvalidValue, "`min_lr` must be below `max_lr`: got min_lr=1.0, max_lr=1.0"),
        (1.0, 0.1, 100, InvalidValue, "`min_lr` must be below `max_lr`"),
        (0.0, 1.0, 100, InvalidValue, "`min_lr` must be > 0: got min_lr=0.0"),
        (-1e-3, 1.0, 100, InvalidValue, "`min_lr` must be > 0"),
        (1e-7, math.inf, 100, InvalidValue, "`max_lr` must be finite"),
        (1e-7, math.nan, 100, InvalidValue, "`max_lr` must be finite"),
        (1e-7, "10", 100, InvalidType, "`max_lr` must be a number"),
        (1e-7, 10.0, MIN_STEPS - 1, InvalidValue, f"`num_steps` must be >= {MIN_STEPS}: got num_steps=24"),
        (1e-7, 10.0, 0, InvalidValue, "`num_steps` must be an integer >= 1"),
        (1e-7, 10.0, 50.0, InvalidType, "`num_steps` must be an integer"),
        (1e-7, 10.0, True, InvalidType, "`num_steps` must be an integer"),
    ],
)
def test_bad_ranges_and_too_few_steps_are_refused_by_name(min_lr, max_lr, num_steps, error, match):
    with pytest.raises(error, match=match.replace("(", r"\(").replace(")", r"\)")):
        check_range_args(min_lr, max_lr, num_steps)


def test_smoothing_is_the_debiased_moving_average():
    losses = [2.0, 1.0, 3.0, 0.5]
    beta = 0.9
    average, expected = 0.0, []
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        expected.append(average / (1 - beta ** (i + 1)))
    np.testing.assert_allclose(smooth(losses, beta), expected, rtol=1e-15)
    assert smooth([5.0], beta)[0] == 5.0  # debiased: the first value is the first loss
    assert np.isnan(smooth([1.0, math.nan, 1.0], beta)[2])


@pytest.mark.parametrize("beta", [1.0, -0.1, 1.5])
def test_smoothing_refuses_a_beta_outside_0_1(beta):
    with pytest.raises(InvalidValue, match="`beta`"):
        smooth([1.0], beta)


LRS = 10.0 ** np.arange(-6, 2, dtype=np.float64)  # 1e-6 ... 10, one decade per point


@pytest.mark.parametrize(
    ("rule", "losses", "expected"),
    [
        # minimum: the LR at the lowest loss, divided by 10
        (minimum, [3.0, 2.9, 2.5, 1.0, 0.7, 0.9, 2.0, 5.0], 1e-2 / 10),
        # steep: the largest drop per decade is from 1e-3 to 1e-2 (forward difference at 1e-3)
        (steep, [3.0, 2.9, 2.8, 2.5, 1.0, 0.9, 2.0, 5.0], 1e-3),
        # valley: the longest decreasing run ends at 1e-2 (index 4) with 5 points; fastai puts its start
        # one before the first, at -1: s = (4 - (-1)) / 3, index -1 + int(s) + int(s / 2) = -1 + 1 + 0 = 0
        (valley, [3.0, 2.9, 2.8, 2.5, 1.0, 1.1, 2.0, 5.0], 1e-6),
    ],
)
def test_rules_on_curves_worked_by_hand(rule, losses, expected):
    assert rule(LRS, np.array(losses)) == pytest.approx(expected, rel=1e-12)


def test_valley_picks_two_thirds_down_a_valley_that_starts_after_a_plateau():
    # flat (equal values are not a descent), then 9 strictly falling points from index 3 to 11, then up.
    # fastai: lds[11] = 10 (index 2's plateau value is above index 3), start = 11 - 10 = 1,
    # s = 10 / 3 = 3.33 -> index 1 + 3 + 1 = 5
    losses = np.array([5.0, 5.0, 5.0, 4.9, 4.7, 4.4, 4.0, 3.5, 3.0, 2.6, 2.3, 2.1, 3.0, 6.0])
    lrs = np.geomspace(1e-5, 1.0, len(losses))
    assert valley(lrs, losses) == lrs[5]


def test_slide_walks_down_from_the_top_until_the_slope_settles():
    # flat 0..4, a straight descent 5..34 (gradient -0.05), a straight rise 35..44 (gradient 0.5).
    # The gradients 15 apart differ while the right point is in the rise or at its foot (34, 0.275);
    # at right=33, left=18 both are -0.05 and the walk stops: the last left point that moved is 19.
    losses = np.r_[np.full(5, 3.0), 3.0 - 0.05 * np.arange(1, 31), 1.5 + 0.5 * np.arange(1, 11)]
    lrs = np.geomspace(1e-5, 1.0, len(losses))
    assert slide(lrs, losses) == lrs[19]


def test_lightning_rule_skips_the_ends_and_maps_past_non_finite_losses():
    lrs = np.geomspace(1e-6, 1.0, 20)
    losses = np.r_[np.full(11, 2.0), [np.nan, 1.95, 1.0, 0.9, 0.85, 0.8, 0.8, 0.9, 50.0]]
    # steps 10..18 without the NaN at 11: 2.0, 1.95, 1.0, 0.9, ...; the steepest central difference is
    # at the third of them, (0.9 - 1.95) / 2, which is step 13 (Lightning before 2.5.3 said step 12)
    assert lightning(lrs, losses, per_lr=False) == lrs[13]


def lightning_reference(lrs, losses):
    """The installed Lightning's own suggestion on the curve (its finder's results, filled in by hand)."""
    from lightning.pytorch.tuner.lr_finder import _LRFinder

    finder = _LRFinder(mode="exponential", lr_min=float(lrs[0]), lr_max=float(lrs[-1]), num_training=len(lrs))
    finder.results = {"lr": [float(x) for x in lrs], "loss": [float(x) for x in losses]}
    return finder.suggestion()


def curves():
    """Range-test curves: smooth, noisy, with NaN losses (steps without a loss) and an inf at the end."""
    rng = np.random.default_rng(0)
    x = np.linspace(-50, 50, 100)
    quadratic = (-(x**2) - 30 * x + 4000) / 1000  # Lightning issue #21141's curve
    yield "quadratic", exponential_lrs(1e-8, 1.0, 100), quadratic
    yield "quadratic-noisy", exponential_lrs(1e-8, 1.0, 100), quadratic + rng.uniform(-0.1, 0.1, 100)
    for seed in range(6):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(25, 200))
        losses = smooth(2.0 - np.tanh(np.linspace(-3, 3, n)) + rng.normal(0, 0.2, n))
        losses[rng.choice(n, 3, replace=False)] = np.nan
        losses[-1] = np.inf
        yield f"random-{seed}", exponential_lrs(1e-7, 10.0, n), losses


@pytest.mark.parametrize(
    ("lrs", "losses"), [(lrs, losses) for _, lrs, losses in curves()], ids=[n for n, *_ in curves()]
)
def test_lightning_rule_is_the_installed_lightnings_suggestion_on_the_same_curve(lrs, losses):
    assert lightning(lrs, losses) == lightning_reference(lrs, losses)


@pytest.mark.skipif(not LIGHTNING_GRADIENT_PER_LR, reason="Lightning < 2.5.3 takes the gradient per step")
def test_the_installed_lightnings_rule_takes_the_gradient_per_unit_of_lr():
    # Lightning >= 2.5.3 (PR #21055); on issue #21141's curve the step rule lands orders of magnitude away.
    _, lrs, losses = next(curves())
    per_lr, per_step = lightning(lrs, losses), lightning(lrs, losses, per_lr=False)
    assert per_lr == lightning_reference(lrs, losses) and per_step / per_lr > 1e3


def test_fastai_window_drops_a_tenth_of_the_planned_steps_the_last_five_and_everything_after_a_nan():
    lrs, losses = np.arange(40.0), np.r_[np.ones(30), np.nan, np.ones(9)]
    window_lrs, window_losses = fastai_window(lrs, losses, num_steps=50)
    assert window_lrs[0] == 5 and window_lrs[-1] == 29 and len(window_losses) == 25


def test_suggest_gives_every_rule_and_names_the_reason_of_those_without_points():
    lrs = exponential_lrs(1e-5, 1.0, 30)
    smoothed = np.r_[np.linspace(2.0, 1.0, 20), np.linspace(1.2, 3.0, 10)]
    suggestions, reasons = suggest(lrs, smoothed, 30)
    assert set(suggestions) == set(RULES) and not reasons
    assert all(lrs[0] <= lr <= lrs[-1] for lr in suggestions.values() if lr is not None)

    # the loss diverged after 18 steps of a planned 100: fastai's window keeps steps 10..12
    suggestions, reasons = suggest(lrs[:18], smoothed[:18], 100)
    assert suggestions["slide"] is None and "`slide` needs 16 points of the loss curve and got 3" in reasons["slide"]
    assert suggestions["lightning"] is not None  # 7 points from step 10 on


def test_suggest_refuses_an_unknown_rule():
    with pytest.raises(InvalidValue, match=r"`rules` must be one of .valley.*got rules=.best."):
        suggest(np.ones(30), np.ones(30), 30, rules=["best"])
