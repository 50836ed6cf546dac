"""ScheduleCheck: each misconfiguration gives its own message; correct configurations give none."""

from __future__ import annotations

import warnings

import pytest
import torch
from callback_helpers import (
    QUIET,
    ScriptedModule,
    adam,
    catalog,
    data,
    one_thread,  # noqa: F401  (an autouse fixture: importing it applies it)
    per_group,
    sgd,
    trainer,
)
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.optim import lr_scheduler as torch_lr

from lightning_lrsched import ScheduleCheck
from lightning_lrsched.callbacks import ScheduleWarning
from lightning_lrsched.callbacks.schedule_check import RunPlan, check_schedulers
from lightning_lrsched.schedules import get_schedule

pytestmark = QUIET


def torch_config(make, **config):
    """A scheduler factory returning Lightning's dict around a torch scheduler."""
    return lambda optimizer, trainer: {"scheduler": make(optimizer, trainer), **config}


def built(spec, total_steps=None, **config):
    """A catalog schedule built by hand (not through lightning_config), with a hand-written config."""
    return lambda optimizer, trainer: {
        "scheduler": get_schedule(spec).build(optimizer, total_steps=total_steps),
        **config,
    }


MISCONFIGURED = [
    ("cosine-ends-early", catalog({"name": "cosine", "T_max": 1}), {"max_epochs": 6}, "ends-early", "rises again"),
    (
        "warmup_linear-ends-early",
        catalog({"name": "warmup_linear", "warmup": 2, "total": 5}),
        {},
        "ends-early",
        "the LR stays at 0 (nothing is learned)",
    ),
    (
        "torch-polynomial-ends-early",
        torch_config(lambda o, t: torch_lr.PolynomialLR(o, total_iters=2)),
        {"max_epochs": 6},
        "ends-early",
        "stays at 0",
    ),
    (
        "warmup_cosine-ends-late",
        catalog({"name": "warmup_cosine", "warmup": 2, "total": 100}),
        {},
        "ends-late",
        "at 15% of the schedule",
    ),
    (
        "multistep-milestone-after-the-run",
        torch_config(lambda o, t: torch_lr.MultiStepLR(o, milestones=[1, 10])),
        {},
        "ends-late",
        "milestones [10]",
    ),
    (
        "per-group-lane-ends-early",
        per_group([{"name": "cosine", "T_max": 1}, {"name": "warmup_cosine", "warmup": 2}]),
        {"max_epochs": 6},
        "ends-early",
        "lr-groups (cosine+warmup_cosine, interval='step') lane 0 (cosine, param groups [0]): cosine ends after 1 ",
    ),
    ("warmup-as-long-as-the-run", catalog({"name": "warmup_constant", "warmup": 20}), {}, "warmup", "never reaches"),
    (
        "built-for-steps-stepped-per-epoch",
        built({"name": "onecycle", "max_lr": 0.1}, total_steps=15, interval="epoch"),
        {},
        "interval",
        "built for interval='step'",
    ),
    (
        "onecycle-per-epoch",
        catalog({"name": "onecycle", "max_lr": 0.1, "interval": "epoch"}),
        {},
        "step-schedule-per-epoch",
        "the LR changes only 3 times",
    ),
    (
        "torch-onecycle-default-interval",
        torch_config(lambda o, t: torch_lr.OneCycleLR(o, max_lr=0.1, total_steps=15)),
        {},
        "step-schedule-per-epoch",
        "OneCycleLR is a per-step schedule",
    ),
    (
        "torch-cyclic-default-interval",
        torch_config(lambda o, t: torch_lr.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5)),
        {},
        "step-schedule-per-epoch",
        "CyclicLR is a per-step schedule",
    ),
    (
        "torch-onecycle-too-short",
        torch_config(lambda o, t: torch_lr.OneCycleLR(o, max_lr=0.1, total_steps=10), interval="step"),
        {},
        "onecycle-total-steps",
        "torch raises ValueError at call 11",
    ),
    (
        "torch-onecycle-ignores-accumulation",
        torch_config(lambda o, t: torch_lr.OneCycleLR(o, max_lr=0.1, total_steps=15), interval="step"),
        {"accumulate_grad_batches": 2},
        "onecycle-total-steps",
        "makes 9 scheduler steps",
    ),
    (
        "onecycle-too-long",
        catalog({"name": "onecycle", "max_lr": 0.1, "total_steps": 30}),
        {},
        "onecycle-total-steps",
        "ends at 50% of the cycle",
    ),
    (
        "torch-cosine-epochs-on-steps",
        torch_config(lambda o, t: torch_lr.CosineAnnealingLR(o, T_max=t.max_epochs), interval="step"),
        {},
        "epoch-durations-on-steps",
        "T_max=3 looks like a number of epochs",
    ),
    (
        "catalog-step-epochs-on-steps",
        catalog({"name": "step", "step_size": 2, "interval": "step"}),
        {},
        "epoch-durations-on-steps",
        "step_size='2ep'",
    ),
]


