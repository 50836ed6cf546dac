"""Divergence in a comparison: one judge for runs of their own and stacked copies alike.

A run has diverged when its training cannot mean anything any more:

- its training loss, its parameters or its validation loss are not finite (a stacked copy's
  gradient, checked by the stacked module at every step, too);
- the LR of the next step would overflow the parameters' dtype;
- its training loss blows up: an epoch's mean training loss above ``factor`` × the best seen so far,
  the untrained model's loss on its first batch included (``factor=None``: no such check).

A validation loss that is high but finite is *not* divergence: a BatchNorm net evaluated with its
running statistics early in training often scores far above its untrained value while its
training loss falls.

:class:`Divergence` is the judge (pure: numbers in, a reason out); :class:`DivergenceCheck` is the
Lightning callback that feeds it for one run or one stacked copy, on values averaged over
processes, so every process decides alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lightning_lrsched.lightning import rank_means

LOSS_CHECK_EVERY = 25
"""Optimizer steps between checks that the training loss is finite (a host read and, under DDP, a collective)."""


class RunDiverged(Exception):
    """Raised from a run's callbacks when the next step cannot be taken (its LR overflows the parameters)."""


class Divergence:
    """Whether one run has diverged, from the values it is shown.

    Args:
        factor: an epoch's mean training loss above ``factor`` × the best (> 0) is a divergence; ``None``: off.

    Example:
        >>> judge = Divergence(factor=10.0)
        >>> judge.first_loss(0.7)
        >>> judge.epoch_loss(0.5) is None, judge.epoch_loss(4.9) is None
        (True, True)
        >>> judge.epoch_loss(5.1)
        'the mean training loss of the epoch (5.1) is above divergence_factor=10 x its best (0.5)'
    """

    def __init__(self, factor: float | None) -> None:
        self.factor = factor
        self.best = math.inf

    def first_loss(self, value: float) -> None:
        """The untrained model's loss on its first batch: a best to compare the epochs' losses with."""
        if math.isfinite(value):
            self.best = min(self.best, value)

    def loss(self, value: float) -> str | None:
        return None if math.isfinite(value) else f"the training loss is {value}"

    def epoch_loss(self, mean: float) -> str | None:
        if not math.isfinite(mean):
            return f"the mean training loss of the epoch is {mean}"
        if self.factor is not None and math.isfinite(self.best) and self.best > 0 and mean > self.factor * self.best:
            return (
                f"the mean training loss of the epoch ({mean:.6g}) is above divergence_factor={self.factor:g} x "
                f"its best ({self.best:.6g})"
            )
        self.best = min(self.best, mean)
        return None

    @staticmethod
    def validation_loss(value: float) -> str | None:
        return None if math.isfinite(value) else f"val_loss is {value}"

    @staticmethod
    def lr(lr: float, dtype: torch.dtype) -> str | None:
        """Why a step at ``lr`` cannot be taken on parameters of ``dtype``, or ``None``."""
        largest = torch.finfo(dtype).max if dtype.is_floating_point else math.inf
        return None if abs(lr) <= largest else f"the LR ({lr:.3g}) overflows the parameters' dtype ({dtype})"


def _returned_loss(outputs: Any, pl_module: L.LightningModule) -> torch.Tensor | None:
    """The loss ``training_step`` returned (``None``: it returned none for this batch).

    Lightning hands the callbacks that loss divided by ``accumulate_grad_batches`` (the share its
    backward takes): multiplied back, so that accumulating does not halve the recorded loss.
    """
    loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
    if not isinstance(loss, torch.Tensor):
        return None
    return loss.detach() * pl_module.trainer.accumulate_grad_batches


