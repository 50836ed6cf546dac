"""Lightning's own LearningRateMonitor tests, retargeted at LRLogger.

Ported from Lightning 2.6's ``tests/tests_pytorch/callbacks/test_lr_monitor.py`` (Apache-2.0), one
test per original test, with the same models (``BoringModel`` variants), optimizers, schedulers
and constructor arguments, and fits cut to a few steps. LearningRateMonitor keeps what it logged
in ``lrs`` / ``last_momentum_values``; LRLogger keeps no unbounded per-key lists, so these tests
read what a real ``CSVLogger`` received instead, which is what a user sees.

Where LRLogger differs on purpose, the test says ``Intended difference`` and checks LRLogger's
behaviour; the README lists these differences with their reasons. Tests marked ``Added`` check
acceptance points of issue 10 that Lightning's file does not cover.
"""

from __future__ import annotations

import csv
import warnings
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.callbacks.callback import Callback
from lightning.pytorch.callbacks.finetuning import BackboneFinetuning
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import optim

from lightning_lrsched import LRLogger

# The original tests run fewer batches than Lightning's default logging interval, on purpose.
pytestmark = pytest.mark.usefixtures("one_thread")

EXTRA_SUFFIXES = ("-momentum", "-weight_decay", "-beta2", "-planned")


def fit(tmp_path, model, lr_logger, **kwargs) -> Trainer:
    """Lightning's test Trainer (CSVLogger in ``tmp_path``), quiet, with ``kwargs`` overriding."""
    options = {
        "default_root_dir": tmp_path,
        "max_epochs": 2,
        "limit_train_batches": 3,
        "limit_val_batches": 1,
        "callbacks": [lr_logger],
        "logger": CSVLogger(tmp_path),
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
    }
    options.update(kwargs)
    trainer = Trainer(**options)
    trainer.fit(model)
    return trainer


def logged(trainer: Trainer) -> dict[str, list[tuple[int, float]]]:
    """``key -> [(step, value), ...]`` in the order the CSVLogger received them."""
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with (Path(trainer.logger.log_dir) / "metrics.csv").open() as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key not in ("step", "epoch") and value != "":
                    out[key].append((int(row["step"]), float(value)))
    return dict(out)


def values(series: dict[str, list[tuple[int, float]]], key: str) -> list[float]:
    return [value for _, value in series[key]]


def lr_keys(series: dict[str, list[tuple[int, float]]]) -> list[str]:
    """The LR keys (LearningRateMonitor's ``lrs``), in the order they first appear."""
    return [key for key in series if key.startswith("lr-") and not key.endswith(EXTRA_SUFFIXES)]


def test_lr_monitor_single_lr(tmp_path):
    """The LR of a single scheduler is logged under ``lr-SGD``."""
    trainer = fit(tmp_path, BoringModel(), LRLogger(log_momentum=False, log_weight_decay=False))
    series = logged(trainer)
    assert lr_keys(series) == ["lr-SGD"]
    assert len(trainer.lr_scheduler_configs) == 1
    assert not [key for key in series if key.endswith(("-momentum", "-weight_decay"))]


def test_lr_monitor_single_lr_logs_momentum_and_weight_decay_by_default(tmp_path):
    """Intended difference: momentum and weight decay are on by default (LearningRateMonitor: off)."""
    series = logged(fit(tmp_path, BoringModel(), LRLogger()))
    assert lr_keys(series) == ["lr-SGD"]
    assert values(series, "lr-SGD-momentum") == [0.0] * len(series["lr-SGD"])
    assert values(series, "lr-SGD-weight_decay") == [0.0] * len(series["lr-SGD"])


