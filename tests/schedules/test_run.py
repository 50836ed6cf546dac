"""The run model (RunPlan), the catalog metadata it relies on, and torch's schedulers' catalog twins.

Reading a plan from a Trainer is the Lightning layer's (tests/lightning/test_run_plan.py).
"""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.optim import lr_scheduler as tl

from lightning_lrsched.schedules import available_schedules, get_schedule
from lightning_lrsched.schedules.curve import CATALOG
from lightning_lrsched.schedules.run import RunPlan, needs_epoch_length, needs_run_length
from lightning_lrsched.schedules.torch_schedulers import TORCH_SCHEDULERS, catalog_entry, catalog_twin


@pytest.mark.parametrize(
    ("plan", "interval", "args"),
    [
        (RunPlan(30, 10), "step", {"total_steps": 30, "steps_per_epoch": 10}),
        (RunPlan(30, 10), "epoch", {"total_steps": 30, "steps_per_epoch": 10}),
        (RunPlan(100, None, max_steps=100), "step", {"total_steps": 100, "steps_per_epoch": None}),
        # Epochs of unknown length: an epoch schedule still knows the run in epochs (an epoch = one step).
        (RunPlan(None, None, max_epochs=3), "epoch", {"total_steps": 3, "steps_per_epoch": None}),
        (RunPlan(None, None, max_epochs=3), "step", {"total_steps": None, "steps_per_epoch": None}),
        (RunPlan(100, None, max_epochs=-1, max_steps=100), "epoch", {"total_steps": None, "steps_per_epoch": None}),
    ],
)
def test_build_args(plan, interval, args):
    assert plan.build_args(interval) == args


def test_build_args_resolve_an_epoch_schedule_over_epochs_of_unknown_length():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    plan = RunPlan(None, None, max_epochs=4)
    scheduler = get_schedule("cosine", warmup=1).build(optimizer, **plan.build_args("epoch"))
    lrs = []
    for _ in range(4):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.0, 1.0, 0.75, 0.25])  # T_max = the 3 epochs after the warmup


def test_positions_with_epochs_of_unknown_length():
    plan = RunPlan(None, None, max_epochs=5)
    assert plan.positions("epoch", 2) == 3 and plan.scheduler_steps("epoch", 2) == 2
    assert plan.positions("step", 1) is None and plan.scheduler_steps("step", 1) is None


@pytest.mark.parametrize(
    ("spec", "run_arg", "epoch_arg"),
    [
        ({"name": "warmup_constant", "warmup": 10}, None, None),
        ({"name": "warmup_constant", "warmup": "5%"}, "warmup", None),
        ({"name": "cosine"}, "T_max", None),
        ({"name": "cosine", "T_max": 10}, None, None),
        ({"name": "cosine", "T_max": 10, "warmup": "10%"}, "warmup", None),
        ({"name": "cosine", "T_max": "500st"}, None, "T_max"),
        ({"name": "warmup_cosine", "warmup": 10}, "total", None),
        ({"name": "warmup_cosine", "warmup": 10, "total": 100}, None, None),
        ({"name": "warmup_cosine", "warmup": "1ep", "total": 100}, None, "warmup"),
        ({"name": "onecycle", "max_lr": 0.1}, "total_steps", None),
        ({"name": "onecycle", "max_lr": 0.1, "total_steps": 100}, None, None),
        ({"name": "polynomial"}, None, None),  # total_iters defaults to 5, not to the run
        ({"name": "multistep", "milestones": [10, "50%"]}, "milestones", None),
        ({"name": "step", "step_size": "2ep"}, None, None),  # epochs, counted by an epoch schedule
        ({"name": "wsd", "warmup": 10, "decay": "20%", "total": 100}, "decay", None),
        ({"name": "exponential", "gamma": 0.9}, None, None),
        ({"name": "inverse_sqrt", "warmup": 10}, None, None),
        ({"name": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": "1ep"}, None, "step_size_up"),
    ],
)
def test_what_a_schedule_needs_to_know_about_the_run(spec, run_arg, epoch_arg):
    schedule = get_schedule(spec)
    assert needs_run_length(schedule) == run_arg
    assert needs_epoch_length(schedule) == epoch_arg
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.9)
    if run_arg is None:
        schedule.build(optimizer, steps_per_epoch=10)  # no run length needed
    else:
        with pytest.raises(ValueError, match=f"`{run_arg}.*the run length is unknown"):
            schedule.build(optimizer, steps_per_epoch=10)


def test_catalog_metadata_names_every_duration_argument():
    # A duration argument takes a string ("10ep"): the metadata must list it, or the checks miss it.
    for name, entry in CATALOG.items():
        hinted = {
            arg
            for arg, p in inspect.signature(entry.constructor).parameters.items()
            if "int | str" in str(p.annotation)
        }
        assert hinted == set(entry.durations), name
        assert entry.end_arg is None or entry.end_arg in entry.durations, name
        assert not entry.ends_with_run or entry.end_arg is not None, name


def test_every_torch_scheduler_with_a_twin_maps_to_a_catalog_schedule():
    assert set(TORCH_SCHEDULERS.values()) <= set(available_schedules())
    assert catalog_entry(tl.OneCycleLR).interval == "step" and catalog_entry(tl.OneCycleLR).end_arg == "total_steps"
    assert catalog_entry(tl.LambdaLR) is None


@pytest.mark.parametrize(
    "make",
    [
        lambda o: tl.StepLR(o, step_size=3, gamma=0.5),
        lambda o: tl.MultiStepLR(o, milestones=[4, 2], gamma=0.5),
        lambda o: tl.ExponentialLR(o, gamma=0.9),
        lambda o: tl.CosineAnnealingLR(o, T_max=7, eta_min=0.01),
        lambda o: tl.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2),
        lambda o: tl.PolynomialLR(o, total_iters=6, power=2.0),
        lambda o: tl.LinearLR(o, start_factor=0.25, total_iters=4),
        lambda o: tl.ConstantLR(o, factor=0.5, total_iters=3),
    ],
    ids=["step", "multistep", "exponential", "cosine", "cosine_restarts", "polynomial", "linear", "constant"],
)
def test_a_torch_schedulers_catalog_twin_gives_its_lrs(make):
    torch_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ours_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    theirs = make(torch_optimizer)
    ours = catalog_twin(theirs).build(ours_optimizer)
    for _ in range(12):
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-9, abs=1e-12)
        torch_optimizer.step()
        theirs.step()
        ours.step()


def test_no_twin_for_a_torch_scheduler_that_keeps_a_required_argument_elsewhere():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    assert catalog_twin(tl.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)) is None
