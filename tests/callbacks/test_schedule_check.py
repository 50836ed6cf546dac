"""ScheduleCheck: each misconfiguration gives its own message; correct configurations give none.

The checks are a pure function of the scheduler configs and the run plan, so the tables call
``check_schedulers`` directly; a few real fits check the Trainer wiring (when it speaks, strict mode,
resume, the plateau monitor).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from callback_helpers import (
    ScriptedModule,
    adam,
    catalog,
    data,
    sgd,
    trainer,
)
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.optim import lr_scheduler as torch_lr

from lightning_lrsched import ScheduleCheck
from lightning_lrsched.callbacks import ScheduleWarning
from lightning_lrsched.errors import InvalidValue
from lightning_lrsched.lightning import plan_from_trainer
from lightning_lrsched.schedules import GroupSchedules, get_schedule
from lightning_lrsched.schedules.checks import check_schedulers
from lightning_lrsched.schedules.run import RunPlan

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class Config:
    """Lightning's scheduler config, as ``trainer.lr_scheduler_configs`` holds it."""

    scheduler: Any
    interval: str = "epoch"
    frequency: int = 1
    name: str | None = None
    monitor: str | None = None


def groups(optimizer):
    model = torch.nn.Linear(10, 2)
    return optimizer([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.03}])


def built(spec, **config):
    """A catalog schedule built for the run as ``lightning_config`` builds it; ``config`` overrides the dict."""

    def make(optimizer, plan):
        schedule = get_schedule(spec)
        scheduler = schedule.build(optimizer, **plan.build_args(schedule.interval))
        return Config(scheduler, **{"interval": schedule.interval, "name": f"lr-{schedule.name}", **config})

    return make


def per_group(specs):
    def make(optimizer, plan):
        schedules = GroupSchedules(specs)
        scheduler = schedules.build(optimizer, **plan.build_args("step"))
        return Config(scheduler, schedules.interval, name="lr-groups")

    return make


def torch_made(make, **config):
    return lambda optimizer, plan: Config(make(optimizer, plan), **config)


PLAN = RunPlan(total_steps=15, batches_per_epoch=5)  # Trainer(max_epochs=3) on 5 batches
SIX_EPOCHS = RunPlan(total_steps=30, batches_per_epoch=5)

