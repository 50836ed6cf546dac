"""`LRLogger`: the LR each optimizer step actually used, next to the LR the schedule planned.

Keys are LearningRateMonitor's (``lr-SGD``, ``lr-SGD/pg1``, ``lr-Adam-momentum``, the scheduler
config's ``name`` when set), so dashboards built on it keep working. Values are read in
``on_before_optimizer_step``, after every LR change that can precede a step (schedulers, torch
optimizer pre-hooks such as the ``plateau`` schedule's), so they are the LRs the update used.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch.optim import Optimizer

from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.schedules import GroupScheduledLR

LOGGING_INTERVALS = (None, "step", "epoch")
FIGURE_KEY = "lr-schedule"


class _Track:
    """What to read from one optimizer for one scheduler config (or for no scheduler), named once."""

    __slots__ = (
        "beta2_keys",
        "every_step",
        "first_step_of_epoch",
        "groups",
        "last_epoch",
        "lr_keys",
        "momentum_key",
        "momentum_keys",
        "planned_keys",
        "scheduler",
        "weight_decay_keys",
    )

    def __init__(self, optimizer: Optimizer, names: list[str], scheduler: GroupScheduledLR | None) -> None:
        self.groups = optimizer.param_groups
        self.lr_keys = names
        self.scheduler = scheduler
        self.planned_keys = [f"{n}-planned" for n in names]
        self.momentum_key = (
            "betas" if "betas" in optimizer.defaults else "momentum" if "momentum" in optimizer.defaults else None
        )
        self.momentum_keys = [f"{n}-momentum" for n in names]
        self.beta2_keys = [f"{n}-beta2" for n in names]
        self.weight_decay_keys = [f"{n}-weight_decay" for n in names]
        self.every_step = False
        self.first_step_of_epoch = False
        self.last_epoch = -1


class LRLogger(Callback):
    """Log the LR, momentum and weight decay of every param group at each optimizer step.

    Logs under LearningRateMonitor's names, on rank zero, to every logger of the trainer, and
    keeps the last ``history_size`` logged rows in :attr:`history` (with no logger, that is where
    they go; :meth:`write_csv` saves them). For schedules from :mod:`lightning_lrsched.schedules`
    it also logs the planned LR (``<key>-planned``) and counts in :attr:`mismatches` the steps
    where an LR differs from the plan, which means something else changed it. At the end of fit,
    loggers that take images (``log_image``, or an ``experiment`` with ``add_figure``) get a
    figure of the LR curves.

    When: a scheduler with ``interval="step"`` is logged every ``Trainer(log_every_n_steps)``
    steps, one with ``interval="epoch"`` at the first step of each epoch, an optimizer without a
    scheduler at both (LearningRateMonitor's rule); ``logging_interval`` forces one of the two.
    The step of a row is ``trainer.global_step`` before the step, as LearningRateMonitor's.

    Args:
        logging_interval: ``None`` (each scheduler's own interval), ``"step"`` or ``"epoch"``.
        log_momentum: also log ``<key>-momentum`` (SGD's momentum, Adam's beta1, as
            LearningRateMonitor) and, for Adam-family optimizers, ``<key>-beta2``. Optimizers
            with neither get no momentum key (LearningRateMonitor logs 0).
        log_weight_decay: also log ``<key>-weight_decay``.
        log_planned: also log ``<key>-planned`` and count mismatches, for the catalog's schedulers
            (:class:`~lightning_lrsched.schedules.ScheduledLR`, :class:`~lightning_lrsched.schedules.GroupScheduledLR`).
        history_size: how many logged rows :attr:`history` keeps (oldest dropped first).
        log_figure: log the figure of the LR curves at the end of fit, to loggers that take images.

    Attributes:
        history: ``deque`` of ``(step, {key: value})`` rows, at most ``history_size`` long.
        mismatches: optimizer steps where an LR differed from the schedule's plan.

    Example:
        >>> import lightning.pytorch as pl
        >>> lr_logger = LRLogger(logging_interval="step")
        >>> trainer = pl.Trainer(callbacks=[lr_logger], logger=False)
        >>> # after trainer.fit(...): lr_logger.history, lr_logger.write_csv("lr.csv"), lr_logger.mismatches
    """

    def __init__(
        self,
        logging_interval: str | None = None,
        log_momentum: bool = True,
        log_weight_decay: bool = True,
        log_planned: bool = True,
        history_size: int = 10_000,
        log_figure: bool = True,
    ) -> None:
        if logging_interval not in LOGGING_INTERVALS:
            raise InvalidValue(
                f"`logging_interval` must be None, 'step' or 'epoch': got logging_interval={logging_interval!r}"
            )
        for name, value in (
            ("log_momentum", log_momentum),
            ("log_weight_decay", log_weight_decay),
            ("log_planned", log_planned),
            ("log_figure", log_figure),
        ):
            if not isinstance(value, bool):
                raise InvalidType(f"`{name}` must be True or False: got {name}={value!r}")
        if not isinstance(history_size, int) or isinstance(history_size, bool) or history_size < 1:
            raise InvalidValue(f"`history_size` must be a positive int: got history_size={history_size!r}")
        self.logging_interval = logging_interval
        self.log_momentum = log_momentum
        self.log_weight_decay = log_weight_decay
        self.log_planned = log_planned
        self.log_figure = log_figure
        self.history: deque[tuple[int, dict[str, float]]] = deque(maxlen=history_size)
        self.mismatches = 0
        self._tracks: dict[int, list[_Track]] = {}
        self._warned = False

    # -- names, computed once -------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._name(trainer)

    def _name(self, trainer: pl.Trainer) -> None:
        self._tracks = {}
        if not trainer.is_global_zero:
            return
        for optimizer, config, names in monitor_names(trainer.optimizers, trainer.lr_scheduler_configs):
            scheduler = config.scheduler if config is not None else None
            track = _Track(optimizer, names, scheduler if isinstance(scheduler, GroupScheduledLR) else None)
            interval = self.logging_interval or (config.interval if config is not None else None)
            track.every_step = interval in (None, "step")
            track.first_step_of_epoch = interval in (None, "epoch")
            self._tracks.setdefault(id(optimizer), []).append(track)

    # -- every optimizer step -------------------------------------------------------------------
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        tracks = self._tracks.get(id(optimizer))
        if tracks is None:
            return
        step = trainer.global_step
        every_n = trainer.log_every_n_steps
        # LearningRateMonitor's cadence (it logs before the step, at `global_step + 1`).
        on_cadence = every_n > 0 and ((step + 1) % every_n == 0 or trainer.should_stop)
        epoch = trainer.current_epoch
        row: dict[str, float] | None = None
        mismatch = None
        for track in tracks:
            if len(track.groups) != len(track.lr_keys):
                # A param group was added (e.g. by BackboneFinetuning): name them all again, as
                # LearningRateMonitor does, then log this step under the new names.
                self._name(trainer)
                self.on_before_optimizer_step(trainer, pl_module, optimizer)
                return
            # What the schedule set at its last step (or rescale / plateau reduction); not recomputed.
            planned = track.scheduler.get_last_lr() if self.log_planned and track.scheduler is not None else None
            if planned is not None and mismatch is None:
                mismatch = _first_mismatch(track, planned)
            log_now = track.every_step and on_cadence
            if track.first_step_of_epoch and track.last_epoch != epoch:
                track.last_epoch = epoch
                log_now = True
            if log_now:
                if row is None:
                    row = {}
                self._fill(row, track, planned)
        if mismatch is not None:
            self._count_mismatch(step, *mismatch)
        if row is not None:
            self.history.append((step, row))
            for logger in trainer.loggers:
                logger.log_metrics(row, step=step)

    def _fill(self, row: dict[str, float], track: _Track, planned: list[float] | None) -> None:
        groups, keys = track.groups, track.lr_keys
        for i, group in enumerate(groups):
            row[keys[i]] = group["lr"]
        if planned is not None:
            row.update(zip(track.planned_keys, planned, strict=False))
        if self.log_momentum and track.momentum_key is not None:
            if track.momentum_key == "betas":
                for i, group in enumerate(groups):
                    beta1, beta2 = group["betas"][:2]
                    row[track.momentum_keys[i]] = beta1
                    row[track.beta2_keys[i]] = beta2
            else:
                for i, group in enumerate(groups):
                    row[track.momentum_keys[i]] = group.get("momentum", 0)
        if self.log_weight_decay:
            for i, group in enumerate(groups):
                if "weight_decay" in group:
                    row[track.weight_decay_keys[i]] = group["weight_decay"]

    def _count_mismatch(self, step: int, key: str, actual: float, planned: float) -> None:
        self.mismatches += 1
        if not self._warned:
            self._warned = True
            rank_zero_warn(
                f"LRLogger: at step {step} the LR of {key!r} was {actual!r} but its schedule planned {planned!r}. "
                "Something else changed it (another scheduler on the same optimizer, a callback, or code that "
                "sets param_group['lr']); let the schedule own the LR, or use ScheduledLR.rescale() for a lasting "
                "change. Further mismatches are counted in LRLogger.mismatches, without warnings.",
                category=RuntimeWarning,
            )

    # -- end of fit ------------------------------------------------------------------------------
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (self.log_figure and trainer.is_global_zero and self.history):
            return
        image_loggers = [logger for logger in trainer.loggers if _takes_images(logger)]
        if not image_loggers:
            return
        figure = self.figure()
        for logger in image_loggers:
            if callable(getattr(logger, "log_image", None)):
                logger.log_image(key=FIGURE_KEY, images=[_rgb(figure)], step=trainer.global_step)
            else:
                logger.experiment.add_figure(FIGURE_KEY, figure, global_step=trainer.global_step)

    def figure(self) -> Any:
        """A matplotlib figure of the LR of every param group in :attr:`history` (planned: dashed).

        Example:
            >>> LRLogger().figure().axes[0].get_ylabel()
            'learning rate'
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(8, 4.5), layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
        series: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
        for step, row in self.history:
            for key, value in row.items():
                if _is_lr_key(key):
                    steps, values = series[key]
                    steps.append(step)
                    values.append(value)
        for key, (steps, values) in sorted(series.items()):
            planned = key.endswith("-planned")
            ax.plot(
                steps,
                values,
                label=key,
                drawstyle="steps-post",
                linestyle="--" if planned else "-",
                alpha=0.8 if planned else 1.0,
            )
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("learning rate")
        ax.set_title("Learning rate per param group")
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize="small")
        return figure

    def write_csv(self, path: str | Path) -> Path:
        """Write :attr:`history` as CSV: a ``step`` column, then one column per key (blank when absent).

        Example:
            >>> import tempfile, pathlib
            >>> lr_logger = LRLogger()
            >>> lr_logger.history.append((0, {"lr-SGD": 0.1}))
            >>> out = lr_logger.write_csv(pathlib.Path(tempfile.mkdtemp()) / "lr.csv")
            >>> out.read_text().splitlines()
            ['step,lr-SGD', '0,0.1']
        """
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted({key for _, row in self.history for key in row})
        with out.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", *keys])
            for step, row in self.history:
                writer.writerow([step, *(row.get(key, "") for key in keys)])
        return out


def monitor_names(optimizers: list[Any], configs: list[Any]) -> list[tuple[Optimizer, Any, list[str]]]:
    """``(optimizer, scheduler config or None, one key per param group)``, named as LearningRateMonitor does.

    Scheduler configs come first, named by their ``name`` or ``lr-<Optimizer class>``; optimizers
    without a scheduler follow. A repeated optimizer class gets ``-1``, ``-2``, ... (unnamed configs
    count); several param groups get ``/pg1``, ``/pg2``, ... or ``/<group name>``.

    Raises:
        MisconfigurationException: two param groups of one optimizer have the same ``name``.
    """
    seen: list[Optimizer] = []
    seen_types: defaultdict[type, int] = defaultdict(int)
    out: list[tuple[Optimizer, Any, list[str]]] = []

    def names(optimizer: Optimizer, name: str, counted: bool) -> list[str]:
        seen.append(optimizer)
        cls = type(optimizer)
        if counted:
            seen_types[cls] += 1
        groups = optimizer.param_groups
        group_names = [g.get("name", f"pg{i}") for i, g in enumerate(groups, start=1)]
        duplicates = {n for n in group_names if group_names.count(n) > 1}
        if duplicates:
            raise MisconfigurationException(
                "A single `Optimizer` cannot have multiple parameter groups with identical "
                f"`name` values. {name} has duplicated parameter group names {duplicates}"
            )
        if cls in seen_types and seen_types[cls] > 1:
            name = f"{name}-{seen_types[cls] - 1}"
        if len(groups) > 1:
            return [f"{name}/{g}" for g in group_names]
        label = groups[0].get("name")
        return [f"{name}/{label}" if label else name]

    for config in configs:
        optimizer = config.scheduler.optimizer
        name = config.name if config.name is not None else f"lr-{type(optimizer).__name__}"
        out.append((optimizer, config, names(optimizer, name, counted=config.name is None)))
    for optimizer in optimizers:
        # DeepSpeed wraps the torch optimizer; its param groups are the wrapped one's.
        optimizer = optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer
        if any(optimizer is s for s in seen):
            continue
        out.append((optimizer, None, names(optimizer, f"lr-{type(optimizer).__name__}", counted=True)))
    return out


def _first_mismatch(track: _Track, planned: list[float]) -> tuple[str, float, float] | None:
    for key, group, want in zip(track.lr_keys, track.groups, planned, strict=False):
        have = group["lr"]
        if have != want and not math.isclose(have, want, rel_tol=1e-9, abs_tol=1e-15):
            return key, have, want
    return None


def _is_lr_key(key: str) -> bool:
    return not key.endswith(("-momentum", "-beta2", "-weight_decay"))


def _takes_images(logger: Any) -> bool:
    if callable(getattr(logger, "log_image", None)):
        return True
    return callable(getattr(getattr(logger, "experiment", None), "add_figure", None))


def _rgb(figure: Any) -> Any:
    """The figure as an ``H x W x 3`` uint8 array, which every image logger accepts."""
    import numpy as np

    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
