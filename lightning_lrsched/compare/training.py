"""Train one job of a grid in this process: a run of its own, or the copies of a stacked run.

Both paths build each run the same way (the seed, then the model; the data after), attach a
:class:`RunRecorder` per run, and turn what it saw into one :class:`RunRecord` per spec with
:func:`finished_record`. Rank zero returns the records; under DDP the other ranks return ``None``.
"""

from __future__ import annotations

import functools
import importlib
import math
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from lightning_lrsched.compare.grid import RunSettings, RunSpec, copy_labels, job_name, job_seeds
from lightning_lrsched.compare.layout import OutputLayout
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.errors import InvalidType, InvalidValue

OnEpoch = Callable[[int], None]
"""Called on rank zero at each epoch end with the number of runs that trained through it."""


def _instantiate(config: dict[str, Any], **extra: Any) -> Any:
    module, _, name = config["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls(**{**config.get("init_args", {}), **extra})


def wandb_settings() -> Any:
    import wandb

    # Public settings only: no console capture, no git or code snapshot per run.
    return wandb.Settings(console="off", silent=True, disable_git=True, disable_code=True, disable_job_creation=True)


def make_logger(settings: RunSettings, name: str, job_type: str, config: dict[str, Any]) -> Any:
    """A run's logger (``False`` for none)."""
    layout = OutputLayout(settings.output)
    if settings.logger == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=layout.csv, name=name)
    if settings.logger == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        logger = WandbLogger(
            project=settings.project,
            group=settings.experiment,
            job_type=job_type,
            name=name,
            save_dir=str(layout.wandb_save_dir),
            offline=settings.wandb_mode == "offline",
            config=config,
            # Several runs may be open at once in this process: one per copy of a stacked run.
            reinit="create_new",
            settings=wandb_settings(),
        )
        return logger
    return False


def _wandb_config(spec: RunSpec) -> dict[str, Any]:
    return {"schedule": spec.schedule, "device": spec.device, "seed": spec.seed, "max_epochs": spec.max_epochs}


def _define_summaries(logger: Any, suffix: str = "") -> None:
    logger.experiment.define_metric("val_loss" + suffix, summary="min")
    logger.experiment.define_metric("val_acc" + suffix, summary="max")


def _finish_wandb(logger: Any) -> str:
    """Close a W&B run; return its folder."""
    run = logger.experiment
    folder = str(run.settings.sync_dir)
    run.finish()
    return folder


def _seeded_model(spec: RunSpec) -> Any:
    """The module a run of ``spec`` starts from: the seed, then the constructor (its weights depend on both)."""
    import lightning as L

    L.seed_everything(spec.seed, verbose=False)
    return _instantiate(spec.model, scheduler=spec.schedule)


