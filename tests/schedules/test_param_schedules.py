"""Schedules for any hyperparameter: weight decay, momentum, ... with the LR's formulas and durations."""

from __future__ import annotations

import io
import warnings

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from harness import quiet_trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lightning_lrsched import SyntheticClassifier, SyntheticDataModule
from lightning_lrsched.schedules import get_schedule, preview


def _adamw():
    groups = [
        {"params": [torch.nn.Parameter(torch.zeros(2))], "weight_decay": 0.1},
        {"params": [torch.nn.Parameter(torch.zeros(2))], "weight_decay": 0.02, "lr": 0.01},
    ]
    return torch.optim.AdamW(groups, lr=0.1, betas=(0.9, 0.99))


def _trace(optimizer, scheduler, key, steps):
    out = []
    for _ in range(steps):
        out.append([g[key][0] if key == "betas" else g[key] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return np.asarray(out)


def test_weight_decay_follows_the_schedule_relative_to_each_groups_own_value():
    optimizer = _adamw()
    schedule = get_schedule("warmup_cosine", warmup=3, total=20)
    scheduler = schedule.build(optimizer, total_steps=20, param="weight_decay")
    values = _trace(optimizer, scheduler, "weight_decay", 20)
    shape = preview(schedule, 20)
    np.testing.assert_allclose(values, np.outer(shape, [0.1, 0.02]), rtol=1e-12, atol=1e-15)
    # The LR is not touched, and get_last_lr() still says so (torch's meaning).
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.01]
    assert scheduler.get_last_lr() == [0.1, 0.01]
    assert scheduler.get_last_values() == [g["weight_decay"] for g in optimizer.param_groups]


@pytest.mark.parametrize(
    ("make", "key", "base"),
    [
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), "momentum", 0.9),
        (lambda p: torch.optim.Adam(p, lr=0.1, betas=(0.95, 0.999)), "betas", 0.95),
    ],
)
def test_momentum_means_sgd_momentum_or_the_first_beta(make, key, base):
    optimizer = make([torch.nn.Parameter(torch.zeros(1))])
    scheduler = get_schedule("step", step_size=2, gamma=0.5).build(optimizer, param="momentum")
    values = _trace(optimizer, scheduler, key, 5)[:, 0]
    np.testing.assert_allclose(values, [base, base, base / 2, base / 2, base / 4])
    if key == "betas":
        assert optimizer.param_groups[0]["betas"][1] == 0.999  # the second beta is left alone


def test_an_lr_and_a_weight_decay_scheduler_share_one_optimizer_and_resume_exactly():
    def fresh():
        optimizer = _adamw()
        lr = get_schedule("onecycle", max_lr=0.5).build(optimizer, total_steps=30)
        wd = get_schedule("cosine", T_max=30).build(optimizer, param="weight_decay")
        return optimizer, lr, wd

    def run(optimizer, lr, wd, steps):
        out = []
        for _ in range(steps):
            out.append([(g["lr"], g["weight_decay"], g["betas"][0]) for g in optimizer.param_groups])
            optimizer.step()
            lr.step()
            wd.step()
        return out

    full = run(*fresh(), 30)
    optimizer, lr, wd = fresh()
    run(optimizer, lr, wd, 12)
    states = [torch.load(_saved(s.state_dict()), weights_only=True) for s in (lr, wd)]
    optimizer, lr, wd = fresh()
    lr.load_state_dict(states[0])
    wd.load_state_dict(states[1])
    assert run(optimizer, lr, wd, 18) == full[12:]
    # onecycle still cycles the first beta; cosine drives the weight decay; each its own.
    assert len({row[0][2] for row in full}) > 2 and len({row[0][1] for row in full}) > 2
    # A state of the LR scheduler is not a state of the weight-decay one.
    with pytest.raises(ValueError, match="`param` was 'lr', now 'weight_decay'"):
        wd.load_state_dict(states[0])


def _saved(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def test_an_unknown_hyperparameter_is_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match=r"`param` must be a float setting.*got param='decay'.*weight_decay"):
        get_schedule("cosine").build(_adamw(), total_steps=10, param="decay")
    with pytest.raises(ValueError, match=r"`param`='momentum' needs an optimizer with momentum or betas"):
        get_schedule("cosine").build(
            torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))]), total_steps=10, param="momentum"
        )


