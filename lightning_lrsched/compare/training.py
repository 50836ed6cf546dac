"""Train one job of a grid in this process: a run of its own, or the copies of a stacked run.

Both paths build each run the same way (the seed, then the model; the data after), attach a
:class:`RunRecorder` per run, and turn what it saw into one :class:`RunRecord` per spec with
:func:`finished_record`. Rank zero returns the records; under DDP the other ranks return ``None``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import re
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from lightning_lrsched.compare.grid import (
    RunSettings,
    RunSpec,
    SeedsDrawApart,
    Unstackable,
    copy_labels,
    job_name,
    job_seeds,
)
from lightning_lrsched.compare.layout import OutputLayout
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.errors import InvalidType, InvalidValue

OnEpoch = Callable[[int], None]
"""Called on rank zero at each epoch end with the number of runs that trained through it."""


def class_of(config: dict[str, Any]) -> type:
    module, _, name = config["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)


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


def seeded_model(spec: RunSpec, *, scheduled: bool = True) -> Any:
    """The module a run of ``spec`` starts from: the seed, then the constructor (its weights depend on both).

    ``scheduled``: the module trains with the spec's schedule on its own optimizer (a ``scheduler``
    argument where its constructor takes one, else its ``configure_optimizers`` wrapped: see
    :mod:`lightning_lrsched.module_contract`). Otherwise (a stacked copy) it is built with no
    schedule (``scheduler=None``) and its optimizer is read by the stacked run.
    """
    import lightning as L

    from lightning_lrsched.module_contract import check_automatic, schedule_module, takes_scheduler
    from lightning_lrsched.schedules.tutorial import resolve_schedule

    cls = class_of(spec.model)
    init_args = dict(spec.model.get("init_args", {}))
    if takes_scheduler(cls):
        init_args["scheduler"] = spec.schedule if scheduled else None
    L.seed_everything(spec.seed, verbose=False)
    module = cls(**init_args)
    check_automatic(module)
    if scheduled and not takes_scheduler(cls):
        schedule_module(module, resolve_schedule(spec.schedule))
    return module


def check_model(spec: RunSpec, stacked: bool = False) -> None:
    """Refuse, before anything trains, a module compare cannot use as it is (one line: what to do).

    ``stacked``: the module must also follow the stacking protocol (``--mode stacked``), as far as
    its class tells (what vmap cannot run shows only when it runs).

    Raises:
        ModuleContractError: manual optimization, several optimizers or none (see
            :mod:`lightning_lrsched.module_contract`).
        InvalidValue: a module with loaders of its own and no ``data`` given.
        Unstackable: ``stacked``, and the module does not say how to score a batch, overrides a hook, or
            has an optimizer its copies cannot share.
    """
    import torch

    from lightning_lrsched.module_contract import check_module

    with torch.random.fork_rng(devices=[]):
        module = seeded_model(spec, scheduled=False)
    check_module(module)
    _check_data_given(spec, module)
    if stacked:
        from lightning_lrsched.compare.stacked.module import check_stackable

        check_stackable(module)


def _check_data_given(spec: RunSpec, module: Any) -> None:
    """Refuse a module that brings its own loaders while the runs would train it on the default data.

    Every run takes its batches from the ``data`` datamodule (one per seed, served side by side to
    stacked copies); given none, that is the synthetic task, which a module of its own data cannot take.
    """
    from lightning_lrsched.compare.grid import DEFAULT_DATA
    from lightning_lrsched.module_contract import own_override

    owner = own_override(type(module), "train_dataloader")
    if spec.data["class_path"] != DEFAULT_DATA["class_path"] or owner is None:
        return
    raise InvalidValue(
        f"`data`: {type(module).__name__} has its own train_dataloader (in {owner.__name__}), which compare does not "
        f"use: every run takes its batches from the `data` datamodule, here the default {DEFAULT_DATA['class_path']}; "
        "give data: {class_path: ...} (a LightningDataModule serving the module's loaders)"
    )


def _data(spec: RunSpec) -> Any:
    """The run's datamodule; one that takes a ``seed`` gets the run's unless its config sets one."""
    import inspect

    cls = class_of(spec.data)
    init_args = dict(spec.data.get("init_args", {}))
    if "seed" in inspect.signature(cls).parameters:
        init_args.setdefault("seed", spec.seed)
    return cls(**init_args)


def _trainer(spec: RunSpec, settings: RunSettings, logger: Any, callbacks: list[Any]) -> Any:
    import lightning as L

    from lightning_lrsched.lightning import PlateauDriver

    return L.Trainer(
        max_epochs=spec.max_epochs,
        logger=logger,
        # A `plateau` schedule follows validation results through a PlateauDriver (one the module
        # returns from configure_callbacks takes its place).
        callbacks=[*callbacks, PlateauDriver()],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(OutputLayout(settings.output).lightning),
        **spec.device_config.trainer_kwargs(),
        **spec.trainer,
    )


def _fit(trainer: Any, model: Any, data: Any) -> float:
    """Fit; return the wall time (a run whose next step could not be taken has diverged: its check says why)."""
    from lightning_lrsched.compare.divergence import RunDiverged

    started = time.perf_counter()
    try:
        trainer.fit(model, data)
    except RunDiverged:
        pass
    return time.perf_counter() - started


def finished_record(
    spec: RunSpec,
    settings: RunSettings,
    recorder: Any,
    detector: Any,
    check: Any,
    *,
    epochs: int,
    steps: int,
    wall: float,
    wandb_dir: str | None,
    mode_reason: str = "",
) -> RunRecord:
    """The record of a run (or one copy of a stacked run) that trained; ``check`` says whether it diverged."""
    val = recorder.val.points
    finite = [p for p in val if math.isfinite(p[1])]
    best = min(finite, key=lambda p: p[1]) if finite else [math.nan, math.nan, math.nan]
    train = [p[1] for p in recorder.train.points]
    events = sorted([*detector.events, *check.events], key=lambda e: e["step"])
    reason = check.reason
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
        mode_reason=mode_reason,
    )


def failure_reason(error: BaseException) -> str:
    """One line for bad input (ours), the traceback's tail for anything else."""
    if isinstance(error, (InvalidValue, InvalidType)):
        return f"{type(error).__name__}: {error}"
    return traceback.format_exc()[-2000:]