def _data(spec: RunSpec) -> Any:
    """The run's datamodule; one that takes a ``seed`` gets the run's unless its config sets one."""
    import inspect

    module, _, name = spec.data["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    init_args = dict(spec.data.get("init_args", {}))
    if "seed" in inspect.signature(cls).parameters:
        init_args.setdefault("seed", spec.seed)
    return cls(**init_args)


def _trainer(spec: RunSpec, settings: RunSettings, logger: Any, callbacks: list[Any]) -> Any:
    import lightning as L

    return L.Trainer(
        max_epochs=spec.max_epochs,
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(OutputLayout(settings.output).lightning),
        **spec.device_config.trainer_kwargs(),
        **spec.trainer,
    )


def _fit(trainer: Any, model: Any, data: Any) -> tuple[float, str]:
    """Fit; return the wall time and why the run diverged in a way that ends it ("" when it did not)."""
    from lightning_lrsched.compare.recorder import RunDiverged

    started = time.perf_counter()
    try:
        trainer.fit(model, data)
    except RunDiverged as error:
        return time.perf_counter() - started, str(error)
    return time.perf_counter() - started, ""


def finished_record(
    spec: RunSpec,
    settings: RunSettings,
    recorder: Any,
    detector: Any,
    *,
    epochs: int,
    steps: int,
    wall: float,
    wandb_dir: str | None,
    diverged: str = "",
) -> RunRecord:
    """The record of a run (or one copy of a stacked run) that trained."""
    val = recorder.val.points
    finite = [p for p in val if math.isfinite(p[1])]
    best = min(finite, key=lambda p: p[1]) if finite else [math.nan, math.nan, math.nan]
    train = [p[1] for p in recorder.train.points]
    events = list(detector.events)
    reason = next((e["reason"] for e in events if e["action"] == "diverged"), diverged)
    if diverged and not detector.diverged:
        events.append(
            {"step": steps, "epoch": epochs, "value": recorder.final_lr, "action": "diverged", "reason": reason}
        )
    return spec.record(
        "diverged" if reason else "ok",
        settings.logger,
        reason,
        epochs=epochs,
        steps=steps,
        samples=recorder.samples,
        wall_time=wall,
        steps_per_s=steps / wall if wall > 0 else math.nan,
        final_train_loss=train[-1] if train else math.nan,
        final_val_loss=val[-1][1] if val else math.nan,
        final_val_acc=val[-1][2] if val else math.nan,
        best_val_loss=best[1],
        best_val_acc=max((p[2] for p in finite), default=math.nan),
        best_samples=best[0],
        final_lr=recorder.final_lr,
        lr_curve=recorder.lr.points,
        val_curve=val,
        train_curve=recorder.train.points,
        events=events,
        wandb_dir=wandb_dir,
    )


def failure_reason(error: BaseException) -> str:
    """One line for bad input (ours), the traceback's tail for anything else."""
    if isinstance(error, (InvalidValue, InvalidType)):
        return f"{type(error).__name__}: {error}"
    return traceback.format_exc()[-2000:]


def train_solo(spec: RunSpec, settings: RunSettings, on_epoch: OnEpoch) -> list[RunRecord] | None:
    """Train one run; rank zero returns its record, the other ranks ``None``."""
    from lightning_lrsched.callbacks import PlateauDetector
    from lightning_lrsched.compare.recorder import RunRecorder

    model = _seeded_model(spec)
    data = _data(spec)
    recorder = RunRecorder()
    detector = PlateauDetector(monitor="val_loss", action="log", divergence_factor=settings.divergence_factor)
    logger = make_logger(settings, spec.name, spec.label, _wandb_config(spec))
    if logger and settings.logger == "wandb":
        _define_summaries(logger)
    trainer = _trainer(spec, settings, logger, [recorder, detector, EpochProgress(on_epoch)])
    wall, diverged = _fit(trainer, model, data)
    if not trainer.is_global_zero:
        return None
    wandb_dir = _finish_wandb(logger) if logger and settings.logger == "wandb" else None
    epochs, steps = trainer.current_epoch + (1 if diverged else 0), trainer.global_step
    record = finished_record(
        spec,
        settings,
        recorder,
        detector,
        epochs=epochs,
        steps=steps,
        wall=wall,
        wandb_dir=wandb_dir,
        diverged=diverged,
    )
    return [record]


def train_stacked(specs: Sequence[RunSpec], settings: RunSettings, on_epoch: OnEpoch) -> list[RunRecord] | None:
    """Train the specs as copies of one stacked run; rank zero returns one record per spec.

    Each copy is built as a run of its own would be (its seed, then the constructor), so it starts
    from the same weights; each seed's data is built once, right after that seed's first copy, as in
    a run of its own. Copies of several seeds (a single-process device config, see
    :func:`~lightning_lrsched.compare.grid.plan_jobs`) each train on their own seed's batches.

    Raises:
        Unstackable: the module cannot be stacked, or the seeds' data cannot (nothing was trained).
    """
    import torch

    from lightning_lrsched.compare.recorder import LR_KEY, RunRecorder
    from lightning_lrsched.compare.stacked import (
        CopyCallbacks,
        CopyDetector,
        CopyLogger,
        SeedStackedData,
        StackedModule,
    )
    from lightning_lrsched.compare.stacked.seeds import copy_batch_size
    from lightning_lrsched.schedules import get_schedule

    first = specs[0]
    labels = copy_labels(tuple(specs))
    seeds = job_seeds(tuple(specs))
    copies, per_seed = [], {}
    for spec in specs:
        copies.append(_seeded_model(spec))
        if spec.seed not in per_seed:
            per_seed[spec.seed] = _data(spec)
    if len(per_seed) == 1:
        data = per_seed[first.seed]
    else:
        data = SeedStackedData(list(per_seed.values()), [seeds.index(spec.seed) for spec in specs])
    detectors: list[Any] = []

    def on_diverge(k: int, value: float, reason: str) -> None:
        detectors[k].diverge(module.trainer, value, reason)

    module = StackedModule(
        copies,
        labels,
        [get_schedule(spec.schedule) for spec in specs],
        on_diverge=on_diverge,
        per_copy_batches=len(per_seed) > 1,
    )
    with torch.random.fork_rng(devices=[]):  # a DataLoader draws its seed: the copies' runs must not see that
        batch = _first_batch(data)
    module.probe(batch)

    copy_loggers: list[Any] = [None] * len(specs)
    if settings.logger == "none":
        loggers: list[Any] = []
    elif settings.wandb_runs == "single":
        config = {"schedules": dict(zip(labels, (s.schedule for s in specs), strict=True)), **_wandb_config(first)}
        config.pop("schedule")
        if len(seeds) > 1:
            config["seed"] = seeds
        loggers = [make_logger(settings, job_name(tuple(specs)), "stacked", config)]
        if settings.logger == "wandb":
            for label in labels:
                _define_summaries(loggers[0], f"/{label}")
    else:
        loggers = copy_loggers = [
            CopyLogger(make_logger(settings, spec.name, spec.label, _wandb_config(spec)), spec.label, copy.hparams)
            for spec, copy in zip(specs, copies, strict=True)
        ]
        if settings.logger == "wandb":
            for logger in loggers:
                _define_summaries(logger.inner)

    def lr_loggers(k: int) -> list[Any]:
        if copy_loggers[k] is not None:
            return [copy_loggers[k].inner]  # the copy's own run: its LR under the key a run of its own uses
        return loggers  # one run for the stacked run (or none): lr/<label>

    recorders = [
        RunRecorder(
            group=k,
            suffix=f"/{label}",
            loggers=lr_loggers(k),
            lr_key=LR_KEY if copy_loggers[k] is not None else f"{LR_KEY}/{label}",
            on_overflow=functools.partial(on_diverge, k, math.nan),
            check_parameters=False,
            batch_size=copy_batch_size if module.per_copy_batches else None,
        )
        for k, label in enumerate(labels)
    ]

    def freezer(k: int) -> Callable[[Any], None]:
        def freeze(trainer: Any) -> None:
            module.freeze(k)
            recorders[k].stop(trainer)
            if copy_loggers[k] is not None:
                copy_loggers[k].stopped = True

        return freeze

    detectors.extend(CopyDetector(k, label, freezer(k), settings.divergence_factor) for k, label in enumerate(labels))
    progress = EpochProgress(on_epoch, lambda: sum(at is None for at in module.frozen_at))
    trainer = _trainer(first, settings, loggers, [CopyCallbacks([*recorders, *detectors, progress])])
    wall, _ = _fit(trainer, module, data)
    if not trainer.is_global_zero:
        return None
    wandb_dirs: list[str | None] = [None] * len(specs)
    if settings.logger == "wandb":
        if settings.wandb_runs == "single":
            wandb_dirs = [_finish_wandb(loggers[0])] * len(specs)
        else:
            wandb_dirs = [_finish_wandb(logger.inner) for logger in loggers]
    records = []
    for k, spec in enumerate(specs):
        if k in module.invalid:
            records.append(spec.record("failed", settings.logger, module.invalid[k], wandb_dir=wandb_dirs[k]))
            continue
        epochs, steps = module.frozen_at[k] or (trainer.current_epoch, trainer.global_step)
        records.append(
            finished_record(
                spec,
                settings,
                recorders[k],
                detectors[k],
                epochs=epochs,
                steps=steps,
                wall=wall,
                wandb_dir=wandb_dirs[k],
            )
        )
    return records


class EpochProgress(Callback):
    """Reports each epoch end with how many runs trained through it (a stacked run's copies still in training)."""

    def __init__(self, on_epoch: OnEpoch, training: Callable[[], int] = lambda: 1) -> None:
        self.on_epoch, self.training = on_epoch, training

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.on_epoch(self.training())


def _first_batch(data: Any) -> Any:
    from lightning_lrsched.compare.stacked import SeedStackedData

    data.prepare_data()
    data.setup("fit")
    if isinstance(data, SeedStackedData):
        data.val_dataloader()  # the seeds' validation splits must line up too (else Unstackable, before training)
    return next(iter(data.train_dataloader()))
