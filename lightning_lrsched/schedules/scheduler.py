"""The one adapter from schedules to a torch scheduler, and the one owner of every LR change.

:class:`GroupScheduledLR` is a real ``torch.optim.lr_scheduler.LRScheduler`` that drives param
groups along schedules' closed forms, each group along the schedule of its :class:`Lane` (so a
backbone and a head, or K copies of a model, can follow different schedules in one optimizer).
:class:`ScheduledLR` is its everyday case: one schedule for every group, made by
:meth:`Schedule.build`; :class:`PlateauLR` is that case for the metric-driven ``plateau``.

The LR of group ``g`` at scheduler step ``t`` is ``combine(a(t), b(t), peak_g, floor_g)``: time
moves ``t`` (:meth:`step`), and the only other change is :meth:`reduce`, which lowers ``peak_g``
and ``floor_g`` together (a plateau found by :meth:`observe` or by ``PlateauDetector``). Each lane's closed form is
evaluated in chunks of :data:`CHUNK` steps and indexed into, so ``step()`` costs a list lookup per
param group and the value at step ``t`` never depends on how it was reached (exact resume).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.schedules import checkpoint
from lightning_lrsched.schedules.curve import Curve, combine
from lightning_lrsched.schedules.plateau_rule import PlateauJudge, PlateauRule, reduced
from lightning_lrsched.validation import per_group

CHUNK = 1024
log = logging.getLogger("lightning_lrsched")


class ScheduleSpec(Protocol):
    """What the adapter needs of a schedule (a :class:`~lightning_lrsched.schedules.Schedule`)."""

    name: str

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Lane:
    """One schedule resolved for a run, and the param groups it drives.

    Attributes:
        schedule: the schedule.
        curve: its closed form for the run (:meth:`Schedule.curve`).
        groups: indices of the optimizer's param groups it drives.
        stride: scheduler steps per unit of the curve's time: 1, or the optimizer steps per epoch
            for an epoch schedule stepped every optimizer step (its time is then ``step // stride``).
        monitor_override: for ``plateau``, the logged metric to read instead of the schedule's own
            ``monitor`` (e.g. ``"val_loss/head"``); ``None`` reads the schedule's.

    ``monitor`` means one thing throughout: the name of the logged metric a ``plateau`` reads
    (``Schedule.monitor``, ``PlateauRule.monitor``, ``Lane.monitor``, ``None`` where time alone
    drives the LR). A lane's :attr:`monitor` is the one it actually reads.
    """

    schedule: ScheduleSpec
    curve: Curve
    groups: tuple[int, ...]
    stride: int = 1
    monitor_override: str | None = None

    @property
    def rule(self) -> PlateauRule | None:
        """The reduce-on-plateau rule of a ``plateau`` lane (``None`` for time-driven schedules)."""
        return self.curve.plateau

    @property
    def monitor(self) -> str | None:
        """The metric a ``plateau`` lane reads (``None`` for time-driven schedules)."""
        rule = self.rule
        return None if rule is None else self.monitor_override or rule.monitor


class GroupScheduledLR(LRScheduler):
    """Sets each param group's LR (and momentum, for schedules that cycle it) from its lane's closed form.

    Each group's base (its ``peak``, unless the schedule has an absolute ``max_lr``) is its
    ``initial_lr`` when present, else its ``lr`` (torch's convention, so a scheduler built on an
    optimizer another scheduler already moved starts from the same base). Tensor LRs stay tensors,
    filled in place. A param group added after build (Lightning's ``BaseFinetuning``) is adopted
    by a one-lane scheduler at the next step: its LR then is its base and it follows the schedule
    from the current step; a scheduler with several lanes refuses it (which lane would it follow?).

    Made by :meth:`GroupSchedules.build <lightning_lrsched.schedules.GroupSchedules.build>` (and,
    for one schedule, by :meth:`Schedule.build`); not constructed directly.

    Attributes:
        lanes: the lanes, which together cover every param group once.
        peaks: each group's peak LR (its base, or the schedule's absolute peak), as lowered by
            plateau reductions (:meth:`reduce`).
        floors: each group's absolute floor LR, lowered in proportion.
        judges: per lane, its :class:`PlateauJudge`, or ``None`` for time-driven lanes.
        counts_updates: whether a step after which no optimizer update was applied (one a
            GradScaler skipped) leaves the schedule where it is (:meth:`count_updates`).
        adopts_settings: whether :meth:`load_state_dict` accepts a state saved with other settings.
        resolved_run: the run its durations were resolved against, as its build was given it
            (``{"total_steps": ..., "steps_per_epoch": ...}``, see :meth:`Schedule.build`), or ``None``
            when unknown. Saved in its state, so a resume with another run length can be reported
            from any checkpoint it wrote.
        param: the hyperparameter it drives: ``"lr"``, or any float key of the param groups
            (``"weight_decay"``, ...), each group relative to its own base (``initial_<param>``);
            ``"momentum"`` is SGD's momentum or Adam's first beta. Its values: :meth:`get_last_values`.
        key: the param-group key it sets (``param``, or ``"momentum"``/``"betas"`` for ``"momentum"``).
    """

    def __init__(self, optimizer: Optimizer, lanes: Sequence[Lane], param: str = "lr") -> None:
        self.param = param
        self.key = param_key(optimizer, param)
        self._initial = "initial_lr" if param == "lr" else f"initial_{param}"
        n = len(optimizer.param_groups)
        covered = sorted(g for lane in lanes for g in lane.groups)
        if covered != list(range(n)):
            raise InvalidValue(
                f"every param group needs exactly one schedule: the optimizer has {n} param groups, "
                f"the schedules drive groups {covered}"
            )
        self.lanes = tuple(lanes)
        self._lane_of = [0] * n
        for i, lane in enumerate(self.lanes):
            for g in lane.groups:
                self._lane_of[g] = i
        self.judges: list[PlateauJudge | None] = [None if lane.rule is None else lane.rule.judge() for lane in lanes]
        # Per-step values of every group, CHUNK steps at a time (see _fill); start -1 - CHUNK: none yet.
        self._start = -1 - CHUNK
        self._values: list[list[float]] = []
        self._momentum_values: list[list[float]] = []
        # A schedule that cycles momentum does so only when it drives the LR (momentum has its own schedule then).
        cycles = param == "lr" and any(lane.curve.momentum for lane in lanes)
        self._momentum_key = _momentum_key(optimizer) if cycles else None
        self.peaks: list[float] = []
        self.floors: list[float] = []
        self.min_lrs: list[float] = []
        self._momenta: list[tuple[float, float] | None] = []
        self.counts_updates = False
        self.adopts_settings = False
        self.resolved_run: dict[str, int | None] | None = None
        self._updates = 0
        # torch's base class sets `initial_lr` on every group, reads the bases from it and takes the
        # first step, which calls get_lr(): the per-group anchors must exist by then. Another
        # hyperparameter keeps its base the same way, under `initial_<param>`.
        for group in optimizer.param_groups:
            group.setdefault(self._initial, _clone(self._read(group)))
        self._anchor(optimizer, range(n))
        super().__init__(optimizer)

    @property
    def cycles_momentum(self) -> bool:
        """Whether it also sets each group's momentum (SGD's, Adam's first beta), as ``cyclic`` and ``onecycle`` do."""
        return self._momentum_key is not None

    # -- per-group anchors ------------------------------------------------------------------------
    def _anchor(self, optimizer: Optimizer, groups: Sequence[int]) -> None:
        """Set peak, floor, min_lr and momentum range for ``groups`` (new groups are appended)."""
        for g in groups:
            lane = self.lanes[self._lane_of[g]]
            curve, k, i = lane.curve, len(lane.groups), lane.groups.index(g)
            base = float(optimizer.param_groups[g][self._initial])
            # Only CyclicLR's `base_lr` can give a floor per group; name it in a length error.
            peak = base if curve.peak is None else per_group("max_lr", curve.peak, k)[i]
            if lane.rule is None:
                min_lr = 0.0
            elif len(self.peaks) <= g < len(self.min_lrs):
                min_lr = float(self.min_lrs[g])  # a new group's, appended to `min_lrs` as torch's users do
            else:
                try:
                    min_lr = float(per_group("min_lr", lane.rule.min_lr, k)[i])
                except InvalidValue as error:
                    if g < len(self.peaks) or not self.peaks:
                        raise
                    raise InvalidValue(
                        f"{error}; for a param group added after build, append its min_lr to the scheduler's "
                        "`min_lrs` (as with torch's ReduceLROnPlateau) before the next step"
                    ) from None
            values = [float(peak), float(per_group("base_lr", curve.floor, k)[i]), min_lr]
            for target, value in zip((self.peaks, self.floors, self.min_lrs), values, strict=True):
                if g < len(target):
                    target[g] = value
                else:
                    target.append(value)
            momentum = None
            if curve.momentum is not None:
                low, high = curve.momentum
                momentum = (per_group("base_momentum", low, k)[i], per_group("max_momentum", high, k)[i])
            if g < len(self._momenta):
                self._momenta[g] = momentum
            else:
                self._momenta.append(momentum)

    def _adopt_new_groups(self) -> None:
        groups = self.optimizer.param_groups
        n, known = len(groups), len(self.peaks)
        if n == known:
            return
        if len(self.lanes) > 1:
            raise InvalidValue(
                f"a param group was added to the optimizer after its scheduler was built ({known} -> {n} groups), "
                f"but the scheduler drives {len(self.lanes)} schedules, one per group, and cannot tell which one the "
                "new group follows: rebuild the GroupSchedules with one schedule per group after adding it"
            )
        lane = self.lanes[0]
        new = range(known, n)
        self.lanes = (Lane(lane.schedule, lane.curve, (*lane.groups, *new), lane.stride, lane.monitor_override),)
        self._lane_of += [0] * len(new)
        for g in new:
            groups[g].setdefault("initial_lr", _clone(groups[g]["lr"]))
            groups[g].setdefault(self._initial, _clone(self._read(groups[g])))
        self._anchor(self.optimizer, new)
        self._forget()
        self.base_lrs = [group["initial_lr"] for group in groups]
        log.info(
            "lightning_lrsched: param group(s) %s added after the scheduler was built now follow %r from step %d, "
            "each from its own LR as base",
            list(new),
            lane.schedule.name,
            self.last_epoch,
        )

    # -- the closed forms, evaluated a chunk at a time ------------------------------------------------
    def lrs_at(self, t: int) -> list[float]:
        """The value of :attr:`param` (the LR by default) of every group at step ``t``, plateau reductions included."""
        i = t - self._start
        if not 0 <= i < CHUNK:
            self._fill(t)
            i = 0
        return self._values[i]

    def _fill(self, t: int) -> None:
        """Evaluate every lane's closed form for steps ``t .. t + CHUNK - 1`` in one vectorised pass."""
        steps = np.arange(t, t + CHUNK, dtype=np.int64)
        n = len(self.peaks)
        values = np.zeros((CHUNK, n))
        momenta = np.zeros((CHUNK, n))
        peaks, floors = np.asarray(self.peaks), np.asarray(self.floors)
        for lane in self.lanes:
            w = lane.curve.weights(steps // lane.stride)
            g = list(lane.groups)
            floor = 0.0 if w.floor is None else w.floor[:, None]
            values[:, g] = combine(w.peak[:, None], floor, peaks[g][None, :], floors[g][None, :])
            if self._momentum_key is not None and w.momentum is not None:
                for k in g:
                    momentum_range = self._momenta[k]
                    if momentum_range is not None:
                        low, high = momentum_range
                        momenta[:, k] = w.momentum * low + (1 - w.momentum) * high
        self._start, self._values, self._momentum_values = t, values.tolist(), momenta.tolist()

    def _forget(self) -> None:
        """Anchors changed (a reduction, a new group, a load): recompute the values at the next look-up."""
        self._start = -1 - CHUNK

    def get_lr(self) -> list[Any]:
        """The LRs at the current step (torch's hook, called by :meth:`step`)."""
        if self.param != "lr":  # another hyperparameter: torch's bookkeeping keeps each group's LR as it is
            return [group["lr"] for group in self.optimizer.param_groups]
        return self.lrs_at(self.last_epoch)

    # torch widened its return type for tensor LRs; these are floats (and list is invariant).
    def get_last_lr(self) -> list[float]:  # type: ignore[override]
        """The LRs the schedule set for the current step: what it planned, whatever else changed them since.

        A scheduler of another hyperparameter (:attr:`param`) returns the groups' LRs, as torch's do.
        """
        if self.param != "lr":
            return [float(group["lr"]) for group in self.optimizer.param_groups]
        return list(self.lrs_at(self.last_epoch))

    def get_last_values(self) -> list[float]:
        """What the schedule set :attr:`param` to for the current step (the planned LR, for ``param="lr"``)."""
        return list(self.lrs_at(self.last_epoch))

    def _set_momenta(self) -> None:
        if self._momentum_key is None:
            return
        i = self.last_epoch - self._start
        if not 0 <= i < CHUNK:
            self._fill(self.last_epoch)
            i = 0
        groups, row = self.optimizer.param_groups, self._momentum_values[i]
        for g, pair in enumerate(self._momenta):
            if pair is None:
                continue
            if self._momentum_key == "betas":
                groups[g]["betas"] = (row[g], *groups[g]["betas"][1:])
            else:
                groups[g]["momentum"] = row[g]

    def _set_lrs(self, groups: Sequence[int]) -> None:
        values, param_groups = self.lrs_at(self.last_epoch), self.optimizer.param_groups
        for g in groups:
            self._write(param_groups[g], values[g])

    def _read(self, group: dict[str, Any]) -> Any:
        value = group[self.key]
        return value[0] if self.key == "betas" else value

    def _write(self, group: dict[str, Any], value: float) -> None:
        key = self.key
        if key == "betas":
            group["betas"] = (value, *group["betas"][1:])
        elif hasattr(group[key], "fill_"):
            group[key].fill_(value)
        else:
            group[key] = value

    # -- time ------------------------------------------------------------------------------------------
    def count_updates(self) -> None:
        """From now on, count only steps after which the optimizer applied an update.

        A mixed-precision ``GradScaler`` skips ``optimizer.step()`` when gradients are inf/NaN, but the
        training loop still steps the scheduler: with this on, such a step leaves the schedule where
        it is, so the k-th applied update uses the schedule's LR for update k. Lightning configs from
        :meth:`Schedule.lightning_config` turn it on for per-step schedulers.
        """
        if not self.counts_updates:
            self.counts_updates = True
            self.optimizer.register_step_post_hook(self._count_update)

    def _count_update(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        self._updates += 1

    def step(self, epoch: int | None = None) -> None:
        """Advance one scheduler step (an epoch or an optimizer step, as ``interval`` says)."""
        if epoch is not None:
            raise InvalidType(
                f"`epoch` is not supported: a {type(self).__name__} advances one step per call; "
                "to jump, load a state_dict with the wanted last_epoch"
            )
        if self.counts_updates:
            if self._updates == 0:
                return  # the optimizer skipped its update (GradScaler found inf/NaN): time stands still
            self._updates = 0
        if len(self.optimizer.param_groups) != len(self.peaks):
            self._adopt_new_groups()
        super().step()
        if self.param != "lr":
            self._set_lrs(range(len(self.peaks)))
        if self._momentum_key is not None:
            self._set_momenta()

    # -- plateau lanes and the one mutation besides time ------------------------------------------------
    def reduce(self, groups: Sequence[int], factor: float, min_lrs: Sequence[float], eps: float) -> list[int]:
        """Lower the LR of ``groups`` by ``factor`` from now on (torch's ReduceLROnPlateau reduction).

        Each group's peak becomes ``max(peak * factor, min_lr)``, unless that changes it by ``eps``
        or less; its floor (if any) is lowered in the same proportion. This is the only
        change to an LR besides time: the ``plateau`` schedule and ``PlateauDetector(action="reduce")``
        both come here. The optimizer's LRs change at once, so the next batch already uses them.

        Returns:
            the groups that were reduced.
        """
        if not 0 < factor < 1:
            raise InvalidValue(f"`factor` must be in (0, 1): got factor={factor}")
        changed = []
        for g, min_lr in zip(groups, min_lrs, strict=True):
            peak = self.peaks[g]
            new = reduced(peak, factor, min_lr, eps)
            if new is not None and peak > 0:
                self.peaks[g] = new
                self.floors[g] *= new / peak
                changed.append(g)
        self._forget()
        self._set_lrs(changed)
        return changed

    def observe(self, value: float, lane: int = 0) -> bool:
        """Judge one metric value for a ``plateau`` lane; True if it reduced the lane's LRs."""
        judge = self.judges[lane] if 0 <= lane < len(self.judges) else None
        if judge is None:
            plateau = [i for i, j in enumerate(self.judges) if j is not None]
            raise InvalidValue(f"lane {lane} is not a `plateau` schedule: the plateau lanes are {plateau}")
        if not judge.update(value):
            return False
        rule, groups = judge.rule, self.lanes[lane].groups
        self.reduce(groups, rule.factor, [self.min_lrs[g] for g in groups], rule.eps)
        return True

    # -- checkpoints -------------------------------------------------------------------------------------
    def settings(self) -> list[dict[str, Any]]:
        """Each lane's schedule spec and groups: what a state must have been saved with to resume exactly."""
        specs = [lane.schedule.to_dict() for lane in self.lanes]
        return checkpoint.lane_settings(specs, [lane.groups for lane in self.lanes], self.param)

    def state_dict(self) -> dict[str, Any]:
        """Time, each group's peak and floor (plateau reductions), each lane's settings and judge, and the run.

        The format is :mod:`lightning_lrsched.schedules.checkpoint`'s. ``run`` (:attr:`resolved_run`)
        is information for a resume, not a setting: loading the state into a scheduler resolved
        against another run is allowed.
        """
        return {
            "format": checkpoint.FORMAT,
            "last_epoch": self.last_epoch,
            "peaks": list(self.peaks),
            "floors": list(self.floors),
            "lanes": self.settings(),
            "plateau": [None if judge is None else judge.state_dict() for judge in self.judges],
            "run": None if self.resolved_run is None else dict(self.resolved_run),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state and set the optimizer's LRs to the restored step's values.

        A state saved with other schedule settings raises an error naming each difference, unless
        :attr:`adopts_settings` (``build(..., adopt_settings=True)``): then the settings built now are
        kept (the new schedule, at the restored time and with the restored plateau memory) and a
        warning names the differences. A state of another scheduler (torch's) is refused.
        """
        state = checkpoint.upgrade(state_dict, [lane.groups for lane in self.lanes], type(self).__name__)
        differences = checkpoint.differences(state["lanes"], self.settings())
        if differences:
            message = (
                "the scheduler state was saved with other settings: "
                + "; ".join(differences)
                + ". Resume with the settings it was saved with, or opt in to the new ones with "
                "build(..., adopt_settings=True) / lightning_config(..., adopt_settings=True)"
            )
            if not self.adopts_settings:
                raise InvalidValue(message)
            log.warning("lightning_lrsched: %s; adopting the new settings", message.split(". Resume")[0])
        n = len(self.optimizer.param_groups)
        peaks, floors = [float(p) for p in state["peaks"]], [float(f) for f in state["floors"]]
        if len(peaks) != n:
            raise InvalidValue(f"the state_dict is for {len(peaks)} param groups but the optimizer has {n}")
        judges = state.get("plateau") or [None] * len(self.judges)
        if len(judges) != len(self.judges):
            raise InvalidValue(
                f"the state_dict is for {len(judges)} schedules but this scheduler has {len(self.judges)}"
            )
        for judge, saved_judge in zip(self.judges, judges, strict=True):
            if judge is not None and saved_judge is not None:
                judge.load_state_dict(saved_judge)
        self.last_epoch = int(state["last_epoch"])
        if differences:
            # New settings: the anchors built now, except that a peak taken from the group's own LR keeps
            # the plateau reductions the checkpoint had made (an absolute `max_lr` is the new one).
            absolute = [self.lanes[self._lane_of[g]].curve.peak is not None for g in range(n)]
            peaks = [new if fixed else old for new, old, fixed in zip(self.peaks, peaks, absolute, strict=True)]
            floors = self.floors
        self.peaks, self.floors = peaks, floors
        self._forget()
        self._updates = 0
        self._set_lrs(range(n))
        self._set_momenta()

    # -- shedding param groups mid-run -------------------------------------------------------------------
    def remove_groups(self, groups: Sequence[int]) -> None:
        """Stop driving param groups ``groups``, which the caller has just removed from the optimizer.

        The other groups keep their lanes, peaks, floors and plateau memory, renumbered in order, and
        their LR at every later step is the one they would have had with the removed groups still
        there (a stacked run that drops copies mid-run: :meth:`StackedModule.drop`). A lane left
        without groups is removed with its plateau judge.

        Raises:
            InvalidValue: ``groups`` names a group the scheduler does not drive, or the optimizer's
                groups are not the others.
        """
        n = len(self.peaks)
        gone = set(groups)
        if not gone <= set(range(n)):
            raise InvalidValue(f"`groups` must be param groups of this scheduler (0..{n - 1}): got {sorted(gone)}")
        keep = [g for g in range(n) if g not in gone]
        if len(self.optimizer.param_groups) != len(keep):
            raise InvalidValue(
                f"remove the param groups from the optimizer first: it has {len(self.optimizer.param_groups)}, "
                f"the scheduler keeps {len(keep)}"
            )
        renumbered = {g: i for i, g in enumerate(keep)}
        lanes, judges = [], []
        for lane, judge in zip(self.lanes, self.judges, strict=True):
            kept = tuple(renumbered[g] for g in lane.groups if g in renumbered)
            if kept:
                lanes.append(replace(lane, groups=kept))
                judges.append(judge)
        self.lanes, self.judges = tuple(lanes), judges
        self._lane_of = [0] * len(keep)
        for i, lane in enumerate(self.lanes):
            for g in lane.groups:
                self._lane_of[g] = i
        self.peaks = [self.peaks[g] for g in keep]
        self.floors = [self.floors[g] for g in keep]
        self.min_lrs = [self.min_lrs[g] for g in keep]
        self._momenta = [self._momenta[g] for g in keep]
        self.base_lrs = [self.base_lrs[g] for g in keep]
        self._last_lr = [self._last_lr[g] for g in keep]
        self._forget()


def _clone(value: Any) -> Any:
    return value.clone() if hasattr(value, "clone") else value


def param_key(optimizer: Optimizer, param: str) -> str:
    """The param-group key a schedule of ``param`` drives: ``param`` itself, or for ``"momentum"``
    SGD's ``momentum`` or the first of Adam's ``betas``.

    Example:
        >>> import torch
        >>> opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])
        >>> param_key(opt, "momentum"), param_key(opt, "weight_decay")
        ('betas', 'weight_decay')
    """
    if param == "momentum":
        if "betas" in optimizer.defaults or "momentum" in optimizer.defaults:
            return _momentum_key(optimizer)
        raise InvalidValue(
            f"`param`='momentum' needs an optimizer with momentum or betas: got {type(optimizer).__name__}"
        )
    group = optimizer.param_groups[0]
    value = group.get(param) if isinstance(param, str) else None
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and not hasattr(value, "fill_")):
        keys = sorted(k for k, v in group.items() if isinstance(v, float) and not k.startswith("initial_"))
        raise InvalidValue(
            f"`param` must be a float setting of the optimizer's param groups: got param={param!r}; "
            f"{type(optimizer).__name__} has {', '.join([*keys, 'momentum'] if 'betas' in group else keys)}"
        )
    return param


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

    def __init__(self, optimizer: Optimizer, schedule: ScheduleSpec, curve: Curve, param: str = "lr") -> None:
        lanes = [Lane(schedule, curve, tuple(range(len(optimizer.param_groups))))]
        super().__init__(optimizer, lanes, param)

    @property
    def schedule(self) -> ScheduleSpec:
        return self.lanes[0].schedule

    @property
    def curve(self) -> Curve:
        return self.lanes[0].curve


class PlateauLR(ScheduledLR):
    """The ``plateau`` schedule: time only drives the warmup; metric values drive the LR.

    ``step(metric)`` works as torch's ``ReduceLROnPlateau.step(metric)``. Under Lightning,
    :class:`~lightning_lrsched.PlateauDriver` calls :meth:`observe` with the monitored
    value at the end of every validation run.
    """

    def __init__(self, optimizer: Optimizer, schedule: ScheduleSpec, curve: Curve, param: str = "lr") -> None:
        if curve.plateau is None:
            raise InvalidValue(f"PlateauLR needs the `plateau` schedule: got {schedule.name!r}")
        super().__init__(optimizer, schedule, curve, param)

    @property
    def rule(self) -> PlateauRule:
        rule = self.lanes[0].rule
        assert rule is not None  # checked in __init__
        return rule

    @property
    def judge(self) -> PlateauJudge:
        judge = self.judges[0]
        assert judge is not None  # a plateau lane always has one
        return judge

    def step(self, metrics: Any = None) -> None:
        """Advance one step; with ``metrics``, also judge that value (torch's ``step(metrics)``)."""
        super().step()
        if metrics is not None:
            self.observe(float(metrics))
