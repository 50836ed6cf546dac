"""`tune`: search schedules × peak LR × warmup with successive halving over stacked copies, then confirm the best."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lightning_lrsched.compare.devices import parse_device
from lightning_lrsched.compare.grid import DEFAULT_DATA, DEFAULT_MODEL, LOGGERS, Unstackable, class_config
from lightning_lrsched.compare.layout import OutputLayout
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.compare.results import GridLock
from lightning_lrsched.compare.statistics import MIN_SEEDS, SeedStatistics, seed_statistics
from lightning_lrsched.errors import InvalidValue
from lightning_lrsched.tune.search import TrialResult
from lightning_lrsched.tune.space import Config, SearchSpace, Task, check_model_takes_lr, rung_epochs
from lightning_lrsched.tune.trials import TrialsFile, trial_number
from lightning_lrsched.validation import check_choice, check_int, make_output_dir

EXECUTORS = ("local", "ray")
LR_SPAN = 10.0
"""Without an ``lr`` range, the search spans a decade either side of ``find_lr``'s valley suggestion."""


@dataclass
class Tuning:
    """What :func:`tune` found.

    Attributes:
        trials: every configuration of the search, with how far it got (copy order).
        rungs: the epochs at which copies were judged (the last is the end of the run).
        top: the configurations confirmed (best of the search first).
        statistics: the confirmation's statistics over seeds (``None`` without a confirmation).
        records: the confirmation's runs (labelled with the configurations' labels).
        best: the configuration to use: the best confirmed one (the search's best without a confirmation).
        lr_range: the peak-LR range searched.
        resumed: the search was read back from ``trials.jsonl`` instead of trained.
    """

    trials: list[TrialResult]
    rungs: list[int]
    top: list[Config]
    statistics: SeedStatistics | None
    records: list[RunRecord]
    best: Config
    output: Path
    lr_range: tuple[float, float]
    steps_per_epoch: int = 0
    resumed: bool = False
    notes: list[str] = field(default_factory=list)

    def indistinguishable(self) -> list[str]:
        """The confirmed configurations the seeds cannot tell from the best one."""
        if self.statistics is None:
            return []
        return [p.label for p in self.statistics.paired if p.indistinguishable]