@pytest.mark.parametrize("opt", ["SGD", "Adam"])
def test_lr_monitor_single_lr_with_momentum(tmp_path, opt: str):
    """LR, momentum and weight decay of a single scheduler, every step."""

    class LogMomentumModel(BoringModel):
        def configure_optimizers(self):
            opt_kwargs = {"momentum": 0.9} if opt == "SGD" else {"betas": (0.9, 0.999)}
            optimizer = getattr(optim, opt)(self.parameters(), lr=1e-2, **opt_kwargs)
            lr_scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=10_000)
            return [optimizer], [lr_scheduler]

    lr_logger = LRLogger(log_momentum=True, log_weight_decay=True)
    trainer = fit(tmp_path, LogMomentumModel(), lr_logger, limit_train_batches=5, log_every_n_steps=1)
    series = logged(trainer)
    assert lr_keys(series) == [f"lr-{opt}"]
    momentum = values(series, f"lr-{opt}-momentum")
    # The scheduler steps per epoch (Lightning's default interval), so it is logged per epoch.
    assert len(momentum) == trainer.max_epochs == 2
    assert momentum[1] < momentum[0]  # Added: OneCycleLR moves the momentum (Adam's beta1) and it shows
    assert values(series, f"lr-{opt}-weight_decay") == [0.0] * 2
    # Added: Adam's second beta, which LearningRateMonitor does not log.
    assert (f"lr-{opt}-beta2" in series) == (opt == "Adam")
    if opt == "Adam":
        assert set(values(series, "lr-Adam-beta2")) == {0.999}


@pytest.mark.parametrize("with_scheduler", [True, False])
def test_log_momentum_no_momentum_optimizer(tmp_path, with_scheduler: bool):
    """Intended difference: an optimizer without momentum gets no momentum key and no warning.

    LearningRateMonitor warns "optimizers do not have momentum" and logs 0, a value the optimizer
    does not have. Covers ``test_log_momentum_no_momentum_optimizer`` and its ``_no_lr_scheduler`` twin.
    """

    class LogMomentumModel(BoringModel):
        def configure_optimizers(self):
            optimizer = optim.ASGD(self.parameters(), lr=1e-2)
            if not with_scheduler:
                return [optimizer]
            return [optimizer], [optim.lr_scheduler.StepLR(optimizer, step_size=1)]

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*momentum.*")
        trainer = fit(tmp_path, LogMomentumModel(), LRLogger(log_momentum=True), max_epochs=1, limit_train_batches=5)
    series = logged(trainer)
    assert lr_keys(series) == ["lr-ASGD"]
    assert "lr-ASGD-momentum" not in series
    assert "lr-ASGD-weight_decay" in series


def test_lr_monitor_no_lr_scheduler_single_lr(tmp_path):
    """An optimizer without a scheduler is logged under ``lr-SGD``."""

    class CustomBoringModel(BoringModel):
        def configure_optimizers(self):
            return optim.SGD(self.parameters(), lr=0.1)

    series = logged(fit(tmp_path, CustomBoringModel(), LRLogger()))
    assert lr_keys(series) == ["lr-SGD"]
    assert set(values(series, "lr-SGD")) == {0.1}


@pytest.mark.parametrize("opt", ["SGD", "Adam"])
def test_lr_monitor_no_lr_scheduler_single_lr_with_momentum(tmp_path, opt: str):
    """Momentum of an optimizer without a scheduler."""

    class LogMomentumModel(BoringModel):
        def configure_optimizers(self):
            opt_kwargs = {"momentum": 0.9} if opt == "SGD" else {"betas": (0.9, 0.999)}
            return [getattr(optim, opt)(self.parameters(), lr=1e-2, **opt_kwargs)]

    trainer = fit(tmp_path, LogMomentumModel(), LRLogger(log_momentum=True), log_every_n_steps=1)
    series = logged(trainer)
    assert lr_keys(series) == [f"lr-{opt}"]
    assert values(series, f"lr-{opt}-momentum") == [0.9] * trainer.global_step


