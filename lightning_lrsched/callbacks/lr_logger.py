"""`LRLogger`: the LR each optimizer step actually used, next to the LR the schedule planned.

Keys, steps and ``trainer.callback_metrics`` entries are LearningRateMonitor's (``lr-SGD``,
``lr-SGD/pg1``, ``lr-Adam-momentum``, the scheduler config's ``name`` when set), so dashboards,
``EarlyStopping(monitor="lr-SGD")`` and checkpoints keyed on the LR keep working. Values are read
in ``on_before_optimizer_step``, after every LR change that can precede a step (schedulers,
callbacks, torch optimizer pre-hooks), so they are the LRs the update used.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch.optim import Optimizer

from lightning_lrsched.schedules import GroupScheduledLR
from lightning_lrsched.validation import check_bool, check_choice, check_int

LOGGING_INTERVALS = (None, "step", "epoch")
FIGURE_KEY = "lr-schedule"


class _Track:
    """One optimizer under one scheduler config (or under none): its keys, named once, and its cadence."""

    __slots__ = (
        "beta2_keys",
        "every_step",
        "first_step_of_epoch",
        "groups",
        "last_epoch",
        "lr_keys",
        "momentum_keys",
        "optimizer",
        "param_key",
        "planned_keys",
        "scheduler",
        "uses_betas",
        "weight_decay_keys",
    )

    def __init__(
        self,
        optimizer: Optimizer,
        names: list[str],
        scheduler: GroupScheduledLR | None,
        interval: str | None,
        log_momentum: bool,
        log_weight_decay: bool,
    ) -> None:
        self.optimizer = optimizer
        self.groups = optimizer.param_groups
        self.lr_keys = names
        self.scheduler = scheduler
        self.planned_keys = [f"{n}-planned" for n in names]
        self.uses_betas = "betas" in optimizer.defaults
        # A scheduler of another hyperparameter (weight decay, momentum): its keys log that value, and the
        # LR, momentum and weight decay of the optimizer are left to the LR's own track.
        self.param_key = "lr" if scheduler is None or scheduler.param == "lr" else scheduler.key
        if self.param_key != "lr":
            log_momentum = log_weight_decay = False
        has_momentum = self.uses_betas or "momentum" in optimizer.defaults
        # Empty key lists switch a family off, so the per-step code tests nothing.
        self.momentum_keys = [f"{n}-momentum" for n in names] if log_momentum and has_momentum else []
        self.beta2_keys = [f"{n}-beta2" for n in names] if log_momentum and self.uses_betas else []
        self.weight_decay_keys = (
            [f"{n}-weight_decay" for n in names] if log_weight_decay and "weight_decay" in optimizer.defaults else []
        )
        self.every_step = interval in (None, "step")
        self.first_step_of_epoch = interval in (None, "epoch")
        self.last_epoch = -1


class LRLogger(Callback):
    """Log the LR, momentum and weight decay of every param group, as LearningRateMonitor does, and more.

    Logs under LearningRateMonitor's names and at its steps, to every logger of the trainer (on
    rank zero), puts the values in ``trainer.callback_metrics`` (on every rank, so
    ``EarlyStopping(monitor="lr-SGD")`` and ``ModelCheckpoint(monitor="lr-SGD")`` work), and keeps
    a row for every optimizer step, the last ``history_size`` of them, in :attr:`history` (whatever
    the loggers' cadence; with no logger, that is where the values go; :meth:`write_csv` saves
    them). For schedules from :mod:`lightning_lrsched.schedules` it also logs the planned LR
    (``<key>-planned``: what ``scheduler.get_last_lr()`` says the schedule set) and counts in
    :attr:`mismatches` the optimizer steps where an LR differs from the plan, which means something
    else changed it. At the end of fit, loggers that take images (``log_image``, or an
    ``experiment`` with ``add_figure``) get a figure of the LR curves.

    When (LearningRateMonitor's rule): a scheduler with ``interval="step"`` is logged every
    ``Trainer(log_every_n_steps)`` training batches, one with ``interval="epoch"`` at its
    optimizer's first step of each epoch, an optimizer without a scheduler at both;
    ``logging_interval`` forces one of the two. The step of a row is the number of training
    batches that stepped the optimizers before it (``global_step`` with one optimizer, half of it
    with two optimizers under manual optimization), the step Lightning logs ``self.log`` values at.
    The values of one batch (several optimizers under manual optimization) go out in one row.

    Args:
        logging_interval: ``None`` (each scheduler's own interval), ``"step"`` or ``"epoch"``.
        log_momentum: also log ``<key>-momentum`` (SGD's momentum, Adam's beta1, as
            LearningRateMonitor) and, for Adam-family optimizers, ``<key>-beta2``. Optimizers
            with neither get no momentum key (LearningRateMonitor logs 0).
        log_weight_decay: also log ``<key>-weight_decay``.
        log_planned: also log ``<key>-planned`` and count mismatches, for the catalog's schedulers
            (:class:`~lightning_lrsched.schedules.ScheduledLR`, :class:`~lightning_lrsched.schedules.GroupScheduledLR`).
        history_size: how many rows (optimizer steps) :attr:`history` keeps (oldest dropped first).
        log_figure: log the figure of the LR curves at the end of fit, to loggers that take images.

    Attributes:
        history: ``deque`` of ``(step, {key: value})`` rows, one per optimizer step (every key of
            every optimizer that stepped in it), on rank zero; at most ``history_size`` long.
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
        self.logging_interval = check_choice("logging_interval", logging_interval, LOGGING_INTERVALS)
        self.log_momentum = check_bool("log_momentum", log_momentum)
        self.log_weight_decay = check_bool("log_weight_decay", log_weight_decay)
        self.log_planned = check_bool("log_planned", log_planned)
        self.log_figure = check_bool("log_figure", log_figure)
        self.history: deque[tuple[int, dict[str, float]]] = deque(
            maxlen=check_int("history_size", history_size, minimum=1)
        )
        self.mismatches = 0
        settings = {
            "logging_interval": logging_interval,
            "log_momentum": log_momentum,
            "log_weight_decay": log_weight_decay,
            "log_planned": log_planned,
        }
        self._state_key = f"{type(self).__qualname__}{settings!r}"
        self._tracks: list[_Track] = []
        self._tracks_of: dict[int, list[_Track]] = {}
        # Training batches in which the optimizers stepped: LearningRateMonitor's (and self.log's) step.
        self._batches = 0
        self._restored_batches: int | None = None
        self._row: dict[str, float] | None = None  # what goes to the loggers after this batch
        self._step_row: dict[str, float] | None = None  # what goes into the history after this batch
        # What this callback last put in callback_metrics: key -> (value, the tensor holding it).
        self._held: dict[str, tuple[float, torch.Tensor]] = {}
        self._callback_metrics: dict[str, Any] = {}
        self._to_loggers = True
        self._warned = False

    # -- names, computed once (again when a param group is added) ----------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._to_loggers = trainer.is_global_zero
        restored, self._restored_batches = self._restored_batches, None
        # A checkpoint without this callback's state: with automatic optimization, global_step is the count.
        self._batches = restored if restored is not None else trainer.global_step
        self._row = self._step_row = None
        self._held = {}
        self._tracks = []
        self._name(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # `trainer.callback_metrics` gathers the logged results at every read (~5 µs), so it is
        # read once per epoch; the dict it returns lives for the whole fit (Lightning replaces it
        # only when a stage starts), and the values held so far are put back in case it did.
        self._callback_metrics = trainer.callback_metrics
        self._callback_metrics.update({key: tensor for key, (_, tensor) in self._held.items()})

    def _name(self, trainer: pl.Trainer) -> None:
        previous = self._tracks
        self._tracks = []
        self._tracks_of = {}
        for i, (optimizer, config, names) in enumerate(monitor_names(trainer.optimizers, trainer.lr_scheduler_configs)):
            scheduler = config.scheduler if config is not None else None
            track = _Track(
                optimizer,
                names,
                scheduler if self.log_planned and isinstance(scheduler, GroupScheduledLR) else None,
                self.logging_interval or (config.interval if config is not None else None),
                self.log_momentum,
                self.log_weight_decay,
            )
            # Renamed because a group was added: the epoch already logged stays logged.
            if i < len(previous) and previous[i].optimizer is optimizer:
                track.last_epoch = previous[i].last_epoch
            self._tracks.append(track)
            self._tracks_of.setdefault(id(optimizer), []).append(track)

    # -- every optimizer step -------------------------------------------------------------------
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        tracks = self._tracks_of.get(id(optimizer))
        if tracks is None:
            return
        every_n = trainer.log_every_n_steps  # type: ignore[attr-defined]  # set on the Trainer at init, not declared
        # LearningRateMonitor checks before the batch, so at `batches + 1`.
        on_cadence = every_n > 0 and ((self._batches + 1) % every_n == 0 or trainer.should_stop)
        epoch = trainer.current_epoch
        mismatch = None
        for track in tracks:
            if len(track.groups) != len(track.lr_keys):
                # A param group was added (e.g. by BaseFinetuning): its keys, and the keys of its
                # siblings, are LearningRateMonitor's new ones from this step on.
                self._name(trainer)
                self.on_before_optimizer_step(trainer, pl_module, optimizer)
                return
            # What the schedule set at its last step (or a plateau reduction); not recomputed.
            planned = track.scheduler.get_last_values() if track.scheduler is not None else None
            if planned is not None and mismatch is None:
                mismatch = _first_mismatch(track, planned)
            log_now = track.every_step and on_cadence
            if track.first_step_of_epoch and track.last_epoch != epoch:
                track.last_epoch = epoch
                log_now = True
            if not (log_now or self._to_loggers):
                continue
            values: dict[str, float] = {}
            _fill(values, track, planned)
            if self._to_loggers:  # the history: every step, whatever the loggers' cadence
                if self._step_row is None:
                    self._step_row = {}
                self._step_row.update(values)
            if log_now:
                if self._row is None:
                    self._row = {}
                self._row.update(values)
        if mismatch is not None:
            self._count_mismatch(self._batches, *mismatch)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step_row = self._step_row
        if step_row is not None:
            self._step_row = None
            self.history.append((self._batches, step_row))
        row = self._row
        if row is not None:
            self._row = None
            self._publish(trainer, row)
        accumulate = trainer.accumulate_grad_batches
        if accumulate > 1 and (batch_idx + 1) % accumulate:
            # Lightning also steps on the last batch of an epoch, unless the strategy accumulates itself.
            if trainer.strategy.handles_gradient_accumulation or batch_idx + 1 != trainer.num_training_batches:
                return
        self._batches += 1

    def _publish(self, trainer: pl.Trainer, row: dict[str, float]) -> None:
        step = self._batches
        if self._to_loggers:
            for logger in trainer.loggers:
                logger.log_metrics(row, step=step)
        # A new tensor only for a value that changed (one per value: the planned LR shares the LR's),
        # never an update in place: a consumer may hold the old one (EarlyStopping keeps its best).
        # float64 on the CPU: the exact value, and no copy to (or sync with) an accelerator.
        metrics = self._callback_metrics
        held = self._held
        made: dict[float, torch.Tensor] = {}
        for key, value in row.items():
            last = held.get(key)
            if last is not None and last[0] == value:
                continue
            tensor = made.get(value)
            if tensor is None:
                tensor = made[value] = torch.scalar_tensor(value, dtype=torch.float64)
            held[key] = (value, tensor)
            metrics[key] = tensor

    def _count_mismatch(self, step: int, key: str, actual: float, planned: float) -> None:
        self.mismatches += 1
        if not self._warned:
            self._warned = True
            rank_zero_warn(
                f"LRLogger: at step {step} the LR of {key!r} was {actual!r} but its schedule planned {planned!r}. "
                "Something else changed it (another scheduler on the same optimizer, a callback, or code that "
                "sets param_group['lr']); let the schedule own the LR (for a reduction on a plateau: the plateau "
                "schedule, or PlateauDetector(action='reduce')). Further mismatches are counted in "
                "LRLogger.mismatches, without warnings.",
                category=RuntimeWarning,
            )

    # -- checkpoints ---------------------------------------------------------------------------------
    @property
    def state_key(self) -> str:
        """Two loggers with different settings keep their own state in one checkpoint."""
        return self._state_key

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self._batches, "mismatches": self.mismatches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Older checkpoints have no state: on_train_start falls back to global_step.
        self._restored_batches = state_dict.get("batches")
        self.mismatches = state_dict.get("mismatches", self.mismatches)

    # -- end of fit ------------------------------------------------------------------------------
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (self.log_figure and trainer.is_global_zero and self.history):
            return
        image_loggers: list[Any] = [logger for logger in trainer.loggers if _takes_images(logger)]  # duck-typed
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


def _number(value: Any) -> float:
    """A Python float (exact for float64 and tensor LRs); most values already are one."""
    return value if type(value) is float else float(value)


def _value(group: dict[str, Any], key: str) -> float:
    """The value a track logs for a group: its LR, or the scheduled hyperparameter (Adam's first beta)."""
    value = group[key]
    return _number(value[0] if key == "betas" else value)


def _fill(row: dict[str, float], track: _Track, planned: list[Any] | None) -> None:
    groups = track.groups
    if track.param_key == "lr":
        for key, group in zip(track.lr_keys, groups, strict=True):
            lr = group["lr"]
            row[key] = lr if type(lr) is float else float(lr)  # _number, inlined on the hot path
    else:
        for key, group in zip(track.lr_keys, groups, strict=True):
            row[key] = _value(group, track.param_key)
    if planned is not None:
        for key, value in zip(track.planned_keys, planned, strict=False):
            row[key] = value if type(value) is float else float(value)
    if track.uses_betas:
        for key, key2, group in zip(track.momentum_keys, track.beta2_keys, groups, strict=False):
            beta1, beta2 = group["betas"][:2]
            row[key] = _number(beta1)
            row[key2] = _number(beta2)
    else:
        for key, group in zip(track.momentum_keys, groups, strict=False):
            row[key] = _number(group.get("momentum", 0))
    for key, group in zip(track.weight_decay_keys, groups, strict=False):
        row[key] = _number(group["weight_decay"])


def _first_mismatch(track: _Track, planned: list[Any]) -> tuple[str, float, float] | None:
    for key, group, want in zip(track.lr_keys, track.groups, planned, strict=False):
        have = group["lr"] if track.param_key == "lr" else _value(group, track.param_key)
        if have != want:
            have, want = _number(have), _number(want)
            if not math.isclose(have, want, rel_tol=1e-9, abs_tol=1e-15):
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