ONECYCLE_PER_EPOCH = "ignore:A `OneCycleLR` scheduler is using .interval"


@pytest.mark.filterwarnings(ONECYCLE_PER_EPOCH)
@pytest.mark.parametrize(
    ("scheduler", "trainer_kwargs", "code", "text"), [c[1:] for c in MISCONFIGURED], ids=[c[0] for c in MISCONFIGURED]
)
def test_each_misconfiguration_has_its_message(tmp_path, scheduler, trainer_kwargs, code, text):
    check = ScheduleCheck(strict=True)
    t = trainer(tmp_path, callbacks=[check], **trainer_kwargs)
    with pytest.raises(MisconfigurationException, match="ScheduleCheck") as error:
        t.fit(ScriptedModule(scheduler=scheduler), data(5))
    assert code in {f.code for f in check.findings}
    assert text in str(error.value)
    assert t.global_step == 0  # reported before the first step


@pytest.mark.parametrize(
    ("scheduler", "logged"),
    [
        (catalog({"name": "plateau", "monitor": "val_loss"}), "val_acc"),
        (torch_config(lambda o, t: torch_lr.ReduceLROnPlateau(o), monitor="val_los"), "val_loss"),
        (per_group([{"name": "cosine"}, {"name": "plateau", "monitor": "val_loss"}]), "val_acc"),
    ],
    ids=["plateau-schedule", "torch-reduce-on-plateau-typo", "per-group-plateau-lane"],
)
def test_a_plateau_monitor_never_logged_is_reported_after_the_first_validation(tmp_path, scheduler, logged):
    check = ScheduleCheck(strict=True)
    t = trainer(tmp_path, callbacks=[check], limit_train_batches=2)
    module = ScriptedModule(scheduler=scheduler, scripted={logged: [1.0, 1.0, 1.0]})
    with pytest.raises(MisconfigurationException, match="the first validation run did not log") as error:
        t.fit(module, data(5), data(1))
    assert f"(logged: {logged}, val_step_loss)" in str(error.value)
    assert t.global_step == 2 and [f.code for f in check.findings] == ["monitor"]


@pytest.mark.filterwarnings(ONECYCLE_PER_EPOCH)
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
    assert "\n  - lr-SGD (OneCycleLR, interval='epoch'): total_steps=15 but the run makes 3" in messages[0]
    assert [f.code for f in check.findings] == ["step-schedule-per-epoch", "onecycle-total-steps"]


def test_max_steps_before_the_end_of_a_schedule_is_fine_if_it_was_built_for_it(tmp_path):
    check = ScheduleCheck(strict=True)
    module = ScriptedModule(scheduler=catalog({"name": "warmup_linear", "warmup": 2}))
    trainer(tmp_path, callbacks=[check], max_steps=7).fit(module, data(5))
    assert check.findings == []


GOOD = [
    ("cosine", catalog({"name": "cosine"}), {}),
    ("cosine-eta_min", catalog({"name": "cosine", "eta_min": 0.001, "warmup": 1}), {"max_epochs": 5}),
    ("step", catalog({"name": "step", "step_size": 1, "gamma": 0.5}), {}),
    ("multistep", catalog({"name": "multistep", "milestones": ["50%"]}), {"max_epochs": 4}),
    ("exponential", catalog({"name": "exponential", "gamma": 0.9}), {}),
    ("onecycle", catalog({"name": "onecycle", "max_lr": 0.1}), {}),
    ("onecycle-accumulate", catalog({"name": "onecycle", "max_lr": 0.1}), {"accumulate_grad_batches": 2}),
    ("cyclic", catalog({"name": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2}), {}),
    ("warmup_cosine", catalog({"name": "warmup_cosine", "warmup": "10%"}), {}),
    ("warmup_cosine-max_steps", catalog({"name": "warmup_cosine", "warmup": 2}), {"max_steps": 12}),
    ("wsd", catalog({"name": "wsd", "warmup": 2, "decay": "20%"}), {}),
    ("inverse_sqrt", catalog({"name": "inverse_sqrt", "warmup": 2}), {}),
    ("warmup_constant", catalog({"name": "warmup_constant", "warmup": "1ep"}), {}),
    (
        "torch-onecycle",
        torch_config(lambda o, t: torch_lr.OneCycleLR(o, 0.1, t.estimated_stepping_batches), interval="step"),
        {},
    ),
    ("torch-cosine", torch_config(lambda o, t: torch_lr.CosineAnnealingLR(o, T_max=t.max_epochs)), {}),
    ("torch-steplr", torch_config(lambda o, t: torch_lr.StepLR(o, step_size=1)), {}),
    ("torch-multistep", torch_config(lambda o, t: torch_lr.MultiStepLR(o, milestones=[1, 2])), {}),
    ("torch-steplr-per-step", torch_config(lambda o, t: torch_lr.StepLR(o, step_size=10), interval="step"), {}),
    ("no-scheduler", None, {}),
    ("per-group", per_group([{"name": "cosine"}, {"name": "warmup_cosine", "warmup": "10%"}]), {}),
    ("per-group-epochs", per_group([{"name": "cosine"}, {"name": "step", "step_size": 1}]), {}),
]


