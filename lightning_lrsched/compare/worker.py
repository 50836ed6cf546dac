"""One run of a comparison grid: ``python -m lightning_lrsched.compare.worker SPEC.json RESULT.json``.

A run trains one spec; a stacked run trains several specs (schedules that share everything else)
as copies of one module in one Lightning run (:mod:`lightning_lrsched.compare.stacked`).

It runs in a process of its own (a crash cannot take the grid down); under DDP Lightning starts
the other processes from this same command, and rank zero writes the result.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from lightning_lrsched.compare.grid import RunSpec, Unstackable, job_name


def _instantiate(config: dict[str, Any], **extra: Any) -> Any:
    module, _, name = config["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls(**{**config.get("init_args", {}), **extra})


def _logger(spec: RunSpec, name: str | None = None, config: dict[str, Any] | None = None) -> Any:
    """The run's logger (``False`` for none); ``name`` and ``config`` default to the spec's own."""
    out = Path(spec.output)
    name = name or spec.name
    if spec.logger == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=out / "csv", name=name)
    if spec.logger == "wandb":
        import wandb
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger(
            project=spec.project,
            group=spec.experiment,
            job_type=spec.label if config is None else "stacked",
            name=name,
            save_dir=str(out),
            offline=spec.wandb_mode == "offline",
            config=config or _wandb_config(spec),
            # Several runs may be open at once in this process: one per copy of a stacked run.
            reinit="create_new",
            settings=wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True, silent=True),
        )
    return False


def _wandb_config(spec: RunSpec) -> dict[str, Any]:
    return {"schedule": spec.schedule, "device": spec.device, "seed": spec.seed, "max_epochs": spec.max_epochs}


def _define_summaries(logger: Any, suffix: str = "") -> None:
    logger.experiment.define_metric("val_loss" + suffix, summary="min")
    logger.experiment.define_metric("val_acc" + suffix, summary="max")


def _seeded_model(spec: RunSpec) -> Any:
    """The module a run of ``spec`` starts from: the seed, then the constructor (its weights depend on both)."""
    import lightning as L

    L.seed_everything(spec.seed, verbose=False)
    return _instantiate(spec.model, scheduler=spec.schedule)


def _data(spec: RunSpec) -> Any:
    data_config = dict(spec.data)
    if data_config["class_path"].endswith("SyntheticDataModule"):
        data_config = {**data_config, "init_args": {"seed": spec.seed, **data_config.get("init_args", {})}}
    return _instantiate(data_config)


def _trainer(spec: RunSpec, logger: Any, callbacks: list[Any]) -> Any:
    import lightning as L

    return L.Trainer(
        max_epochs=spec.max_epochs,
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(Path(spec.output) / "lightning"),
        **spec.device_config.trainer_kwargs(),
        **spec.trainer,
    )


def _fit(trainer: Any, model: Any, data: Any) -> float:
    started = time.perf_counter()
    trainer.fit(model, data)
    return time.perf_counter() - started


def _record(
    spec: RunSpec, recorder: Any, detector: Any, *, epochs: int, steps: int, wall: float, wandb_dir: str | None
) -> dict[str, Any]:
    """The result line of one run (or one copy of a stacked run)."""
    val = recorder.val.points
    finite = [p for p in val if math.isfinite(p[1])]
    best = min(finite, key=lambda p: p[1]) if finite else [math.nan, math.nan, math.nan]
    train = [p[1] for p in recorder.train.points]
    record = {
        **spec.identity(),
        "status": "diverged" if detector.diverged else "ok",
        "reason": next((e["reason"] for e in detector.events if e["action"] == "diverged"), ""),
        "epochs": epochs,
        "steps": steps,
        "samples": recorder.samples,
        "wall_time": wall,
        "steps_per_s": steps / wall if wall > 0 else math.nan,
        "final_train_loss": train[-1] if train else math.nan,
        "final_val_loss": val[-1][1] if val else math.nan,
        "final_val_acc": val[-1][2] if val else math.nan,
        "best_val_loss": best[1],
        "best_val_acc": max((p[2] for p in finite), default=math.nan),
        "best_samples": best[0],
        "final_lr": recorder.lr.points[-1][1] if recorder.lr.points else math.nan,
        "lr_curve": recorder.lr.points,
        "val_curve": val,
        "train_curve": recorder.train.points,
        "events": detector.events,
    }
    if wandb_dir is not None:
        record["wandb_dir"] = wandb_dir
    return record


def _finish_wandb(logger: Any) -> str:
    """Close a W&B run; return its folder."""
    folder = str(logger.experiment.dir).removesuffix("/files")
    logger.experiment.finish()
    return folder


def run(spec: RunSpec) -> dict[str, Any] | None:
    """Train one run; rank zero returns its result record, the other ranks ``None``."""
    from lightning_lrsched.callbacks import LRLogger, PlateauDetector
    from lightning_lrsched.compare.recorder import RunRecorder

    model = _seeded_model(spec)
    data = _data(spec)
    recorder = RunRecorder()
    detector = PlateauDetector(monitor="val_loss", action="log", divergence_factor=spec.divergence_factor)
    logger = _logger(spec)
    callbacks: list[Any] = [recorder, detector] + ([LRLogger()] if logger else [])
    if logger and spec.logger == "wandb":
        _define_summaries(logger)
    trainer = _trainer(spec, logger, callbacks)
    wall = _fit(trainer, model, data)
    if not trainer.is_global_zero:
        return None
    wandb_dir = _finish_wandb(logger) if logger and spec.logger == "wandb" else None
    epochs, steps = trainer.current_epoch, trainer.global_step
    return _record(spec, recorder, detector, epochs=epochs, steps=steps, wall=wall, wandb_dir=wandb_dir)


def run_stacked(specs: list[RunSpec]) -> list[dict[str, Any]] | None:
    """Train the specs as copies of one stacked run; rank zero returns one record per spec.

    Each copy is built as a run of its own would be (the seed, then the constructor), so it starts
    from the same weights; the data is built once, after them, as in a run of its own.

    Raises:
        Unstackable: the module cannot be stacked (nothing was trained).
    """
    import torch

    from lightning_lrsched.callbacks import LRLogger
    from lightning_lrsched.compare.recorder import RunRecorder
    from lightning_lrsched.compare.stacked import CopyDetector, CopyLogger, StackedModule
    from lightning_lrsched.schedules import get_schedule

    first = specs[0]
    copies = [_seeded_model(spec) for spec in specs]
    data = _data(first)
    labels = [spec.label for spec in specs]
    schedules = [get_schedule(spec.schedule) for spec in specs]
    module = StackedModule(
        copies, labels, schedules, on_diverge=lambda k, value, reason: detectors[k].diverge(trainer, value, reason)
    )
    with torch.random.fork_rng(devices=[]):  # a DataLoader draws its seed: the copies' runs must not see that
        batch = _first_batch(data)
    module.probe(batch)

    recorders = [RunRecorder(group=k, suffix=f"/{label}") for k, label in enumerate(labels)]
    copy_loggers: list[Any] = [None] * len(specs)
    if first.logger == "none":
        loggers: list[Any] = []
    elif first.wandb_runs == "single":
        config = {"schedules": {s.label: s.schedule for s in specs}, **_wandb_config(first)}
        config.pop("schedule")
        loggers = [_logger(first, name=job_name(tuple(specs)), config=config)]
        if first.logger == "wandb":
            for label in labels:
                _define_summaries(loggers[0], f"/{label}")
    else:
        loggers = copy_loggers = [
            CopyLogger(_logger(spec), spec.label, copy.hparams) for spec, copy in zip(specs, copies, strict=True)
        ]
        if first.logger == "wandb":
            for logger in loggers:
                _define_summaries(logger.inner)

    def freezer(k: int) -> Any:
        def freeze(trainer: Any) -> None:
            module.freeze(k)
            recorders[k].stop()
            if copy_loggers[k] is not None:
                copy_loggers[k].stopped = True

        return freeze

    detectors = [CopyDetector(k, label, freezer(k), first.divergence_factor) for k, label in enumerate(labels)]
    callbacks: list[Any] = [*recorders, *detectors] + ([LRLogger()] if loggers else [])
    trainer = _trainer(first, loggers, callbacks)
    wall = _fit(trainer, module, data)
    if not trainer.is_global_zero:
        return None
    wandb_dirs: list[str | None] = [None] * len(specs)
    if first.logger == "wandb":
        if first.wandb_runs == "single":
            wandb_dirs = [_finish_wandb(loggers[0])] * len(specs)
        else:
            wandb_dirs = [_finish_wandb(logger.inner) for logger in loggers]
    records = []
    for k, spec in enumerate(specs):
        epochs, steps = module.frozen_at[k] or (trainer.current_epoch, trainer.global_step)
        records.append(
            _record(spec, recorders[k], detectors[k], epochs=epochs, steps=steps, wall=wall, wandb_dir=wandb_dirs[k])
        )
    return records


def _first_batch(data: Any) -> Any:
    data.prepare_data()
    data.setup("fit")
    return next(iter(data.train_dataloader()))


def main(argv: list[str]) -> int:
    """Run the spec in SPEC.json (a run) or the list of specs (a stacked run); write the result.

    The result is the run's record; for a stacked run ``{"records": [...]}``, or
    ``{"unstackable": reason}`` when the module cannot be stacked (nothing was trained).
    """
    spec_path, result_path = argv
    payload = json.loads(Path(spec_path).read_text())
    stacked = isinstance(payload, list)
    specs = [RunSpec.from_dict(p) for p in (payload if stacked else [payload])]
    result: Any
    try:
        if stacked:
            records = run_stacked(specs)
            result = None if records is None else {"records": records}
        else:
            result = run(specs[0])
    except Unstackable as error:
        result = {"unstackable": str(error)}
    except Exception:  # the grid records any failure of the run and goes on
        if int(os.environ.get("LOCAL_RANK", "0")) != 0:
            raise
        failed = [spec.failed(traceback.format_exc()) for spec in specs]
        result = {"records": failed} if stacked else failed[0]
    if result is not None:
        tmp = Path(result_path).with_suffix(".tmp")
        tmp.write_text(json.dumps(result, allow_nan=True))
        tmp.replace(result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
