"""The Lightning glue of plateau decisions: monitored values averaged across processes, and `PlateauDriver`.

``PlateauDriver`` (the ``plateau`` schedule) and ``PlateauDetector`` both read their metrics with
:func:`rank_means`, at the end of a validation run that every process passes together, so each
decision is taken on the same number on every rank, in one collective that every rank enters.

``PlateauDriver`` is the one place where a metric changes a scheduled LR: at ``on_validation_end``
it averages each plateau schedule's monitored value across processes and hands it to :meth:`GroupScheduledLR.observe
<lightning_lrsched.schedules.GroupScheduledLR.observe>`. The new LR is then in ``param_groups``
before the next training batch starts, and Lightning's ``ModelCheckpoint`` (which runs after every
other callback) saves it with that validation's checkpoint, so a resume continues exactly.

One checkpoint cannot resume exactly: one saved at the end of a training batch that a validation
follows (``ModelCheckpoint(every_n_train_steps=N)`` landing on an epoch's last batch), because on
resume Lightning does not run that validation, so the ``plateau`` schedule never sees its value. No
public Lightning hook can run it in its place, so ``PlateauDriver`` records the position in its state
and warns when a run resumes from it (what was skipped, and how to save checkpoints that resume
exactly: at validation end, or at steps no validation follows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from lightning_lrsched.errors import InvalidValue, TrainingWarning
from lightning_lrsched.schedules import GroupScheduledLR
from lightning_lrsched.validation import check_bool


def local_value(metrics: Mapping[str, Any], key: str) -> float | None:
    """``metrics[key]`` as a float (``None`` when this process has not logged it)."""
    value = metrics.get(key)
    if value is None:
        return None
    return float(value.item() if isinstance(value, torch.Tensor) else value)


def rank_means(trainer: pl.Trainer, values: Sequence[float | None]) -> list[float | None]:
    """Average each value over the processes that have it; ``None`` where no process has it.

    One ``sum`` all-reduce of ``(value, present)`` pairs in float64 (float32 on MPS, which has no
    float64), whatever the number of values: a metric logged on some ranks only
    (``self.log(..., rank_zero_only=True)``) gives every rank the mean of the ranks that logged it
    instead of a hang or a collective mismatch.
    """
    if trainer.world_size <= 1:
        return list(values)
    pairs = [(0.0, 0.0) if v is None else (v, 1.0) for v in values]
    device = trainer.strategy.root_device
    dtype = torch.float32 if device.type == "mps" else torch.float64
    local = torch.tensor(pairs, dtype=dtype, device=device).reshape(-1, 2)
    total = trainer.strategy.reduce(local, reduce_op="sum").cpu().tolist()
    return [None if count == 0 else value / count for value, count in total]


def logged_keys(trainer: pl.Trainer) -> str:
    """The metric names logged so far, for an error that says what would be valid."""
    keys = sorted(trainer.callback_metrics)
    return ", ".join(keys) if keys else "(none)"


class PlateauDriver(Callback):
    """Drive the ``plateau`` schedules of the trainer's schedulers from validation results.

    :meth:`Schedule.lightning_config <lightning_lrsched.schedules.Schedule.lightning_config>` refuses
    a ``plateau`` schedule unless a ``PlateauDriver`` is among the trainer's callbacks;
    :class:`~lightning_lrsched.SyntheticClassifier` brings its own (``configure_callbacks``).

    Like ``EarlyStopping``, it reads the monitored value at every validation end while fitting (not
    in the sanity check), so validation at each epoch end, every N epochs, or N times per epoch
    (``val_check_interval``) all work. A value logged on some processes only is averaged over those.

    Args:
        strict: a monitored metric that no process logged by a validation end is an error instead of
            a warning (given once).

    Example:
        >>> import lightning.pytorch as pl
        >>> trainer = pl.Trainer(callbacks=[PlateauDriver()], logger=False)
    """

    def __init__(self, strict: bool = False) -> None:
        self.strict = check_bool("strict", strict)
        self._warned: set[str] = set()
        # Where a validation is due that has not started: a checkpoint saved now skips it on resume.
        self._validation_due: dict[str, Any] | None = None
        self._resumed_before_validation: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return "PlateauDriver"

    def state_dict(self) -> dict[str, Any]:
        return {"validation_due": self._validation_due}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resumed_before_validation = state_dict.get("validation_due")  # absent in older checkpoints

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        due, self._resumed_before_validation = self._resumed_before_validation, None
        if due is None or due.get("step") != trainer.global_step or not _plateau_targets(trainer):
            return
        metrics = ", ".join(repr(metric) for _, _, metric in _plateau_targets(trainer))
        rank_zero_warn(
            f"PlateauDriver: this run resumes from a checkpoint saved at step {due['step']}, at the end of training "
            f"batch {due['batch_idx']} of epoch {due['epoch']}, before the validation that follows that batch; "
            f"Lightning does not run that validation on resume, so the `plateau` schedule misses one value of "
            f"{metrics} and its LR can differ from the uninterrupted run's from here on. To resume exactly, save "
            "checkpoints at validation end (ModelCheckpoint without every_n_train_steps, or with a `monitor`) or "
            "at steps no validation follows",
            category=TrainingWarning,
        )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Runs before ModelCheckpoint's own on_train_batch_end (Lightning calls it last), so a step
        # checkpoint written for this batch holds it.
        self._validation_due = None
        if _validates_after(trainer, batch_idx) and _plateau_targets(trainer):
            self._validation_due = {"epoch": trainer.current_epoch, "batch_idx": batch_idx, "step": trainer.global_step}

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A checkpoint saved from here on (mid-validation, at its end) resumes into it or after it.
        if not trainer.sanity_checking:
            self._validation_due = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        targets = _plateau_targets(trainer)
        if not targets:
            return
        metrics = trainer.callback_metrics
        values = rank_means(trainer, [local_value(metrics, metric) for _, _, metric in targets])
        for (scheduler, lane, metric), value in zip(targets, values, strict=True):
            if value is None:
                self._missing(trainer, metric)
                continue
            scheduler.observe(value, lane)

    def _missing(self, trainer: pl.Trainer, metric: str) -> None:
        message = (
            f"PlateauDriver: the `plateau` schedule monitors {metric!r}, which was not logged by this validation run: "
            f"its LR cannot follow it. Logged metrics: {logged_keys(trainer)}. Log it in validation_step "
            "(self.log(...)) or set the schedule's `monitor` to one of those."
        )
        if self.strict:
            raise InvalidValue(message)
        if metric not in self._warned:
            self._warned.add(metric)
            rank_zero_warn(message, category=TrainingWarning)


def _plateau_targets(trainer: pl.Trainer) -> list[tuple[GroupScheduledLR, int, str]]:
    """Each ``plateau`` lane of the trainer's schedulers: its scheduler, lane index and monitored metric."""
    return [
        (config.scheduler, i, lane.monitor)
        for config in trainer.lr_scheduler_configs
        if isinstance(config.scheduler, GroupScheduledLR)
        for i, lane in enumerate(config.scheduler.lanes)
        if lane.monitor is not None
    ]


def _validates_after(trainer: pl.Trainer, batch_idx: int) -> bool:
    """Whether Lightning validates right after training batch ``batch_idx``, by its batch-count rule.

    The rule of Lightning's training epoch loop, read from the Trainer's public settings; validation
    on a time interval or on an early stop is not foreseen (no warning then).
    """
    every = trainer.check_val_every_n_epoch
    if not trainer.enable_validation or (every is not None and (trainer.current_epoch + 1) % every):
        return False
    interval = trainer.val_check_batch
    if interval is None:  # validation on a time interval
        return False
    if interval == float("inf"):  # a loader of unknown length: at its end
        return trainer.is_last_batch
    index = batch_idx if every is not None else trainer.fit_loop.epoch_loop.total_batch_idx
    return (index + 1) % int(interval) == 0
