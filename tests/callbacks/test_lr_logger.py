"""LRLogger: LearningRateMonitor's keys and values, plus the planned LR, in real Trainer runs."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
import torch
from callback_helpers import (
    RecordingLogger,
    ScriptedModule,
    adam,
    catalog,
    data,
    per_group,
    sgd,
    trainer,
)
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint

from lightning_lrsched import LRLogger
from lightning_lrsched.callbacks.lr_logger import monitor_names

pytestmark = pytest.mark.usefixtures("one_thread")

EXTRA = ("-planned", "-beta2")


def _lr_series(logger: RecordingLogger) -> dict[tuple[str, int], float]:
    """LRLogger's calls, without the keys LearningRateMonitor does not have."""
    return {k: v for k, v in logger.series().items() if k[0] != "epoch" and not k[0].endswith(EXTRA)}


class TaggedMonitor(LearningRateMonitor):
    """LearningRateMonitor whose logger calls are tagged "monitor", to tell them from LRLogger's."""

    def _tagged(self, hook, trainer, *args, **kwargs):
        for logger in trainer.loggers:
            logger.source = "monitor"
        try:
            hook(trainer, *args, **kwargs)
        finally:
            for logger in trainer.loggers:
                logger.source = None

    def on_train_batch_start(self, trainer, *args, **kwargs):
        self._tagged(super().on_train_batch_start, trainer, *args, **kwargs)

    def on_train_epoch_start(self, trainer, *args, **kwargs):
        self._tagged(super().on_train_epoch_start, trainer, *args, **kwargs)


def _torch_step(optimizer, trainer):
    return {"scheduler": torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5), "name": "my-step"}


CASES = {
    "step-sgd": (sgd, catalog({"name": "step", "step_size": 1, "gamma": 0.5})),
    "onecycle-adam": (adam, catalog({"name": "onecycle", "max_lr": [0.05, 0.02]})),
    "warmup_cosine-sgd": (sgd, catalog({"name": "warmup_cosine", "warmup": 4, "min_lr_ratio": 0.1})),
    "warmup_cosine-adam": (adam, catalog({"name": "warmup_cosine", "warmup": "20%"})),
    "cyclic-sgd": (sgd, catalog({"name": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 3})),
    "per-group-step+warmup_cosine-sgd": (
        sgd,
        per_group([{"name": "step", "step_size": 1, "gamma": 0.5}, {"name": "warmup_cosine", "warmup": 3}]),
    ),
    "torch-steplr-named": (sgd, _torch_step),
    "no-scheduler-adam": (adam, None),
}


def _fit(tmp_path, optimizer, scheduler, callbacks, accumulate=1, every_n=1, **kwargs):
    logger = RecordingLogger()
    module = ScriptedModule(optimizer=optimizer, scheduler=scheduler, **kwargs)
    t = trainer(
        tmp_path, logger=logger, callbacks=callbacks, accumulate_grad_batches=accumulate, log_every_n_steps=every_n
    )
    t.fit(module, data(5))
    return logger, t


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("interval", [None, "step"])
def test_logs_what_learning_rate_monitor_logs(tmp_path, case, interval):
    optimizer, scheduler = CASES[case]
    ours = LRLogger(logging_interval=interval)
    monitor = TaggedMonitor(logging_interval=interval, log_momentum=True, log_weight_decay=True)
    logger, _ = _fit(tmp_path, optimizer, scheduler, [monitor, ours])

    theirs = logger.series("monitor")
    mine = _lr_series(logger)
    assert theirs, "LearningRateMonitor logged nothing: the comparison would be empty"
    assert mine == theirs
    assert ours.mismatches == 0


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][1] is not None and "torch" not in c])
def test_planned_series_matches_actual(tmp_path, case):
    optimizer, scheduler = CASES[case]
    ours = LRLogger(logging_interval="step")
    logger, t = _fit(tmp_path, optimizer, scheduler, [ours])
    series = logger.series()
    planned = {(k[: -len("-planned")], s): v for (k, s), v in series.items() if k.endswith("-planned")}
    actual = {(k, s): v for (k, s), v in series.items() if (k, s) in planned}
    assert len(planned) == 2 * t.global_step  # two param groups, every step
    assert actual == planned
    assert ours.mismatches == 0