def test_lr_monitor_no_logger(tmp_path):
    """Intended difference: without a logger LRLogger keeps its history instead of raising.

    LearningRateMonitor raises "Cannot use `LearningRateMonitor` callback with `Trainer` that has no
    logger"; LRLogger's history (and ``write_csv``) is for exactly that case.
    """
    lr_logger = LRLogger()
    trainer = fit(tmp_path, BoringModel(), lr_logger, logger=False, max_epochs=1)
    # Changed (issue 20): the history has a row per step, not per logged row (the loggers' cadence).
    assert [step for step, row in lr_logger.history if "lr-SGD" in row] == list(range(trainer.global_step))
    assert trainer.callback_metrics["lr-SGD"] == 0.1


class TwoOptimizers(BoringModel):
    """Manual optimization of two Adam optimizers, each stepped once per batch."""

    def __init__(self, schedulers: bool) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.schedulers = schedulers

    def training_step(self, batch, batch_idx):
        for opt in self.optimizers():
            loss = self.loss(self.step(batch))
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()

    def on_train_epoch_end(self):
        if self.schedulers:
            for scheduler in self.lr_schedulers():
                scheduler.step()

    def configure_optimizers(self):
        optimizer1 = optim.Adam(self.parameters(), lr=1e-2)
        optimizer2 = optim.Adam(self.parameters(), lr=1e-2)
        if not self.schedulers:
            return [optimizer1, optimizer2]
        lr_scheduler1 = optim.lr_scheduler.StepLR(optimizer1, 1, gamma=0.1)
        lr_scheduler2 = optim.lr_scheduler.StepLR(optimizer2, 1, gamma=0.1)
        return [optimizer1, optimizer2], [lr_scheduler1, lr_scheduler2]


class NamedAndUnnamed(TwoOptimizers):
    """Two SGD optimizers: the first scheduler config named, the second not."""

    def __init__(self) -> None:
        super().__init__(schedulers=True)

    def configure_optimizers(self):
        optimizers = [optim.SGD(self.parameters(), lr=0.1), optim.SGD(self.parameters(), lr=0.1)]
        schedulers = [optim.lr_scheduler.StepLR(opt, 1, gamma=0.5) for opt in optimizers]
        return optimizers, [{"scheduler": schedulers[0], "name": "custom"}, schedulers[1]]


def test_a_named_scheduler_config_does_not_count_toward_the_optimizer_suffix(tmp_path):
    """Added: LearningRateMonitor counts only unnamed configs for ``-1``, ``-2``: the unnamed one is ``lr-SGD``."""
    monitor, lr_logger = LearningRateMonitor(), LRLogger(log_momentum=False, log_weight_decay=False)
    fit(tmp_path, NamedAndUnnamed(), None, callbacks=[monitor, lr_logger], max_epochs=1, limit_train_batches=2)
    ours = list(dict.fromkeys(key for _, row in lr_logger.history for key in row if not key.endswith(EXTRA_SUFFIXES)))
    assert ours == list(monitor.lrs) == ["custom", "lr-SGD"]


@pytest.mark.parametrize("schedulers", [True, False], ids=["multi_lrs", "no_lr_scheduler_multi_lrs"])
@pytest.mark.parametrize("logging_interval", ["step", "epoch"])
def test_lr_monitor_multi_lrs(tmp_path, logging_interval: str, schedulers: bool):
    """Two optimizers under manual optimization, with and without schedulers.

    Covers ``test_lr_monitor_multi_lrs`` and ``test_lr_monitor_no_lr_scheduler_multi_lrs``; Added: the
    steps are LearningRateMonitor's (a step counts training batches, not optimizer steps).
    """
    log_every_n_steps = 2
    trainer = fit(
        tmp_path,
        TwoOptimizers(schedulers),
        LRLogger(logging_interval=logging_interval),
        log_every_n_steps=log_every_n_steps,
        limit_train_batches=7,
    )
    series = logged(trainer)
    assert lr_keys(series) == ["lr-Adam", "lr-Adam-1"], "Names of learning rates not set correctly"
    if logging_interval == "step":
        # divide by 2 because we have 2 optimizers
        expected_number_logged = trainer.global_step // 2 // log_every_n_steps
        expected_steps = [1, 3, 5, 7, 9, 11, 13]
    else:
        expected_number_logged = trainer.max_epochs
        expected_steps = [0, 7]
    assert expected_number_logged == len(expected_steps)
    for key in ("lr-Adam", "lr-Adam-1"):
        assert [step for step, _ in series[key]] == expected_steps
    if schedulers and logging_interval == "epoch":
        assert values(series, "lr-Adam") == pytest.approx([1e-2, 1e-3])