MISCONFIGURED = [
    ("cosine-ends-early", built({"name": "cosine", "T_max": 1}), SIX_EPOCHS, "ends-early", "rises again"),
    (
        "warmup_linear-ends-early",
        built({"name": "warmup_linear", "warmup": 2, "total": 5}),
        PLAN,
        "ends-early",
        "the LR stays at 0 (nothing is learned). Leave `total` unset (it defaults to the run) or set total=15",
    ),
    (
        "polynomial-default-is-not-the-run",
        built({"name": "polynomial"}),
        RunPlan(total_steps=50, batches_per_epoch=5),
        "ends-early",
        "polynomial ends after 5 epochs but the run lasts 10; past its end the LR stays at 0 (nothing is learned). "
        "Set total_iters=10 (or total_iters='100%').",
    ),
    (
        "torch-polynomial-ends-early",
        torch_made(lambda o, p: torch_lr.PolynomialLR(o, total_iters=2)),
        SIX_EPOCHS,
        "ends-early",
        "past its end the LR stays at 0 (nothing is learned). Set total_iters=6.",
    ),
    (
        "warmup_cosine-ends-late",
        built({"name": "warmup_cosine", "warmup": 2, "total": 100}),
        PLAN,
        "ends-late",
        "at 15% of the schedule (LR 0.0963 at the last step)",
    ),
    (
        "torch-multistep-milestone-after-the-run",
        torch_made(lambda o, p: torch_lr.MultiStepLR(o, milestones=[1, 10])),
        PLAN,
        "ends-late",
        "milestones=[1, 10] ends at 10 epochs, at or after the run's end (3)",
    ),
    ("linear-never-done", built({"name": "linear", "total_iters": 3}), PLAN, "ends-late", "Keep total_iters below 3"),
    (
        "per-group-lane-ends-early",
        per_group([{"name": "cosine", "T_max": 1}, {"name": "warmup_cosine", "warmup": 2}]),
        SIX_EPOCHS,
        "ends-early",
        "lr-groups (cosine+warmup_cosine, interval='step') lane 0 (cosine, param groups [0]): cosine ends after 1 ",
    ),
    (
        "warmup-as-long-as-the-run",
        built({"name": "warmup_constant", "warmup": 20}),
        PLAN,
        "warmup",
        "never reaches",
    ),
    (
        "warmup-longer-than-the-run-in-a-longer-schedule",
        built({"name": "warmup_cosine", "warmup": 20, "total": 100}),
        PLAN,
        "warmup",
        "the warmup lasts 20 steps but the run has only 15",
    ),
    (
        "built-for-steps-stepped-per-epoch",
        lambda o, p: Config(get_schedule("onecycle", max_lr=0.1).build(o, total_steps=15), "epoch"),
        PLAN,
        "interval",
        "built for interval='step'",
    ),
    (
        "onecycle-per-epoch",
        built({"name": "onecycle", "max_lr": 0.1, "interval": "epoch"}),
        PLAN,
        "step-schedule-per-epoch",
        "the LR changes only 3 times",
    ),
    (
        "torch-cyclic-default-interval",
        torch_made(lambda o, p: torch_lr.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5)),
        PLAN,
        "step-schedule-per-epoch",
        "CyclicLR is a per-step schedule",
    ),
    (
        "torch-onecycle-too-short",
        torch_made(lambda o, p: torch_lr.OneCycleLR(o, max_lr=0.1, total_steps=10), interval="step"),
        PLAN,
        "ends-early",
        "torch raises ValueError at call 11",
    ),
    (
        "torch-onecycle-ignores-accumulation",
        torch_made(lambda o, p: torch_lr.OneCycleLR(o, max_lr=0.1, total_steps=15), interval="step"),
        RunPlan(total_steps=9, batches_per_epoch=5, accumulate=2),
        "ends-late",
        "total_steps=15 lasts 15 steps but the run ends after 9, at 60% of the schedule",
    ),
    (
        "onecycle-too-long",
        built({"name": "onecycle", "max_lr": 0.1, "total_steps": 30}),
        PLAN,
        "ends-late",
        "at 50% of the schedule",
    ),
    (
        "torch-cosine-epochs-on-steps",
        torch_made(lambda o, p: torch_lr.CosineAnnealingLR(o, T_max=p.epochs), interval="step"),
        PLAN,
        "epoch-durations-on-steps",
        "T_max=3 looks like a number of epochs",
    ),
    (
        "catalog-step-epochs-on-steps",
        built({"name": "step", "step_size": 2, "interval": "step"}),
        PLAN,
        "epoch-durations-on-steps",
        "step_size='2ep'",
    ),
    (
        "step-size-never-reached",
        built({"name": "step", "step_size": 3}),
        PLAN,
        "never-changes",
        "step_size=3 is never reached: the run has 3 epochs, so the LR stays at 0.1 for the whole run",
    ),
    (
        "step-size-never-reached-after-warmup",
        built({"name": "step", "step_size": 2, "warmup": 1}),
        PLAN,
        "never-changes",
        "step_size=2 is never reached: the run has 3 epochs",
    ),
    (
        "torch-steplr-never-reached",
        torch_made(lambda o, p: torch_lr.StepLR(o, step_size=5)),
        PLAN,
        "never-changes",
        "step_size=5 is never reached",
    ),
]


@pytest.mark.parametrize(
    ("make", "plan", "code", "text"), [c[1:] for c in MISCONFIGURED], ids=[c[0] for c in MISCONFIGURED]
)
def test_each_misconfiguration_has_its_message(make, plan, code, text):
    findings = check_schedulers([make(groups(sgd), plan)], plan)
    assert [f.code for f in findings] == [code]
    assert text in str(findings[0])


