"""`compare`: train a grid of schedules × device configs × seeds and report them side by side."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lightning_lrsched.compare.devices import parse_device
from lightning_lrsched.compare.executors import EXECUTORS, run_local, run_ray
from lightning_lrsched.compare.grid import (
    DEFAULT_DATA,
    DEFAULT_MODEL,
    MODES,
    SEED_SCHEDULES,
    WANDB_RUNS,
    Job,
    build_grid,
    class_config,
    is_stacked,
    job_name,
    plan_jobs,
)
from lightning_lrsched.compare.report import DeviceCheck, print_report, write_report
from lightning_lrsched.compare.results import ResultsFile
from lightning_lrsched.compare.tracking import summary_run, sync_hint
from lightning_lrsched.errors import InvalidValue


@dataclass
class Comparison:
    """What :func:`compare` produced: the records of this grid, the checks and where it all is."""

    records: list[dict[str, Any]]
    checks: list[DeviceCheck]
    skipped: list[tuple[str, str]]
    output: Path
    mode_notes: list[str] = field(default_factory=list)

    @property
    def results_path(self) -> Path:
        return self.output / "results.jsonl"


def compare(
    schedules: Sequence[str | Mapping[str, Any]] = SEED_SCHEDULES,
    devices: Sequence[str] = ("cpu:1",),
    seeds: Sequence[int] = (0,),
    max_epochs: int = 20,
    output: str | Path = "runs/compare",
    logger: str = "wandb",
    *,
    wandb_mode: str = "offline",
    project: str = "lightning-lrsched",
    experiment: str | None = None,
    model: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    trainer: Mapping[str, Any] | None = None,
    executor: str = "local",
    mode: str = "auto",
    wandb_runs: str = "per-run",
    force: bool = False,
    tolerance: float = 1e-3,
    divergence_factor: float | None = 10.0,
    run_timeout: float | None = None,
    console: Console | None = None,
) -> Comparison:
    """Train every (schedule, device config, seed) and report them side by side.

    Each finished run is appended to ``<output>/results.jsonl`` as it ends and the report
    (``report.csv``, ``report.md``, ``report.png``) is rewritten, so a killed grid keeps what
    finished; a rerun skips runs already in the file unless ``force``.

    Args:
        schedules: names (the seed six get the tutorials' arguments) or ``{"name", **params}`` specs.
        devices: ``"cpu:1"``, ``"cpu:N"`` (DDP), ``"cuda:N"``, ``"mps:1"``, ``"auto"``; configs this
            machine cannot run are skipped with the reason in the report.
        seeds: one run per seed (model init and data).
        max_epochs: epochs per run.
        output: folder for results, report, logs and W&B runs.
        logger: ``"wandb"`` (offline unless ``wandb_mode="online"``), ``"csv"`` or ``"none"``.
        model: LightningCLI-style ``{"class_path", "init_args"}`` (or init args of the synthetic
            classifier); the module must take the schedule spec as its ``scheduler`` argument.
        data: the same for the datamodule. Its batch size is the global batch on every config.
        trainer: extra ``Trainer`` arguments for every run.
        executor: ``"local"`` (one subprocess per run) or ``"ray"`` (Ray Tune trials).
        mode: ``"sequential"``: one Lightning run per schedule. ``"stacked"``: the schedules that
            share a device config and seed (and model, optimizer, data) train side by side in one
            run, as copies of the module with identical initial weights and batches
            (:mod:`lightning_lrsched.compare.stacked`); an error if the module cannot be stacked.
            ``"auto"``: stacked where the module can be and more than one schedule shares a run,
            sequential otherwise (with the reason). Results are the same in every mode (the
            record's ``mode`` says which was used; a stacked copy's ``wall_time`` is its stacked
            run's), and a rerun skips runs finished in any mode.
        wandb_runs: in stacked mode, ``"per-run"`` logs one W&B run per schedule (as sequential
            mode does), ``"single"`` one run per stacked run with per-schedule metric names
            (``val_loss/<schedule>``).
        force: rerun runs already in the results file (their old lines stay; the newest counts).
        tolerance: relative tolerance of the cross-device check on the final validation loss.
        divergence_factor: a run whose val_loss exceeds this × its best is stopped as diverged.
        run_timeout: seconds before a run is stopped and recorded as failed.
    """
    if executor not in EXECUTORS:
        raise InvalidValue(f"`executor` must be one of {', '.join(EXECUTORS)}: got executor={executor!r}")
    if mode not in MODES:
        raise InvalidValue(f"`mode` must be one of {', '.join(MODES)}: got mode={mode!r}")
    if wandb_runs not in WANDB_RUNS:
        raise InvalidValue(f"`wandb_runs` must be one of {', '.join(WANDB_RUNS)}: got wandb_runs={wandb_runs!r}")
    if wandb_mode not in ("offline", "online"):
        raise InvalidValue(f"`wandb_mode` must be 'offline' or 'online': got wandb_mode={wandb_mode!r}")
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise InvalidValue(f"`tolerance` must be a number >= 0: got tolerance={tolerance!r}")
    out = Path(output)
    name = experiment or out.resolve().name
    configs = [parse_device(d) for d in devices]
    skipped = [(c.label, reason) for c in configs if (reason := c.unavailable())]
    runnable = [c.label for c in configs if not c.unavailable()]
    grid = build_grid(
        schedules,
        runnable or [configs[0].label],
        seeds,
        max_epochs,
        model=class_config("model", model, DEFAULT_MODEL),
        data=class_config("data", data, DEFAULT_DATA),
        trainer=dict(trainer or {}),
        logger=logger,
        wandb_mode=wandb_mode,
        experiment=name,
        project=project,
        output=str(out),
        divergence_factor=divergence_factor,
        wandb_runs=wandb_runs,
    )
    if not runnable:
        grid = []
    # Piped output (a log, CI) gets a width that fits the whole table instead of rich's 80 columns.
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    results = ResultsFile(out / "results.jsonl")
    done = results.latest()
    todo = [spec for spec in grid if force or spec.key not in done]
    keys = {spec.key for spec in grid}
    hint = sync_hint(out, wandb_mode) if logger == "wandb" else None

    def current() -> list[dict[str, Any]]:
        return [r for k, r in results.latest().items() if k in keys]

    jobs = plan_jobs(todo, mode)
    notes = [_mode_note(job, mode) for job in jobs if is_stacked(job) or mode == "auto"]

    def report() -> list[DeviceCheck]:
        return write_report(
            current(),
            out,
            title=f"Comparison: {name}",
            tolerance=tolerance,
            skipped=skipped,
            wandb_hint=hint,
            mode_notes=notes,
        )

    if len(todo) < len(grid):
        console.print(f"{len(grid) - len(todo)} of {len(grid)} runs already in {results.path}: skipping them")
    for device, reason in skipped:
        console.print(f"[yellow]skipping {device}: {reason}[/]")
    for note in notes:
        console.print(f"mode {note}")
    fallback: list[Job] = []

    def on_unstackable(job: Job, reason: str) -> None:
        if mode == "stacked":
            raise InvalidValue(
                f"mode='stacked': {reason.rstrip('.')}. "
                "Use mode='auto' (falls back to sequential runs) or mode='sequential'"
            )
        note = f"{mode} → sequential for {_where(job)}: {reason}"
        notes[notes.index(_mode_note(job, mode))] = note
        console.print(f"[yellow]{note}[/]")
        fallback.extend((replace(spec, mode="sequential"),) for spec in job)

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    with progress:
        task = progress.add_task("grid", total=len(todo))

        def on_result(job: Job, records: list[dict[str, Any]]) -> None:
            for spec, record in zip(job, records, strict=True):
                results.append(record)
                progress.console.print(
                    f"{spec.name}: {record['status']}"
                    + (f", best val_loss {record['best_val_loss']:.4f}" if record["status"] != "failed" else "")
                )
                progress.advance(task)
            report()  # once per job: a stacked run's records arrive together

        run = run_ray if executor == "ray" else run_local
        if jobs:
            run(jobs, on_result, out / "logs", run_timeout, on_unstackable)
        if fallback:
            run(fallback, on_result, out / "logs", run_timeout)
    checks = report()
    records = current()
    if logger == "wandb" and todo and records:
        summary_run(records, project=project, experiment=name, output=out, mode=wandb_mode)
    print_report(records, checks, console)
    console.print(f"report: {out / 'report.md'}, {out / 'report.csv'}, {out / 'report.png'}; results: {results.path}")
    if hint:
        console.print(hint)
    return Comparison(records, checks, skipped, out, notes)


def _where(job: Job) -> str:
    return f"{job[0].device}, seed {job[0].seed}"


def _mode_note(job: Job, mode: str) -> str:
    """One line on how a job of this grid trains, for the terminal and report.md."""
    if is_stacked(job):
        labels = ", ".join(spec.label for spec in job)
        return f"{mode} → stacked for {_where(job)}: {len(job)} schedule(s) in one run ({labels}; {job_name(job)})"
    return f"{mode} → sequential for {_where(job)}: {job[0].label} is the only schedule to train there"