class ManualTwoOptimizers(ScriptedModule):
    """Manual optimization: an SGD and an Adam optimizer, each stepped once per batch."""

    def __init__(self, schedulers: bool) -> None:
        super().__init__(groups=1)
        self.automatic_optimization = False
        self.with_schedulers = schedulers

    def training_step(self, batch, batch_idx):
        x, y = batch
        for opt in self.optimizers():
            loss = torch.nn.functional.cross_entropy(self.layer(x), y)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
        if self.with_schedulers:
            self.lr_schedulers()[0].step()  # the per-step one

    def on_train_epoch_end(self):
        if self.with_schedulers:
            self.lr_schedulers()[1].step()

    def configure_optimizers(self):
        first, second = sgd(list(self.parameters())), adam(list(self.parameters()))
        if not self.with_schedulers:
            return [first, second]
        per_step = {"scheduler": torch.optim.lr_scheduler.ExponentialLR(first, 0.9), "interval": "step"}
        return [first, second], [per_step, torch.optim.lr_scheduler.StepLR(second, 1, gamma=0.5)]


# LearningRateMonitor's warning when SGD (no betas) sits beside Adam (no momentum).
@pytest.mark.filterwarnings("ignore:You have set log_momentum=True, but some optimizers do not have momentum")
@pytest.mark.parametrize("schedulers", [True, False])
@pytest.mark.parametrize("interval", [None, "step", "epoch"])
def test_manual_optimization_logs_at_the_monitors_steps(tmp_path, interval, schedulers):
    # A step counts training batches, not optimizer steps: two optimizers step twice per batch.
    ours = LRLogger(logging_interval=interval)
    monitor = TaggedMonitor(logging_interval=interval, log_momentum=True, log_weight_decay=True)
    logger = RecordingLogger()
    t = trainer(tmp_path, logger=logger, callbacks=[monitor, ours], log_every_n_steps=2)
    t.fit(ManualTwoOptimizers(schedulers), data(5))
    theirs = logger.series("monitor")
    mine = _lr_series(logger)
    assert t.global_step == 30 and {step for _, step in mine} <= set(range(15))
    assert theirs and mine == theirs
    # One row per batch, whatever the number of optimizers: no (key, step) is logged twice.
    our_calls = [(metrics, step) for source, metrics, step in logger.calls if source is None and "epoch" not in metrics]
    assert len({step for _, step in our_calls}) == len(our_calls)


def test_group_names_and_accumulation_follow_the_monitor(tmp_path):
    monitor = TaggedMonitor(log_momentum=True, log_weight_decay=True)
    ours = LRLogger()
    logger, t = _fit(
        tmp_path,
        sgd,
        catalog({"name": "warmup_linear", "warmup": 3}),
        [monitor, ours],
        accumulate=2,
        every_n=2,
        group_names=("weights", "bias"),
    )
    theirs = logger.series("monitor")
    mine = _lr_series(logger)
    assert ("lr-warmup_linear/weights", 1) in mine
    assert mine == theirs
    assert t.global_step == 9  # 3 epochs of ceil(5 / 2) steps