def test_a_per_step_schedule_stepped_per_epoch_is_also_checked_for_length():
    config = Config(torch_lr.OneCycleLR(groups(sgd), max_lr=0.1, total_steps=15))
    findings = check_schedulers([config], PLAN)
    assert [f.code for f in findings] == ["step-schedule-per-epoch", "ends-late"]
    assert "OneCycleLR is a per-step schedule" in findings[0].message
    assert "Return it as {'scheduler': ..., 'interval': 'step'}" in findings[0].message


GOOD = [
    ("cosine", built({"name": "cosine"}), PLAN),
    ("cosine-eta_min", built({"name": "cosine", "eta_min": 0.001, "warmup": 1}), RunPlan(25, 5)),
    ("step", built({"name": "step", "step_size": 1, "gamma": 0.5}), PLAN),
    ("step-reached-in-the-last-epoch", built({"name": "step", "step_size": 2}), PLAN),
    ("step-gamma-1-never-changes-anyway", built({"name": "step", "step_size": 10, "gamma": 1.0}), PLAN),
    ("multistep", built({"name": "multistep", "milestones": ["50%"]}), RunPlan(20, 5)),
    ("exponential", built({"name": "exponential", "gamma": 0.9}), PLAN),
    ("onecycle", built({"name": "onecycle", "max_lr": 0.1}), PLAN),
    ("onecycle-accumulate", built({"name": "onecycle", "max_lr": 0.1}), RunPlan(9, 5, accumulate=2)),
    ("cyclic", built({"name": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2}), PLAN),
    ("warmup_cosine", built({"name": "warmup_cosine", "warmup": "10%"}), PLAN),
    ("warmup_cosine-max_steps", built({"name": "warmup_cosine", "warmup": 2}), RunPlan(12, 5)),
    ("wsd", built({"name": "wsd", "warmup": 2, "decay": "20%"}), PLAN),
    ("inverse_sqrt", built({"name": "inverse_sqrt", "warmup": 2}), PLAN),
    ("warmup_constant", built({"name": "warmup_constant", "warmup": "1ep"}), PLAN),
    ("unknown-length", built({"name": "warmup_constant", "warmup": 10}), RunPlan(None, None)),
    ("unknown-epoch-length", built({"name": "cosine"}), RunPlan(None, None, max_epochs=3)),
    (
        "torch-onecycle",
        torch_made(lambda o, p: torch_lr.OneCycleLR(o, 0.1, p.total_steps), interval="step"),
        PLAN,
    ),
    ("torch-cosine", torch_made(lambda o, p: torch_lr.CosineAnnealingLR(o, T_max=p.epochs)), PLAN),
    ("torch-steplr", torch_made(lambda o, p: torch_lr.StepLR(o, step_size=1)), PLAN),
    ("torch-multistep", torch_made(lambda o, p: torch_lr.MultiStepLR(o, milestones=[1, 2])), PLAN),
    ("torch-steplr-per-step", torch_made(lambda o, p: torch_lr.StepLR(o, step_size=10), interval="step"), PLAN),
    ("torch-lambda-unknown-to-the-catalog", torch_made(lambda o, p: torch_lr.LambdaLR(o, lambda e: 1.0)), PLAN),
    ("per-group", per_group([{"name": "cosine"}, {"name": "warmup_cosine", "warmup": "10%"}]), PLAN),
    ("per-group-epochs", per_group([{"name": "cosine"}, {"name": "step", "step_size": 1}]), PLAN),
]


