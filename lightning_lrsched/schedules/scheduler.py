"""The one adapter from schedules to a torch scheduler.

:class:`GroupScheduledLR` is a real ``torch.optim.lr_scheduler.LRScheduler`` that drives param
groups along schedules' closed forms, each group along the schedule of its :class:`Lane` (so a
backbone and a head, or K copies of a model, can follow different schedules in one optimizer).
:class:`ScheduledLR` is its everyday case: one schedule for every group, made by
:meth:`Schedule.build`; :class:`PlateauLR` is that case for the metric-driven ``plateau``.

Each lane's closed form is evaluated in chunks of :data:`CHUNK` steps and indexed into, so
``step()`` costs a list lookup per param group and the value at step ``t`` never depends on how it
was reached (no drift, exact resume). Lightning steps, checkpoints and reports these schedulers
like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.schedules.curve import Curve
from lightning_lrsched.schedules.plateau import PlateauJudge
from lightning_lrsched.validation import per_group

if TYPE_CHECKING:
    from lightning_lrsched.schedules.schedule import Schedule

CHUNK = 1024


@dataclass(frozen=True)
class Lane:
    """One schedule resolved for a run, and the param groups it drives.

    Attributes:
        schedule: the schedule.
        curve: its closed form for the run (:meth:`Schedule.curve`).
        groups: indices of the optimizer's param groups it drives.
        stride: scheduler steps per unit of the curve's time: 1, or the optimizer steps per epoch
            for an epoch schedule stepped every optimizer step (its time is then ``step // stride``).
        monitor: for ``plateau``, the logged metric to read instead of the schedule's own
            ``monitor`` (e.g. ``"val_loss/head"``); ``None`` reads ``monitor``.
    """

    schedule: Schedule
    curve: Curve
    groups: tuple[int, ...]
    stride: int = 1
    monitor: str | None = None

    @property
    def metric(self) -> str | None:
        """The metric a ``plateau`` lane reads (``None`` for time-driven schedules)."""
        if self.curve.plateau is None:
            return None
        return self.monitor or self.curve.plateau.monitor


class _Rows:
    """A curve's ``(peak, floor, momentum)`` weights at integer times, computed CHUNK steps at a time."""

    __slots__ = ("rows", "start", "weights")

    def __init__(self, curve: Curve) -> None:
        self.weights = curve.weights
        self.start = -CHUNK
        self.rows: list[tuple[float, float, float]] = []

    def __call__(self, t: int) -> tuple[float, float, float]:
        i = t - self.start
        if not 0 <= i < CHUNK:
            self.start, i = t, 0
            w = self.weights(np.arange(t, t + CHUNK, dtype=np.int64))
            zeros = np.zeros(CHUNK)
            self.rows = list(
                zip(
                    w.peak.tolist(),
                    (zeros if w.floor is None else w.floor).tolist(),
                    (zeros if w.momentum is None else w.momentum).tolist(),
                    strict=True,
                )
            )
        return self.rows[i]


class GroupScheduledLR(LRScheduler):
    """Sets each param group's LR (and momentum, for schedules that cycle it) from its lane's closed form.

    The LR of group ``g`` in lane ``l`` at scheduler step ``t`` is
    ``scale * (a(t // stride) * peak_g + b(t // stride) * floor_g)`` with ``a, b`` from the lane's
    curve (see :mod:`lightning_lrsched.schedules.curve`). ``plateau`` lanes keep a
    :class:`PlateauJudge` each and lower only their own groups' peaks; under Lightning,
    :meth:`follow` makes them read their metrics just before each optimizer step and act on fresh
    values only.

    Made by :meth:`GroupSchedules.build <lightning_lrsched.schedules.GroupSchedules.build>` (and,
    for one schedule, by :meth:`Schedule.build`); not constructed directly.

    Attributes:
        lanes: the lanes, which together cover every param group once.
        peaks: each group's current peak LR (plateau reductions lower it).
        floors: each group's absolute floor LR.
        scale: a factor on every LR, from :meth:`rescale`.
        judges: per lane, its :class:`PlateauJudge`, or ``None`` for time-driven lanes.
    """

    def __init__(self, optimizer: Optimizer, lanes: Sequence[Lane]) -> None:
        groups = optimizer.param_groups
        n = len(groups)
        covered = sorted(g for lane in lanes for g in lane.groups)
        if covered != list(range(n)):
            raise InvalidValue(
                f"every param group needs exactly one schedule: the optimizer has {n} param groups, "
                f"the schedules drive groups {covered}"
            )
        self.lanes = tuple(lanes)
        self.peaks: list[float] = [0.0] * n
        self.floors: list[float] = [0.0] * n
        self.min_lrs: list[float] = [0.0] * n
        self._momenta: list[tuple[float, float] | None] = [None] * n
        self._momentum_key: str | None = None
        for lane in self.lanes:
            curve, k = lane.curve, len(lane.groups)
            own = [groups[g]["lr"] for g in lane.groups]
            # Only CyclicLR's `base_lr` can give a floor per group; name it in a length error.
            values = {
                "peaks": own if curve.peak is None else per_group("max_lr", curve.peak, k),
                "floors": per_group("base_lr", curve.floor, k),
                "min_lrs": per_group("min_lr", curve.plateau.min_lr, k) if curve.plateau else [0.0] * k,
            }
            if curve.momentum is not None:
                self._momentum_key = self._momentum_key or _momentum_key(optimizer)
                low, high = curve.momentum
                ranges = zip(per_group("base_momentum", low, k), per_group("max_momentum", high, k), strict=True)
                for g, pair in zip(lane.groups, ranges, strict=True):
                    self._momenta[g] = pair
            for name, per_lane in values.items():
                target = getattr(self, name)
                for g, value in zip(lane.groups, per_lane, strict=True):
                    target[g] = float(value)
        self.judges: list[PlateauJudge | None] = [
            None if lane.curve.plateau is None else lane.curve.plateau.judge() for lane in self.lanes
        ]
        self.scale = 1.0
        self._rows = [_Rows(lane.curve) for lane in self.lanes]
        self._read: Callable[[], Mapping[str, Any]] | None = None
        self._reduce: Callable[[float], float] = float
        self._last_seen: list[Any] = [None] * len(self.lanes)
        super().__init__(optimizer)
        self.base_lrs = list(self.peaks)

    # -- the closed forms, evaluated a chunk at a time -------------------------------------------
    def lrs_at(self, t: int) -> list[float]:
        """The LR of every param group at scheduler step ``t``."""
        lrs = [0.0] * len(self.peaks)
        peaks, floors, scale = self.peaks, self.floors, self.scale
        for lane, rows in zip(self.lanes, self._rows, strict=True):
            a, b, _ = rows(t // lane.stride)
            for g in lane.groups:
                lrs[g] = scale * (a * peaks[g] + b * floors[g])
        return lrs

    def rescale(self, factor: float) -> None:
        """Multiply every LR by ``factor`` from now on, on top of the schedules (kept in state_dict)."""
        if not factor > 0:
            raise InvalidValue(f"`factor` must be > 0: got factor={factor}")
        self.scale *= factor
        self._apply()

    def _apply(self) -> None:
        groups, peaks, floors, scale = self.optimizer.param_groups, self.peaks, self.floors, self.scale
        t, key, momenta = self.last_epoch, self._momentum_key, self._momenta
        for lane, rows in zip(self.lanes, self._rows, strict=True):
            a, b, u = rows(t // lane.stride)
            for g in lane.groups:
                group = groups[g]
                group["lr"] = scale * (a * peaks[g] + b * floors[g])
                pair = momenta[g]
                if pair is None:
                    continue
                if key == "betas":
                    group["betas"] = (u * pair[0] + (1 - u) * pair[1], *group["betas"][1:])
                else:
                    group["momentum"] = u * pair[0] + (1 - u) * pair[1]
        self._last_lr = [group["lr"] for group in groups]

    # -- plateau lanes ------------------------------------------------------------------------------
    def observe(self, value: float, lane: int = 0) -> bool:
        """Judge one fresh metric value for a ``plateau`` lane; True if it reduced the lane's LRs."""
        judge = self.judges[lane] if 0 <= lane < len(self.judges) else None
        if judge is None:
            plateau = [i for i, j in enumerate(self.judges) if j is not None]
            raise InvalidValue(f"lane {lane} is not a `plateau` schedule: the plateau lanes are {plateau}")
        if not judge.update(value):
            return False
        rule = judge.rule
        for g in self.lanes[lane].groups:
            reduced = max(self.peaks[g] * rule.factor, self.min_lrs[g])
            if self.peaks[g] - reduced > rule.eps:
                self.peaks[g] = reduced
        self._apply()
        return True

    def follow(self, read: Callable[[], Mapping[str, Any]], reduce: Callable[[float], float] = float) -> None:
        """Read each plateau lane's metric from ``read()`` before every optimizer step.

        ``read`` returns the latest logged metrics (``trainer.callback_metrics``); a lane judges its
        metric's value once, when it is a new object (Lightning logs a new one on every validation
        run). ``reduce`` averages a value across processes, so every rank takes the same decision.
        """
        self._read, self._reduce = read, reduce
        if any(judge is not None for judge in self.judges):
            self.optimizer.register_step_pre_hook(self._before_optimizer_step)

    def _before_optimizer_step(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        if self._read is None:
            return
        metrics = self._read()
        for i, lane in enumerate(self.lanes):
            key = lane.metric
            if key is None:
                continue
            value = metrics.get(key)
            # Lightning replaces the metric object on every validation run, so identity tells fresh
            # values from the stale one still sitting in callback_metrics.
            if value is None or value is self._last_seen[i]:
                continue
            self._last_seen[i] = value
            self.observe(self._reduce(float(value.item() if isinstance(value, torch.Tensor) else value)), i)

    # -- torch's LRScheduler interface -----------------------------------------------------------
    def step(self, epoch: int | None = None) -> None:  # type: ignore[override]
        """Advance one scheduler step (an epoch or an optimizer step, as ``interval`` says)."""
        if epoch is not None:
            raise InvalidType(
                f"`epoch` is not supported: a {type(self).__name__} advances one step per call; "
                "to jump, load a state_dict with the wanted last_epoch"
            )
        self.last_epoch += 1
        self._apply()

    def get_lr(self) -> list[float]:
        return self.lrs_at(self.last_epoch)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: time, per-group anchors, each lane's identity and judge."""
        return {
            "last_epoch": self.last_epoch,
            "peaks": list(self.peaks),
            "floors": list(self.floors),
            "scale": self.scale,
            "schedules": [lane.schedule.to_dict() for lane in self.lanes],
            "plateau": [None if judge is None else judge.state_dict() for judge in self.judges],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state and set the optimizer's LRs to the restored step's values."""
        n = len(self.optimizer.param_groups)
        if len(state_dict["peaks"]) != n:
            raise InvalidValue(
                f"the state_dict is for {len(state_dict['peaks'])} param groups but the optimizer has {n}"
            )
        judges = state_dict.get("plateau") or [None] * len(self.judges)
        if len(judges) != len(self.judges):
            raise InvalidValue(
                f"the state_dict is for {len(judges)} schedules but this scheduler has {len(self.judges)}"
            )
        for judge, state in zip(self.judges, judges, strict=True):
            if judge is not None and state is not None:
                judge.load_state_dict(state)
        self.last_epoch = int(state_dict["last_epoch"])
        self.peaks = [float(p) for p in state_dict["peaks"]]
        self.floors = [float(f) for f in state_dict["floors"]]
        self.scale = float(state_dict.get("scale", 1.0))
        self.base_lrs = list(self.peaks)
        self._apply()


def _momentum_key(optimizer: Optimizer) -> str:
    if "betas" in optimizer.defaults:
        return "betas"
    if "momentum" in optimizer.defaults:
        return "momentum"
    raise InvalidValue(
        f"`cycle_momentum`=True needs an optimizer with momentum or betas: got "
        f"{type(optimizer).__name__}; pass cycle_momentum=False"
    )


class ScheduledLR(GroupScheduledLR):
    """Sets every param group's LR (and momentum, for schedules that cycle it) from one schedule.

    Made by :meth:`Schedule.build`; not constructed directly.

    Attributes:
        schedule: the schedule.
        curve: its closed form for the run.
    """

    def __init__(self, optimizer: Optimizer, schedule: Schedule, curve: Curve) -> None:
        self.schedule = schedule
        self.curve = curve
        super().__init__(optimizer, [Lane(schedule, curve, tuple(range(len(optimizer.param_groups))))])

    def state_dict(self) -> dict[str, Any]:
        """Time, per-group anchors, scale and the schedule (and, for ``plateau``, its judge's memory)."""
        state = super().state_dict()
        state["schedule"] = state.pop("schedules")[0]
        judge = state.pop("plateau")[0]
        if judge is not None:
            state["plateau"] = judge
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        if "plateau" in state and not isinstance(state["plateau"], list):
            state["plateau"] = [state["plateau"]]
        super().load_state_dict(state)


class PlateauLR(ScheduledLR):
    """The ``plateau`` schedule: time only drives the warmup; fresh metric values drive the LR.

    ``step(metric)`` works as torch's ``ReduceLROnPlateau.step(metric)``. Under Lightning,
    :meth:`follow` makes it read the metric itself just before each optimizer step, and act only
    on a value it has not seen (validation every N epochs, or N times per epoch, both work).
    """

    def __init__(self, optimizer: Optimizer, schedule: Schedule, curve: Curve) -> None:
        if curve.plateau is None:
            raise InvalidValue(f"PlateauLR needs the `plateau` schedule: got {schedule.name!r}")
        self.rule = curve.plateau
        super().__init__(optimizer, schedule, curve)

    @property
    def judge(self) -> PlateauJudge:
        judge = self.judges[0]
        assert judge is not None  # a plateau curve always makes one
        return judge

    def step(self, metrics: Any = None) -> None:  # type: ignore[override]
        """Advance one step; with ``metrics``, also judge that value (torch's ``step(metrics)``)."""
        super().step()
        if metrics is not None:
            self.observe(float(metrics))
