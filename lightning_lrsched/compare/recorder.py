"""`RunRecorder`: the curves a comparison needs from one run, against samples seen, and its LR log."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

from lightning_lrsched.errors import InvalidValue
from lightning_lrsched.lightning import local_value, rank_means

LR_KEY = "lr"
"""The key of a compared run's LR in its W&B and CSV logs, in every mode."""


class BoundedSeries:
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


class RunRecorder(Callback):
    """Records the LR of each optimizer step, and the train and validation losses, by samples seen.

    The training loss of each epoch comes from the run's :class:`~.divergence.DivergenceCheck`
    (:meth:`record_train_loss`), which measures it from what ``training_step`` returns.

    Samples seen counts the whole global batch (every process), so runs on 1 and N devices with
    the same global batch line up point for point. Only rank zero's copy is read.

    The LR of every optimizer step is also written to ``loggers`` under :data:`LR_KEY` (each time
    it changes, and at the last step, so the logged curve is exact), whatever the Trainer's
    ``log_every_n_steps``: a short run or a fast cycle is not reduced to a few points.

    Args:
        limit: points kept per curve before thinning (see :class:`BoundedSeries`).
        group: the param group whose LR is recorded: its index, or its name (a stacked copy's label: its
            first group, named ``<label>`` or ``<label>/0``).
        suffix: appended to the metric keys read (``"/cosine"`` reads ``val_loss/cosine``: one
            copy of a stacked run).
        loggers: where the LR is logged (rank zero only); ``None``: the Trainer's own loggers.
        lr_key: the key it is logged under (a stacked run logged as one W&B run: ``lr/<label>``).
        batch_size: this process's samples in a training batch; default: the first tensor's length
            (a stacked run of several seeds, whose batches hold one batch per copy, passes its own).

    Attributes:
        final_lr: the LR the last optimizer step used.
    """

    def __init__(
        self,
        limit: int = 2000,
        *,
        group: int | str = 0,
        suffix: str = "",
        loggers: Sequence[Logger] | None = None,
        lr_key: str = LR_KEY,
        batch_size: Callable[[Any], int] | None = None,
    ) -> None:
        self.batch_size = batch_size or _batch_size
        self.samples = 0
        self.lr = BoundedSeries(limit)
        self.val = BoundedSeries(limit)
        self.train = BoundedSeries(limit)
        self.group = group
        self.keys = {name: name + suffix for name in ("val_loss", "val_acc")}
        self.loggers = loggers
        self.lr_key = lr_key
        self.stopped = False
        self.final_lr = math.nan
        self._logged: tuple[int, float] | None = None
        self._last_step = -1
        # The samples seen when the current optimizer step's first batch began (gradients accumulate over several).
        self._step_start, self._stepped = 0, 0
        self._val_loss_seen = False  # the module's val_loss was found at a validation (see _check_val_loss)

    def stop(self, trainer: L.Trainer) -> None:
        """Record nothing more (a stacked copy that was frozen): the curves end here."""
        self._flush_lr(trainer)
        self.stopped = True

    def _loggers(self, trainer: L.Trainer) -> Sequence[Logger]:
        return trainer.loggers if self.loggers is None else self.loggers

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        if self.stopped or optimizer is not trainer.optimizers[0]:
            return
        if isinstance(self.group, str):
            self.group = next(
                i for i, g in enumerate(optimizer.param_groups) if g.get("name") in (self.group, f"{self.group}/0")
            )
        lr = float(optimizer.param_groups[self.group]["lr"])
        self.lr.add(self._step_start, lr)
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
            if trainer.global_step != self._stepped:  # a step ended with this batch: the next starts here
                self._stepped, self._step_start = trainer.global_step, self.samples

    def record_train_loss(self, mean: float) -> None:
        """An epoch's mean training loss (measured by the run's :class:`~.divergence.DivergenceCheck`)."""
        if not self.stopped:
            self.train.add(self.samples, mean)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.keys["val_loss"] == "val_loss" and not self._val_loss_seen:  # a run of its own: the module's keys
            self._check_val_loss(trainer, pl_module)
        if not trainer.sanity_checking:  # every rank, into one collective
            # Their means over the ranks: a module logging val_loss without sync_dist (Lightning's default) holds
            # each rank's own share of the validation set; the mean is the whole set's, as one process sees it.
            metrics = trainer.callback_metrics
            means = rank_means(trainer, [local_value(metrics, self.keys[k]) for k in ("val_loss", "val_acc")])
            if not self.stopped:
                self.val.add(self.samples, *(math.nan if m is None else m for m in means))

    def _check_val_loss(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Refuse, at its first validation, a module that logs no ``val_loss``: the report ranks on it.

        Judged at the sanity check (before training) unless the module logged nothing there (a
        ``validation_step`` that returns early while sanity checking), else at the first validation;
        on all ranks together, so that a module that logs on rank zero only goes on everywhere.
        """
        logged = trainer.callback_metrics
        unjudged = trainer.sanity_checking and not logged
        missing = "val_loss" not in logged and not unjudged
        if trainer.strategy.reduce_boolean_decision(missing, all=True):  # every rank lacks it
            raise InvalidValue(
                f"{type(pl_module).__name__} logs no `val_loss` in validation, which compare ranks the runs on "
                f"(it logged: {', '.join(sorted(logged)) or 'nothing'}): self.log('val_loss', loss) in validation_step"
            )
        self._val_loss_seen = not trainer.sanity_checking


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (list, tuple)) and batch else batch
    if isinstance(first, dict) and first:
        first = next(iter(first.values()))
    return len(first) if hasattr(first, "__len__") else 1