@pytest.mark.parametrize(("make", "plan"), [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
@pytest.mark.parametrize("optimizer", [sgd, adam], ids=["sgd", "adam"])
def test_correct_configurations_say_nothing(make, plan, optimizer):
    assert check_schedulers([make(groups(optimizer), plan)], plan) == []


def test_checks_a_million_step_run():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    config = Config(get_schedule("warmup_linear", warmup=1000).build(optimizer, total_steps=900_000), "step")
    (finding,) = check_schedulers([config], RunPlan(total_steps=1_000_000, batches_per_epoch=10_000))
    assert finding.code == "ends-early"
    assert "ends after 900000 steps but the run lasts 1000000; past its end the LR stays at 0" in finding.message
    # A tail longer than 10^6 positions is sampled, and still described.
    (finding,) = check_schedulers([config], RunPlan(total_steps=3_000_000, batches_per_epoch=10_000))
    assert "ends after 900000 steps but the run lasts 3000000; past its end the LR stays at 0" in finding.message


# -- the Trainer wiring ------------------------------------------------------------------------------------
def torch_config(make, **config):
    """A scheduler factory returning Lightning's dict around a torch scheduler."""
    return lambda optimizer, trainer: {"scheduler": make(optimizer, trainer), **config}


def test_strict_raises_before_the_first_step(tmp_path):
    check = ScheduleCheck(strict=True)
    t = trainer(tmp_path, callbacks=[check], max_epochs=6)
    with pytest.raises(MisconfigurationException, match="ScheduleCheck") as error:
        t.fit(ScriptedModule(scheduler=catalog({"name": "cosine", "T_max": 1})), data(5))
    assert [f.code for f in check.findings] == ["ends-early"]
    assert "the LR schedule of this run (30 optimizer steps = 6 epoch(s) of up to 5)" in str(error.value)
    assert t.global_step == 0


@pytest.mark.filterwarnings("ignore:A `OneCycleLR` scheduler is using .interval")
def test_warns_once_with_every_problem_in_one_message(tmp_path):
    # OneCycleLR without 'interval': 'step' is stepped per epoch, and then covers 3 of its 15 steps.
    scheduler = torch_config(lambda o, t: torch_lr.OneCycleLR(o, max_lr=0.1, total_steps=15))
    check = ScheduleCheck()
    with pytest.warns(ScheduleWarning) as record:
        trainer(tmp_path, callbacks=[check]).fit(ScriptedModule(scheduler=scheduler), data(5))
    messages = [str(w.message) for w in record if issubclass(w.category, ScheduleWarning)]
    assert len(messages) == 1
    assert messages[0].startswith(
        "ScheduleCheck: 2 problem(s) with the LR schedule of this run (15 optimizer steps = 3 epoch(s) of up to 5):"
    )
    assert "\n  - lr-SGD (OneCycleLR, interval='epoch'): OneCycleLR is a per-step schedule" in messages[0]
    assert (
        "\n  - lr-SGD (OneCycleLR, interval='epoch'): total_steps=15 lasts 15 epochs but the run ends after 3"
        in messages[0]
    )
    assert [f.code for f in check.findings] == ["step-schedule-per-epoch", "ends-late"]


@pytest.mark.parametrize(
    ("scheduler", "trainer_kwargs"),
    [
        (catalog({"name": "warmup_linear", "warmup": 2}), {"max_steps": 7}),
        (
            torch_config(lambda o, t: torch_lr.OneCycleLR(o, 0.1, t.estimated_stepping_batches), interval="step"),
            {"accumulate_grad_batches": 2},
        ),
    ],
    ids=["max_steps-before-the-end-of-an-epoch", "torch-onecycle-accumulate"],
)
def test_correct_configurations_say_nothing_in_a_real_run(tmp_path, scheduler, trainer_kwargs):
    check = ScheduleCheck(strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScheduleWarning)
        trainer(tmp_path, callbacks=[check], **trainer_kwargs).fit(ScriptedModule(scheduler=scheduler), data(5))
    assert check.findings == []


@pytest.mark.parametrize(
    ("scheduler", "logged", "advice"),
    [
        (catalog({"name": "plateau", "monitor": "val_los"}), "val_loss", "or set monitor='val_loss'"),
        (torch_config(lambda o, t: torch_lr.ReduceLROnPlateau(o), monitor="val_los"), "val_loss", "monitor='val_loss'"),
        (
            GroupSchedules([{"name": "cosine"}, {"name": "plateau", "monitor": "val_loss"}]).lightning_config,
            "val_acc",
            "or set monitor='val_step_loss'",
        ),
    ],
    ids=["plateau-schedule-typo", "torch-reduce-on-plateau-typo", "per-group-plateau-lane"],
)
def test_a_plateau_monitor_never_logged_is_reported_with_the_logged_keys(tmp_path, scheduler, logged, advice):
    check = ScheduleCheck(strict=True)
    t = trainer(tmp_path, callbacks=[check], limit_train_batches=2)
    module = ScriptedModule(scheduler=scheduler, scripted={logged: [1.0, 1.0, 1.0]})
    with pytest.raises(MisconfigurationException, match="the first validation run did not log") as error:
        t.fit(module, data(5), data(1))
    assert f"(logged: {logged}, val_step_loss)" in str(error.value)
    assert advice in str(error.value)
    assert t.global_step == 2 and [f.code for f in check.findings] == ["monitor"]


@pytest.mark.parametrize(
    "scheduler",
    [catalog({"name": "plateau"}), torch_config(lambda o, t: torch_lr.ReduceLROnPlateau(o), monitor="val_loss")],
    ids=["plateau", "torch-reduce-on-plateau"],
)
def test_a_logged_plateau_monitor_says_nothing(tmp_path, scheduler):
    check = ScheduleCheck(strict=True)
    t = trainer(tmp_path, callbacks=[check], limit_train_batches=2)
    t.fit(ScriptedModule(scheduler=scheduler, scripted={"val_loss": [1.0, 1.0, 1.0]}), data(5), data(1))
    assert check.findings == [] and t.global_step == 6


# -- resume ----------------------------------------------------------------------------------------------
class LRRecorder(Callback):
    """The LR of param group 0 at each optimizer step."""

    def __init__(self) -> None:
        self.lrs: dict[int, float] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.lrs[trainer.global_step] = float(optimizer.param_groups[0]["lr"])


def lr_after_steps(schedule, total_steps, steps):
    optimizer = sgd([{"params": [torch.nn.Parameter(torch.zeros(1))]}])
    scheduler = schedule.build(optimizer, total_steps=total_steps)
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
    return scheduler.get_last_lr()[0]


def first_run(tmp_path, scheduler, max_epochs=2):
    """Train ``max_epochs`` epochs with ScheduleCheck, keeping ModelCheckpoint's file of every epoch."""
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, filename="{epoch}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScheduleWarning)
        trainer(tmp_path, callbacks=[ScheduleCheck(), checkpoint], max_epochs=max_epochs).fit(
            ScriptedModule(scheduler=scheduler, groups=1), data(5)
        )
    return {epoch: tmp_path / f"epoch={epoch}.ckpt" for epoch in range(max_epochs)}


def resume(tmp_path, scheduler, ckpt, check=None, **trainer_kwargs):
    """Resume from ``ckpt``; the ScheduleCheck, the LRs used, and the ScheduleWarnings given."""
    check = check or ScheduleCheck()
    recorder = LRRecorder()
    t = trainer(tmp_path, callbacks=[check, recorder], **trainer_kwargs)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        t.fit(ScriptedModule(scheduler=scheduler, groups=1), data(5), ckpt_path=ckpt)
    return check, recorder.lrs, [str(w.message) for w in record if issubclass(w.category, ScheduleWarning)]


@pytest.mark.parametrize(
    ("spec", "arg"),
    [({"name": "warmup_cosine", "warmup": "10%"}, "warmup"), ({"name": "onecycle", "max_lr": 0.1}, "total_steps")],
    ids=["warmup_cosine", "onecycle"],
)
def test_a_resume_that_changes_the_run_length_reports_both_lengths_and_the_lr_jump(tmp_path, spec, arg):
    ckpt = first_run(tmp_path, catalog(spec))
    check, lrs, messages = resume(tmp_path, catalog(spec), ckpt[1], max_epochs=6)
    assert [f.code for f in check.findings] == ["run-length"] and len(messages) == 1
    before = lr_after_steps(get_schedule(spec), total_steps=10, steps=10)  # where the checkpoint's schedule was going
    assert (
        f"the run length changed: the checkpoint's run was 10 optimizer steps (2 epochs of 5), this one is 30 "
        f"optimizer steps (6 epochs of 5), and {spec['name']} is resolved against the run, so at the resume step 10 "
        f"the LR goes from {before:.3g} (the checkpoint's schedule) to {lrs[10]:.3g}. Resume with the checkpoint's "
        f"max_epochs/max_steps to finish its schedule, or give `{arg}` in steps."
    ) in messages[0]
    assert f"{before:.3g}" != f"{lrs[10]:.3g}"
    # An unchanged resume says nothing.
    check, _, messages = resume(tmp_path, catalog(spec), ckpt[0], max_epochs=2)
    assert check.findings == [] and messages == []


def test_a_longer_run_is_reported_from_a_checkpoint_of_a_run_without_schedule_check(tmp_path):
    spec = {"name": "warmup_cosine", "warmup": "10%"}
    saves = ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, filename="{epoch}")
    trainer(tmp_path, callbacks=[saves], max_epochs=2).fit(ScriptedModule(scheduler=catalog(spec), groups=1), data(5))
    state = torch.load(tmp_path / "epoch=1.ckpt", weights_only=False)["lr_schedulers"][0]
    assert state["run"] == {"total_steps": 10, "steps_per_epoch": 5}  # the scheduler's own record of its run
    check, _, messages = resume(tmp_path, catalog(spec), tmp_path / "epoch=1.ckpt", max_epochs=6)
    assert [f.code for f in check.findings] == ["run-length"] and len(messages) == 1
    assert "the checkpoint's run was 10 optimizer steps (2 epochs of 5), this one is 30 optimizer steps" in messages[0]


def test_an_older_checkpoint_without_the_schedulers_run_falls_back_on_schedule_checks_plan(tmp_path):
    spec = {"name": "warmup_cosine", "warmup": "10%"}
    ckpt = first_run(tmp_path, catalog(spec))
    old = torch.load(ckpt[1], weights_only=False)
    del old["lr_schedulers"][0]["run"]  # as written before the scheduler recorded its run
    torch.save(old, tmp_path / "old.ckpt")
    check, _, messages = resume(tmp_path, catalog(spec), tmp_path / "old.ckpt", max_epochs=6)
    assert [f.code for f in check.findings] == ["run-length"]
    assert "the checkpoint's run was 10 optimizer steps (2 epochs of 5), this one is 30 optimizer steps" in messages[0]


def test_a_longer_run_with_a_length_free_schedule_says_nothing(tmp_path):
    spec = {"name": "step", "step_size": 1, "gamma": 0.5}
    ckpt = first_run(tmp_path, catalog(spec))
    check, _, messages = resume(tmp_path, catalog(spec), ckpt[1], max_epochs=4)
    assert check.findings == [] and messages == []


def test_a_changed_schedule_on_resume_is_reported_as_refused_before_the_state_is_loaded(tmp_path):
    ckpt = first_run(tmp_path, catalog({"name": "cosine"}))
    changed = catalog({"name": "cosine", "eta_min": 0.001})
    check = ScheduleCheck(strict=True)
    with pytest.raises(MisconfigurationException) as error:
        resume(tmp_path, changed, ckpt[1], check=check, max_epochs=6)
    assert [f.code for f in check.findings] == ["changed"]
    message = str(error.value)
    assert message.startswith("ScheduleCheck: 1 problem(s) with resuming from the checkpoint at step 10:")
    assert "was {'name': 'cosine', 'interval': 'epoch'}, now {'name': 'cosine', 'eta_min': 0.001, " in message
    assert "loading the checkpoint refuses it (an error names each setting)" in message


def test_a_changed_torch_scheduler_on_resume_is_reported_as_not_applied(tmp_path):
    ckpt = first_run(tmp_path, torch_config(lambda o, t: torch_lr.CosineAnnealingLR(o, T_max=2)))
    changed = torch_config(lambda o, t: torch_lr.CosineAnnealingLR(o, T_max=t.max_epochs))
    check, _, messages = resume(tmp_path, changed, ckpt[1], max_epochs=6)
    # torch keeps the checkpoint's T_max=2, so the run then also ends early; both are said.
    assert [f.code for f in check.findings] == ["changed", "ends-early"]
    assert "the new ones are NOT applied (T_max 2 -> 6)" in messages[0]
    assert "T_max=2 ends after 2 epochs but the run lasts 6; past its end the LR rises again" in messages[1]


@pytest.mark.parametrize(
    ("saved", "resumed", "why"),
    [
        (
            torch_config(
                lambda o, t: torch_lr.OneCycleLR(o, max_lr=0.1, total_steps=t.estimated_stepping_batches),
                interval="step",
            ),
            lambda o, t: torch_lr.CosineAnnealingLR(o, T_max=6),
            "its state lacks T_max, eta_min and has total_steps",
        ),
        (
            torch_config(lambda o, t: torch_lr.StepLR(o, step_size=1)),
            lambda o, t: torch_lr.ExponentialLR(o, gamma=0.5),  # gamma is in both states: step_size gives it away
            "has step_size",
        ),
    ],
    ids=["onecycle-to-cosine", "step-to-exponential"],
)
def test_another_torch_scheduler_on_resume_is_refused_before_its_state_is_loaded(tmp_path, saved, resumed, why):
    # torch's load_state_dict takes any dict: CosineAnnealingLR would go on with OneCycleLR's state (LR 0).
    ckpt = first_run(tmp_path, saved)
    check = ScheduleCheck()  # not strict: still refused, going on is never right
    with pytest.raises(InvalidValue, match="cannot go on with resuming from the checkpoint at step 10") as error:
        resume(tmp_path, torch_config(resumed), ckpt[1], check=check, max_epochs=6)
    assert [f.code for f in check.findings] == ["replaced"]
    assert why in str(error.value) and "\n" not in str(error.value)
    strict = ScheduleCheck(strict=True)  # its own exception, as for every finding
    with pytest.raises(MisconfigurationException, match="the checkpoint's scheduler is not this run's"):
        resume(tmp_path, torch_config(resumed), ckpt[1], check=strict, max_epochs=6)


def test_a_state_an_older_torch_saved_is_still_its_schedulers_own():
    from lightning_lrsched.schedules.checks import _foreign_state

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = torch_lr.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    older = {**scheduler.state_dict(), "anneal_func": None}  # OneCycleLR saved it up to torch 2.1; torch loads it
    assert _foreign_state(scheduler, older) == ""
    assert _foreign_state(scheduler, {**older, "step_size": 3}) == "has step_size"


def test_a_package_schedule_checkpoint_is_refused_by_a_torch_scheduler(tmp_path):
    ckpt = first_run(tmp_path, catalog({"name": "cosine"}))
    with pytest.raises(InvalidValue, match=re.escape("the checkpoint's is lightning_lrsched's {'name': 'cosine'")):
        resume(tmp_path, torch_config(lambda o, t: torch_lr.StepLR(o, step_size=1)), ckpt[1], max_epochs=6)


class StepWithExtraState(torch_lr.StepLR):
    """A scheduler of one's own that saves a key it keeps no attribute for: not another scheduler's state."""

    def state_dict(self):
        return {**super().state_dict(), "saved_only": 1}

    def load_state_dict(self, state_dict):
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "saved_only"})