class WeightDecayScheduled(SyntheticClassifier):
    """The classifier with a second scheduler on the same optimizer: cosine weight decay per step."""

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=0.05, weight_decay=0.1)
        lr = get_schedule("warmup_cosine", warmup=2).lightning_config(optimizer, self.trainer)
        wd = get_schedule("cosine", interval="step").lightning_config(optimizer, self.trainer, param="weight_decay")
        return [optimizer], [lr, wd]


class Values(Callback):
    def __init__(self) -> None:
        self.rows: dict[int, tuple[float, float]] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        group = optimizer.param_groups[0]
        self.rows[trainer.global_step] = (group["lr"], group["weight_decay"])


def _fit(root, callbacks=(), ckpt_path=None):
    pl.seed_everything(0, verbose=False)
    values = Values()
    trainer = quiet_trainer(root, values, *callbacks, max_epochs=3, limit_train_batches=4, limit_val_batches=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(WeightDecayScheduled(), SyntheticDataModule(num_samples=200, batch_size=16), ckpt_path=ckpt_path)
    return values.rows


def test_under_lightning_lr_and_weight_decay_schedules_resume_exactly(tmp_path):
    full = _fit(tmp_path / "full")
    steps = sorted(full)
    assert steps == list(range(12))
    np.testing.assert_allclose([full[s][1] for s in steps], 0.1 * preview(get_schedule("cosine"), 12), rtol=1e-12)
    np.testing.assert_allclose(
        [full[s][0] for s in steps], 0.05 * preview(get_schedule("warmup_cosine", warmup=2), 12), rtol=1e-12
    )
    saves = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=6, save_top_k=-1, filename="{step}")
    _fit(tmp_path / "saving", [saves])
    resumed = _fit(tmp_path / "resumed", ckpt_path=tmp_path / "ckpt" / "step=6.ckpt")
    assert resumed == {s: v for s, v in full.items() if s >= 6}


def test_lr_logger_logs_the_scheduled_weight_decay_actual_and_planned(tmp_path):
    from lightning_lrsched import LRLogger

    logger = LRLogger(logging_interval="step")
    pl.seed_everything(0, verbose=False)
    trainer = quiet_trainer(
        tmp_path, logger, logger=None, max_epochs=1, limit_train_batches=4, limit_val_batches=0, log_every_n_steps=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(WeightDecayScheduled(), SyntheticDataModule(num_samples=200, batch_size=16))
    rows = dict(logger.history)
    decay = 0.1 * preview(get_schedule("cosine"), 4)
    assert [rows[s]["weight_decay-cosine"] for s in range(4)] == pytest.approx(decay.tolist(), rel=1e-12)
    assert [rows[s]["weight_decay-cosine-planned"] for s in range(4)] == pytest.approx(decay.tolist(), rel=1e-12)
    assert "lr-warmup_cosine" in rows[0] and logger.mismatches == 0


def test_the_classifier_schedules_weight_decay_and_momentum_by_spec_and_schedule_check_is_silent(tmp_path):
    from lightning_lrsched import ScheduleCheck

    model = SyntheticClassifier(
        optimizer={"name": "adamw", "weight_decay": 0.1},
        scheduler={"name": "warmup_cosine", "warmup": 2},
        weight_decay_schedule={"name": "cosine", "interval": "step"},
        momentum_schedule={"name": "linear", "start_factor": 0.9, "total_iters": 4, "interval": "step"},
    )
    values = Values()
    checks = ScheduleCheck(strict=True)
    trainer = quiet_trainer(tmp_path, values, checks, max_epochs=2, limit_train_batches=4, limit_val_batches=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, SyntheticDataModule(num_samples=200, batch_size=16))
    assert [c.scheduler.param for c in trainer.lr_scheduler_configs] == ["lr", "weight_decay", "momentum"]
    decay = 0.1 * preview(get_schedule("cosine"), 8)
    assert [values.rows[s][1] for s in range(8)] == pytest.approx(decay.tolist(), rel=1e-12)
    assert trainer.optimizers[0].param_groups[0]["betas"][0] == pytest.approx(0.9)  # back to full after 4 steps
    assert model.hparams["weight_decay_schedule"] == {"name": "cosine", "interval": "step"}