def test_names_follow_learning_rate_monitor_rules():
    def opt(cls, groups=1, names=None, **kw):
        params = [{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(groups)]
        for p, n in zip(params, names or (), strict=False):
            p["name"] = n
        return cls(params, lr=0.1, **kw)

    class Config:
        def __init__(self, scheduler, name=None):
            self.scheduler, self.name, self.interval = scheduler, name, "epoch"

    a, b, c, d = (
        opt(torch.optim.SGD),
        opt(torch.optim.SGD, 2),
        opt(torch.optim.Adam, 2, ["enc", "dec"]),
        opt(torch.optim.SGD),
    )
    configs = [
        Config(torch.optim.lr_scheduler.StepLR(a, 1)),
        Config(torch.optim.lr_scheduler.StepLR(b, 1)),
        Config(torch.optim.lr_scheduler.StepLR(c, 1), name="named"),
    ]
    names = [n for _, _, n in monitor_names([a, b, c, d], configs)]
    # Duplicate group names are refused: test_lr_monitor_port.py::test_lr_monitor_duplicate_custom_pg_names.
    assert names == [["lr-SGD"], ["lr-SGD-1/pg1", "lr-SGD-1/pg2"], ["named/enc", "named/dec"], ["lr-SGD-2"]]


class Meddler(Callback):
    """Sets every LR to 0.5 at one step, behind the scheduler's back."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at:
            for group in trainer.optimizers[0].param_groups:
                group["lr"] = 0.5


def test_mismatch_is_counted_and_warned_once(tmp_path):
    ours = LRLogger(logging_interval="step")
    # A per-step schedule rewrites the LR at the next step, so exactly the two meddled steps differ.
    with pytest.warns(RuntimeWarning, match="at step 4 the LR of 'lr-warmup_cosine/pg1' was 0.5") as record:
        logger, _ = _fit(tmp_path, sgd, catalog({"name": "warmup_cosine", "warmup": 2}), [Meddler(4), Meddler(9), ours])
    assert ours.mismatches == 2
    assert sum("LRLogger" in str(w.message) for w in record) == 1
    series = logger.series()
    assert series[("lr-warmup_cosine/pg1", 4)] == 0.5
    assert series[("lr-warmup_cosine/pg1-planned", 4)] != 0.5


def test_epoch_schedule_mismatch_lasts_until_the_scheduler_steps(tmp_path):
    ours = LRLogger()
    with pytest.warns(RuntimeWarning, match="LRLogger"):
        _fit(tmp_path, sgd, catalog({"name": "step", "step_size": 1, "gamma": 0.5}), [Meddler(6), ours])
    assert ours.mismatches == 4  # steps 6..9: the rest of epoch 1 (5 steps per epoch)


def test_without_logger_keeps_a_bounded_history_and_writes_csv(tmp_path):
    ours = LRLogger(logging_interval="step", history_size=4)
    t = trainer(tmp_path, callbacks=[ours])
    t.fit(ScriptedModule(scheduler=catalog({"name": "cosine"}), groups=1), data(5))
    assert [step for step, _ in ours.history] == [11, 12, 13, 14]
    out = ours.write_csv(tmp_path / "lr.csv")
    rows = list(csv.DictReader(out.open()))
    assert [int(r["step"]) for r in rows] == [11, 12, 13, 14]
    assert float(rows[-1]["lr-cosine"]) == pytest.approx(float(rows[-1]["lr-cosine-planned"]))
    assert {"lr-cosine-momentum", "lr-cosine-weight_decay"} <= set(rows[0])


def test_logs_the_figure_to_loggers_that_take_images(tmp_path):
    logger, t = _fit(tmp_path, sgd, catalog({"name": "warmup_cosine", "warmup": 3}), [LRLogger()])
    assert len(logger.images) == 1
    key, images, step = logger.images[0]
    assert key == "lr-schedule" and step == t.global_step
    (image,) = images
    assert isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert image.min() < 255  # something was drawn


def test_figure_can_be_turned_off(tmp_path):
    logger, _ = _fit(tmp_path, sgd, None, [LRLogger(log_figure=False)])
    assert logger.images == []


def test_plateau_schedule_logs_the_reduced_lr_from_the_step_it_applies(tmp_path):
    # The plateau schedule lowers the LR in an optimizer pre-hook at the first step after the
    # validation that ends a plateau; LRLogger reads the LR after it, so it logs what the step used.
    values = [1.0, 1.0, 1.0, 1.0]
    ours = LRLogger()
    module = ScriptedModule(
        scheduler=catalog({"name": "plateau", "patience": 0, "factor": 0.5}), groups=1, scripted={"val_loss": values}
    )
    t = trainer(tmp_path, callbacks=[ours], max_epochs=4)
    t.fit(module, data(5), data(1))

    reference_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(reference_opt, patience=0, factor=0.5)
    expected = [0.1]
    for v in values[:-1]:
        reference.step(v)
        expected.append(reference_opt.param_groups[0]["lr"])
    # The history has every step (5 per epoch); each epoch's steps have the LR its first step used.
    assert [step for step, _ in ours.history] == list(range(20))
    logged = [row["lr-plateau"] for _, row in ours.history]
    assert logged == pytest.approx([lr for lr in expected for _ in range(5)])
    assert ours.mismatches == 0


def test_two_loggers_with_different_settings_live_side_by_side(tmp_path):
    step, epoch = LRLogger(logging_interval="step"), LRLogger(logging_interval="epoch")
    assert step.state_key != epoch.state_key
    trainer(tmp_path, callbacks=[step, epoch])  # Lightning refuses stateful callbacks sharing a state_key
    with pytest.raises(RuntimeError, match="state_key"):
        trainer(tmp_path, callbacks=[LRLogger(), LRLogger()])


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="logging_interval"):
        LRLogger(logging_interval="batch")
    with pytest.raises(ValueError, match="history_size"):
        LRLogger(history_size=0)
    with pytest.raises(TypeError, match="log_planned"):
        LRLogger(log_planned="yes")


def test_only_rank_zero_logs_but_every_rank_has_the_callback_metrics(tmp_path, monkeypatch):
    # Under DDP every rank must find the LR in callback_metrics (EarlyStopping on the LR runs on all
    # of them and would fail on a rank without it); only rank zero logs and keeps a history.
    ours = LRLogger()
    monkeypatch.setattr("lightning.pytorch.Trainer.is_global_zero", property(lambda self: False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger, t = _fit(tmp_path, sgd, catalog({"name": "cosine"}), [ours])
    assert not ours.history and not logger.images
    assert not [c for c in logger.calls if any(k.startswith("lr-") for k in c[1])]
    # The LR the last step used (cosine's last scheduler step then set 0, which no step used).
    last = t.callback_metrics["lr-cosine/pg1"].item()
    assert 0 < last < 0.1 and last == t.callback_metrics["lr-cosine/pg1-planned"].item()


class AddGroup(Callback):
    """Adds a param group at the start of epoch 1, as fine-tuning callbacks do when they unfreeze."""

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            trainer.optimizers[0].add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.5})


def test_a_param_group_added_mid_run_is_named_as_the_monitor_names_it(tmp_path):
    monitor = TaggedMonitor(log_momentum=True, log_weight_decay=True)
    logger, _ = _fit(tmp_path, sgd, None, [AddGroup(), monitor, LRLogger()], groups=1)
    mine = _lr_series(logger)
    assert ("lr-SGD", 0) in mine and ("lr-SGD/pg2", 5) in mine and mine[("lr-SGD/pg2", 5)] == 0.5
    assert mine == logger.series("monitor")
    # The rename does not restart the epoch: no step is logged twice.
    our_steps = [step for source, metrics, step in logger.calls if source is None and "lr-SGD/pg1" in metrics]
    assert len(our_steps) == len(set(our_steps))


def test_manual_optimization_resumes_at_the_uninterrupted_runs_steps(tmp_path):
    # The step (batches that stepped) is not global_step under manual optimization, so it is saved.
    def fit(root, epochs, ckpt_path=None):
        ours = LRLogger(logging_interval="step", log_figure=False)
        checkpoint = ModelCheckpoint(dirpath=root / "ckpt", save_top_k=-1, filename="{epoch}")
        t = trainer(root, max_epochs=epochs, callbacks=[ours, checkpoint], log_every_n_steps=2)
        t.fit(ManualTwoOptimizers(schedulers=True), data(5), ckpt_path=ckpt_path)
        return ours

    whole = fit(tmp_path / "whole", 3)
    fit(tmp_path / "first", 2)
    resumed = fit(tmp_path / "first", 3, ckpt_path=tmp_path / "first" / "ckpt" / "epoch=1.ckpt")
    # The history has every step (the loggers get steps 11 and 13 of the last epoch, every 2nd).
    tail = [(step, row) for step, row in whole.history if step >= 10]
    assert [step for step, _ in tail] == [10, 11, 12, 13, 14]
    assert list(resumed.history)[-5:] == tail


def test_works_with_csv_logger(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    t = trainer(tmp_path, logger=CSVLogger(tmp_path), callbacks=[LRLogger(logging_interval="step")])
    t.fit(ScriptedModule(scheduler=catalog({"name": "cosine"})), data(5))
    rows = list(csv.DictReader((tmp_path / "lightning_logs" / "version_0" / "metrics.csv").open()))
    values = [float(r["lr-cosine/pg1"]) for r in rows if r.get("lr-cosine/pg1")]
    planned = [float(r["lr-cosine/pg1-planned"]) for r in rows if r.get("lr-cosine/pg1-planned")]
    assert len(values) == 15 and values == planned and values[0] == 0.1 and values[-1] < values[5]


class FigureSink:
    def __init__(self) -> None:
        self.figures = []

    def add_figure(self, tag, figure, global_step=None):
        self.figures.append((tag, figure, global_step))


class TensorBoardLike(RecordingLogger):
    """A logger with TensorBoard's `experiment.add_figure` and no `log_image`."""

    log_image = None

    def __init__(self) -> None:
        super().__init__()
        self.sink = FigureSink()

    @property
    def experiment(self):
        return self.sink


def test_logs_the_figure_through_add_figure(tmp_path):
    logger = TensorBoardLike()
    t = trainer(tmp_path, logger=logger, callbacks=[LRLogger()])
    t.fit(ScriptedModule(scheduler=catalog({"name": "warmup_cosine", "warmup": 3})), data(5))
    ((tag, figure, step),) = logger.sink.figures
    assert tag == "lr-schedule" and step == t.global_step
    labels = {line.get_label() for line in figure.axes[0].get_lines()}
    assert labels == {
        "lr-warmup_cosine/pg1",
        "lr-warmup_cosine/pg2",
        "lr-warmup_cosine/pg1-planned",
        "lr-warmup_cosine/pg2-planned",
    }


def test_the_history_has_every_step_of_a_run_shorter_than_the_logging_cadence(tmp_path):
    """Issue 20: a run shorter than ``log_every_n_steps`` left ``.history`` empty; loggers keep the cadence."""
    ours = LRLogger(logging_interval="step", log_figure=False)
    logger = RecordingLogger()
    t = trainer(tmp_path, callbacks=[ours], logger=logger, max_epochs=1, log_every_n_steps=50)
    t.fit(ScriptedModule(scheduler=catalog({"name": "cosine", "interval": "step"}), groups=1), data(5))
    assert [step for step, _ in ours.history] == list(range(5))
    lrs = [row["lr-cosine"] for _, row in ours.history]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] > lrs[-1]  # the cosine's steps, one by one
    assert not [step for _, metrics, step in logger.calls if "lr-cosine" in metrics]
