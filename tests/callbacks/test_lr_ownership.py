"""One owner for every LR change, under real Lightning runs (issue 9's acceptance).

- A plateau decision taken at a validation end is in ``param_groups`` before the next batch and in
  the checkpoint ModelCheckpoint writes at that validation; resuming from it continues exactly (LR at
  every step, bit-identical weights), for validation every epoch, every 2 epochs and twice per epoch.
- Under a GradScaler, a skipped step does not advance the schedule.
- A param group added by ``BaseFinetuning`` is adopted; a state saved with other settings is refused.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from harness import quiet_trainer
from lightning.pytorch.callbacks import BaseFinetuning, Callback, ModelCheckpoint
from lightning.pytorch.plugins import MixedPrecision

from lightning_lrsched import PlateauDetector, SyntheticClassifier, SyntheticDataModule
from lightning_lrsched.errors import InvalidValue, TrainingWarning
from lightning_lrsched.schedules import get_schedule, preview

pytestmark = pytest.mark.usefixtures("one_thread")

# Reduces at nearly every validation after the first: a value must beat the best by 90 % to count.
PLATEAU = {"name": "plateau", "patience": 0, "factor": 0.5, "threshold": 0.9}


class LRTrace(Callback):
    """The LR of group 0 at each batch start and at each optimizer step that really updates."""

    def __init__(self) -> None:
        self.at_batch_start: dict[int, float] = {}
        self.used: dict[int, float] = {}

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.at_batch_start[trainer.global_step] = float(trainer.optimizers[0].param_groups[0]["lr"])

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: Any, optimizer: Any) -> None:
        self.used[trainer.global_step] = float(optimizer.param_groups[0]["lr"])


def _fit(root: Path, scheduler: Any, cadence: dict[str, Any], *, callbacks=(), ckpt_path=None, epochs=8):
    pl.seed_everything(0, verbose=False)  # the same initial weights in every run
    trace = LRTrace()
    trainer = quiet_trainer(
        root,
        trace,
        *callbacks,
        max_epochs=epochs,
        limit_train_batches=4,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        **cadence,
    )
    model = SyntheticClassifier(scheduler=scheduler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's notes on tiny data; ours must not appear
        warnings.simplefilter("error", TrainingWarning)
        trainer.fit(model, SyntheticDataModule(num_samples=200, batch_size=16, seed=3), ckpt_path=ckpt_path)
    return trainer, trace, model


CADENCES = {
    "every-epoch": {},
    "every-2-epochs": {"check_val_every_n_epoch": 2},
    "twice-per-epoch": {"val_check_interval": 2},
}


@pytest.mark.parametrize("cadence", CADENCES)
@pytest.mark.parametrize("owner", ["schedule", "detector"])
def test_plateau_decided_at_validation_end_is_used_next_and_resumes_exactly(tmp_path, cadence, owner):
    if owner == "schedule":
        scheduler, extra = PLATEAU, []
    else:
        rule = {k: v for k, v in PLATEAU.items() if k != "name"}
        scheduler, extra = {"name": "constant", "factor": 1.0}, [PlateauDetector(action="reduce", **rule)]
    _, trace, model = _fit(tmp_path / "full", scheduler, CADENCES[cadence], callbacks=extra)
    lrs = [trace.used[s] for s in sorted(trace.used)]
    assert len(set(lrs)) >= 3, "the LR must be reduced at least twice, or the test proves nothing"
    # Every batch starts with the LR its optimizer step then uses: a reduction is in param_groups before it.
    assert trace.at_batch_start == trace.used

    # The checkpoints ModelCheckpoint writes at each validation end; resume from the second one.
    saves = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, filename="{step}", save_on_train_epoch_end=False)
    extra = [type(c)(**_same_args(c)) for c in extra]
    _fit(tmp_path / "saving", scheduler, CADENCES[cadence], callbacks=[saves, *extra])
    checkpoints = {int(p.stem.split("=")[1]): p for p in (tmp_path / "ckpt").glob("step=*.ckpt")}
    # After the second validation; with validation twice per epoch, a mid-epoch one (4 batches per epoch).
    step = sorted(checkpoints)[1] if cadence != "twice-per-epoch" else min(s for s in checkpoints if s > 4 and s % 4)
    checkpoint = checkpoints[step]
    saved_lr = torch.load(checkpoint, weights_only=False)["optimizer_states"][0]["param_groups"][0]["lr"]
    assert saved_lr == trace.used[step], "the checkpoint holds the decision of its validation"

    extra = [type(c)(**_same_args(c)) for c in extra]
    _, resumed_trace, resumed_model = _fit(
        tmp_path / "resumed", scheduler, CADENCES[cadence], callbacks=extra, ckpt_path=checkpoint
    )
    assert min(resumed_trace.used) == step
    assert resumed_trace.used == {s: lr for s, lr in trace.used.items() if s >= step}
    for a, b in zip(model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_step_checkpoint_a_validation_follows_warns_on_resume_that_lightning_skips_it(tmp_path):
    # Every 2 steps, 4 batches per epoch: step 8 is saved at the end of epoch 1's last batch, before
    # its validation (and its plateau decision); step 6 in the middle of epoch 1.
    saves = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1, filename="{step}")
    _, trace, _ = _fit(tmp_path / "full", PLATEAU, {}, callbacks=[saves], epochs=4)
    assert trace.used[7] != trace.used[8], "epoch 1's validation must reduce the LR, or the test proves nothing"
    # _fit makes our warnings errors: the resume stops at the warning, before any batch.
    message = (
        r"^PlateauDriver: this run resumes from a checkpoint saved at step 8, at the end of training batch 3 of "
        r"epoch 1, before the validation that follows that batch; Lightning does not run that validation on "
        r"resume, so the `plateau` schedule misses one value of 'val_loss' .* save checkpoints at validation end"
    )
    with pytest.raises(TrainingWarning, match=message):
        _fit(tmp_path / "resumed", PLATEAU, {}, ckpt_path=tmp_path / "ckpt" / "step=8.ckpt", epochs=4)
    # A step checkpoint no validation follows resumes exactly, and silently.
    _, resumed, _ = _fit(tmp_path / "resumed", PLATEAU, {}, ckpt_path=tmp_path / "ckpt" / "step=6.ckpt", epochs=4)
    assert resumed.used == {s: lr for s, lr in trace.used.items() if s >= 6}


def _same_args(detector: PlateauDetector) -> dict[str, Any]:
    rule = detector.rule
    return {"action": detector.action, "patience": rule.patience, "factor": rule.factor, "threshold": rule.threshold}


class InfOnSomeBatches(SyntheticClassifier):
    """The loss is inf on the given global steps: the GradScaler then skips the optimizer step."""

    def __init__(self, inf_at: set[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inf_at = inf_at

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        return loss * math.inf if batch_idx in self.inf_at else loss


class AppliedUpdates(Callback):
    """The LR of each optimizer update that was really applied, in order."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        optimizer = trainer.optimizers[0]
        optimizer.register_step_pre_hook(lambda opt, args, kwargs: self.lrs.append(float(opt.param_groups[0]["lr"])))