class LossMeter:
    """The training losses of a run, or of every copy of a stacked run at once (one vector), by epoch.

    The copies' checks of a stacked run share one meter: the first to see a batch adds the copies'
    losses as one vector (a few kernels per step, not a few per copy), and each reads its own slot.

    Args:
        loss_of: the step's loss(es) from ``(outputs, pl_module)``: a scalar, or one per copy.
        batch_size: this process's samples in a training batch (default: 1 per batch).
        width: the losses per step (a stacked run's copies): every process reduces that many values,
            ``None`` for those it has none of.
    """

    def __init__(
        self,
        loss_of: Callable[[Any, L.LightningModule], torch.Tensor | None] = _returned_loss,
        batch_size: Callable[[Any], int] | None = None,
        width: int = 1,
    ) -> None:
        self.loss_of = loss_of
        self.batch_size = batch_size
        self.width = width
        self._sum: torch.Tensor | None = None
        self._count = 0
        self._added: Any = None
        self._last: torch.Tensor | None = None
        self._values: tuple[Any, list[float | None]] | None = None
        self._closed: tuple[int, list[float | None]] | None = None

    def add(self, key: Any, outputs: Any, pl_module: L.LightningModule, batch: Any) -> bool:
        """Add batch ``key``'s losses once, whoever asks first; whether the batch had a loss."""
        if self._added != key:
            self._added = key
            loss = self.loss_of(outputs, pl_module)
            self._last = None if loss is None else loss.detach().float().reshape(-1)
            if self._last is not None:
                size = self.batch_size(batch) if self.batch_size else 1
                self._sum = self._last * size if self._sum is None else self._sum + self._last * size
                self._count += size
        return self._last is not None

    def values(self, trainer: L.Trainer, key: Any) -> list[float | None]:
        """Batch ``key``'s losses, averaged over processes (one host read and one collective per batch)."""
        if self._values is None or self._values[0] != key:
            last = [None] * self.width if self._last is None else self._last.tolist()
            self._values = (key, rank_means(trainer, last))
        return self._values[1]

    def close(self, trainer: L.Trainer, epoch: int) -> list[float | None]:
        """Epoch ``epoch``'s mean losses, averaged over processes; the sums start again (once per epoch)."""
        if self._closed is None or self._closed[0] != epoch:
            total = self._sum
            local: list[float | None] = [None] * self.width
            if total is not None and self._count:
                local = [value / self._count for value in total.tolist()]
            self._sum, self._count = None, 0
            self._closed = (epoch, rank_means(trainer, local))
        return self._closed[1]

    def partial(self, trainer: L.Trainer, index: int) -> float | None:
        """Slot ``index``'s mean loss of the epoch so far (a run or copy that ends mid-epoch)."""
        local = None if self._sum is None or not self._count else float(self._sum[index]) / self._count
        (mean,) = rank_means(trainer, [local])
        return mean


