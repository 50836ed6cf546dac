"""The grid of a comparison: one `RunSpec` per (schedule, device config, seed), and how they group into jobs."""

from __future__ import annotations

import importlib
import inspect
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from lightning_lrsched.compare.devices import DeviceConfig, parse_device
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.fingerprint import fingerprint
from lightning_lrsched.optim import is_schedule_free, make_optimizer, optimizer_spec
from lightning_lrsched.schedules import Schedule
from lightning_lrsched.schedules.tutorial import resolve_schedule
from lightning_lrsched.validation import unbound_arguments

DEFAULT_MODEL = {"class_path": "lightning_lrsched.models.SyntheticClassifier", "init_args": {}}
DEFAULT_DATA = {"class_path": "lightning_lrsched.models.SyntheticDataModule", "init_args": {}}
LOGGERS = ("wandb", "csv", "none")
MODES = ("auto", "sequential", "stacked")
WANDB_RUNS = ("per-run", "single")
NO_SCHEDULE = {"name": "constant", "factor": 1.0, "total_iters": 0}
"""The LR schedule of a schedule-free entry: none (the optimizer's own LR throughout)."""


@dataclass(frozen=True)
class RunSettings:
    """What every run of a grid shares and does not change what it trains: logging, output, divergence, fallback."""

    output: str = "runs/compare"
    logger: str = "wandb"
    wandb_mode: str = "offline"
    experiment: str = "compare"
    project: str = "lightning-lrsched"
    wandb_runs: str = "per-run"
    divergence_factor: float | None = 10.0
    fallback: bool = False
    """A stacked job whose module cannot be stacked trains its specs as runs of their own (``mode="auto"``);
    ``False``: it ends with no records (the grid was told why, see :mod:`~lightning_lrsched.compare.worker`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunSpec:
    """What one run of the grid trains, as plain data (it crosses process boundaries)."""

    label: str
    schedule: dict[str, Any]
    device: str
    seed: int
    max_epochs: int
    model: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_MODEL))
    data: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_DATA))
    trainer: dict[str, Any] = field(default_factory=dict)
    mode: str = "sequential"

    @property
    def key(self) -> str:
        """Identity of the run's training (what it trains, where, how long): reruns skip on it.

        The mode is not part of it: a stacked copy trains what the sequential run trains (same
        initial weights, batches and LRs; losses equal to float rounding), so a rerun in either
        mode skips a schedule that finished in the other.
        """
        what = {k: getattr(self, k) for k in ("schedule", "device", "seed", "max_epochs", "model", "data", "trainer")}
        return fingerprint(what)

    @property
    def stack_key(self) -> str:
        """What runs stacked together share: everything but the schedule (model and optimizer included).

        On a single-process device config the seed is not part of it: each copy is built after its
        own seed and trains on its own seed's batches (see :mod:`lightning_lrsched.compare.stacked.seeds`).
        Under DDP a stacked run holds one seed, so that the processes' data stays Lightning's.
        """
        shared = ["device", "max_epochs", "model", "data", "trainer"]
        if self.device_config.processes > 1:
            shared.append("seed")
        return fingerprint({k: getattr(self, k) for k in shared})

    @property
    def name(self) -> str:
        return f"{self.label}-{self.device.replace(':', '')}-seed{self.seed}"

    @property
    def device_config(self) -> DeviceConfig:
        return parse_device(self.device)

    def record(self, status: str, logger: str, reason: str = "", **results: Any) -> RunRecord:
        """This run's record: its identity, how it ended, and ``results`` (curves, losses, ...)."""
        name, params = self.schedule["name"], {k: v for k, v in self.schedule.items() if k != "name"}
        optimizer = self.model.get("init_args", {}).get("optimizer")
        if is_schedule_free(optimizer) and {k: v for k, v in self.schedule.items() if k != "interval"} == NO_SCHEDULE:
            # A schedule-free entry: what it trains with is its optimizer, not the constant schedule.
            optimizer = {"name": optimizer} if isinstance(optimizer, str) else dict(optimizer)
            name, params = optimizer.pop("name"), optimizer
        return RunRecord(
            key=self.key,
            label=self.label,
            schedule=name,
            params=params,
            device=self.device,
            seed=self.seed,
            max_epochs=self.max_epochs,
            mode=self.mode,
            logger=logger,
            status=status,
            reason=reason,
            **results,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        return cls(**data)


Job = tuple[RunSpec, ...]
"""One spec (a run of its own) or several (one stacked run): see :func:`plan_jobs`."""


class Unstackable(Exception):
    """The module of a stacked job cannot be stacked (the message says why, in one line); nothing was trained."""


class SeedsDrawApart(Unstackable):
    """The module draws random numbers in training (dropout): copies of several seeds cannot share one stream.

    A stacked copy draws what its run of its own draws only when all copies share their seed's random
    stream: such a job trains as one stacked run per seed.
    """


def is_stacked(job: Job) -> bool:
    return len(job) > 1 or job[0].mode == "stacked"


def job_seeds(job: Job) -> list[int]:
    """The job's seeds, each once, in the order of its specs."""
    return list(dict.fromkeys(spec.seed for spec in job))


def job_name(job: Job) -> str:
    """The job's name: the run's own, or ``stacked-<device>-seed<seeds>`` (its log, its single W&B run).

    Example:
        >>> specs, _ = build_grid(["step", "cosine"], ["cpu:1"], [0, 1], 1)
        >>> job_name(tuple(specs))
        'stacked-cpu1-seed0-1'
    """
    if not is_stacked(job):
        return job[0].name
    return f"stacked-{job[0].device.replace(':', '')}-seed{'-'.join(map(str, job_seeds(job)))}"


def copy_labels(job: Job) -> list[str]:
    """Each copy's name in a stacked run (metric keys, param groups): its label, with its seed when seeds differ.

    Example:
        >>> specs, _ = build_grid(["step", "cosine"], ["cpu:1"], [0, 1], 1)
        >>> copy_labels(tuple(specs))
        ['step-seed0', 'step-seed1', 'cosine-seed0', 'cosine-seed1']
    """
    if len(job_seeds(job)) == 1:
        return [spec.label for spec in job]
    return [f"{spec.label}-seed{spec.seed}" for spec in job]


def plan_jobs(specs: Sequence[RunSpec], mode: str) -> list[Job]:
    """Split specs into jobs: one spec is a run of its own, several are one stacked run.

    ``sequential``: every spec alone. ``stacked``: every group of specs that differ only in their
    schedule and, on a single-process device config, their seed (same device config, model and
    optimizer, data, trainer: see :attr:`RunSpec.stack_key`) is one stacked run.
    ``auto``: as ``stacked``, but a group of one runs alone. Each spec's ``mode`` says which it got.

    Example:
        >>> specs, _ = build_grid(["step", "cosine"], ["cpu:1", "cpu:2"], [0, 1], 1)
        >>> [[s.name for s in job] for job in plan_jobs(specs, "auto")]  # doctest: +NORMALIZE_WHITESPACE
        [['step-cpu1-seed0', 'step-cpu1-seed1', 'cosine-cpu1-seed0', 'cosine-cpu1-seed1'],
         ['step-cpu2-seed0', 'cosine-cpu2-seed0'], ['step-cpu2-seed1', 'cosine-cpu2-seed1']]
    """
    if mode not in MODES:
        raise InvalidValue(f"`mode` must be one of {', '.join(MODES)}: got mode={mode!r}")
    if mode == "sequential":
        return [(replace(spec, mode="sequential"),) for spec in specs]
    groups: dict[str, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.stack_key, []).append(spec)
    jobs: list[tuple[RunSpec, ...]] = []
    for group in groups.values():
        if mode == "auto" and len(group) == 1:
            jobs.append((replace(group[0], mode="sequential"),))
        else:
            jobs.append(tuple(replace(spec, mode="stacked") for spec in group))
    return jobs


def class_config(
    name: str, value: Mapping[str, Any] | None, default: dict[str, Any], passed: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` from a LightningCLI-style config (or init args alone).

    ``passed``: the arguments the runs give the class themselves, which the config need not hold
    (default: a model's ``scheduler``, a datamodule's ``seed``; ``tune`` gives a model its ``lr`` too).
    """
    if value is None:
        return {"class_path": default["class_path"], "init_args": {}}
    if not isinstance(value, Mapping):
        raise InvalidType(f"`{name}` must be a mapping like {{'class_path': ..., 'init_args': {{...}}}}: got {value!r}")
    if "class_path" in value:
        unknown = set(value) - {"class_path", "init_args"}
        if unknown:
            raise InvalidValue(f"`{name}` has unknown keys {sorted(unknown)}: use class_path and init_args")
        config = {"class_path": value["class_path"], "init_args": dict(value.get("init_args") or {})}
    else:
        config = {"class_path": default["class_path"], "init_args": dict(value)}
    _check_class(name, config, passed)
    return config


_DEVICES = "give devices (--devices), e.g. [cpu:1, cpu:2]"
OWNED_TRAINER_ARGS = {
    "max_epochs": "give max_epochs (--max-epochs)",
    "accelerator": _DEVICES,
    "devices": _DEVICES,
    "strategy": _DEVICES,
    "num_nodes": _DEVICES,
    "logger": "give logger (--logger)",
    "callbacks": "it adds the callbacks a comparison needs",
    "default_root_dir": "give output (--output)",
    "enable_checkpointing": "a compared run keeps no checkpoint",
    "enable_progress_bar": "its own progress bar follows the grid",
    "enable_model_summary": "it shows none",
}
"""``Trainer`` arguments compare sets for every run itself, and what to give instead."""


def check_trainer(trainer: Mapping[str, Any] | None) -> dict[str, Any]:
    """The extra ``Trainer`` arguments of every run; refuse, before anything trains, those it cannot take."""
    import lightning as L

    if trainer is None:
        return {}
    if not isinstance(trainer, Mapping):
        raise InvalidType(f"`trainer` must be a mapping of Trainer arguments, e.g. {{'precision': 16}}: got {trainer}")
    known = inspect.signature(L.Trainer).parameters
    for key in trainer:
        if key in OWNED_TRAINER_ARGS:
            raise InvalidValue(f"`trainer.{key}`: compare sets it for every run; {OWNED_TRAINER_ARGS[key]}")
        if key not in known:
            raise InvalidValue(
                f"`trainer.{key}` is not a Trainer argument (e.g. gradient_clip_val, accumulate_grad_batches)"
            )
    return dict(trainer)


def _check_class(name: str, config: dict[str, Any], passed: tuple[str, ...] | None = None) -> None:
    """Refuse, before anything trains, a class path that does not import or init args its class does not take."""
    path = config["class_path"]
    module, _, attr = str(path).rpartition(".")
    example = DEFAULT_MODEL["class_path"] if name == "model" else DEFAULT_DATA["class_path"]
    if not module or not isinstance(path, str):
        raise InvalidValue(f"`{name}.class_path` must be a dotted import path like {example}: got {path!r}")
    # The workers run `python -m` here, so they import from this directory first: the check does too.
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        cls = getattr(importlib.import_module(module), attr, None)
    except ImportError as error:
        raise InvalidValue(f"`{name}.class_path` {path!r}: cannot import {module} ({error})") from None
    finally:
        if added:
            sys.path.remove(cwd)
    if not inspect.isclass(cls):
        raise InvalidValue(f"`{name}.class_path` {path!r}: {module} has no class {attr} (e.g. {example})")
    # What the runs pass themselves: a model's `scheduler` (the grid's schedule), a datamodule's `seed`.
    if passed is None:
        passed = ("scheduler",) if name == "model" else ("seed",)
    if why := unbound_arguments(cls, config["init_args"], passed):
        raise InvalidValue(f"`{name}.init_args` for {attr}: {why}")


def resolve_entry(entry: str | Mapping[str, Any]) -> tuple[Schedule, dict[str, Any] | None]:
    """A grid entry: a schedule, or a schedule-free optimizer compared against the scheduled runs.

    A schedule-free entry (``"adamw_schedulefree"``, ``{"name": "sgd_schedulefree", "lr": 1.0,
    "warmup_steps": 50}``) replaces the model's ``optimizer`` argument with itself and trains
    at a constant LR; its arguments are the ``schedulefree`` package's.

    Returns:
        The entry's schedule, and the optimizer spec it trains with (``None``: the model's own).

    Raises:
        InvalidValue: a schedule-free entry without the ``schedulefree`` extra (the message names it).

    Example:
        >>> resolve_entry("cosine")
        (Schedule('cosine', eta_min=0.0, interval='epoch'), None)
    """
    if is_schedule_free(entry):
        optimizer = {"name": entry} if isinstance(entry, str) else dict(entry)
        name, kwargs = optimizer_spec(optimizer)
        _check_schedule_free(name, kwargs)
        return resolve_schedule(NO_SCHEDULE), {"name": name, **kwargs}
    return resolve_schedule(entry), None


def _check_schedule_free(name: str, kwargs: dict[str, Any]) -> None:
    """Refuse before training what the optimizer would train on anyway (AdamWScheduleFree takes lr=-1)."""
    lr = kwargs.get("lr")
    if lr is not None and (not isinstance(lr, (int, float)) or isinstance(lr, bool) or not 0 < lr < math.inf):
        raise InvalidValue(f"`{name}`: `lr` must be a positive number: got lr={lr!r}")
    make_optimizer({"name": name, **kwargs}, [torch.nn.Parameter(torch.zeros(1))], lr=1e-3)


def _with_optimizer(model: Mapping[str, Any], optimizer: dict[str, Any] | None) -> dict[str, Any]:
    if optimizer is None:
        return dict(model)
    return {**model, "init_args": {**model.get("init_args", {}), "optimizer": optimizer}}


def build_grid(
    schedules: Sequence[str | Mapping[str, Any]],
    devices: Sequence[str],
    seeds: Sequence[int],
    max_epochs: int,
    **what: Any,
) -> tuple[list[RunSpec], list[str]]:
    """Every (schedule, device config, seed) combination, schedules checked up front.

    A schedule, device config or seed given twice is trained once: the second list holds a note
    for each one dropped.

    Args:
        what: ``model``, ``data`` and ``trainer`` of every run (see :class:`RunSpec`).
    """
    if not schedules:
        raise InvalidValue("`schedules` is empty: name at least one schedule")
    if not devices:
        raise InvalidValue("`devices` is empty: use e.g. ['cpu:1']")
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise InvalidValue(f"`seeds` must be non-negative ints: got {list(seeds)!r}")
    if not isinstance(max_epochs, int) or isinstance(max_epochs, bool) or max_epochs < 1:
        raise InvalidValue(f"`max_epochs` must be a positive int: got max_epochs={max_epochs!r}")
    notes: list[str] = []
    entries = _distinct([resolve_entry(s) for s in schedules], _entry_identity, "schedule", notes, _show_entry)
    configs = _distinct([parse_device(d).label for d in devices], str, "device config", notes)
    seeds = _distinct(list(seeds), str, "seed", notes)
    names = [optimizer["name"] if optimizer else schedule.name for schedule, optimizer in entries]
    labels = [
        name if names.count(name) == 1 else f"{name}-{_entry_identity(entry)[:6]}"
        for name, entry in zip(names, entries, strict=True)
    ]
    model = what.pop("model", DEFAULT_MODEL)
    specs = [
        RunSpec(label, schedule.to_dict(), device, seed, max_epochs, model=_with_optimizer(model, optimizer), **what)
        for (schedule, optimizer), label in zip(entries, labels, strict=True)
        for device in configs
        for seed in seeds
    ]
    return specs, notes


def _entry_identity(entry: tuple[Schedule, dict[str, Any] | None]) -> str:
    schedule, optimizer = entry
    return schedule.fingerprint() if optimizer is None else fingerprint([schedule.fingerprint(), optimizer])


def _show_entry(entry: tuple[Schedule, dict[str, Any] | None]) -> str:
    schedule, optimizer = entry
    return repr(schedule) if optimizer is None else repr(optimizer)


def _distinct(items: list[Any], identity: Any, what: str, notes: list[str], show: Any = repr) -> list[Any]:
    seen: dict[str, Any] = {}
    for item in items:
        key = identity(item)
        if key in seen:
            notes.append(f"{what} {show(item)} is given more than once: trained once")
        else:
            seen[key] = item
    return list(seen.values())