@pytest.mark.parametrize("cls", [torch_lr.StepLR, StepWithExtraState])
def test_the_same_torch_scheduler_resumes(tmp_path, cls):
    make = torch_config(lambda o, t: cls(o, step_size=1, gamma=0.5))
    ckpt = first_run(tmp_path, make)
    check, lrs, messages = resume(tmp_path, make, ckpt[1], max_epochs=3)
    assert check.findings == [] and messages == [] and sorted(lrs) == list(range(10, 15))


def test_a_restored_onecycle_that_the_longer_run_would_step_past_its_end_is_refused(tmp_path):
    # The checkpoint's total_steps (10) is restored over the new run's 30: torch would raise at the first step.
    make = torch_config(
        lambda o, t: torch_lr.OneCycleLR(o, max_lr=0.1, total_steps=t.estimated_stepping_batches), interval="step"
    )
    ckpt = first_run(tmp_path, make)
    check = ScheduleCheck()
    with pytest.raises(InvalidValue, match=re.escape("torch raises ValueError at call 11. Resumed at call 10")):
        resume(tmp_path, make, ckpt[1], check=check, max_epochs=6)
    assert [f.code for f in check.findings] == ["changed", "ends-early"]


# -- where a scheduler is at each optimizer step -----------------------------------------------------------
class PositionRecorder(Callback):
    """The scheduler position every optimizer step uses, and the plan ScheduleCheck makes of the run."""

    def on_train_start(self, trainer, pl_module):
        self.plan = plan_from_trainer(trainer)
        self.positions = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.positions.append(trainer.lr_scheduler_configs[0].scheduler.last_epoch)

    def on_train_end(self, trainer, pl_module):
        self.final = trainer.lr_scheduler_configs[0].scheduler.last_epoch