def tune(
    space: Mapping[str, Any] | SearchSpace,
    budget: int = 24,
    max_epochs: int = 20,
    *,
    eta: int = 3,
    rungs: int = 2,
    top_k: int = 3,
    seeds: Sequence[int] = (0, 1, 2),
    search_seed: int = 0,
    sampler_seed: int = 0,
    device: str = "cpu:1",
    output: str | Path = "runs/tune",
    logger: str = "csv",
    model: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    trainer: Mapping[str, Any] | None = None,
    executor: str = "local",
    confirm: bool = True,
    write_config: str | Path | None = None,
    force: bool = False,
    console: Console | None = None,
) -> Tuning:
    """Search a space of schedules × peak LR × warmup, then retrain the best ``top_k`` on ``seeds``.

    The search: Optuna's TPE sampler (ask/tell) proposes ``budget`` configurations; they start
    together as the copies of one stacked run (seed ``search_seed``, each copy built with its own
    ``lr`` and schedule), and at each rung (``max_epochs / eta**k`` epochs, ``k = rungs..1``) only the
    best ``n // eta`` copies by best validation loss so far go on (synchronous successive halving,
    Hyperband's inner loop). Schedules are resolved against the full run. Every configuration's
    outcome is appended to ``<output>/trials.jsonl`` as it is decided; Optuna is told each one
    (pruned at its rung, or complete with its best validation loss).

    The confirmation: the ``top_k`` configurations that got furthest (best first) are trained in full
    on every seed with :func:`lightning_lrsched.compare`, one comparison each under
    ``<output>/confirm/<label>/`` (its ``results.jsonl``, its report), and compared seed by seed
    with the best one (compare's paired statistics). ``<output>/report.md`` and
    ``<output>/lr_curves.png`` show the result.

    A rerun with the same arguments reads a finished search back instead of training it, continues a
    local search killed after a rung from its last rung (see :mod:`~lightning_lrsched.tune.trials`;
    one killed before its first rung, or a Ray search, is trained again) and lets compare skip the
    confirmed runs that finished.

    Args:
        space: see :class:`~lightning_lrsched.tune.space.SearchSpace` (``schedules``, ``lr``, ``warmup``).
            Without ``lr``, ``find_lr`` runs first and the range is a decade either side of its valley.
        budget: configurations in the search (at least the number of rungs, the end included).
        max_epochs: epochs of the full run (search and confirmation).
        eta: the reduction factor (each rung keeps the best ``1/eta``).
        rungs: how many rungs before the end (``max_epochs / eta**rungs`` is the first).
        top_k: configurations confirmed.
        seeds: the confirmation's seeds (at least 3: statistics over seeds).
        search_seed: the seed of the search run (initial weights and data order).
        sampler_seed: the seed of Optuna's TPE sampler.
        device: one single-process device config (``cpu:1``, ``cuda:1``, ``mps:1``).
        output: the folder for trials, confirmation and report.
        logger: the confirmation runs' logger (``"csv"``, ``"wandb"`` offline, ``"none"``).
        model: LightningCLI-style ``{"class_path", "init_args"}``; the module takes ``lr`` and ``scheduler``.
        data, trainer: as in :func:`lightning_lrsched.compare`.
        executor: ``"local"`` (the stacked search); ``"ray"``: one Ray Tune trial per configuration
            (``OptunaSearch`` + ``ASHAScheduler``, see :mod:`~lightning_lrsched.tune.ray_search`).
        confirm: retrain the top configurations on ``seeds`` (``False``: the search alone).
        write_config: write a ``lrsched fit`` config of the best configuration here.
        force: train the search again even if ``trials.jsonl`` has it (or a rung to continue from).

    Raises:
        InvalidValue, InvalidType: bad input (before anything trains).
    """
    check_choice("executor", executor, EXECUTORS)
    if executor == "ray":
        from lightning_lrsched.tune.ray_search import ray_available

        if reason := ray_available():
            raise InvalidValue(f"`executor='ray'`: {reason}")
    check_choice("logger", logger, LOGGERS)
    space = space if isinstance(space, SearchSpace) else SearchSpace.parse(space)
    check_int("budget", budget, minimum=1)
    check_int("max_epochs", max_epochs, minimum=1)
    check_int("eta", eta, minimum=2)
    check_int("rungs", rungs, minimum=1)
    check_int("top_k", top_k, minimum=1)
    check_int("search_seed", search_seed, minimum=0)
    check_int("sampler_seed", sampler_seed, minimum=0)
    judged = rung_epochs(max_epochs, eta, rungs)
    if budget < len(judged):
        raise InvalidValue(
            f"`budget` must be at least the number of rungs ({len(judged)}: epochs {judged}): got budget={budget}"
        )
    seeds = list(seeds)
    if confirm and (len(set(seeds)) < MIN_SEEDS or not all(isinstance(s, int) and s >= 0 for s in seeds)):
        raise InvalidValue(f"`seeds` must be at least {MIN_SEEDS} distinct non-negative ints: got {seeds!r}")
    config = parse_device(device, option="device")
    if config.processes != 1 or config.accelerator == "auto":
        raise InvalidValue(f"`device` must be one single-process device config (cpu:1, cuda:1, mps:1): got {device!r}")
    if reason := config.unavailable():  # it starts with the device config
        raise InvalidValue(f"`device`: {reason}")
    model_cfg = class_config("model", model, DEFAULT_MODEL, passed=("scheduler", "lr"))  # each copy's own
    data_cfg = class_config("data", data, DEFAULT_DATA)
    model_class = _import(model_cfg["class_path"])
    check_model_takes_lr(model_class)
    if "scheduler" not in inspect.signature(model_class).parameters:
        raise InvalidValue(
            f"`model`: tune gives each copy its schedule as `scheduler=`; {model_class.__name__} takes none"
        )
    if executor == "local" and not callable(getattr(model_class, "stacked_metrics", None)):
        raise InvalidValue(
            f"`model`: the local search trains the configurations as copies of one stacked run, and "
            f"{model_class.__name__} has no `stacked_metrics(batch)` method saying how to score a batch (see "
            "'Which modules stack' in the compare docs); or search with executor='ray' (one trial per configuration)"
        )
    if write_config is not None:
        from lightning_lrsched.finder.command import unreplaceable

        if why := unreplaceable(Path(write_config), "lrsched tune"):
            raise InvalidValue(f"`write_config` {write_config}: {why}")
    trainer_args = dict(trainer or {})
    if "max_epochs" in trainer_args:
        raise InvalidValue("`trainer.max_epochs`: give the run length as tune's `max_epochs`")
    task = Task(model_cfg, data_cfg, trainer_args, max_epochs)
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    layout = OutputLayout(output)
    notes: list[str] = []
    lr_range = space.lr
    if lr_range is None:
        lr_range = _lr_from_finder(model_class, model_cfg, data_cfg, search_seed, config, console)
        space = space.with_lr(*lr_range)
        notes.append(f"peak LR range {lr_range[0]:.3g}..{lr_range[1]:.3g}: a decade either side of find_lr's valley")
    settings = {
        "space": space.to_dict(),
        "budget": budget,
        "max_epochs": max_epochs,
        "eta": eta,
        "rungs": judged,
        "search_seed": search_seed,
        "sampler_seed": sampler_seed,
        "device": config.label,
        "model": model_cfg,
        "data": data_cfg,
        "trainer": trainer_args,
        **({"executor": executor} if executor != "local" else {}),  # a local search's digest stays as it was
    }
    search = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    make_output_dir("output", layout.root)  # an unusable folder is one line, before anything trains
    with GridLock(layout, command="tune"):
        described = layout.root / "search.json"
        if (previous := _search_in(described)) not in (None, search):
            line = (
                f"{layout.root} held search {previous}: its trials stay in trials.jsonl (run it again to rebuild its "
                f"report without training); search.json and report.md are now search {search}'s"
            )
            console.print(escape(line))
            notes.append(line)
        described.write_text(json.dumps({"search": search, **settings}, indent=1, default=str))
        trials_file = TrialsFile(layout.root / "trials.jsonl")
        finished = None if force else trials_file.finished(search)
        if finished is not None:
            trials, done = finished
            per_epoch = int(done.get("steps_per_epoch") or 0)
            console.print(
                f"search {search} already in {trials_file.path}: {len(trials)} configurations, not trained again"
            )
        else:
            trials, per_epoch = _search(
                space, budget, judged, eta, sampler_seed, search_seed, search, trials_file, task, config, console,
                executor, layout, force,
            )  # fmt: skip
        top = _top(trials, top_k)
        if len(top) < top_k:
            notes.append(f"only {len(top)} configuration(s) could be confirmed (the others diverged or could not run)")
        records: list[RunRecord] = []
        statistics = None
        if confirm and top:
            records = _confirm(top, seeds, layout, logger, task, config, console)
            statistics = seed_statistics(records)
        by_label = {c.label: c for c in top}
        ranked = statistics.best(config.label) if statistics is not None else None
        best = by_label[ranked.label] if ranked is not None else top[0] if top else trials[0].config
        tuning = Tuning(
            trials,
            judged,
            top,
            statistics,
            records,
            best,
            layout.root,
            lr_range,
            per_epoch,
            finished is not None,
            notes,
        )
        from lightning_lrsched.tune.report import print_summary, write_report

        write_report(tuning, task)
        if write_config is not None:
            console.print(
                escape(write_fit_config(Path(write_config), tuning, task, seeds[0] if seeds else search_seed))
            )
        print_summary(tuning, console)
        return tuning


