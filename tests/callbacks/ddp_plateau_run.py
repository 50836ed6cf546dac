"""Two CPU processes (DDP) where each rank logs its own metric values; run by test_ddp.py.

Usage: ``python ddp_plateau_run.py OUT_DIR``. It fits several times in the same two processes
(starting them costs far more than training): ``plateau`` (a reducing detector on ``val_loss`` and a
stopping one on ``val_acc``), ``diverge`` (rank 1's training loss turns NaN at step 3), ``schedule``
(the ``plateau`` schedule and a logging detector with the same rule, on values the ranks disagree
on), ``rank_local`` (the same, with ``val_loss`` logged on rank 0 only), ``resume`` (the classifier's
``plateau`` schedule resumed from ModelCheckpoint's file at a validation end, two cadences) and,
last because an error in DDP ends the processes, ``missing`` (a strict detector whose monitor nobody
logs). Each rank writes ``OUT_DIR/<mode>/rank<r>.json`` at the end of each fit: its step, epoch, LRs and the detectors'
events (``missing``: the error each rank got). ``strategy="ddp"`` re-launches this script for
rank 1, which is why it takes its arguments from the command line.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from callback_helpers import ScriptedModule, catalog, data
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lightning_lrsched import (
    LRLogger,
    PlateauDetector,
    PlateauDriver,
    ScheduleCheck,
    SyntheticClassifier,
    SyntheticDataModule,
)
from lightning_lrsched.errors import InvalidValue

# Per rank, one value per epoch; the detectors see their mean (see test_ddp.py).
VAL_LOSS = {
    0: [1.0, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25],
    1: [1.0, 1.5, 1.0, 1.5, 1.25, 1.0, 1.5, 1.0],
}
VAL_ACC = {
    0: [0.5, 0.625, 0.75, 0.875, 0.875, 0.875, 0.875, 0.875],
    1: [0.5, 0.5, 0.25, 0.125, 0.25, 0.5, 0.75, 1.0],
}
EPOCHS = 8
STRATEGY = "ddp"
MODES = ("plateau", "diverge", "schedule", "rank_local", "resume", "missing")
# Validation cadences of the resume mode: Trainer arguments, epochs, and the step whose checkpoint it resumes
# from (4 steps per epoch: after the first reducing validation; mid-epoch for validation twice per epoch).
CADENCES = {
    "every-epoch": ({}, 4, 8),
    "every-2-epochs": ({"check_val_every_n_epoch": 2}, 8, 16),
    "twice-per-epoch": ({"val_check_interval": 2}, 4, 6),
}
NAN_STEP = 3


class RankModule(ScriptedModule):
    """Logs this rank's own values, without sync_dist: the ranks disagree on purpose."""

    def __init__(self, diverge: bool, rank_zero_only: bool = False, scheduler: Any = None) -> None:
        super().__init__(groups=2, scheduler=scheduler)
        self.diverge = diverge
        self.rank_zero_only = rank_zero_only

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        if self.diverge and self.global_rank == 1 and self.global_step == NAN_STEP:
            loss = loss * math.nan
        return loss

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        if self.global_rank == 0 or not self.rank_zero_only:  # rank-local: rank 1 never logs it
            self.log("val_loss", VAL_LOSS[self.global_rank][self.current_epoch], rank_zero_only=self.rank_zero_only)
        self.log("val_acc", VAL_ACC[self.global_rank][self.current_epoch])


class Dump(Callback):
    def __init__(self, out: Path, detectors: list[PlateauDetector]) -> None:
        self.out = out
        self.detectors = detectors

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        result = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "global_step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "lrs": [g["lr"] for g in trainer.optimizers[0].param_groups],
            "events": {d.monitor: d.events for d in self.detectors},
            "diverged": [d.diverged for d in self.detectors],
            # LRLogger, where the mode attaches one: what it saw and whether the schedule owned the LR.
            "lr_logger": [
                {"mismatches": c.mismatches, "steps": [step for step, _ in c.history]}
                for c in trainer.callbacks
                if isinstance(c, LRLogger)
            ],
        }
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))