@pytest.mark.parametrize(
    ("interval", "frequency", "accumulate", "batches", "trainer_kwargs"),
    [
        ("step", 1, 1, 5, {}),
        ("step", 2, 1, 5, {}),
        ("step", 3, 2, 7, {}),
        ("step", 2, 2, 5, {}),
        ("step", 1, 3, 7, {"max_steps": 7}),
        ("epoch", 1, 1, 5, {}),
        ("epoch", 2, 1, 5, {"max_epochs": 5}),
        ("epoch", 1, 2, 5, {"max_steps": 8}),
        ("epoch", 3, 1, 4, {"max_epochs": 6, "max_steps": 17}),
    ],
)
def test_run_plan_matches_lightnings_stepping(tmp_path, interval, frequency, accumulate, batches, trainer_kwargs):
    def make(optimizer, trainer):
        scheduler = get_schedule("exponential", gamma=0.9, interval=interval).build(optimizer)
        return {"scheduler": scheduler, "interval": interval, "frequency": frequency}

    recorder = PositionRecorder()
    options = {"max_epochs": 3, "accumulate_grad_batches": accumulate, **trainer_kwargs}
    t = trainer(tmp_path, callbacks=[recorder], **options)
    t.fit(ScriptedModule(scheduler=make, groups=1), data(batches))
    plan = recorder.plan
    assert plan.total_steps == t.global_step == len(recorder.positions)
    assert [plan.position(k, interval, frequency) for k in range(plan.total_steps)] == recorder.positions
    assert plan.positions(interval, frequency) == recorder.positions[-1] + 1
    assert plan.scheduler_steps(interval, frequency) == recorder.final


def test_rejects_bad_arguments():
    with pytest.raises(TypeError, match="strict"):
        ScheduleCheck(strict="yes")


def test_a_misspelt_plateau_monitor_is_reported_at_fit_start_by_the_sanity_check(tmp_path):
    from lightning_lrsched import SyntheticClassifier, SyntheticDataModule

    t = trainer(tmp_path, callbacks=[ScheduleCheck(strict=True)], num_sanity_val_steps=1, limit_train_batches=2)
    model = SyntheticClassifier(scheduler={"name": "plateau", "monitor": "val_los"})
    with pytest.raises(MisconfigurationException, match=r"the sanity check's validation run did not log.*val_loss"):
        t.fit(model, SyntheticDataModule(num_samples=100))
    assert t.global_step == 0  # before any training