def _import(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _lr_from_finder(
    model_class: type, model_cfg: dict[str, Any], data_cfg: dict[str, Any], seed: int, device: Any, console: Console
) -> tuple[float, float]:
    import lightning as L

    from lightning_lrsched.finder import find_lr

    L.seed_everything(seed, verbose=False)
    model = model_class(**model_cfg["init_args"])
    data = _data(data_cfg, seed)
    with _quiet_lightning():
        result = find_lr(model, data, **device.trainer_kwargs())
    valley = result.suggestion("valley")
    if not (math.isfinite(valley) and valley > 0):
        raise InvalidValue("`space.lr`: find_lr found no valley to centre the search on: give space.lr {low, high}")
    console.print(
        f"find_lr: valley {valley:.3g}; searching the peak LR in {valley / LR_SPAN:.3g}..{valley * LR_SPAN:.3g}"
    )
    return valley / LR_SPAN, valley * LR_SPAN


def _data(data_cfg: dict[str, Any], seed: int) -> Any:
    cls = _import(data_cfg["class_path"])
    init_args = dict(data_cfg["init_args"])
    if "seed" in inspect.signature(cls).parameters:
        init_args.setdefault("seed", seed)
    return cls(**init_args)


class _quiet_lightning:
    """Lightning's start-up lines (GPU available, tips) would scatter the progress bars."""

    names = ("lightning.pytorch", "lightning.fabric")

    def __enter__(self) -> None:
        self.levels = [logging.getLogger(n).level for n in self.names]
        for name in self.names:
            logging.getLogger(name).setLevel(logging.WARNING)

    def __exit__(self, *args: Any) -> None:
        for name, level in zip(self.names, self.levels, strict=True):
            logging.getLogger(name).setLevel(level)


def _search_in(path: Path) -> str | None:
    """The digest of the search ``path`` (a ``search.json``) describes, or ``None`` (no such file, or unreadable)."""
    try:
        value = json.loads(path.read_text()).get("search")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _search(
    space: SearchSpace,
    budget: int,
    judged: list[int],
    eta: int,
    sampler_seed: int,
    search_seed: int,
    search: str,
    trials_file: TrialsFile,
    task: Task,
    device: Any,
    console: Console,
    executor: str = "local",
    layout: OutputLayout | None = None,
    force: bool = False,
) -> tuple[list[TrialResult], int]:
    import optuna

    from lightning_lrsched.tune.search import train_search

    attempt = trials_file.attempts(search) + 1
    checkpoints = trials_file.path.parent / "rungs"
    if executor == "ray":
        from lightning_lrsched.tune.ray_search import search_ray

        console.print(
            f"search {search}: {budget} configurations as Ray Tune trials (OptunaSearch + ASHAScheduler, "
            f"grace period {judged[0]} epochs, eta {eta}) of {task.max_epochs} epochs"
        )
        with _quiet_lightning():
            trials, per_epoch = search_ray(
                space, budget, judged, eta, sampler_seed, search_seed,
                replace(task, trainer={**device.trainer_kwargs(), **task.trainer}),
                (layout.logs if layout is not None else trials_file.path.parent) / "ray",
                lambda result: trials_file.append(
                    {"kind": "trial", "search": search, "attempt": attempt, **result.to_dict()}
                ),
            )  # fmt: skip
        trials_file.append(
            {"kind": "done", "search": search, "attempt": attempt, "rungs": judged, "steps_per_epoch": per_epoch}
        )
        return trials, per_epoch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=sampler_seed))
    resume = None if force else trials_file.resumable(search)
    by_label: dict[str, Any] = {}
    if resume is None:
        asked = [study.ask() for _ in range(budget)]
        configs = [space.propose(trial) for trial in asked]
        by_label = {c.label: trial for c, trial in zip(configs, asked, strict=True)}
    else:
        # Every proposal was made before the first rung: the configurations are in trials.jsonl.
        attempt, rung, decided = resume
        configs = sorted([*(t.config for t in decided), *rung.survivors], key=trial_number)
        console.print(
            f"search {search}: continuing attempt {attempt} from its rung at epoch {rung.epoch} "
            f"({len(rung.survivors)} of {len(configs)} configurations still training)"
        )

    def on_decided(result: TrialResult) -> None:
        trials_file.append({"kind": "trial", "search": search, "attempt": attempt, **result.to_dict()})
        trial = by_label.get(result.label)
        if trial is None:  # a continued search: Optuna's study of the first attempt is gone
            return
        for epoch, value in result.val_curve:
            if math.isfinite(value):
                trial.report(value, int(epoch))
        if result.state == "completed" and math.isfinite(result.best_val_loss):
            study.tell(trial, result.best_val_loss)
        elif result.state == "stopped":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
    starts = [0, *judged[:-1]]
    console.print(
        f"search {search}: {budget} configurations in one stacked run of {task.max_epochs} epochs; "
        f"rungs at epochs {judged[:-1]} keep the best 1/{eta}"
    )
    with progress, _quiet_lightning():
        tasks = [
            progress.add_task(f"rung {i + 1}/{len(judged)} (epochs {a + 1}-{b})", total=b - a, start=i == 0)
            for i, (a, b) in enumerate(zip(starts, judged, strict=True))
        ]
        progress.update(tasks[0], description=f"{progress.tasks[0].description}: {budget} copies")
        for i, end in enumerate(judged):
            if resume is not None and end <= resume[1].epoch:
                progress.update(tasks[i], completed=progress.tasks[i].total)
                progress.start_task(tasks[i + 1])

        def on_epoch(epoch: int, training: int) -> None:
            i = sum(r < epoch for r in judged)
            progress.advance(tasks[i])
            if epoch in judged[:-1] and i + 1 < len(tasks):
                progress.start_task(tasks[i + 1])
                description = progress.tasks[i + 1].description
                progress.update(tasks[i + 1], description=f"{description}: {training} copies")

        try:
            trials, per_epoch = train_search(
                configs,
                model_class=_import(task.model["class_path"]),
                model_args=task.model["init_args"],
                data=_data(task.data, search_seed),
                seed=search_seed,
                max_epochs=task.max_epochs,
                rungs=judged,
                eta=eta,
                trainer_args={**device.trainer_kwargs(), **task.trainer},
                on_decided=on_decided,
                on_epoch=on_epoch,
                checkpoint=checkpoints / f"{search}.ckpt",
                on_rung=lambda rung: trials_file.append(
                    {"kind": "rung", "search": search, "attempt": attempt, **rung.to_dict()}
                ),
                resume=None if resume is None else resume[1:],
            )
        except Unstackable as error:  # nothing was trained: the module, not the search, is at fault
            raise InvalidValue(
                f"`model`: the local search trains the configurations as copies of one stacked run: {error} "
                "(executor='ray' trains each configuration alone)"
            ) from None
    trials_file.append(
        {"kind": "done", "search": search, "attempt": attempt, "rungs": judged, "steps_per_epoch": per_epoch}
    )
    for path in checkpoints.glob(f"{search}-epoch*.ckpt"):
        path.unlink()  # the search ended: nothing will continue from its rungs
    return trials, per_epoch