def test_a_step_the_grad_scaler_skips_does_not_advance_the_schedule(tmp_path):
    schedule = {"name": "warmup_cosine", "warmup": 4, "total": 40}
    applied = AppliedUpdates()
    scaler = torch.amp.GradScaler("cpu")
    trainer = quiet_trainer(
        tmp_path, applied, max_steps=20, limit_val_batches=0, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)]
    )
    model = InfOnSomeBatches({1, 2, 7}, scheduler=schedule)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's notes on tiny data; ours must not appear
        warnings.simplefilter("error", TrainingWarning)
        trainer.fit(model, SyntheticDataModule(num_samples=200, batch_size=8))
    planned = preview(get_schedule(schedule), 40, base_lr=0.1)
    assert 10 <= len(applied.lrs) < 20, "some steps must have been skipped"
    # The k-th applied update uses the schedule's LR for update k.
    assert applied.lrs == pytest.approx(planned[: len(applied.lrs)].tolist(), rel=1e-12)


class UnfreezeHead(BaseFinetuning):
    """Trains only the first layer, then adds the last one as a new param group at epoch 1."""

    def freeze_before_training(self, pl_module: Any) -> None:
        self.freeze(pl_module.net[-1])

    def finetune_function(self, pl_module: Any, epoch: int, optimizer: Any) -> None:
        if epoch == 1:
            self.unfreeze_and_add_param_group(pl_module.net[-1], optimizer, lr=0.05, initial_denom_lr=1.0)


