"""Durations ("10ep", "500st", "25%"), ``build`` and ``lightning_config`` with a stand-in trainer.

The trainer is a ``SimpleNamespace`` with exactly the public attributes ``lightning_config``
reads, so these tests pin down how the run length and the epoch length are taken from it.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lightning_lrsched.lightning import PlateauDriver
from lightning_lrsched.schedules import Duration, PlateauLR, available_schedules, get_schedule, parse_duration, preview


# -- parsing -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "amount", "unit", "text"),
    [
        pytest.param(30, 30, "int", "30", id="int"),
        pytest.param(0, 0, "int", "0", id="zero"),
        pytest.param("42", 42, "int", "42", id="digits"),
        pytest.param("10ep", 10.0, "ep", "10ep", id="epochs"),
        pytest.param("500st", 500.0, "st", "500st", id="steps"),
        pytest.param("25%", 25.0, "%", "25%", id="percent"),
        pytest.param("12.5%", 12.5, "%", "12.5%", id="fractional-percent"),
        pytest.param(" 3 ep ", 3.0, "ep", "3ep", id="spaces"),
        pytest.param("100%", 100.0, "%", "100%", id="whole-run"),
    ],
)
def test_parse_duration(value, amount, unit, text):
    duration = parse_duration("warmup", value)
    assert duration == Duration(amount, unit)
    assert str(duration) == text
    assert parse_duration("warmup", duration) is duration


# -- resolution: where a `step` schedule with step_size=<duration> first drops ---------------------------
@pytest.mark.parametrize(
    ("interval", "size", "total_steps", "steps_per_epoch", "first_drop"),
    [
        pytest.param("step", 30, 2000, None, 30, id="step-int"),
        pytest.param("step", "500st", 2000, 50, 500, id="step-500st"),
        pytest.param("step", "10ep", 2000, 50, 500, id="step-10ep"),
        pytest.param("step", "3ep", 2000, 7, 21, id="step-3ep-odd-epoch"),
        pytest.param("step", "25%", 2000, None, 500, id="step-25%"),
        pytest.param("step", "12.5%", 1000, 50, 125, id="step-12.5%"),
        pytest.param("step", "25%", 10, None, 3, id="step-25%-rounds-half-up"),
        pytest.param("step", "33%", 10, None, 3, id="step-33%-rounds-down"),
        pytest.param("epoch", 10, 2000, 50, 500, id="epoch-int-is-epochs"),
        pytest.param("epoch", "10ep", 2000, 50, 500, id="epoch-10ep"),
        pytest.param("epoch", "500st", 2000, 50, 500, id="epoch-500st"),
        pytest.param("epoch", "25%", 2000, 50, 500, id="epoch-25%"),
        pytest.param("epoch", "25%", 1990, 50, 500, id="epoch-25%-partial-last-epoch"),
        pytest.param("epoch", "50%", 90, 10, 50, id="epoch-50%-of-9-epochs-rounds-up"),
    ],
)
def test_duration_resolves_against_the_run(make_optimizer, interval, size, total_steps, steps_per_epoch, first_drop):
    schedule = get_schedule("step", step_size=size, gamma=0.5, interval=interval)
    lr = preview(schedule, total_steps, base_lr=1.0, steps_per_epoch=steps_per_epoch)
    assert np.all(lr[:first_drop] == 1.0) and lr[first_drop] == 0.5
    # The scheduler a build makes drops at the same optimizer step.
    optimizer = make_optimizer(lrs=(1.0,))
    scheduler = schedule.build(optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch)
    per_step = 1 if interval == "step" else (steps_per_epoch or 1)
    for _ in range(first_drop // per_step - 1):
        scheduler.step()
    assert scheduler.get_last_lr() == [1.0]
    scheduler.step()
    assert scheduler.get_last_lr() == [0.5]


@pytest.mark.parametrize(
    ("name", "params", "peak_step"),
    [
        pytest.param("warmup_linear", {"warmup": "5%"}, 50, id="warmup-5%"),
        pytest.param("warmup_linear", {"warmup": "2ep"}, 80, id="warmup-2ep"),
        pytest.param("warmup_cosine", {"warmup": "120st", "total": "50%"}, 120, id="warmup-120st"),
        pytest.param("cosine", {"warmup": "3ep", "interval": "step"}, 120, id="generic-warmup-3ep"),
        pytest.param("wsd", {"warmup": "10%", "decay": "4ep"}, 100, id="wsd-10%"),
    ],
)
def test_warmup_durations(name, params, peak_step):
    lr = preview(get_schedule(name, **params), 1000, base_lr=2.0, steps_per_epoch=40)
    assert int(np.argmax(lr)) == peak_step and lr[peak_step] == pytest.approx(2.0, rel=1e-12)
    assert lr[0] == 0.0


def test_wsd_decay_duration_ends_the_run():
    lr = preview(get_schedule("wsd", warmup=0, decay="4ep", decay_type="linear"), 1000, steps_per_epoch=40)
    assert np.all(lr[:840] == 1.0) and lr[840] == 1.0 and lr[841] < 1.0
    assert lr[999] == pytest.approx(1 / 160)


# -- lightning_config ----------------------------------------------------------------------------------
def stepped(scheduler):
    """One training step as Lightning takes it: the optimizer's update, then the scheduler's step."""
    scheduler.optimizer.step()
    scheduler.step()


def fake_trainer(**overrides):
    """The public attributes of a Trainer that lightning_config reads: 20 epochs of 50 steps."""
    attrs = {
        "estimated_stepping_batches": 1000,
        "num_training_batches": 100,
        "accumulate_grad_batches": 2,
        "max_epochs": 20,
        "max_steps": -1,
        "global_step": 0,
        "current_epoch": 0,
        # A plateau schedule needs the callback that feeds it validation results.
        "callbacks": [PlateauDriver()],
    }
    return SimpleNamespace(**{**attrs, **overrides})


MINIMAL = {
    "step": {"step_size": 3},
    "multistep": {"milestones": [2, 5]},
    "exponential": {"gamma": 0.9},
    "cosine": {},
    "cosine_restarts": {"T_0": 4},
    "polynomial": {},
    "linear": {},
    "constant": {},
    "cyclic": {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": "1ep"},
    "onecycle": {"max_lr": 0.1},
    "plateau": {},
    "warmup_constant": {"warmup": 10},
    "warmup_linear": {"warmup": "5%"},
    "warmup_cosine": {"warmup": "1ep"},
    "warmup_cosine_restarts": {"warmup": 10},
    "warmup_polynomial": {"warmup": 10},
    "inverse_sqrt": {"warmup": 10},
    "wsd": {"warmup": 10, "decay": "20%"},
    "join": {"schedules": [{"name": "warmup_constant", "warmup": "1ep"}, "cosine"], "boundaries": ["10%"]},
    "chain": {"schedules": [{"name": "constant", "factor": 0.5}, {"name": "exponential", "gamma": 0.9}]},
}
STEP_INTERVAL = (
    {"cyclic", "onecycle"} | {n for n in MINIMAL if n.startswith("warmup_")} | {"inverse_sqrt", "wsd", "join"}
)


def test_minimal_table_covers_the_catalog():
    assert sorted(MINIMAL) == available_schedules()


@pytest.mark.parametrize("name", sorted(MINIMAL))
def test_lightning_config_dict(make_optimizer, name):
    optimizer = make_optimizer()
    config = get_schedule(name, **MINIMAL[name]).lightning_config(optimizer, fake_trainer())
    # `monitor` only for the metric-driven schedule: Lightning warns about it under manual optimization.
    monitored = {"monitor"} if name == "plateau" else set()
    assert set(config) == {"scheduler", "interval", "frequency", "name"} | monitored
    assert config["interval"] == ("step" if name in STEP_INTERVAL else "epoch")
    assert config["frequency"] == 1
    assert config["name"] == f"lr-{name}"
    assert config.get("monitor") == ("val_loss" if name == "plateau" else None)
    assert isinstance(config["scheduler"], torch.optim.lr_scheduler.LRScheduler)
    assert config["scheduler"].optimizer is optimizer
    assert isinstance(config["scheduler"], PlateauLR) == (name == "plateau")


def test_lightning_config_name_and_monitor(make_optimizer):
    schedule = get_schedule("plateau", mode="max", monitor="val_acc")
    config = schedule.lightning_config(make_optimizer(), fake_trainer(), name="my-lr")
    assert config["name"] == "my-lr" and config["monitor"] == "val_acc" and config["interval"] == "epoch"


def test_cosine_default_T_max_reaches_eta_min_at_the_last_epoch_boundary(make_optimizer):
    optimizer = make_optimizer()
    scheduler = get_schedule("cosine", eta_min=0.001).lightning_config(optimizer, fake_trainer())["scheduler"]
    lrs = [scheduler.get_last_lr()]
    for _ in range(20):  # 1000 steps / (100 batches / 2 accumulated) = 20 epochs
        stepped(scheduler)
        lrs.append(scheduler.get_last_lr())
    assert lrs[20] == [0.001, 0.001]
    assert all(lr > 0.001 for lr in lrs[19])
    assert lrs[10] == pytest.approx([(0.1 + 0.001) / 2, (0.03 + 0.001) / 2], rel=1e-12)


def test_cosine_with_warmup_covers_the_rest_of_the_run(make_optimizer):
    optimizer = make_optimizer()
    schedule = get_schedule("cosine", warmup=5, eta_min=0.001)
    scheduler = schedule.lightning_config(optimizer, fake_trainer())["scheduler"]
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(20):
        stepped(scheduler)
        lrs.append(scheduler.get_last_lr()[0])
    assert lrs[0] == 0.0 and lrs[5] == 0.1
    assert lrs[20] == 0.001 and min(lrs[5:20]) > 0.001


@pytest.mark.parametrize(
    ("name", "params", "end_step", "end_lr"),
    [
        pytest.param("onecycle", {"max_lr": 0.5}, 999, 0.5 / 25e4, id="onecycle-total_steps"),
        pytest.param("warmup_linear", {"warmup": "5%"}, 1000, 0.0, id="warmup_linear-total"),
        pytest.param("warmup_cosine", {"warmup": "1ep", "min_lr_ratio": 0.1}, 1000, 0.01, id="warmup_cosine-total"),
        pytest.param("wsd", {"warmup": 10, "decay": "2ep", "min_lr_ratio": 0.2}, 1000, 0.02, id="wsd-total"),
        pytest.param("polynomial", {"total_iters": "25%"}, 5, 0.0, id="polynomial-25%-of-20-epochs"),
        pytest.param("step", {"step_size": "500st", "gamma": 0.5}, 10, 0.05, id="step-500st-is-10-epochs"),
    ],
)
def test_lightning_config_resolves_against_the_trainer(make_optimizer, name, params, end_step, end_lr):
    optimizer = make_optimizer()
    scheduler = get_schedule(name, **params).lightning_config(optimizer, fake_trainer())["scheduler"]
    before = None
    for _ in range(end_step):
        before = scheduler.get_last_lr()[0]
        stepped(scheduler)
    assert scheduler.get_last_lr()[0] == pytest.approx(end_lr, rel=1e-9, abs=1e-15)
    assert before != pytest.approx(end_lr, rel=1e-6)  # reached at end_step, not earlier


def test_accumulation_sets_the_epoch_length(make_optimizer):
    # 100 batches accumulated by 3: the last optimizer step of an epoch takes the leftover batch.
    trainer = fake_trainer(estimated_stepping_batches=340, accumulate_grad_batches=3)
    scheduler = get_schedule("step", step_size="68st", gamma=0.5).lightning_config(make_optimizer(), trainer)[
        "scheduler"
    ]
    stepped(scheduler)
    assert scheduler.get_last_lr()[0] == 0.1
    stepped(scheduler)
    assert scheduler.get_last_lr()[0] == 0.05


def test_unknown_run_length(make_optimizer):
    # An iterable loader without __len__ and max_epochs: the run length is unknown.
    streaming = fake_trainer(num_training_batches=math.inf, estimated_stepping_batches=math.inf)
    # Length-free schedules train exactly.
    get_schedule("step", step_size=3).lightning_config(make_optimizer(), streaming)
    get_schedule("warmup_constant", warmup=10).lightning_config(make_optimizer(), streaming)
    get_schedule("warmup_cosine", warmup=10, total=100).lightning_config(make_optimizer(), streaming)
    # Length-bound ones are refused, naming what to set. An epoch schedule still knows the run in epochs.
    with pytest.raises(ValueError, match=r"`warmup_linear` needs the run length for `total`.*max_steps"):
        get_schedule("warmup_linear", warmup=10).lightning_config(make_optimizer(), streaming)
    assert get_schedule("cosine").lightning_config(make_optimizer(), streaming)["scheduler"].curve.length == 20
    endless = fake_trainer(
        num_training_batches=math.inf, estimated_stepping_batches=math.inf, max_epochs=-1, max_steps=-1
    )
    with pytest.raises(ValueError, match=r"`cosine` needs the run length for `T_max`.*max_steps"):
        get_schedule("cosine").lightning_config(make_optimizer(), endless)
    with pytest.raises(ValueError, match=r"needs the run length for `warmup`"):
        get_schedule("warmup_constant", warmup="5%").lightning_config(make_optimizer(), streaming)
    # With max_steps and max_epochs=-1, per-step defaults resolve from max_steps.
    bounded = fake_trainer(
        num_training_batches=math.inf, estimated_stepping_batches=1000, max_epochs=-1, max_steps=1000
    )
    scheduler = get_schedule("warmup_linear", warmup=10).lightning_config(make_optimizer(), bounded)["scheduler"]
    for _ in range(999):
        stepped(scheduler)
    assert scheduler.get_last_lr()[0] == pytest.approx(0.1 / 990)
    stepped(scheduler)
    assert scheduler.get_last_lr() == [0.0, 0.0]


def test_plateau_without_its_driver_is_refused(make_optimizer):
    with pytest.raises(ValueError, match=r"add lightning_lrsched.PlateauDriver\(\) to Trainer\(callbacks"):
        get_schedule("plateau").lightning_config(make_optimizer(), fake_trainer(callbacks=[]))