def train_solo(spec: RunSpec, settings: RunSettings, on_epoch: OnEpoch) -> list[RunRecord] | None:
    """Train one run; rank zero returns its record, the other ranks ``None``."""
    from lightning_lrsched.callbacks import PlateauDetector
    from lightning_lrsched.compare.divergence import DivergenceCheck, LossMeter
    from lightning_lrsched.compare.recorder import RunRecorder

    model = seeded_model(spec)
    data = _data(spec)
    recorder = RunRecorder()
    check = DivergenceCheck(
        settings.divergence_factor,
        meter=LossMeter(batch_size=recorder.batch_size),
        on_epoch_loss=recorder.record_train_loss,
    )
    detector = PlateauDetector(monitor="val_loss", action="log", check_finite=False)  # its plateaus, as events
    logger = make_logger(settings, spec.name, spec.label, _wandb_config(spec))
    if logger and settings.logger == "wandb":
        _define_summaries(logger)
    trainer = _trainer(spec, settings, logger, [check, recorder, detector, EpochProgress(on_epoch)])
    wall = _fit(trainer, model, data)
    if not trainer.is_global_zero:
        return None
    wandb_dir = _finish_wandb(logger) if logger and settings.logger == "wandb" else None
    # Diverged: up to the epoch it diverged in (Lightning counts an epoch stopped by should_stop as done).
    epochs = check.events[-1]["epoch"] + 1 if check.events else trainer.current_epoch + (1 if check.diverged else 0)
    steps = trainer.global_step
    record = finished_record(
        spec, settings, recorder, detector, check, epochs=epochs, steps=steps, wall=wall, wandb_dir=wandb_dir
    )
    return [record]