class FrozenHead(SyntheticClassifier):
    """Its optimizer holds the trainable parameters only, as BaseFinetuning requires."""

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=0.1)
        return {"optimizer": optimizer, "lr_scheduler": self.schedule.lightning_config(optimizer, self.trainer)}


def test_a_param_group_added_by_base_finetuning_follows_the_schedule(tmp_path, caplog):
    trainer = quiet_trainer(tmp_path, UnfreezeHead(), max_epochs=3, limit_train_batches=2, limit_val_batches=0)
    model = FrozenHead(scheduler={"name": "step", "step_size": 1, "gamma": 0.5}, hidden=[4])
    with warnings.catch_warnings(), caplog.at_level(logging.INFO, logger="lightning_lrsched"):
        warnings.simplefilter("ignore")  # Lightning's notes on tiny data; ours must not appear
        warnings.simplefilter("error", TrainingWarning)
        trainer.fit(model, SyntheticDataModule(num_samples=100, batch_size=16))
    groups = trainer.optimizers[0].param_groups
    assert len(groups) == 2
    # After 3 epochs: every group is at gamma**3 of its own base (the new one's base is its LR when added).
    assert [g["lr"] for g in groups] == pytest.approx([0.1 * 0.5**3, 0.05 * 0.5**3])
    assert sum("added after the scheduler was built" in r.getMessage() for r in caplog.records) == 1


def test_resuming_with_other_settings_is_refused_unless_adopted(tmp_path):
    saves = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    _fit(tmp_path / "a", {"name": "onecycle", "max_lr": 0.1}, {}, callbacks=[saves], epochs=2)
    last = tmp_path / "ckpt" / "last.ckpt"
    with pytest.raises(InvalidValue, match=r"`max_lr` was 0.1, now 0.5.*adopt_settings=True"):
        _fit(tmp_path / "b", {"name": "onecycle", "max_lr": 0.5}, {}, ckpt_path=last, epochs=3)


class Stream(torch.utils.data.IterableDataset):
    """Batches of the synthetic task with no ``__len__``: Lightning cannot know the epoch length."""

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for _ in range(5):
            x = torch.randn(8, 10, generator=g)
            yield x, (x[:, 0] > 0).long()


def _stream_fit(tmp_path: Path, schedule: dict[str, Any], **limits: Any) -> pl.Trainer:
    trainer = quiet_trainer(tmp_path, limit_val_batches=0, **limits)
    loader = torch.utils.data.DataLoader(Stream(), batch_size=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's notes on tiny data; ours must not appear
        warnings.simplefilter("error", TrainingWarning)
        trainer.fit(SyntheticClassifier(scheduler=schedule), train_dataloaders=loader)
    return trainer


def test_a_loader_of_unknown_length_trains_length_free_schedules_and_refuses_the_others(tmp_path):
    trainer = _stream_fit(tmp_path / "a", {"name": "warmup_constant", "warmup": 4}, max_epochs=2)
    assert trainer.global_step == 10 and trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1)
    with pytest.raises(InvalidValue, match=r"`warmup_linear` needs the run length for `total`.*max_steps"):
        _stream_fit(tmp_path / "b", {"name": "warmup_linear", "warmup": 4}, max_epochs=2)
    # With max_steps (and max_epochs left at -1) the default `total` is the run.
    trainer = _stream_fit(tmp_path / "c", {"name": "warmup_linear", "warmup": 4}, max_steps=8)
    assert trainer.lr_scheduler_configs[0].scheduler.curve.length == 8