class DivergenceCheck(Callback):
    """Feeds a :class:`Divergence` judge from one run (or one copy of a stacked run) and acts on its verdict.

    It also measures what the judge needs and the record keeps: the mean training loss of every
    epoch (the loss ``training_step`` returned, weighted by batch size and averaged over processes),
    whether the module logs one or not.

    Args:
        factor: see :class:`Divergence`.
        loss_of: the training loss of a step from ``(outputs, pl_module)``; default: what
            ``training_step`` returned (a stacked copy reads its own from the module).
        batch_size: this process's samples in a training batch.
        on_diverge: ``(trainer, value, reason)`` once the run has diverged; default: stop training
            (on every process: the decision is taken on values averaged over them).
        monitor: the validation metric checked for non-finite values (``None``: none).
        check_parameters: check at every epoch end that the parameters are finite (a stacked copy's
            gradients are checked by its module instead).
        on_epoch_loss: called with each epoch's mean training loss (the run's recorder keeps the curve).
        groups: the param groups of ``optimizer`` that this run trains (a stacked copy's); default: all.

    Attributes:
        epoch_losses: the mean training loss of each finished epoch (rank zero's view: averaged over processes).
        events: the divergence, as ``{"step", "epoch", "value", "action": "diverged", "reason"}`` (``value``:
            the monitored metric's last value, averaged over processes, as in every other event).
        reason: why the run diverged ("" while it has not).
    """

    def __init__(
        self,
        factor: float | None,
        *,
        meter: LossMeter | None = None,
        index: int = 0,
        on_diverge: Callable[[L.Trainer, float, str], None] | None = None,
        monitor: str | None = "val_loss",
        check_parameters: bool = True,
        on_epoch_loss: Callable[[float], None] | None = None,
        groups: Callable[[Any], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.judge = Divergence(factor)
        self.meter = meter or LossMeter()
        self.index = index
        self.on_diverge = on_diverge
        self.monitor = monitor
        self.check_parameters = check_parameters
        self.on_epoch_loss = on_epoch_loss
        self.groups = groups or (lambda optimizer: optimizer.param_groups)
        self.epoch_losses: list[float] = []
        self.events: list[dict[str, Any]] = []
        self.reason = ""
        self._first = True
        self._last_val = math.nan

    @property
    def diverged(self) -> bool:
        return bool(self.reason)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        if self.diverged:
            return
        for group in self.groups(optimizer):
            dtype = next((p.dtype for p in group["params"] if p.is_floating_point()), torch.float32)
            reason = Divergence.lr(float(group["lr"]), dtype)
            if reason is not None:
                self.diverge(trainer, f"{reason} at step {trainer.global_step}")
                if self.on_diverge is None:
                    raise RunDiverged(self.reason)  # the step must not be taken: the run ends here
                return

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.diverged:
            return
        key = (trainer.current_epoch, batch_idx)
        if not self.meter.add(key, outputs, pl_module, batch):
            return
        step = trainer.global_step
        if self._first or step % LOSS_CHECK_EVERY == 0:
            # Every process reaches this at the same step: one collective, the same value everywhere.
            value = self.meter.values(trainer, key)[self.index]
            if value is None:
                return
            if self._first:
                self.judge.first_loss(value)
                self._first = False
            reason = self.judge.loss(value)
            if reason:
                self.diverge(trainer, f"{reason} at step {step} (averaged over processes)")

    def _keep(self, mean: float | None) -> None:
        if mean is not None:
            self.epoch_losses.append(mean)
            if self.on_epoch_loss is not None:
                self.on_epoch_loss(mean)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.diverged:
            return  # the epoch it diverged in was closed then (see diverge)
        mean = self.meter.close(trainer, trainer.current_epoch)[self.index]
        self._keep(mean)
        reason = None if mean is None else self.judge.epoch_loss(mean)
        if reason is None and self.check_parameters:
            finite = all(bool(torch.isfinite(p).all()) for p in pl_module.parameters())
            (value,) = rank_means(trainer, [float(finite)])
            if value is not None and value < 1:
                reason = f"the parameters are not finite at the end of epoch {trainer.current_epoch + 1}"
        if reason:
            self.diverge(trainer, reason)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.diverged or self.monitor is None:
            return
        value = trainer.callback_metrics.get(self.monitor)
        (mean,) = rank_means(trainer, [None if value is None else float(value)])
        if mean is None:
            return
        self._last_val = mean
        reason = Divergence.validation_loss(mean)
        if reason:
            self.diverge(trainer, reason)

    def diverge(self, trainer: L.Trainer, reason: str) -> None:
        """Record the divergence (found here or by the caller) and act on it; every process calls it alike."""
        if self.diverged:
            return
        self._keep(self.meter.partial(trainer, self.index))  # the epoch it diverged in keeps its loss so far
        self.reason = reason
        self.events.append(
            {
                "step": trainer.global_step,
                "epoch": trainer.current_epoch,
                "value": self._last_val,
                "action": "diverged",
                "reason": reason,
            }
        )
        if self.on_diverge is not None:
            self.on_diverge(trainer, self._last_val, reason)
        else:
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.judge.best, "epoch_losses": self.epoch_losses, "reason": self.reason}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.judge.best = state_dict.get("best", self.judge.best)
        self.epoch_losses = list(state_dict.get("epoch_losses", self.epoch_losses))
        self.reason = state_dict.get("reason", self.reason)