def test_lr_monitor_param_groups(tmp_path):
    """Two param groups under one scheduler: ``/pg1``, ``/pg2``.

    The original uses Lightning's test-only ClassificationModel; any two param groups do.
    """

    class CustomBoringModel(BoringModel):
        def configure_optimizers(self):
            param_groups = [{"params": [self.layer.weight], "lr": 1e-3}, {"params": [self.layer.bias], "lr": 1e-2}]
            optimizer = optim.Adam(param_groups)
            return [optimizer], [optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.1)]

    series = logged(fit(tmp_path, CustomBoringModel(), LRLogger()))
    assert lr_keys(series) == ["lr-Adam/pg1", "lr-Adam/pg2"], "Names of learning rates not set correctly"
    assert values(series, "lr-Adam/pg2") == pytest.approx([1e-2, 1e-3])


def test_lr_monitor_custom_name(tmp_path):
    """A scheduler config's ``name`` is the key."""

    class TestModel(BoringModel):
        def configure_optimizers(self):
            optimizer, [scheduler] = super().configure_optimizers()
            return optimizer, [{"scheduler": scheduler, "name": "my_logging_name"}]

    series = logged(fit(tmp_path, TestModel(), LRLogger()))
    assert lr_keys(series) == []  # the name is used as is, without the "lr-" prefix
    assert "my_logging_name" in series and "my_logging_name-momentum" in series


def test_lr_monitor_custom_pg_name(tmp_path):
    """A param group's ``name`` is the key's suffix."""

    class TestModel(BoringModel):
        def configure_optimizers(self):
            optimizer = torch.optim.SGD([{"params": list(self.layer.parameters()), "name": "linear"}], lr=0.1)
            return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)]

    series = logged(fit(tmp_path, TestModel(), LRLogger(), limit_train_batches=2))
    assert lr_keys(series) == ["lr-SGD/linear"]


class TwoLinear(BoringModel):
    """BoringModel with two linear layers, for two param groups."""

    def __init__(self) -> None:
        super().__init__()
        self.linear_a = torch.nn.Linear(32, 16)
        self.linear_b = torch.nn.Linear(16, 2)

    def forward(self, x):
        return self.linear_b(self.linear_a(x))


def test_lr_monitor_duplicate_custom_pg_names(tmp_path):
    """Two param groups with one name are refused, with LearningRateMonitor's exception and message."""

    class TestModel(TwoLinear):
        def configure_optimizers(self):
            param_groups = [
                {"params": list(self.linear_a.parameters()), "name": "linear"},
                {"params": list(self.linear_b.parameters()), "name": "linear"},
            ]
            optimizer = torch.optim.SGD(param_groups, lr=0.1)
            return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)]

    with pytest.raises(
        MisconfigurationException, match="A single `Optimizer` cannot have multiple parameter groups with identical"
    ):
        fit(tmp_path, TestModel(), LRLogger(), limit_train_batches=2)


