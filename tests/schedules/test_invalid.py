"""Invalid configurations: each raises ``ValueError``/``TypeError`` from our code, naming the parameter.

Every row says what to call, the exception type, and a pattern the message must match (the
parameter in backticks, the bad value, and often what would be valid). The raising frame must be
inside ``lightning_lrsched``: an error from torch or numpy deep inside would be a missed check.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lightning_lrsched
from lightning_lrsched.errors import USER_ERRORS
from lightning_lrsched.schedules import get_schedule, preview

PACKAGE = Path(lightning_lrsched.__file__).parent


def build(name, *, total_steps=None, steps_per_epoch=None, kind="sgd", **params):
    """A call that makes the schedule and builds it on a fresh two-group optimizer."""

    def call(make_optimizer):
        schedule = get_schedule(name, **params)
        schedule.build(make_optimizer(kind), total_steps=total_steps, steps_per_epoch=steps_per_epoch)

    return call


def make(name, **params):
    """A call that only makes the schedule: the error must come before any optimizer is seen."""
    return lambda make_optimizer: get_schedule(name, **params)


CYCLIC = {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 5}

CASES = [
    # names and arguments
    pytest.param(
        make("cosin"), ValueError, r"unknown schedule 'cosin': use one of .*cosine, cosine_restarts", id="unknown-name"
    ),
    pytest.param(make(""), ValueError, r"unknown schedule '': use one of chain, constant, cosine", id="empty-name"),
    pytest.param(
        lambda m: get_schedule({"step_size": 3}), ValueError, r"schedule spec needs a `name`", id="spec-without-name"
    ),
    pytest.param(
        make("step", step_size=3, gama=0.1),
        TypeError,
        r"`step` got unknown argument\(s\) gama: valid arguments are step_size, gamma, interval, warmup",
        id="unknown-argument",
    ),
    pytest.param(
        make("warmup_cosine", warmup=5, T_max=10),
        TypeError,
        r"`warmup_cosine` got unknown argument\(s\) T_max: valid arguments are warmup, total",
        id="torch-argument-on-hf-schedule",
    ),
    pytest.param(make("step"), TypeError, r"`step` needs the argument\(s\) step_size", id="missing-step_size"),
    pytest.param(
        make("cyclic", base_lr=0.1), TypeError, r"`cyclic` needs the argument\(s\) max_lr", id="missing-max_lr"
    ),
    pytest.param(make("wsd", warmup=5), TypeError, r"`wsd` needs the argument\(s\) decay", id="missing-decay"),
    # sizes
    pytest.param(
        build("step", step_size=0),
        ValueError,
        r"`step_size` must be >= 1: got step_size=0",
        id="step_size-0",
    ),
    pytest.param(
        make("step", step_size=-2), ValueError, r"`step_size` must be >= 1: got step_size=-2", id="step_size-negative"
    ),
    pytest.param(build("cosine", T_max=0), ValueError, r"`T_max` must be >= 1: got T_max=0", id="T_max-0"),
    # 0 is refused too: the message says >= 1, not >= 0
    pytest.param(make("cosine", T_max=-5), ValueError, r"`T_max` must be >= 1: got T_max=-5", id="T_max-negative"),
    pytest.param(build("cosine", T_max="0ep"), ValueError, r"`T_max` must be at least 1 epoch", id="T_max-0ep"),
    pytest.param(build("cosine_restarts", T_0=0), ValueError, r"`T_0` must be >= 1: got T_0=0", id="T_0-0"),
    pytest.param(
        make("cosine_restarts", T_0=5, T_mult=0), ValueError, r"`T_mult` must be an integer >= 1", id="T_mult-0"
    ),
    pytest.param(
        build("polynomial", total_iters=0),
        ValueError,
        r"`total_iters` must be >= 1: got total_iters=0",
        id="polynomial-total_iters-0",
    ),
    pytest.param(
        make("linear", total_iters=-3),
        ValueError,
        r"`total_iters` must be >= 1: got total_iters=-3",
        id="linear-total_iters-negative",
    ),
    pytest.param(
        build("cyclic", base_lr=0.01, max_lr=0.1, step_size_up=0),
        ValueError,
        r"`step_size_up` must be >= 1: got step_size_up=0",
        id="step_size_up-0",
    ),
    pytest.param(
        build("inverse_sqrt", warmup=0, timescale=0),
        ValueError,
        r"`timescale` must be >= 1: got timescale=0",
        id="timescale-0",
    ),
    # values
    pytest.param(make("step", step_size=3, gamma=0.0), ValueError, r"`gamma` must be > 0: got gamma=0.0", id="gamma-0"),
    pytest.param(
        make("exponential", gamma=-0.5), ValueError, r"`gamma` must be > 0: got gamma=-0.5", id="gamma-negative"
    ),
    pytest.param(
        make("exponential", gamma=float("nan")), ValueError, r"`gamma` must be finite: got gamma=nan", id="gamma-nan"
    ),
    pytest.param(
        make("cosine", eta_min=-0.1), ValueError, r"`eta_min` must be >= 0: got eta_min=-0.1", id="eta_min-negative"
    ),
    pytest.param(
        make("linear", start_factor=0.0),
        ValueError,
        r"`start_factor` must be in \(0.0, 1.0\]: got start_factor=0.0",
        id="start_factor-0",
    ),
    pytest.param(
        make("constant", factor=1.5),
        ValueError,
        r"`factor` must be in \[0.0, 1.0\]: got factor=1.5",
        id="constant-factor",
    ),
    pytest.param(
        build("multistep", milestones=[5, 5]),
        ValueError,
        r"`milestones` must be strictly increasing and >= 1: got milestones=\['5', '5'\]",
        id="milestones-repeated",
    ),
    pytest.param(
        build("multistep", milestones=[10, 3]),
        ValueError,
        r"`milestones` must be strictly increasing",
        id="milestones-decreasing",
    ),
    pytest.param(
        build("multistep", milestones=[0, 3]),
        ValueError,
        r"`milestones` must be strictly increasing and >= 1",
        id="milestones-zero",
    ),
    pytest.param(
        make("multistep", milestones=[]),
        TypeError,
        r"`milestones` must be a non-empty list of durations: got \[\]",
        id="milestones-empty",
    ),
    pytest.param(
        make("multistep", milestones=7), TypeError, r"`milestones` must be a non-empty list", id="milestones-not-a-list"
    ),
    pytest.param(
        make("cyclic", base_lr=0.1, max_lr=0.01),
        ValueError,
        r"`max_lr` must be >= `base_lr`: got max_lr=0.01, base_lr=0.1",
        id="max_lr-below-base_lr",
    ),
    pytest.param(
        make("cyclic", base_lr=[0.01, 0.2], max_lr=[0.1, 0.1]),
        ValueError,
        r"`max_lr` must be >= `base_lr`.*max_lr=\[0.1, 0.1\], base_lr=\[0.01, 0.2\]",
        id="max_lr-below-base_lr-per-group",
    ),
    pytest.param(
        make("cyclic", base_lr=0.0, max_lr=0.1), ValueError, r"`base_lr` must be > 0: got base_lr=0.0", id="base_lr-0"
    ),
    pytest.param(
        make("cyclic", base_lr=[], max_lr=0.1),
        ValueError,
        r"`base_lr` must be a number or a non-empty list",
        id="base_lr-empty-list",
    ),
    pytest.param(
        build("cyclic", base_lr=[0.01, 0.02, 0.03], max_lr=0.1, step_size_up=5),
        ValueError,
        r"`base_lr` has 3 values but the optimizer has 2 param groups",
        id="base_lr-list-length",
    ),
    pytest.param(
        build("onecycle", max_lr=[0.1, 0.2, 0.3], total_steps=100),
        ValueError,
        r"`max_lr` has 3 values but the optimizer has 2 param groups",
        id="max_lr-list-length",
    ),
    pytest.param(
        build("cyclic", **CYCLIC, base_momentum=[0.8, 0.8, 0.8]),
        ValueError,
        r"`base_momentum` has 3 values but the optimizer has 2 param groups",
        id="base_momentum-list-length",
    ),
    pytest.param(
        make("cyclic", **CYCLIC, max_momentum=1.5),
        ValueError,
        r"`max_momentum` must be in \[0.0, 1.0\]",
        id="max_momentum-above-1",
    ),
    pytest.param(
        make("cyclic", **CYCLIC, mode="triangle"),
        ValueError,
        r"`mode` must be one of 'triangular', 'triangular2', 'exp_range': got mode='triangle'",
        id="cyclic-mode",
    ),
    pytest.param(
        make("onecycle", max_lr=0.1, anneal_strategy="cosine"),
        ValueError,
        r"`anneal_strategy` must be one of 'cos', 'linear': got anneal_strategy='cosine'",
        id="anneal_strategy",
    ),
    pytest.param(
        make("onecycle", max_lr=0.1, pct_start=1.5),
        ValueError,
        r"`pct_start` must be in \[0.0, 1.0\]: got pct_start=1.5",
        id="pct_start-above-1",
    ),
    pytest.param(
        make("onecycle", max_lr=0.1, pct_start=-0.1),
        ValueError,
        r"`pct_start` must be in \[0.0, 1.0\]",
        id="pct_start-negative",
    ),
    pytest.param(
        build("onecycle", max_lr=0.1, total_steps=10, pct_start=0.1),
        ValueError,
        r"`pct_start`=0.1 with total_steps=10 gives a phase of zero steps",
        id="onecycle-zero-length-first-phase",
    ),
    pytest.param(
        build("onecycle", max_lr=0.1, total_steps=10, pct_start=1.0),
        ValueError,
        r"`pct_start`=1.0 with total_steps=10 gives a phase of zero steps",
        id="onecycle-zero-length-last-phase",
    ),
    pytest.param(
        make("onecycle", max_lr=0.1, div_factor=0), ValueError, r"`div_factor` must be > 0", id="div_factor-0"
    ),
    pytest.param(
        build("cyclic", **CYCLIC, kind="adagrad"),
        ValueError,
        r"`cycle_momentum`=True needs an optimizer with momentum or betas: got Adagrad; pass cycle_momentum=False",
        id="cycle_momentum-without-momentum",
    ),
    pytest.param(
        build("onecycle", max_lr=0.1, total_steps=100, kind="adagrad"),
        ValueError,
        r"`cycle_momentum`=True needs an optimizer with momentum or betas: got Adagrad",
        id="onecycle-momentum-without-momentum",
    ),
    # the warmup family
    pytest.param(
        build("warmup_linear", warmup=100, total=50),
        ValueError,
        r"`warmup` must be shorter than the run: got warmup=100 steps, total=50 steps",
        id="family-warmup-longer-than-total",
    ),
    pytest.param(
        build("warmup_cosine", warmup=100, total_steps=100),
        ValueError,
        r"`warmup` must be shorter than the run: got warmup=100 steps, total=100 steps",
        id="family-warmup-whole-run",
    ),
    pytest.param(
        build("step", step_size=2, warmup=20, total_steps=10),
        ValueError,
        r"`warmup` must be shorter than the run: got warmup=20 epochs, total=10 epochs",
        id="generic-warmup-longer-than-run",
    ),
    pytest.param(
        build("wsd", warmup=10, decay=95, total=100),
        ValueError,
        r"`warmup` \+ `decay` must fit in the run: got warmup=10 \+ decay=95 > total=100 steps",
        id="wsd-warmup-plus-decay",
    ),
    pytest.param(
        build("warmup_polynomial", warmup=5, total=100, lr_end=0.5),
        ValueError,
        r"`lr_end` must be below the optimizer's lr: got lr_end=0.5, lr=0.1",
        id="lr_end-above-lr",
    ),
    pytest.param(
        build("warmup_polynomial", warmup=5, total=100, lr_end=0.1),
        ValueError,
        r"`lr_end` must be below the optimizer's lr: got lr_end=0.1, lr=0.1",
        id="lr_end-equal-lr",
    ),
    pytest.param(
        make("warmup_cosine", warmup=5, min_lr_ratio=1.5),
        ValueError,
        r"`min_lr_ratio` must be in \[0.0, 1.0\]",
        id="min_lr_ratio",
    ),
    pytest.param(
        make("warmup_cosine", warmup=5, num_cycles=0), ValueError, r"`num_cycles` must be > 0", id="num_cycles-0"
    ),
    pytest.param(
        make("wsd", warmup=5, decay=5, warmup_type="exp"),
        ValueError,
        r"`warmup_type` must be one of 'linear', 'cosine', '1-sqrt'",
        id="warmup_type",
    ),
    pytest.param(
        make("wsd", warmup=5, decay=5, decay_type="step"), ValueError, r"`decay_type` must be one of", id="decay_type"
    ),
    # durations
    pytest.param(
        build("warmup_cosine", warmup="5%", total=100),
        ValueError,
        r"`warmup`='5%' is a share of the run, but the run length is unknown: pass total_steps to build\(\)",
        id="percent-without-run-length",
    ),
    pytest.param(
        build("step", step_size=3, warmup="10%"),
        ValueError,
        r"`warmup`='10%' is a share of the run, but the run length is unknown",
        id="generic-percent-without-run-length",
    ),
    pytest.param(
        build("cosine"),
        ValueError,
        r"`T_max` defaults to the length of the run, but the run length is unknown: pass T_max=...",
        id="default-T_max-without-run-length",
    ),
    pytest.param(
        build("onecycle", max_lr=0.1),
        ValueError,
        r"`total_steps` defaults to the length of the run, but the run length is unknown",
        id="default-total_steps-without-run-length",
    ),
    pytest.param(
        make("step", step_size="10 epochs"),
        ValueError,
        r"`step_size` must be an int, \"10ep\" \(epochs\), \"500st\" \(steps\) or \"25%\" \(of the run\): "
        r"got step_size='10 epochs'",
        id="duration-10-epochs",
    ),
    pytest.param(
        make("step", step_size="-5"),
        ValueError,
        r"`step_size` must be an int, .*: got step_size='-5'",
        id="duration-negative-string",
    ),
    pytest.param(
        make("warmup_linear", warmup="150%"),
        ValueError,
        r"`warmup` must be at most 100% of the run: got warmup='150%'",
        id="duration-150-percent",
    ),
    pytest.param(
        make("step", step_size=1.5),
        TypeError,
        r"`step_size` must be an int, .*: got 1.5 \(float\)",
        id="duration-float",
    ),
    pytest.param(
        make("step", step_size=True),
        TypeError,
        r"`step_size` must be an int, .*: got True \(bool\)",
        id="duration-bool",
    ),
    pytest.param(
        make("warmup_linear", warmup="2.5ep"),
        ValueError,
        r"`warmup` must be a whole number of epochs: got '2.5ep'",
        id="duration-fractional-epochs",
    ),
    pytest.param(
        make("step", step_size=3, warmup=2.5),
        TypeError,
        r"`warmup` must be an int, .*: got 2.5 \(float\)",
        id="generic-warmup-float",
    ),
    pytest.param(
        build("step", step_size="500st", total_steps=3000, steps_per_epoch=300),
        ValueError,
        r"`step_size`='500st' is not a whole number of epochs \(300 steps each\) for an interval='epoch' schedule",
        id="steps-not-whole-epochs",
    ),
    # types
    pytest.param(
        make("step", step_size=3, gamma="0.1"),
        TypeError,
        r"`gamma` must be a number: got '0.1' \(str\)",
        id="gamma-string",
    ),
    pytest.param(
        make("cosine", eta_min=True), TypeError, r"`eta_min` must be a number: got True \(bool\)", id="eta_min-bool"
    ),
    pytest.param(
        make("cosine_restarts", T_0=5, T_mult=1.5),
        TypeError,
        r"`T_mult` must be an integer >= 1: got 1.5 \(float\)",
        id="T_mult-float",
    ),
    pytest.param(
        make("cyclic", **CYCLIC, cycle_momentum="yes"),
        TypeError,
        r"`cycle_momentum` must be True or False: got 'yes' \(str\)",
        id="cycle_momentum-string",
    ),
    pytest.param(
        make("onecycle", max_lr=0.1, three_phase=1),
        TypeError,
        r"`three_phase` must be True or False: got 1 \(int\)",
        id="three_phase-int",
    ),
    pytest.param(
        make("cyclic", base_lr="0.01", max_lr=0.1),
        TypeError,
        r"`base_lr` must be a number: got '0.01' \(str\)",
        id="base_lr-string",
    ),
    pytest.param(
        make("cosine", interval="batch"),
        ValueError,
        r"`interval` must be one of 'step', 'epoch': got interval='batch'",
        id="interval",
    ),
    # plateau
    pytest.param(
        make("plateau", factor=1.0),
        ValueError,
        r"`factor` must be < 1 so that a plateau lowers the LR: got factor=1.0",
        id="plateau-factor-1",
    ),
    pytest.param(
        make("plateau", factor=1.5),
        ValueError,
        r"`factor` must be in \(0.0, 1.0\]: got factor=1.5",
        id="plateau-factor-above-1",
    ),
    pytest.param(
        make("plateau", factor=0.0),
        ValueError,
        r"`factor` must be in \(0.0, 1.0\]: got factor=0.0",
        id="plateau-factor-0",
    ),
    pytest.param(
        make("plateau", patience=-1),
        ValueError,
        r"`patience` must be an integer >= 0: got patience=-1",
        id="patience-negative",
    ),
    pytest.param(
        make("plateau", patience=2.0),
        TypeError,
        r"`patience` must be an integer >= 0: got 2.0 \(float\)",
        id="patience-float",
    ),
    pytest.param(
        make("plateau", threshold_mode="relative"),
        ValueError,
        r"`threshold_mode` must be one of 'rel', 'abs': got threshold_mode='relative'",
        id="threshold_mode",
    ),
    pytest.param(
        make("plateau", mode="average"),
        ValueError,
        r"`mode` must be one of 'min', 'max': got mode='average'",
        id="plateau-mode",
    ),
    pytest.param(
        make("plateau", cooldown=-2), ValueError, r"`cooldown` must be an integer >= 0", id="cooldown-negative"
    ),
    pytest.param(
        make("plateau", min_lr=-0.1), ValueError, r"`min_lr` must be >= 0: got min_lr=-0.1", id="min_lr-negative"
    ),
    pytest.param(
        make("plateau", monitor=""),
        TypeError,
        r"`monitor` must be the name of a logged metric: got monitor=''",
        id="monitor-empty",
    ),
    pytest.param(
        build("plateau", min_lr=[0.1, 0.1, 0.1]),
        ValueError,
        r"`min_lr` has 3 values but the optimizer has 2 param groups",
        id="min_lr-list-length",
    ),
    # build and preview
    pytest.param(
        build("step", step_size=3, total_steps=0),
        ValueError,
        r"`total_steps` must be a positive int or None: got total_steps=0",
        id="build-total_steps-0",
    ),
    pytest.param(
        build("step", step_size=3, total_steps=10.0),
        ValueError,
        r"`total_steps` must be a positive int or None: got total_steps=10.0",
        id="build-total_steps-float",
    ),
    pytest.param(
        build("step", step_size=3, steps_per_epoch=0),
        ValueError,
        r"`steps_per_epoch` must be a positive int or None",
        id="build-steps_per_epoch-0",
    ),
    pytest.param(
        lambda m: get_schedule("step", step_size=3).build("sgd"),
        TypeError,
        r"`optimizer` must be a torch.optim.Optimizer: got str",
        id="build-not-an-optimizer",
    ),
    pytest.param(
        lambda m: preview(get_schedule("cosine"), 10**11),  # a MemoryError before
        ValueError,
        r"`total_steps` must be at most 10000000 for a preview .*: got total_steps=100000000000",
        id="preview-too-long",
    ),
    pytest.param(
        lambda m: preview(get_schedule("step", step_size=3), 10, base_lr=0.0),
        ValueError,
        r"`base_lr` must be a positive finite number: got base_lr=0.0",
        id="preview-base_lr-0",
    ),
    pytest.param(
        lambda m: preview(get_schedule("step", step_size=3), 10, base_lr=-1.0),
        ValueError,
        r"`base_lr` must be a positive finite number: got base_lr=-1.0",
        id="preview-base_lr-negative",
    ),
    pytest.param(
        lambda m: preview(get_schedule("step", step_size=3), 10, base_lr=float("inf")),  # drew an empty figure
        ValueError,
        r"`base_lr` must be a positive finite number: got base_lr=inf",
        id="preview-base_lr-inf",
    ),
    pytest.param(
        lambda m: preview(get_schedule("step", step_size=3), 10, base_lr=10**400),  # no float holds it
        ValueError,
        r"`base_lr` must be a positive finite number: got base_lr=1000",
        id="preview-base_lr-beyond-float",
    ),
    pytest.param(
        lambda m: preview(get_schedule("step", step_size=3), 0),
        ValueError,
        r"`total_steps` must be an integer >= 1: got total_steps=0",
        id="preview-total_steps-0",
    ),
    pytest.param(
        lambda m: preview(get_schedule("step", step_size=3), None),
        TypeError,
        r"`total_steps` must be an integer >= 1: got None",
        id="preview-total_steps-None",
    ),
    pytest.param(
        lambda m: preview("cosine", 10),
        TypeError,
        r"`schedule` must be a Schedule \(from get_schedule\): got str",
        id="preview-not-a-schedule",
    ),
    # the built scheduler
    pytest.param(
        lambda m: get_schedule("step", step_size=3).build(m()).step(5),
        TypeError,
        r"`epoch` is not supported: a ScheduledLR advances one step per call",
        id="step-with-epoch",
    ),
    pytest.param(
        lambda m: get_schedule("step", step_size=3).build(m()).reduce([0], 0.0, [0.0], 1e-8),
        ValueError,
        r"`factor` must be in \(0, 1\): got factor=0.0",
        id="reduce-0",
    ),
    pytest.param(
        lambda m: (
            get_schedule("step", step_size=3)
            .build(m())
            .load_state_dict(torch.optim.lr_scheduler.CosineAnnealingLR(m(), T_max=5).state_dict())
        ),
        ValueError,
        r"this is not a lightning_lrsched scheduler state \(it has T_max, .*start a new run from the weights only",
        id="load_state_dict-torch-state",
    ),
    pytest.param(
        lambda m: (
            get_schedule("onecycle", max_lr=0.5)
            .build(m(), total_steps=10)
            .load_state_dict(get_schedule("onecycle", max_lr=0.1).build(m(), total_steps=10).state_dict())
        ),
        ValueError,
        r"saved with other settings: `max_lr` was 0.1, now 0.5\. .*adopt_settings=True",
        id="load_state_dict-other-settings",
    ),
    pytest.param(
        lambda m: (
            get_schedule("step", step_size=3)
            .build(m(lrs=(0.1,)))
            .load_state_dict(get_schedule("step", step_size=3).build(m()).state_dict())
        ),
        ValueError,
        r"param groups were \[0, 1\], now \[0\]",
        id="load_state_dict-group-count",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), CASES)
def test_invalid_configuration_is_refused(make_optimizer, call, error, message):
    with pytest.raises(error, match=message) as info:
        call(make_optimizer)
    # Our own check raised it (not an assert, not torch or numpy failing further down), as a user error
    # the CLI reports in one line.
    assert isinstance(info.value, USER_ERRORS)
    assert PACKAGE in Path(info.traceback[-1].path).parents


def test_unknown_name_lists_every_valid_name():
    from lightning_lrsched.schedules import available_schedules

    with pytest.raises(ValueError, match="unknown schedule") as info:
        get_schedule("nope")
    for name in available_schedules():
        assert name in str(info.value)


def test_valid_edges_are_accepted(make_optimizer):
    # The boundaries next to the refused values above are fine: errors are not over-eager.
    assert get_schedule("constant", factor=0.0, total_iters=0).build(make_optimizer()).get_last_lr() == [0.1, 0.03]
    get_schedule("onecycle", max_lr=0.1, pct_start=0.0, total_steps=10).build(make_optimizer())
    get_schedule("cyclic", base_lr=0.1, max_lr=0.1, cycle_momentum=False).build(make_optimizer("adagrad"))
    get_schedule("warmup_linear", warmup=99, total=100).build(make_optimizer())
    get_schedule("step", step_size="600st").build(make_optimizer(), total_steps=3000, steps_per_epoch=300)
    assert get_schedule("plateau", factor=0.999, patience=0).build(make_optimizer()).get_last_lr() == [0.1, 0.03]