def _top(trials: Sequence[TrialResult], k: int) -> list[Config]:
    """The ``k`` configurations that got furthest, best validation loss first among equals."""
    usable = [t for t in trials if t.state in ("completed", "stopped") and math.isfinite(t.best_val_loss)]
    usable.sort(key=lambda t: (-t.rung, t.best_val_loss))
    return [t.config for t in usable[:k]]


def _confirm(
    top: Sequence[Config],
    seeds: Sequence[int],
    layout: OutputLayout,
    logger: str,
    task: Task,
    device: Any,
    console: Console,
) -> list[RunRecord]:
    """Each configuration trained on every seed with compare (its own folder); the records under its label."""
    from lightning_lrsched.compare.api import compare

    records = []
    for config in top:
        console.print(escape(f"confirming {config.label} (lr {config.lr:.3g}) on seeds {', '.join(map(str, seeds))}"))
        model = {"class_path": task.model["class_path"], "init_args": {**task.model["init_args"], "lr": config.lr}}
        comparison = compare(
            [config.schedule],
            devices=[device.label],
            seeds=seeds,
            max_epochs=task.max_epochs,
            output=layout.root / "confirm" / config.label,
            logger=logger,
            experiment=config.label,
            model=model,
            data=task.data,
            trainer=task.trainer,
            console=console,
        )
        records += [replace(r, label=config.label) for r in comparison.records]
    return records