def train_stacked(
    specs: Sequence[RunSpec], settings: RunSettings, on_epoch: OnEpoch, decide: bool = False
) -> list[RunRecord] | None:
    """Train the specs as copies of one stacked run; rank zero returns one record per spec.

    ``decide`` (``mode="auto"``): first probe whether stacking pays (:func:`stacking_pays`),
    and raise :class:`Unstackable` with the probe's figures where it does not. Under DDP rank zero
    decides and the other ranks, started from its environment, take its verdict.

    Each copy is built as a run of its own would be (its seed, then the constructor), so it starts
    from the same weights; each seed's data is built once, right after that seed's first copy, as in
    a run of its own. Copies of several seeds (a single-process device config, see
    :func:`~lightning_lrsched.compare.grid.plan_jobs`) each train on their own seed's batches.

    Raises:
        Unstackable: the module cannot be stacked, or the seeds' data cannot (nothing was trained).
    """
    import torch

    from lightning_lrsched.compare.divergence import DivergenceCheck, LossMeter
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
    copies, per_seed, streams = [], {}, []
    for spec in specs:
        copies.append(seeded_model(spec, scheduled=False))
        if spec.seed not in per_seed:
            per_seed[spec.seed] = _data(spec)
            streams.append(_random_state())
    # Training draws from where a run of its own would: its seed, its model, its data (dropout masks
    # then match, copies of one seed all drawing the same numbers: see StackedModule.probe).
    _set_random_state(streams[0])
    if len(per_seed) == 1:
        data = per_seed[first.seed]
    else:
        data = SeedStackedData(list(per_seed.values()), [seeds.index(spec.seed) for spec in specs])
    checks: list[Any] = []

    def on_diverge(k: int, value: float, reason: str) -> None:
        # Found by the module (a non-finite gradient): the copy's check records it and freezes the copy.
        checks[k].diverge(module.trainer, reason)

    module = StackedModule(
        copies,
        labels,
        [get_schedule(spec.schedule) for spec in specs],
        on_diverge=on_diverge,
        per_copy_batches=len(per_seed) > 1,
    )
    with torch.random.fork_rng(devices=[]):  # a DataLoader draws its seed: the copies' runs must not see that
        batch = _first_batch(data)
    try:
        module.probe(batch)
    except SeedsDrawApart:
        # One stacked run per seed instead, each copy drawing what its run of its own draws.
        by_seed = {seed: [s for s in specs if s.seed == seed] for seed in seeds}
        done = {}
        for group in by_seed.values():
            for spec, record in zip(group, train_stacked(group, settings, on_epoch, decide) or [], strict=False):
                done[spec.key] = record
        return [done[spec.key] for spec in specs] if done else None
    if decide:
        pays, probed = _stacking_verdict(module, data, specs)
        if not pays:
            raise Unstackable(probed)
    else:
        probed = ""

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
            CopyLogger(
                make_logger(settings, spec.name, spec.label, _wandb_config(spec)), spec.label, _hparams(copy, spec)
            )
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
            group=label,
            suffix=f"/{label}",
            loggers=lr_loggers(k),
            lr_key=LR_KEY if copy_loggers[k] is not None else f"{LR_KEY}/{label}",
            batch_size=copy_batch_size if module.per_copy_batches else None,
        )
        for k, label in enumerate(labels)
    ]

    def freezer(k: int) -> Callable[[Any, float, str], None]:
        def freeze(trainer: Any, value: float, reason: str) -> None:
            module.freeze(k)
            recorders[k].stop(trainer)
            detectors[k].stopped = True
            if copy_loggers[k] is not None:
                copy_loggers[k].stopped = True

        return freeze

    # One meter for every copy: their losses are added as one vector per step.
    meter = LossMeter(
        _copy_losses, copy_batch_size if module.per_copy_batches else recorders[0].batch_size, width=len(labels)
    )
    checks.extend(
        DivergenceCheck(
            settings.divergence_factor,
            meter=meter,
            index=k,
            on_diverge=freezer(k),
            monitor=f"val_loss/{label}",
            check_parameters=False,
            on_epoch_loss=recorders[k].record_train_loss,
            groups=functools.partial(module.copy_param_groups, k),
        )
        for k, label in enumerate(labels)
    )
    detectors = [CopyDetector(label) for label in labels]
    progress = EpochProgress(on_epoch, lambda: sum(at is None for at in module.frozen_at))
    trainer = _trainer(first, settings, loggers, [CopyCallbacks([*checks, *recorders, *detectors, progress])])
    wall = _fit(trainer, module, data)
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
            invalid = module.invalid[k]
            records.append(spec.record("failed", settings.logger, invalid, wandb_dir=wandb_dirs[k], mode_reason=probed))
            continue
        epochs, steps = module.frozen_at[k] or (trainer.current_epoch, trainer.global_step)
        records.append(
            finished_record(
                spec,
                settings,
                recorders[k],
                detectors[k],
                checks[k],
                epochs=epochs,
                steps=steps,
                wall=wall,
                wandb_dir=wandb_dirs[k],
                mode_reason=probed,
            )
        )
    return records


def _stacking_verdict(module: Any, data: Any, specs: Sequence[RunSpec]) -> tuple[bool, str]:
    """Whether stacking pays for this job, and the probe's figures in one line; decided once for all its processes."""
    import hashlib
    import os

    if specs[0].device_config.processes == 1:
        return stacking_pays(module, data, specs[0])
    # Lightning starts the other ranks from this process's environment: they take rank zero's verdict.
    key = "LRSCHED_STACKING_" + hashlib.sha256(job_name(tuple(specs)).encode()).hexdigest()[:12].upper()
    if key not in os.environ:
        pays, line = stacking_pays(module, data, specs[0])
        os.environ[key] = f"{int(pays)}{line}"
    verdict = os.environ[key]
    return verdict[:1] == "1", verdict[1:]


