"""A user's own LightningModule, unchanged: compare reads its optimizer and replaces only its scheduler.

The modules (tests/compare/own_models.py) take no ``scheduler`` argument and build their own
optimizers (SGD with momentum, Nesterov and weight decay; AdamW with a no-decay group, its own LR and
betas) and schedulers of their own. A stacked copy must equal the module's solo run, and both must
train with the module's optimizer settings.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from harness import quiet_trainer
from lightning.pytorch.callbacks import Callback
from test_stack_any import SYNTHETIC_DATA, assert_copies_equal_solo_runs, grid, stacked_and_solo

from lightning_lrsched.compare import compare
from lightning_lrsched.compare.grid import RunSettings, Unstackable, plan_jobs
from lightning_lrsched.compare.stacked import StackedModule
from lightning_lrsched.compare.training import train_stacked
from lightning_lrsched.models import SyntheticDataModule
from lightning_lrsched.module_contract import ModuleContractError, one_optimizer, own_optimizer, schedule_module
from lightning_lrsched.schedules import GroupScheduledLR, get_schedule
from tests.compare.own_models import (
    DropoutClassifier,
    ManualOptimization,
    MomentumClassifier,
    NoOptimizer,
    OwnPlateauClassifier,
    ShrinksAfterEachBatch,
    TwoGroupClassifier,
    TwoOptimizers,
)

ROOT = Path(__file__).resolve().parents[2]


def model(cls: type) -> dict:
    return {"class_path": f"tests.compare.own_models.{cls.__name__}", "init_args": {}}


@pytest.fixture
def importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.chdir(ROOT)


def test_the_modules_own_optimizer_is_read_with_its_scheduler_undone():
    optimizer = own_optimizer(TwoGroupClassifier())
    # The module's LambdaLR warmup set each LR to 0 when it was built: each group is back at its own LR.
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.005]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    assert all(g["betas"] == (0.8, 0.95) and "initial_lr" not in g for g in optimizer.param_groups)


@pytest.mark.parametrize("optimizer_class", [torch.optim.AdamW, torch.optim.SGD])
@pytest.mark.parametrize("scheduler_class", [torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR])
def test_a_momentum_the_modules_own_cycling_scheduler_set_is_undone_too(optimizer_class, scheduler_class):
    # OneCycleLR and CyclicLR set the momentum (Adam's beta1) to their max_momentum when built.
    momentum = {"betas": (0.5, 0.98)} if optimizer_class is torch.optim.AdamW else {"momentum": 0.5}
    optimizer = optimizer_class([torch.nn.Parameter(torch.zeros(2))], lr=0.1, **momentum)
    if scheduler_class is torch.optim.lr_scheduler.OneCycleLR:
        scheduler = scheduler_class(optimizer, max_lr=1.0, total_steps=10)
    else:
        scheduler = scheduler_class(optimizer, base_lr=0.01, max_lr=1.0)
    (group,) = one_optimizer({"optimizer": optimizer, "lr_scheduler": scheduler}, "M.configure_optimizers").param_groups
    assert {key: group[key] for key in momentum} == momentum


SMALL_DATA = {**SYNTHETIC_DATA, "init_args": {"num_samples": 100}}  # 3 batches an epoch: the probe's steps pass one
STREAM_DATA = {"class_path": "tests.compare.stream_data.StreamData", "init_args": {}}


@pytest.mark.parametrize(
    ("cls", "seeds", "data"),
    [
        (MomentumClassifier, (0, 1), SMALL_DATA),
        (OwnPlateauClassifier, (0,), SMALL_DATA),
        (MomentumClassifier, (0,), STREAM_DATA),
    ],
    ids=["seeds", "own-plateau", "no-length"],
)
def test_auto_probes_several_seeds_a_plateau_scheduler_of_its_own_and_data_without_a_length(tmp_path, cls, seeds, data):
    # The probe's copy alone trains as its run would: on its seed's batches (not the seeds' stacked ones), with the
    # grid's schedule (not the module's ReduceLROnPlateau, which fails before a validation). Else it could not
    # run, and auto stacked without knowing whether it pays. Data without a length (an iterable dataset) has no
    # epochs to count the probe's steps in: a schedule in epochs (cosine) failed to learn the probe's length.
    specs = grid(["step", "cosine"], 1, model(cls), data, seeds=seeds)
    (job,) = plan_jobs(specs, "stacked")
    try:
        records = train_stacked(job, RunSettings(output=str(tmp_path), logger="none"), lambda runs: None, decide=True)
        reason = records[0].mode_reason
    except Unstackable as error:
        reason = str(error)
    assert re.match(rf"stacking {2 * len(seeds)} copies (pays|does not pay here): ", reason), reason


def test_stacked_copies_keep_each_group_of_their_own_optimizer():
    torch.manual_seed(0)
    copies = [TwoGroupClassifier() for _ in range(3)]
    for c in copies[1:]:
        c.load_state_dict(copies[0].state_dict())
    module = StackedModule(copies, ["a", "b", "c"], [get_schedule("cosine")] * 3)
    optimizer = module._copies_optimizer()
    assert module.groups == [[0, 1], [2, 3], [4, 5]]
    assert [g["name"] for g in optimizer.param_groups] == ["a/0", "a/1", "b/0", "b/1", "c/0", "c/1"]
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.005] * 3
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0] * 3
    # Each group holds its own copy's parameters (views of the stacked rows), none twice.
    held = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(held) == sorted(id(p) for c in copies for p in c.parameters())


@pytest.mark.parametrize("cls", [MomentumClassifier, TwoGroupClassifier, DropoutClassifier])
def test_a_stacked_copy_of_an_own_module_equals_its_solo_run(cls, tmp_path, one_thread):
    specs = grid(["exponential", "cosine", "cyclic"], 2, model(cls), SYNTHETIC_DATA)
    stacked, solos = stacked_and_solo(specs, tmp_path)
    assert_copies_equal_solo_runs(stacked, solos, 2)
    first = {r.label: r.lr_curve[0][1] for r in solos}
    # The module's own LR is the schedule's base (its own scheduler, a StepLR or a warmup from 0, is gone).
    assert first["exponential"] == (0.2 if cls is not TwoGroupClassifier else 0.01)


def test_the_solo_run_trains_with_the_modules_optimizer_and_the_compared_schedule(tmp_path):
    seen = {}

    class Look(Callback):
        def on_train_start(self, trainer, pl_module):
            seen["optimizer"], (seen["config"],) = trainer.optimizers[0], trainer.lr_scheduler_configs

    module = MomentumClassifier()
    schedule_module(module, get_schedule("cosine"))
    quiet_trainer(tmp_path, Look(), max_epochs=2).fit(module, SyntheticDataModule(num_samples=64, batch_size=16))
    assert seen["optimizer"].defaults["momentum"] == 0.9 and seen["optimizer"].defaults["nesterov"]
    assert seen["optimizer"].param_groups[0]["weight_decay"] == 1e-3
    assert isinstance(seen["config"].scheduler, GroupScheduledLR)  # the module's StepLR was replaced
    assert seen["optimizer"].param_groups[0]["initial_lr"] == 0.2


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (TwoOptimizers, r"returned 2 optimizers \(SGD, Adam\): lrsched schedules one"),
        (ManualOptimization, r"uses manual optimization"),
        (NoOptimizer, r"returned None, which holds no torch optimizer"),
    ],
)
def test_a_module_compare_cannot_use_is_refused_before_anything_trains(cls, message, tmp_path, importable):
    with pytest.raises(ModuleContractError, match=message):
        compare(["step", "cosine"], max_epochs=1, output=tmp_path, logger="none", model=model(cls))
    assert not (tmp_path / "results.jsonl").exists()


def test_dropout_copies_of_several_seeds_train_one_stacked_run_per_seed(tmp_path, one_thread):
    # One random stream cannot be two seeds' streams: each seed's copies stack apart, and still equal their solo runs.
    specs = grid(["exponential", "cosine"], 2, model(DropoutClassifier), SYNTHETIC_DATA, seeds=(0, 1))
    stacked, solos = stacked_and_solo(specs, tmp_path)
    assert [(r.label, r.seed) for r in stacked] == [(s.label, s.seed) for s in specs]
    assert_copies_equal_solo_runs(stacked, solos, 2)


def test_a_module_with_a_hook_of_its_own_is_trained_sequentially_by_auto(tmp_path, importable, capsys):
    # A stacked run calls none of a copy's hooks: stacked, this module trained as MomentumClassifier does (its EMA-like
    # shrink in on_train_batch_end dropped) while its solo runs did not. Auto trains it sequentially and says why.
    cls, hook = ShrinksAfterEachBatch, "on_train_batch_end"
    comparison = compare(["step", "cosine"], max_epochs=1, output=tmp_path, logger="none", model=model(cls))
    assert [(r.mode, r.status) for r in comparison.records] == [("sequential", "ok")] * 2
    (note,) = comparison.notes
    assert note.startswith(
        f"auto → sequential for cpu:1, seed 0: {cls.__name__} overrides `{hook}` (in {cls.__name__})"
    )
    capsys.readouterr()
    with pytest.raises(ValueError, match=rf"mode='stacked': {cls.__name__} overrides `{hook}`"):
        compare(
            ["step", "cosine"], max_epochs=1, output=tmp_path / "s", logger="none", mode="stacked", model=model(cls)
        )
    # Refused before the grid starts: no "stacked → stacked" line, no progress bar, no results.
    assert capsys.readouterr().out == ""
    assert not (tmp_path / "s" / "results.jsonl").exists()


def test_a_module_logging_val_loss_without_sync_dist_reports_the_whole_validation_set_on_two_processes(
    tmp_path, importable
):
    # Lightning's default: each rank logs the loss of its own half of the validation set. A run on cpu:2 recorded
    # rank zero's half (0.373 where cpu:1 and the stacked run saw 0.337) and the cross-device check failed.
    comparison = compare(
        ["step"], ["cpu:1", "cpu:2"], max_epochs=1, output=tmp_path, logger="none", mode="sequential",
        model=model(MomentumClassifier),
    )  # fmt: skip
    one, two = comparison.records
    assert (one.device, two.device) == ("cpu:1", "cpu:2")
    assert abs(one.best_val_loss - two.best_val_loss) <= 1e-5 * one.best_val_loss
    assert comparison.succeeded and all(check.passed for check in comparison.checks)


def test_copies_of_several_seeds_whose_data_has_no_length_are_not_stacked(tmp_path):
    # The seeds' batches are served side by side by counting them: a loader without a length failed the job with
    # a TypeError (no fallback in auto). Unstackable: auto trains the runs one after the other.
    (job,) = plan_jobs(grid(["step", "cosine"], 1, model(MomentumClassifier), STREAM_DATA, seeds=(0, 1)), "stacked")
    with pytest.raises(Unstackable, match=r"^the seeds' (train|val) loaders have no length"):
        train_stacked(job, RunSettings(output=str(tmp_path), logger="none"), lambda runs: None)
