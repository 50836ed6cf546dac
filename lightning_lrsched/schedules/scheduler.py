"""The one adapter from a :class:`~lightning_lrsched.schedules.Schedule` to a torch scheduler.

:class:`ScheduledLR` is a real ``torch.optim.lr_scheduler.LRScheduler``, so Lightning steps,
checkpoints and reports it like any other. It evaluates the schedule's closed form in chunks of
:data:`CHUNK` steps and indexes into them, so ``step()`` costs a list lookup per param group
and the value at step ``t`` never depends on how it was reached (no drift, exact resume).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lightning_lrsched.schedules.checks import per_group
from lightning_lrsched.schedules.curve import Curve

if TYPE_CHECKING:
    from lightning_lrsched.schedules.schedule import Schedule

CHUNK = 1024


class ScheduledLR(LRScheduler):
    """Sets every param group's LR (and momentum, for schedules that cycle it) from a closed form.

    Made by :meth:`Schedule.build`; not constructed directly.
    """

    def __init__(self, optimizer: Optimizer, schedule: Schedule, curve: Curve) -> None:
        self.schedule = schedule
        self.curve = curve
        groups = optimizer.param_groups
        n = len(groups)
        self.peaks: list[float] = (
            [float(g["lr"]) for g in groups] if curve.peak is None else per_group("max_lr", curve.peak, n)
        )
        # Only CyclicLR's `base_lr` can give a floor per group; name it in a length error.
        self.floors: list[float] = per_group("base_lr", curve.floor, n)
        self._momentum_key: str | None = None
        self._momentum: list[tuple[float, float]] = []
        if curve.momentum is not None:
            if "betas" in optimizer.defaults:
                self._momentum_key = "betas"
            elif "momentum" in optimizer.defaults:
                self._momentum_key = "momentum"
            else:
                raise ValueError(
                    f"`cycle_momentum`=True needs an optimizer with momentum or betas: got "
                    f"{type(optimizer).__name__}; pass cycle_momentum=False"
                )
            low, high = curve.momentum
            lows, highs = per_group("base_momentum", low, n), per_group("max_momentum", high, n)
            self._momentum = list(zip(lows, highs, strict=True))
        self.scale = 1.0
        self._chunk_start = -CHUNK
        self._rows: list[tuple[float, float, float]] = []
        super().__init__(optimizer)
        self.base_lrs = list(self.peaks)

    # -- the closed form, evaluated a chunk at a time --------------------------------------------
    def _row(self, t: int) -> tuple[float, float, float]:
        i = t - self._chunk_start
        if not 0 <= i < CHUNK:
            self._chunk_start, i = t, 0
            w = self.curve.weights(np.arange(t, t + CHUNK, dtype=np.int64))
            zeros = np.zeros(CHUNK)
            self._rows = list(
                zip(
                    w.peak.tolist(),
                    (zeros if w.floor is None else w.floor).tolist(),
                    (zeros if w.momentum is None else w.momentum).tolist(),
                    strict=True,
                )
            )
        return self._rows[i]

    def lrs_at(self, t: int) -> list[float]:
        """The LR of every param group at scheduler step ``t``."""
        a, b, _ = self._row(t)
        return [self.scale * (a * peak + b * floor) for peak, floor in zip(self.peaks, self.floors, strict=True)]

    def rescale(self, factor: float) -> None:
        """Multiply every LR by ``factor`` from now on, on top of the schedule (kept in state_dict)."""
        if not factor > 0:
            raise ValueError(f"`factor` must be > 0: got factor={factor}")
        self.scale *= factor
        self._apply()

    def _apply(self) -> None:
        a, b, u = self._row(self.last_epoch)
        scale = self.scale
        for group, peak, floor in zip(self.optimizer.param_groups, self.peaks, self.floors, strict=True):
            group["lr"] = scale * (a * peak + b * floor)
        if self._momentum_key == "betas":
            for group, (low, high) in zip(self.optimizer.param_groups, self._momentum, strict=True):
                group["betas"] = (u * low + (1 - u) * high, *group["betas"][1:])
        elif self._momentum_key == "momentum":
            for group, (low, high) in zip(self.optimizer.param_groups, self._momentum, strict=True):
                group["momentum"] = u * low + (1 - u) * high
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    # -- torch's LRScheduler interface -----------------------------------------------------------
    def step(self, epoch: int | None = None) -> None:  # type: ignore[override]
        """Advance one scheduler step (an epoch or an optimizer step, as ``interval`` says)."""
        if epoch is not None:
            raise TypeError(
                "`epoch` is not supported: a ScheduledLR advances one step per call; "
                "to jump, load a state_dict with the wanted last_epoch"
            )
        self.last_epoch += 1
        self._apply()

    def get_lr(self) -> list[float]:
        return self.lrs_at(self.last_epoch)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: time, per-group anchors, the schedule's identity."""
        return {
            "last_epoch": self.last_epoch,
            "peaks": list(self.peaks),
            "floors": list(self.floors),
            "scale": self.scale,
            "schedule": self.schedule.to_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state and set the optimizer's LRs to the restored step's values."""
        n = len(self.optimizer.param_groups)
        if len(state_dict["peaks"]) != n:
            raise ValueError(f"the state_dict is for {len(state_dict['peaks'])} param groups but the optimizer has {n}")
        self.last_epoch = int(state_dict["last_epoch"])
        self.peaks = [float(p) for p in state_dict["peaks"]]
        self.floors = [float(f) for f in state_dict["floors"]]
        self.scale = float(state_dict.get("scale", 1.0))
        self.base_lrs = list(self.peaks)
        self._apply()


class PlateauLR(ScheduledLR):
    """The ``plateau`` schedule: time only drives the warmup; fresh metric values drive the LR.

    ``step(metric)`` works as torch's ``ReduceLROnPlateau.step(metric)``. Under Lightning,
    :meth:`follow` makes it read the metric itself just before each optimizer step, and act only
    on a value it has not seen (validation every N epochs, or N times per epoch, both work).
    """

    def __init__(self, optimizer: Optimizer, schedule: Schedule, curve: Curve) -> None:
        assert curve.plateau is not None
        self.rule = curve.plateau
        self.judge = self.rule.judge()
        self.min_lrs = per_group("min_lr", self.rule.min_lr, len(optimizer.param_groups))
        self._read: Callable[[], Any] | None = None
        self._reduce: Callable[[float], float] = float
        self._last_seen: Any = None
        super().__init__(optimizer, schedule, curve)

    def step(self, metrics: Any = None) -> None:  # type: ignore[override]
        """Advance one step; with ``metrics``, also judge that value (torch's ``step(metrics)``)."""
        super().step()
        if metrics is not None:
            self.observe(float(metrics))

    def observe(self, value: float) -> bool:
        """Judge one fresh metric value; reduce the LR when it ends a plateau. True if reduced."""
        if not self.judge.update(value):
            return False
        for i, (peak, floor) in enumerate(zip(self.peaks, self.min_lrs, strict=True)):
            reduced = max(peak * self.rule.factor, floor)
            if peak - reduced > self.rule.eps:
                self.peaks[i] = reduced
        self._apply()
        return True

    def follow(self, read: Callable[[], Any], reduce: Callable[[float], float] = float) -> None:
        """Read the metric with ``read()`` before every optimizer step; ``reduce`` averages ranks."""
        self._read, self._reduce = read, reduce
        self.optimizer.register_step_pre_hook(self._before_optimizer_step)

    def _before_optimizer_step(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        value = self._read() if self._read is not None else None
        # Lightning replaces the metric object on every validation run, so identity tells fresh
        # values from the stale one still sitting in callback_metrics.
        if value is None or value is self._last_seen:
            return
        self._last_seen = value
        self.observe(self._reduce(float(value.item() if isinstance(value, torch.Tensor) else value)))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "plateau": self.judge.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.judge.load_state_dict(state_dict["plateau"])
        super().load_state_dict(state_dict)