PROBE_STEPS = 6
"""Training steps of each side of the stacking probe (the first is not timed)."""


def stacking_pays(module: Any, data: Any, spec: RunSpec, steps: int = PROBE_STEPS) -> tuple[bool, str]:
    """Whether training ``module``'s copies stacked pays, and why in one line (the probe's figures).

    See :func:`probe_stacking`: stacking pays when a stacked epoch takes less than 0.9 x K epochs alone
    (or, unmeasured, when the probe cannot run). ``vmap``'s performance warnings (an operator it runs as a loop) are
    named in the reason.
    """
    probe = probe_stacking(module, data, spec, steps)
    if probe is None:
        return True, "the stacking probe could not run here, so auto stacks without measuring whether it pays"
    return probe.pays, probe.reason


@dataclasses.dataclass(frozen=True)
class StackingProbe:
    """What :func:`probe_stacking` measured: seconds per training and validation step, both ways."""

    copies: int
    stacked: tuple[float, float]
    solo: tuple[float, float]
    batches: tuple[float, float]  # training and validation batches of an epoch
    steps: int
    loops: tuple[str, ...]  # operators vmap ran as a loop

    @property
    def ratio(self) -> float:
        """A stacked epoch over one run's epoch."""
        stacked = sum(w * t for w, t in zip(self.batches, self.stacked, strict=True))
        return stacked / sum(w * t for w, t in zip(self.batches, self.solo, strict=True))

    @property
    def pays(self) -> bool:
        return self.ratio < 0.9 * self.copies

    @property
    def reason(self) -> str:
        """The probe's verdict and figures, in one line."""
        loop = f"; vmap runs {', '.join(self.loops)} as a loop" if self.loops else ""
        verdict = "pays" if self.pays else "does not pay here"
        return (
            f"stacking {self.copies} copies {verdict}: a stacked epoch would take {self.ratio:.2g}x one "
            f"run's (training step {self.stacked[0] * 1e3:.3g} ms vs {self.solo[0] * 1e3:.3g} ms, validation step "
            f"{self.stacked[1] * 1e3:.3g} ms vs {self.solo[1] * 1e3:.3g} ms; probe of {self.steps} steps each){loop}"
        )


def probe_stacking(module: Any, data: Any, spec: RunSpec, steps: int = PROBE_STEPS) -> StackingProbe | None:
    """Time a few steps of ``module``'s copies stacked and of one copy alone (``None``: the probe could not run).

    The probe trains a few steps both ways, then validates a few batches (an operator vmap runs as a
    loop may be on the evaluation path only: ``nn.Transformer``'s fast path), with Lightning's loops
    as a run has them, on throwaway copies (the module, its weights and every random stream stay as
    they were): the stacked module, and its first copy alone. An epoch is estimated from the fastest
    step of each kind, weighted by the numbers of training and validation batches of
    the data.
    """
    import warnings
    from copy import deepcopy

    import torch

    from lightning_lrsched.compare.stacked import SeedStackedData
    from lightning_lrsched.module_contract import one_optimizer

    k = len(module.copies)
    solo = deepcopy(module.copies[0])
    for param, stacked in zip(solo.parameters(), module.stacked, strict=True):
        param.requires_grad_(stacked.requires_grad)
    # Its optimizer alone: the module's own scheduler is not its run's (a ReduceLROnPlateau fails without validation).
    own = solo.configure_optimizers
    solo.configure_optimizers = lambda: one_optimizer(own(), "configure_optimizers")
    # Copies of several seeds take a batch each: one alone takes its own seed's.
    solo_data = data.modules[data.seed_of[0]] if isinstance(data, SeedStackedData) else data
    state = _random_state()
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            throwaway = deepcopy(module)
            # Its vmapped pass is a closure over the original's copy (a deep copy keeps functions): its own instead,
            # or the probe's validation would run the original copy, in training mode.
            throwaway._set_randomness("same" if module.draws_random else "different")
            # A loader without a length (an iterable dataset's) has no epochs to count steps in, so a schedule in
            # epochs could not know the probe's length: one epoch of `steps` batches bounds the probe instead.
            sized = _batches(data.train_dataloader) is not None
            bound = {"max_steps": steps} if sized else {"max_epochs": 1, "limit_train_batches": steps}
            stacked_s = _step_time(throwaway, data, spec, steps, bound)
            solo_s = _step_time(solo, solo_data, spec, steps, bound)
    finally:
        _set_random_state(state)
    if stacked_s is None or solo_s is None:
        return None
    loops = sorted({m.group(1) for w in caught if (m := re.search(r"batching rule for (\S+?)[.,\s]", str(w.message)))})
    return StackingProbe(k, stacked_s, solo_s, _batches_per_epoch(data), steps, tuple(loops))


