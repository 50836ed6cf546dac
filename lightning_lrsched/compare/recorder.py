"""`RunRecorder`: the curves a comparison needs from one run, against samples seen."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class Curve:
    """A bounded series of points: past ``2 * limit`` points it keeps every other one."""

    def __init__(self, limit: int = 2000) -> None:
        self.limit, self.stride, self.points, self._skipped = limit, 1, [], 0

    def add(self, *point: float) -> None:
        if self._skipped % self.stride == 0:
            self.points.append(list(point))
            if len(self.points) >= 2 * self.limit:
                self.points, self.stride = self.points[::2], self.stride * 2
        self._skipped += 1


class RunRecorder(Callback):
    """Records the LR of each optimizer step, and the train and validation losses, by samples seen.

    Samples seen counts the whole global batch (every process), so runs on 1 and N devices with
    the same global batch line up point for point. Only rank zero's copy is read.

    Args:
        limit: points kept per curve before thinning (see :class:`Curve`).
        group: the param group whose LR is recorded.
        suffix: appended to the metric keys read (``"/cosine"`` reads ``val_loss/cosine``: one
            copy of a stacked run).
    """

    def __init__(self, limit: int = 2000, *, group: int = 0, suffix: str = "") -> None:
        self.samples = 0
        self.lr = Curve(limit)
        self.val = Curve(limit)
        self.train = Curve(limit)
        self.group = group
        self.keys = {name: name + suffix for name in ("train_loss", "val_loss", "val_acc")}
        self.stopped = False

    def stop(self) -> None:
        """Record nothing more (a stacked copy that was frozen): the curves end here."""
        self.stopped = True

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        if not self.stopped and optimizer is trainer.optimizers[0]:
            self.lr.add(self.samples, float(optimizer.param_groups[self.group]["lr"]))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.stopped:
            self.samples += _batch_size(batch) * trainer.world_size

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.stopped:
            self.train.add(self.samples, _metric(trainer, self.keys["train_loss"]))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (trainer.sanity_checking or self.stopped):
            keys = self.keys
            self.val.add(self.samples, _metric(trainer, keys["val_loss"]), _metric(trainer, keys["val_acc"]))


def _metric(trainer: L.Trainer, key: str) -> float:
    value = trainer.callback_metrics.get(key)
    return math.nan if value is None else float(value)


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (list, tuple)) and batch else batch
    if isinstance(first, dict) and first:
        first = next(iter(first.values()))
    return len(first) if hasattr(first, "__len__") else 1
