"""`RunRecorder`: the curves a comparison needs from one run, against samples seen, and its LR log."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

LR_KEY = "lr"
"""The key of a compared run's LR in its W&B and CSV logs, in every mode."""


class Curve:
    """A bounded series of points: past ``2 * limit`` points it keeps every other one."""

    points: list[list[float]]

    def __init__(self, limit: int = 2000) -> None:
        self.limit, self.stride, self.points, self._skipped = limit, 1, [], 0

    def add(self, *point: float) -> None:
        if self._skipped % self.stride == 0:
            self.points.append(list(point))
            if len(self.points) >= 2 * self.limit:
                self.points, self.stride = self.points[::2], self.stride * 2
        self._skipped += 1


class RunDiverged(Exception):
    """Raised from a run's callbacks when the next step cannot be taken (its LR overflows the parameters)."""


class RunRecorder(Callback):
    """Records the LR of each optimizer step, and the train and validation losses, by samples seen.

    Samples seen counts the whole global batch (every process), so runs on 1 and N devices with
    the same global batch line up point for point. Only rank zero's copy is read.

    The LR of every optimizer step is also written to ``loggers`` under :data:`LR_KEY` (each time
    it changes, and at the last step, so the logged curve is exact), whatever the Trainer's
    ``log_every_n_steps``: a short run or a fast cycle is not reduced to a few points.

    Args:
        limit: points kept per curve before thinning (see :class:`Curve`).
        group: the param group whose LR is recorded.
        suffix: appended to the metric keys read (``"/cosine"`` reads ``val_loss/cosine``: one
            copy of a stacked run).
        loggers: where the LR is logged (rank zero only); ``None``: the Trainer's own loggers.
        lr_key: the key it is logged under (a stacked run logged as one W&B run: ``lr/<label>``).
        on_overflow: called with the reason before a step whose LR is not finite or would overflow
            the parameters' dtype (that step is not recorded); default: raise :class:`RunDiverged`,
            which ends the run. A stacked run freezes the copy instead.
        check_parameters: raise :class:`RunDiverged` at an epoch end where a parameter is not finite.
        batch_size: this process's samples in a training batch; default: the first tensor's length
            (a stacked run of several seeds, whose batches hold one batch per copy, passes its own).

    Attributes:
        final_lr: the LR the last optimizer step used.
    """

    def __init__(
        self,
        limit: int = 2000,
        *,
        group: int = 0,
        suffix: str = "",
        loggers: Sequence[Logger] | None = None,
        lr_key: str = LR_KEY,
        on_overflow: Callable[[str], None] | None = None,
        check_parameters: bool = True,
        batch_size: Callable[[Any], int] | None = None,
    ) -> None:
        self.batch_size = batch_size or _batch_size
        self.samples = 0
        self.lr = Curve(limit)
        self.val = Curve(limit)
        self.train = Curve(limit)
        self.group = group
        self.keys = {name: name + suffix for name in ("train_loss", "val_loss", "val_acc")}
        self.loggers = loggers
        self.lr_key = lr_key
        self.on_overflow = on_overflow or _raise_diverged
        self.check_parameters = check_parameters
        self.stopped = False
        self.final_lr = math.nan
        self._logged: tuple[int, float] | None = None
        self._last_step = -1

    def stop(self, trainer: L.Trainer) -> None:
        """Record nothing more (a stacked copy that was frozen): the curves end here."""
        self._flush_lr(trainer)
        self.stopped = True

    def _loggers(self, trainer: L.Trainer) -> Sequence[Logger]:
        return trainer.loggers if self.loggers is None else self.loggers

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        if self.stopped or optimizer is not trainer.optimizers[0]:
            return
        group = optimizer.param_groups[self.group]
        lr = float(group["lr"])
        dtype = next((p.dtype for p in group["params"] if p.is_floating_point()), torch.float32)
        if not abs(lr) <= torch.finfo(dtype).max:
            self.on_overflow(
                f"the LR ({lr:.3g}) overflows the parameters' dtype ({dtype}) at step {trainer.global_step}"
            )
            return
        self.lr.add(self.samples, lr)
        step = trainer.global_step
        if trainer.is_global_zero and (self._logged is None or lr != self._logged[1]):
            for logger in self._loggers(trainer):
                logger.log_metrics({self.lr_key: lr}, step=step)
            self._logged = (step, lr)
        self.final_lr = lr
        self._last_step = step

    def _flush_lr(self, trainer: L.Trainer) -> None:
        """Log the last step's LR if it was not: a constant tail then ends where the run ended."""
        if self._logged is None or self.stopped or not trainer.is_global_zero:
            return
        step = self._last_step
        if step != self._logged[0]:
            for logger in self._loggers(trainer):
                logger.log_metrics({self.lr_key: self.final_lr}, step=step)
            self._logged = (step, self.final_lr)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush_lr(trainer)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.stopped:
            self.samples += self.batch_size(batch) * trainer.world_size

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stopped:
            return
        self.train.add(self.samples, _metric(trainer, self.keys["train_loss"]))
        # A step can leave the parameters non-finite while its loss still was: that is divergence too.
        # (A stacked run's copies are checked by their gradients, every step, in the module.)
        if self.check_parameters and not all(bool(torch.isfinite(p).all()) for p in pl_module.parameters()):
            raise RunDiverged(f"the parameters are not finite at the end of epoch {trainer.current_epoch + 1}")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (trainer.sanity_checking or self.stopped):
            keys = self.keys
            self.val.add(self.samples, _metric(trainer, keys["val_loss"]), _metric(trainer, keys["val_acc"]))


def _raise_diverged(reason: str) -> None:
    raise RunDiverged(reason)


def _metric(trainer: L.Trainer, key: str) -> float:
    value = trainer.callback_metrics.get(key)
    return math.nan if value is None else float(value)


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (list, tuple)) and batch else batch
    if isinstance(first, dict) and first:
        first = next(iter(first.values()))
    return len(first) if hasattr(first, "__len__") else 1