def test_multiple_optimizers_basefinetuning(tmp_path):
    """Groups added by a BaseFinetuning callback get their keys from the step they appear; nothing twice.

    LearningRateMonitor renames its stored history (``lr-SGD`` becomes ``lr-SGD/pg1``) and its
    test checks those lists; a logger never sees a renamed past, so here the epoch before the
    second group appeared is under ``lr-SGD``, and ``lr-SGD/pg1`` starts at the step it appears.
    """

    class TestModel(BoringModel):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
            self.backbone = torch.nn.Sequential(
                torch.nn.Linear(32, 32), torch.nn.Linear(32, 32), torch.nn.Linear(32, 32), torch.nn.ReLU(True)
            )
            self.layer = torch.nn.Linear(32, 2)

        def training_step(self, batch, batch_idx):
            for opt in self.optimizers():
                loss = self.step(batch)
                self.manual_backward(loss)
                opt.step()
                opt.zero_grad()

        def on_train_epoch_end(self) -> None:
            lr_sched1, lr_sched2 = self.lr_schedulers()
            lr_sched1.step()
            lr_sched2.step()

        def forward(self, x):
            return self.layer(self.backbone(x))

        def configure_optimizers(self):
            parameters = list(filter(lambda p: p.requires_grad, self.parameters()))
            opt = optim.SGD(parameters, lr=0.1)
            opt_2 = optim.Adam(parameters, lr=0.1)
            opt_3 = optim.AdamW(parameters, lr=0.1)
            schedulers = [
                optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
                optim.lr_scheduler.StepLR(opt_2, step_size=1, gamma=0.5),
            ]
            return [opt, opt_2, opt_3], schedulers

    class Check(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            num_param_groups = sum(len(opt.param_groups) for opt in trainer.optimizers)
            assert num_param_groups == 3 + min(trainer.current_epoch, 3)

    class TestFinetuning(BackboneFinetuning):
        def freeze_before_training(self, pl_module):
            self.freeze(pl_module.backbone[0])
            self.freeze(pl_module.backbone[1])
            self.freeze(pl_module.layer)

        def finetune_function(self, pl_module, epoch: int, optimizer):
            if epoch == 1 and isinstance(optimizer, torch.optim.SGD):
                self.unfreeze_and_add_param_group(pl_module.backbone[0], optimizer, lr=0.1)
            # `type(...) is`: AdamW subclasses Adam in recent torch, and the test means Adam alone.
            if epoch == 2 and type(optimizer) is torch.optim.Adam:
                self.unfreeze_and_add_param_group(pl_module.layer, optimizer, lr=0.1)
            if epoch == 3 and type(optimizer) is torch.optim.Adam:
                assert len(optimizer.param_groups) == 2
                self.unfreeze_and_add_param_group(pl_module.backbone[1], optimizer, lr=0.1)
                assert len(optimizer.param_groups) == 3

    trainer = fit(
        tmp_path,
        TestModel(),
        LRLogger(),
        max_epochs=5,
        limit_val_batches=0,
        limit_train_batches=2,
        callbacks=[TestFinetuning(), LRLogger(), Check()],
    )
    series = logged(trainer)
    # Each epoch is logged once, at its first step (2 batches per epoch): LearningRateMonitor's steps.
    expected = {
        "lr-AdamW": [(0, 0.1), (2, 0.1), (4, 0.1), (6, 0.1), (8, 0.1)],
        "lr-SGD": [(0, 0.1)],
        "lr-SGD/pg1": [(2, 0.05), (4, 0.025), (6, 0.0125), (8, 0.00625)],
        "lr-SGD/pg2": [(2, 0.1), (4, 0.05), (6, 0.025), (8, 0.0125)],
        "lr-Adam": [(0, 0.1), (2, 0.05)],
        "lr-Adam/pg1": [(4, 0.025), (6, 0.0125), (8, 0.00625)],
        "lr-Adam/pg2": [(4, 0.1), (6, 0.05), (8, 0.025)],
        "lr-Adam/pg3": [(6, 0.1), (8, 0.05)],
    }
    assert {key: series[key] for key in lr_keys(series)} == expected


def test_lr_monitor_multiple_param_groups_no_lr_scheduler(tmp_path):
    """Keys and values of LR, momentum (Adam's beta1) and weight decay for two groups, no scheduler."""

    class TestModel(TwoLinear):
        def __init__(self, lr, momentum):
            super().__init__()
            self.save_hyperparameters()

        def configure_optimizers(self):
            param_groups = [
                {"params": list(self.linear_a.parameters()), "weight_decay": 0.1},
                {"params": list(self.linear_b.parameters()), "weight_decay": 0.1},
            ]
            return torch.optim.Adam(param_groups, lr=self.hparams.lr, betas=self.hparams.momentum)

    lr, momentum, weight_decay = 1e-2, 0.7, 0.1
    lr_logger = LRLogger(log_momentum=True, log_weight_decay=True)
    trainer = fit(tmp_path, TestModel(lr=lr, momentum=(momentum, 0.999)), lr_logger, limit_train_batches=2)
    series = logged(trainer)
    assert len(lr_keys(series)) == len(trainer.optimizers[0].param_groups)
    assert lr_keys(series) == ["lr-Adam/pg1", "lr-Adam/pg2"]
    for group in ("pg1", "pg2"):
        assert set(values(series, f"lr-Adam/{group}")) == {lr}
        assert set(values(series, f"lr-Adam/{group}-momentum")) == {momentum}
        assert set(values(series, f"lr-Adam/{group}-weight_decay")) == {weight_decay}


def test_lr_monitor_update_callback_metrics(tmp_path):
    """The logged LR is in ``trainer.callback_metrics``: EarlyStopping can stop on it."""

    class TestModel(BoringModel):
        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.layer.parameters(), lr=0.1)
            lr_scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
            return [optimizer], [lr_scheduler]

    monitor_key = "lr-SGD"
    stop_threshold = 0.02
    expected_stop_epoch = 3
    lr_es = EarlyStopping(
        monitor=monitor_key, mode="min", stopping_threshold=stop_threshold, check_on_train_epoch_end=True
    )
    trainer = fit(
        tmp_path,
        TestModel(),
        None,
        callbacks=[LRLogger(), lr_es],
        max_epochs=5,
        limit_val_batches=0,
        limit_train_batches=2,
    )
    lrs = values(logged(trainer), monitor_key)
    assert monitor_key in trainer.callback_metrics
    assert lrs == [0.1, 0.05, 0.025, 0.0125]
    assert min(lrs[:expected_stop_epoch]) > stop_threshold
    assert len(lrs[expected_stop_epoch:]) == 1
    assert min(lrs[expected_stop_epoch:]) < stop_threshold
    assert trainer.current_epoch - 1 == expected_stop_epoch
    assert lr_es.stopped_epoch == expected_stop_epoch