def fit_config(tuning: Tuning, task: Task, seed: int) -> dict[str, Any]:
    """The ``lrsched fit`` config of the best configuration."""
    best = tuning.best
    init_args = {**task.model["init_args"], "lr": float(f"{best.lr:.4g}"), "scheduler": _rounded(best.schedule)}
    return {
        "seed_everything": seed,
        "model": {"class_path": task.model["class_path"], "init_args": init_args},
        "data": {"class_path": task.data["class_path"], "init_args": dict(task.data["init_args"])},
        "trainer": {"max_epochs": task.max_epochs, **task.trainer},
    }


def _rounded(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in spec.items()}


def write_fit_config(
    path: Path,
    tuning: Tuning,
    task: Task,
    seed: int,
) -> str:
    """Write the best configuration as a ``lrsched fit`` config; return what was done."""
    import yaml

    config = fit_config(tuning, task, seed)
    why = (
        "the best confirmed configuration" if tuning.statistics is not None else "the best configuration of the search"
    )
    header = (
        f"# {tuning.best.label}: {why} of `lrsched tune` ({tuning.output}/report.md).\n"
        f"# Run: lrsched fit --config {path}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return f"wrote {path}: {tuning.best.label}, lr {tuning.best.lr:.3g}\nnext:  lrsched fit --config {path}"
