"""`PlateauDetector`: torch's ReduceLROnPlateau rule as a callback that logs, reduces or stops.

The decision rule is :class:`~lightning_lrsched.schedules.PlateauJudge` and the reduction is
:meth:`GroupScheduledLR.reduce <lightning_lrsched.schedules.GroupScheduledLR.reduce>`, the ones the
``plateau`` schedule uses: the same rule on the same metric gives the same LR at every step. Values
are read at each validation end and averaged across processes, so every rank takes the same decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts, CyclicLR, LambdaLR, OneCycleLR

from lightning_lrsched.errors import InvalidType, InvalidValue, TrainingWarning
from lightning_lrsched.lightning import local_value, logged_keys, rank_means
from lightning_lrsched.schedules import GroupScheduledLR, PlateauJudge, PlateauRule
from lightning_lrsched.schedules.plateau_rule import reduced
from lightning_lrsched.validation import check_bool, check_choice, check_int, per_group

ACTIONS = ("log", "reduce", "stop")
DIVERGENCE_ACTIONS = ("stop", "record")
# Torch schedulers that recompute the LR from their own base LRs on every step, so a one-off
# change of param_group["lr"] does not last under them.
NON_CHAINABLE = (LambdaLR, OneCycleLR, CyclicLR, CosineAnnealingWarmRestarts)
# A loss check reads the loss on the host (a device sync) and, under DDP, joins a collective: often enough
# to stop a diverged run early, rarely enough to cost nothing per step. The monitored value is checked too.
DEFAULT_LOSS_CHECK_EVERY = 25


class _MarginJudge(PlateauJudge):
    """torch's rule, plus: an improvement must also beat the best value by ``min_delta``."""

    def __init__(self, rule: PlateauRule, min_delta: float) -> None:
        super().__init__(rule)
        self.min_delta = min_delta

    def is_better(self, value: float) -> bool:
        if not super().is_better(value):
            return False
        if self.min_delta == 0.0:
            return True
        if self.rule.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class PlateauDetector(Callback):
    """Flag when a validation metric stops improving, and log, reduce the LR, or stop.

    A plateau is what ``torch.optim.lr_scheduler.ReduceLROnPlateau`` calls one: after more than
    ``patience`` fresh values with no improvement (``threshold``, ``threshold_mode``), then
    ``cooldown`` values ignored. ``min_delta`` > 0 adds EarlyStopping's condition: an improvement
    must also beat the best value by ``min_delta`` in absolute terms (``min_delta=0`` is torch's rule
    exactly). Values are read at every ``on_validation_end`` while fitting, as EarlyStopping does (so
    validating every N epochs or N times per epoch both work), and averaged across the processes that
    logged them, in one collective every process enters.

    Actions (each plateau is appended to :attr:`events`):

    - ``"log"``: record and log the event.
    - ``"reduce"``: lower every param group's LR by torch's rule, ``max(lr * factor, min_lr)``
      (skipped within ``eps``), on top of the running schedule. A scheduler from this package
      (``ScheduledLR``, ``GroupScheduledLR``) applies it to each group's peak with
      :meth:`~lightning_lrsched.schedules.GroupScheduledLR.reduce`, the ``plateau`` schedule's own
      reduction, so it lasts through later steps and checkpoints, and each group stops at its own
      ``min_lr``. Under another torch scheduler, or none, each group's LR is lowered once, which lasts
      under chainable torch schedulers (StepLR, CosineAnnealingLR, ...) but not under ones that
      recompute from base LRs (LambdaLR, OneCycleLR, CyclicLR, warm restarts).
    - ``"stop"``: stop training, on all processes together.

    Divergence (``action="diverged"`` in :attr:`events`): a non-finite monitored value or
    training loss (``check_finite``), or a value above ``divergence_factor`` × the best value,
    stops training on every process with a warning that names the step (``divergence_action="stop"``)
    or is only recorded (``"record"``: e.g. one of several stacked copies diverged). The training loss is
    checked every ``loss_check_every`` optimizer steps (a host read, and a collective under DDP, that
    would cost more than the rest of the callback if done every step), the monitored value at every
    validation.

    Args:
        monitor: the logged metric to watch.
        mode: ``"min"`` or ``"max"``: whether lower or higher is better.
        patience: bad values tolerated before a plateau.
        threshold: how much better than the best a value must be to count as an improvement.
        threshold_mode: ``"rel"`` (``best * (1 -/+ threshold)``) or ``"abs"`` (``best -/+ threshold``).
        cooldown: fresh values ignored after a plateau.
        min_delta: absolute improvement also required (0: none).
        action: ``"log"``, ``"reduce"`` or ``"stop"``.
        factor: LR multiplier for ``"reduce"``, in (0, 1).
        min_lr: lowest LR a reduction goes to: one value, or one per param group.
        divergence_factor: with ``mode="min"``, a value above ``divergence_factor * best``
            (best > 0) is a divergence. ``None``: no such check.
        check_finite: a NaN or infinite monitored value or training loss is a divergence.
        divergence_action: ``"stop"`` (stop training on every process) or ``"record"`` (only set
            :attr:`diverged` and record the event).
        strict: a monitor that no validation run logs is an error instead of a warning (given once,
            at the first validation end, naming the metrics that are logged), as in EarlyStopping.
        loss_check_every: check the training loss for inf/NaN every this many optimizer steps
            (averaged over processes); 0: never.

    Attributes:
        events: one dict per plateau or divergence: ``step``, ``epoch``, ``value``, ``action``,
            ``reason``.
        diverged: whether a divergence was found.
        judge: the :class:`~lightning_lrsched.schedules.PlateauJudge` (``best``, ``num_bad``,
            ``cooldown_counter``).

    Example:
        >>> import lightning.pytorch as pl
        >>> detector = PlateauDetector(monitor="val_loss", patience=3, action="reduce", factor=0.5)
        >>> trainer = pl.Trainer(callbacks=[detector], logger=False)
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "min",
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_delta: float = 0.0,
        action: str = "log",
        factor: float = 0.1,
        min_lr: float | list[float] = 0.0,
        divergence_factor: float | None = None,
        check_finite: bool = True,
        divergence_action: str = "stop",
        strict: bool = False,
        loss_check_every: int = DEFAULT_LOSS_CHECK_EVERY,
    ) -> None:
        check_choice("divergence_action", divergence_action, DIVERGENCE_ACTIONS)
        check_bool("strict", strict)
        self.loss_check_every = check_int("loss_check_every", loss_check_every, minimum=0)
        if action not in ACTIONS:
            raise InvalidValue(f"`action` must be one of 'log', 'reduce', 'stop': got action={action!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or not 0 <= min_delta < math.inf:
            raise InvalidValue(f"`min_delta` must be a finite number >= 0: got min_delta={min_delta!r}")
        if divergence_factor is not None:
            if (
                isinstance(divergence_factor, bool)
                or not isinstance(divergence_factor, (int, float))
                or not 1 < divergence_factor < math.inf
            ):
                raise InvalidValue(
                    "`divergence_factor` must be a finite number > 1, or None: "
                    f"got divergence_factor={divergence_factor!r}"
                )
            if mode != "min":
                raise InvalidValue(
                    f"`divergence_factor` applies to losses (mode='min'): got mode={mode!r}; "
                    "pass divergence_factor=None with mode='max'"
                )
        if not isinstance(check_finite, bool):
            raise InvalidType(f"`check_finite` must be True or False: got check_finite={check_finite!r}")
        # PlateauRule checks mode, factor, patience, threshold(_mode), cooldown, min_lr and monitor.
        self.rule = PlateauRule(
            mode=mode,
            factor=factor,
            patience=patience,
            threshold=threshold,
            threshold_mode=threshold_mode,
            cooldown=cooldown,
            min_lr=min_lr,
            monitor=monitor,
        )
        self.monitor = monitor
        self.mode = mode
        self.min_delta = float(min_delta)
        self.action = action
        self.factor = float(factor)
        self.divergence_factor = None if divergence_factor is None else float(divergence_factor)
        self.check_finite = check_finite
        self.judge: PlateauJudge = _MarginJudge(self.rule, self.min_delta)
        self.divergence_action = divergence_action
        self.strict = strict
        self.events: list[dict[str, Any]] = []
        self.diverged = False
        self.baseline = math.inf
        # Computed once (Lightning reads state_key at every hook call); two detectors on other metrics
        # or modes live side by side in one checkpoint.
        self._state_key = f"PlateauDetector{{'monitor': {monitor!r}, 'mode': {mode!r}}}"
        self._warned_missing = False
        self._loss_checked_at = -1

    @property
    def state_key(self) -> str:
        return self._state_key

    # -- set-up ----------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._loss_checked_at = -1
        if self.action != "reduce":
            return
        for optimizer in trainer.optimizers:
            per_group("min_lr", self.rule.min_lr, len(optimizer.param_groups))  # a wrong length fails now
        for config in trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, NON_CHAINABLE):
                rank_zero_warn(
                    f"PlateauDetector(action='reduce') changes param_group['lr'] once, but "
                    f"{type(config.scheduler).__name__} recomputes the LR from its base LRs at every step and will "
                    "undo the reduction. Use a schedule from lightning_lrsched.schedules (its scheduler keeps "
                    "reductions), or action='log'.",
                    category=TrainingWarning,
                )

    # -- the training loss, at the logging cadence -----------------------------------------------
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        every = self.loss_check_every
        if not every or step % every or not self.check_finite or step == self._loss_checked_at or self.diverged:
            return
        self._loss_checked_at = step
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        local = float(loss.detach()) if isinstance(loss, torch.Tensor) else None
        # Every process joins this reduction at the same step, so every process sees the same value.
        (mean,) = rank_means(trainer, [local])
        if mean is not None and not math.isfinite(mean):
            self.diverge(trainer, mean, f"the training loss is {mean} (averaged over processes)")

    # -- the monitored metric, at every validation end ---------------------------------------------
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # `diverged` is the same on every process: it was decided on values averaged across them.
        if trainer.state.fn != "fit" or self.diverged:
            return
        (value,) = rank_means(trainer, [local_value(trainer.callback_metrics, self.monitor)])
        if value is None:
            if not trainer.sanity_checking:
                self._missing(trainer)
            return
        if trainer.sanity_checking:
            # The untrained model's value: a run whose first real value is already far above it
            # has diverged, although it never got worse than its own best.
            self.baseline = value if math.isfinite(value) else self.baseline
            return
        reason = self._divergence(value)
        if reason is not None:
            self.diverge(trainer, value, reason)
            return
        if self.judge.update(value):
            self._plateau(trainer, value)

    def _missing(self, trainer: pl.Trainer) -> None:
        message = (
            f"PlateauDetector: the monitored metric {self.monitor!r} was not logged by this validation run, so no "
            f"plateau can be detected. Logged metrics: {logged_keys(trainer)}. Log it in validation_step or set "
            "`monitor` to one of those."
        )
        if self.strict:
            raise InvalidValue(message)
        if not self._warned_missing:
            self._warned_missing = True
            rank_zero_warn(message, category=TrainingWarning)

    def _divergence(self, value: float) -> str | None:
        if self.check_finite and not math.isfinite(value):
            return f"{self.monitor} is {value}"
        best = min(self.judge.best, self.baseline)
        if self.divergence_factor is not None and math.isfinite(best) and best > 0:
            if value > self.divergence_factor * best:
                return (
                    f"{self.monitor}={value:.6g} is above divergence_factor={self.divergence_factor:g} x "
                    f"best={best:.6g} (the best includes the untrained model's value from the sanity check)"
                )
        return None

    # -- decisions --------------------------------------------------------------------------------
    # Each decision is taken on values averaged across processes (rank_means), so every process takes
    # the same one without a second collective.
    def _plateau(self, trainer: pl.Trainer, value: float) -> None:
        runs = self.judge.since_best
        reason = (
            f"{self.monitor} has not improved on its best value {self.judge.best:.6g} "
            f"for {runs} validation run{'s' if runs != 1 else ''}"
        )
        self._record(trainer, value, self.action, reason)
        if self.action == "reduce":
            count = self._reduce(trainer)
            rank_zero_info(f"PlateauDetector: {reason}; LR of {count} param group(s) multiplied by {self.factor:g}.")
        elif self.action == "stop":
            trainer.should_stop = True
            rank_zero_info(f"PlateauDetector: {reason}; stopping at step {trainer.global_step}.")
        else:
            rank_zero_info(f"PlateauDetector: {reason} (step {trainer.global_step}).")

    def diverge(self, trainer: pl.Trainer, value: float, reason: str) -> None:
        """Record a divergence (found here, or by the caller) and act on it as ``divergence_action`` says.

        Call it on every process together, with the same ``reason``: ``"stop"`` stops them all.
        """
        if self.diverged:
            return
        self.diverged = True
        self._record(trainer, value, "diverged", reason)
        if self.divergence_action == "record":
            return
        trainer.should_stop = True
        rank_zero_warn(
            f"PlateauDetector: training diverged at step {trainer.global_step} (epoch {trainer.current_epoch}): "
            f"{reason}. Stopping. Lower the LR, add warmup or gradient clipping, or check the data.",
            category=TrainingWarning,
        )

    def _record(self, trainer: pl.Trainer, value: float, action: str, reason: str) -> None:
        step = trainer.global_step
        self.events.append(
            {"step": step, "epoch": trainer.current_epoch, "value": value, "action": action, "reason": reason}
        )
        if trainer.is_global_zero:
            key = f"{'diverged' if action == 'diverged' else 'plateau'}-{self.monitor}"
            for logger in trainer.loggers:
                logger.log_metrics({key: value}, step=step)

    def _reduce(self, trainer: pl.Trainer) -> int:
        """Apply the plateau rule's reduction to every param group; the number of groups it lowered."""
        rule, count = self.rule, 0
        for optimizer in trainer.optimizers:
            groups = optimizer.param_groups
            floors = per_group("min_lr", rule.min_lr, len(groups))
            scheduled = [
                c.scheduler
                for c in trainer.lr_scheduler_configs
                if c.scheduler.optimizer is optimizer and isinstance(c.scheduler, GroupScheduledLR)
            ]
            if scheduled:
                # The scheduler owns the LR: lowering its peaks lasts through later steps and checkpoints.
                for scheduler in scheduled:
                    count += len(scheduler.reduce(range(len(groups)), rule.factor, floors, rule.eps))
                continue
            for group, floor in zip(groups, floors, strict=True):
                new = reduced(float(group["lr"]), rule.factor, floor, rule.eps)
                if new is not None:
                    group["lr"] = new
                    count += 1
        return count

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.judge.best,
            "num_bad": self.judge.num_bad,
            "cooldown_counter": self.judge.cooldown_counter,
            "since_best": self.judge.since_best,
            "events": [dict(e) for e in self.events],
            "diverged": self.diverged,
            "baseline": self.baseline,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state; keys missing from older checkpoints keep their current values."""
        judge = self.judge
        judge.best = float(state_dict.get("best", judge.best))
        judge.num_bad = int(state_dict.get("num_bad", state_dict.get("wait", judge.num_bad)))
        judge.cooldown_counter = int(state_dict.get("cooldown_counter", judge.cooldown_counter))
        judge.since_best = int(state_dict.get("since_best", judge.num_bad))
        self.events = [dict(e) for e in state_dict.get("events", self.events)]
        self.diverged = bool(state_dict.get("diverged", self.diverged))
        self.baseline = float(state_dict.get("baseline", self.baseline))