def fit(out: Path, mode: str) -> None:
    out = out / mode
    out.mkdir(parents=True, exist_ok=True)
    diverge = mode == "diverge"
    scheduler = None
    # Under DDP too, LRLogger sees only the schedule changing the LR and ScheduleCheck (strict) finds nothing.
    checks = [LRLogger(logging_interval="step"), ScheduleCheck(strict=True)] if mode == "schedule" else []
    if mode in ("schedule", "rank_local"):
        # The schedule reduces; a detector with the same rule only logs: both must decide alike.
        scheduler = catalog({"name": "plateau", "patience": 0, "factor": 0.5})
        detectors = [PlateauDetector(monitor="val_loss", patience=0, action="log")]
    elif mode == "missing":
        detectors = [PlateauDetector(monitor="val_los", patience=0, strict=True)]
    else:
        detectors = [
            PlateauDetector(monitor="val_loss", patience=0, action="reduce", factor=0.5, loss_check_every=1),
            PlateauDetector(monitor="val_acc", mode="max", patience=1, action="stop", loss_check_every=1),
        ]
    trainer = pl.Trainer(
        default_root_dir=out,
        accelerator="cpu",
        devices=2,
        strategy=STRATEGY,
        max_epochs=EPOCHS,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[*detectors, PlateauDriver(), *checks, Dump(out, detectors)],
    )
    module = RankModule(diverge, rank_zero_only=mode == "rank_local", scheduler=scheduler)
    # 4 batches, split over 2 ranks: 2 optimizer steps per epoch.
    try:
        trainer.fit(module, data(4), data(2))
    except InvalidValue as error:
        (out / f"rank{trainer.global_rank}.json").write_text(json.dumps({"error": str(error)}))
        raise


class UsedLRs(Callback):
    def __init__(self) -> None:
        self.used: dict[int, float] = {}

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: Any, optimizer: Any) -> None:
        self.used[trainer.global_step] = float(optimizer.param_groups[0]["lr"])


def resume(out: Path) -> None:
    """The plateau schedule under DDP, uninterrupted and resumed from ModelCheckpoint's file at a validation end."""
    out = out / "resume"
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    for cadence, (kwargs, epochs, step) in CADENCES.items():
        runs = {}
        for name in ("full", "resumed"):
            pl.seed_everything(0, verbose=False)
            used = UsedLRs()
            saves = ModelCheckpoint(
                dirpath=out / cadence, save_top_k=-1, filename="{step}", save_on_train_epoch_end=False
            )
            trainer = pl.Trainer(
                default_root_dir=out,
                accelerator="cpu",
                devices=2,
                strategy=STRATEGY,
                max_epochs=epochs,
                limit_train_batches=4,
                limit_val_batches=2,
                num_sanity_val_steps=0,
                logger=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                callbacks=[used, *([saves] if name == "full" else [])],
                enable_checkpointing=name == "full",
                **kwargs,
            )
            model = SyntheticClassifier(scheduler={"name": "plateau", "patience": 0, "factor": 0.5, "threshold": 0.9})
            ckpt = out / cadence / f"step={step}.ckpt" if name == "resumed" else None
            trainer.fit(model, SyntheticDataModule(num_samples=400, batch_size=16, seed=3), ckpt_path=ckpt)
            weights = [p.detach().flatten().tolist() for p in model.parameters()]
            runs[name] = {"used": used.used, "weights": weights}
        result[cadence] = runs
    rank = int(os.environ.get("LOCAL_RANK", 0))
    (out / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    torch.set_num_threads(1)
    for mode in MODES:
        if mode == "resume":
            resume(Path(sys.argv[1]))
        else:
            fit(Path(sys.argv[1]), mode)