@pytest.mark.parametrize(("scheduler", "trainer_kwargs"), [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
@pytest.mark.parametrize("optimizer", [sgd, adam], ids=["sgd", "adam"])
def test_correct_configurations_say_nothing(tmp_path, scheduler, trainer_kwargs, optimizer):
    check = ScheduleCheck(strict=True)
    t = trainer(tmp_path, callbacks=[check], **trainer_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScheduleWarning)
        t.fit(ScriptedModule(optimizer=optimizer, scheduler=scheduler), data(5))
    assert check.findings == []


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


def _fit_then_resume(tmp_path, first, second):
    check = ScheduleCheck()
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    # The first run stops after 2 of the schedule's 6 epochs, which ScheduleCheck rightly points out.
    with pytest.warns(ScheduleWarning, match="cosine lasts 6 epochs but the run ends after 2"):
        trainer(tmp_path, callbacks=[check, checkpoint], max_epochs=2).fit(ScriptedModule(scheduler=first), data(5))
    resumed = ScheduleCheck()
    t = trainer(tmp_path, callbacks=[resumed, ModelCheckpoint(dirpath=tmp_path, save_last=True)], max_epochs=6)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        t.fit(ScriptedModule(scheduler=second), data(5), ckpt_path=tmp_path / "last.ckpt")
    return resumed, [w for w in record if issubclass(w.category, ScheduleWarning)]


def test_resume_with_a_changed_schedule_is_reported(tmp_path):
    resumed, record = _fit_then_resume(
        tmp_path,
        catalog({"name": "cosine", "T_max": 6}),
        catalog({"name": "cosine", "T_max": 6, "eta_min": 0.001}),
    )
    assert [f.code for f in resumed.findings] == ["changed"]
    assert len(record) == 1
    message = str(record[0].message)
    assert "resumed at step 10 (epoch 2)" in message
    assert "was {'schedule': {'name': 'cosine', 'T_max': 6, 'interval': 'epoch'}" in message
    assert "'eta_min': 0.001" in message


def test_resume_with_the_same_schedule_says_nothing(tmp_path):
    resumed, record = _fit_then_resume(
        tmp_path, catalog({"name": "cosine", "T_max": 6}), catalog({"name": "cosine", "T_max": 6})
    )
    assert resumed.findings == [] and record == []


class PositionRecorder(Callback):
    """The scheduler position every optimizer step uses, and the plan ScheduleCheck makes of the run."""

    def on_train_start(self, trainer, pl_module):
        self.plan = RunPlan.from_trainer(trainer)
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


def test_checks_a_million_step_run():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = get_schedule("warmup_linear", warmup=1000).build(optimizer, total_steps=900_000)

    class Config:
        interval, frequency, name, monitor = "step", 1, None, None

    config = Config()
    config.scheduler = scheduler
    (finding,) = check_schedulers([config], RunPlan(total_steps=1_000_000, batches_per_epoch=10_000))
    assert finding.code == "ends-early"
    assert "ends after 900000 steps but the run lasts 1000000; past its end the LR stays at 0" in finding.message
    # A tail longer than 10^6 positions is sampled, and still described.
    (finding,) = check_schedulers([config], RunPlan(total_steps=3_000_000, batches_per_epoch=10_000))
    assert "ends after 900000 steps but the run lasts 3000000; past its end the LR stays at 0" in finding.message


def test_rejects_bad_arguments():
    with pytest.raises(TypeError, match="strict"):
        ScheduleCheck(strict="yes")
