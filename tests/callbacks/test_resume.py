"""A run killed after a mid-epoch checkpoint and resumed continues exactly as if never stopped.

Compared with the uninterrupted run: every LR, planned LR and momentum LRLogger records from the
checkpoint on, the PlateauDetector's state, the LR scale a reduction applied before the
checkpoint, and ScheduleCheck's silence.
"""

from __future__ import annotations

import warnings

import pytest
from callback_helpers import (
    ScriptedModule,
    catalog,
    data,
    per_group,
    trainer,
)
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lightning_lrsched import LRLogger, PlateauDetector, ScheduleCheck
from lightning_lrsched.callbacks import ScheduleWarning

pytestmark = pytest.mark.usefixtures("one_thread")

SCHEDULES = {
    "step": {"name": "step", "step_size": 1, "gamma": 0.7},
    "cosine": {"name": "cosine"},
    "onecycle": {"name": "onecycle", "max_lr": [0.1, 0.03]},
    "plateau": {"name": "plateau", "patience": 0, "factor": 0.5},
    "warmup_cosine": {"name": "warmup_cosine", "warmup": 3, "min_lr_ratio": 0.1},
    "wsd": {"name": "wsd", "warmup": 3, "decay": "30%"},
    # One schedule per param group; the epoch one then runs on optimizer steps // steps per epoch.
    "groups": [{"name": "cosine"}, {"name": "wsd", "warmup": 3, "decay": "30%"}],
}
# One value per epoch. With patience 0 and cooldown 1: plateaus at epochs 1, 3 and 5; the checkpoint
# (in epoch 2) holds the cooldown of the first, which decides whether epoch 2 is one.
VAL_LOSS = [1.0, 1.0, 1.0, 1.0, 0.8, 0.9]
EPOCHS, BATCHES = 6, 5
CHECKPOINT_AT, KILL_AT = 12, 13  # step 12 is in the middle of epoch 2, after the plateau of epoch 1


class Killed(Exception):
    pass


class Kill(Callback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at:
            raise Killed(f"killed at step {self.at}")


def fit(root, name, kill=None, ckpt_path=None):
    spec = SCHEDULES[name]
    schedule = per_group(spec) if isinstance(spec, list) else catalog(spec)
    # The plateau schedule already reduces on val_loss; the detector then only logs.
    action = "log" if name == "plateau" else "reduce"
    callbacks = [
        LRLogger(logging_interval="step", log_figure=False),
        PlateauDetector(patience=0, cooldown=1, action=action, factor=0.5),
        ScheduleCheck(),
        ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=CHECKPOINT_AT, save_top_k=-1, filename="{step}"),
    ]
    if kill is not None:
        callbacks.append(Kill(kill))
    t = trainer(root, max_epochs=EPOCHS, callbacks=callbacks)
    module = ScriptedModule(scheduler=schedule, scripted={"val_loss": VAL_LOSS}, per_epoch=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScheduleWarning)
        t.fit(module, data(BATCHES), data(1), ckpt_path=ckpt_path)
    return t, callbacks[0], callbacks[1]


@pytest.mark.parametrize("name", SCHEDULES)
def test_resumed_run_matches_the_uninterrupted_one(tmp_path, name):
    full, full_lrs, full_detector = fit(tmp_path / "full", name)
    with pytest.raises(Killed):
        fit(tmp_path / "killed", name, kill=KILL_AT)
    checkpoint = tmp_path / "killed" / "ckpt" / f"step={CHECKPOINT_AT}.ckpt"
    resumed, resumed_lrs, resumed_detector = fit(tmp_path / "killed", name, ckpt_path=checkpoint)

    expected = {step: row for step, row in full_lrs.history if step >= CHECKPOINT_AT}
    got = dict(resumed_lrs.history)
    assert min(got) == CHECKPOINT_AT and resumed.global_step == full.global_step == EPOCHS * BATCHES
    assert got == expected
    assert resumed_detector.state_dict() == full_detector.state_dict()
    assert [e["epoch"] for e in full_detector.events] == [1, 3, 5]
    assert resumed_lrs.mismatches == full_lrs.mismatches == 0
    scheduler, uninterrupted = resumed.lr_scheduler_configs[0].scheduler, full.lr_scheduler_configs[0].scheduler
    assert scheduler.state_dict() == uninterrupted.state_dict()
    if name != "plateau":  # three reductions by the detector, each x0.5
        assert scheduler.peaks == pytest.approx([0.5**3 * 0.1, 0.5**3 * 0.03])
    # The LR really changed after the checkpoint, so equality above is not trivial.
    assert len({row[f"lr-{name}/pg2"] for row in got.values()}) > 1