def test_checkpoint_on_the_lr(tmp_path):
    """Added: ModelCheckpoint can keep the checkpoint with the highest LR (the first epoch's)."""
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="lr-SGD", mode="max", save_top_k=1)
    callbacks = [LRLogger(), checkpoint]
    fit(
        tmp_path, BoringModel(), None, callbacks=callbacks, limit_val_batches=0, max_epochs=3, enable_checkpointing=True
    )
    assert checkpoint.best_model_score == pytest.approx(0.1)
    assert Path(checkpoint.best_model_path).name.startswith("epoch=0-")


def test_float64_lrs_are_logged_exactly(tmp_path):
    """Added: an LR that float32 cannot hold reaches loggers and callback_metrics unrounded."""
    lr = 1 / 3
    assert float(torch.tensor(lr, dtype=torch.float32)) != lr  # else the test would prove nothing

    class TestModel(BoringModel):
        def configure_optimizers(self):
            # One float LR and one float64-tensor LR (torch accepts both).
            param_groups = [
                {"params": [self.layer.weight]},
                {"params": [self.layer.bias], "lr": torch.tensor(lr / 3, dtype=torch.float64)},
            ]
            return torch.optim.SGD(param_groups, lr=lr)

    trainer = fit(tmp_path, TestModel(), LRLogger(), max_epochs=1, limit_train_batches=2, limit_val_batches=0)
    series = logged(trainer)
    assert set(values(series, "lr-SGD/pg1")) == {lr}
    assert set(values(series, "lr-SGD/pg2")) == {lr / 3}
    metric = trainer.callback_metrics["lr-SGD/pg1"]
    assert metric.dtype == torch.float64 and metric.item() == lr
    assert trainer.callback_metrics["lr-SGD/pg2"].item() == lr / 3