def _batches(loader: Callable[[], Any]) -> int | None:
    """The batches of an epoch of ``loader()``; ``None`` where it has no length (an iterable dataset's) or fails."""
    try:
        return len(loader())
    except Exception:
        return None


def _batches_per_epoch(data: Any) -> tuple[float, float]:
    """Training and validation batches of an epoch of ``data`` (1 each where a loader has no length)."""
    train, val = (_batches(loader) for loader in (data.train_dataloader, data.val_dataloader))
    return float(train if train is not None else 1), float(val if val is not None else 1)


class _StepTimer(Callback):
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {"train": [], "validation": []}
        self._started = 0.0

    def _start(self, *args: Any) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.times["train"].append(time.perf_counter() - self._started)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.times["validation"].append(time.perf_counter() - self._started)

    on_train_batch_start = on_validation_batch_start = _start  # type: ignore[assignment]


def _step_time(module: Any, data: Any, spec: RunSpec, steps: int, bound: dict[str, Any]) -> tuple[float, float] | None:
    """Seconds per training and per validation step: the fastest of a few of ``module``'s (``None``: it cannot run).

    ``bound``: the Trainer arguments that end its training (``max_steps``, or one epoch of ``steps`` batches).
    """
    import lightning as L

    from lightning_lrsched.lightning import PlateauDriver

    timer = _StepTimer()
    owned = {
        "max_epochs",
        "max_steps",
        "limit_train_batches",
        "limit_val_batches",
        "num_sanity_val_steps",
        "check_val_every_n_epoch",
        "val_check_interval",
    }
    trainer = L.Trainer(
        **{k: v for k, v in spec.trainer.items() if k not in owned},
        accelerator=spec.device_config.accelerator,
        devices=1,
        **bound,
        limit_val_batches=steps,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=None,
        val_check_interval=10**9,  # validation is timed once training is done, below
        logger=False,
        callbacks=[timer, PlateauDriver()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    try:
        trainer.fit(module, data)
    except Exception:  # the probe is advice: a module it cannot run this way is stacked as asked
        return None
    try:
        trainer.validate(module, data, verbose=False)
    except Exception:  # no validation (no loader, say): training alone decides
        timer.times["validation"] = []
    # The fastest step of each kind (the first is not timed): a busy machine only ever adds time.
    fastest = [min(times[1:]) if len(times) > 1 else None for times in timer.times.values()]
    if fastest[0] is None:
        return None
    return fastest[0], fastest[1] if fastest[1] is not None else 0.0


def _copy_losses(outputs: Any, pl_module: Any) -> Any:
    """Every copy's training loss of the step (the stacked module keeps them)."""
    return pl_module.copy_losses


def _hparams(copy: Any, spec: RunSpec) -> dict[str, Any]:
    """A copy's hyperparameters as its run of its own logs them (a copy is built without its schedule)."""
    hparams = dict(getattr(copy, "hparams", {}))
    if "scheduler" in hparams:
        hparams["scheduler"] = spec.schedule
    return hparams


class EpochProgress(Callback):
    """Reports each epoch end with how many runs trained through it (a stacked run's copies still in training)."""

    def __init__(self, on_epoch: OnEpoch, training: Callable[[], int] = lambda: 1) -> None:
        self.on_epoch, self.training = on_epoch, training

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.on_epoch(self.training())


def _random_state() -> tuple[Any, ...]:
    """Every random stream a run draws from (Python, NumPy, torch's CPU and CUDA generators)."""
    import random

    import numpy as np
    import torch

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda


def _set_random_state(state: tuple[Any, ...]) -> None:
    import random

    import numpy as np
    import torch

    python, numpy, cpu, cuda = state
    random.setstate(python)
    np.random.set_state(numpy)
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def _first_batch(data: Any) -> Any:
    from lightning_lrsched.compare.stacked import SeedStackedData

    data.prepare_data()
    data.setup("fit")
    if isinstance(data, SeedStackedData):
        data.val_dataloader()  # the seeds' validation splits must line up too (else Unstackable, before training)
    return next(iter(data.train_dataloader()))
