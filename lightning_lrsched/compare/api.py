"""`compare`: train a grid of schedules × device configs × seeds and report them side by side."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lightning_lrsched.compare.analysis import DeviceCheck
from lightning_lrsched.compare.devices import parse_device
from lightning_lrsched.compare.executors import EXECUTORS, Executor, recover_stopped_workers
from lightning_lrsched.compare.grid import (
    DEFAULT_DATA,
    DEFAULT_MODEL,
    LOGGERS,
    MODES,
    WANDB_RUNS,
    Job,
    RunSettings,
    RunSpec,
    Unstackable,
    build_grid,
    check_trainer,
    class_config,
    is_stacked,
    job_name,
    job_seeds,
    plan_jobs,
)
from lightning_lrsched.compare.layout import OutputLayout
from lightning_lrsched.compare.processes import Standby
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.compare.report import print_report, write_report
from lightning_lrsched.compare.results import GridLock, ResultsFile
from lightning_lrsched.compare.tracking import summary_run, sync_hint, wandb_login_missing
from lightning_lrsched.errors import InvalidType, InvalidValue
from lightning_lrsched.schedules.tutorial import TUTORIAL_SCHEDULES
from lightning_lrsched.validation import check_choice, check_non_negative, check_positive

FIGURE_EVERY_S = 10.0  # between jobs, report.png is redrawn at most this often (see GridRun.report)
_clock = time.monotonic  # the figure's clock (a test sets its own)


@dataclass
class Comparison:
    """What :func:`compare` produced: the records of this grid, the checks and where it all is.

    Attributes:
        records: the newest record of every run of the grid that has one.
        expected: how many runs the grid holds (on the device configs this machine can run).
        notes: how each job trained (stacked or sequential, and why), duplicates dropped, torn lines set aside.
    """

    records: list[RunRecord]
    checks: list[DeviceCheck]
    skipped: list[tuple[str, str]]
    output: Path
    expected: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """Every run finished (``ok`` or ``diverged``) and every cross-device check passed."""
        finished = len(self.records) == self.expected and all(r.finished for r in self.records)
        return finished and all(check.passed for check in self.checks)


def compare(
    schedules: Sequence[str | Mapping[str, Any]] = tuple(TUTORIAL_SCHEDULES),
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

    Each run's record is appended to ``<output>/results.jsonl`` as it ends and the report
    (``report.csv``, ``report.md``; ``report.png`` at most every 10 s, and at the end) is rewritten,
    so a killed grid keeps what finished. A rerun skips runs that finished (``ok`` or
    ``diverged``) unless ``force``, and trains again the ``failed`` ones (an error, a timeout, a
    killed worker). One grid at a time runs on an output folder.

    Args:
        schedules: names (the seed six get the tutorials' arguments) or ``{"name", **params}`` specs.
            A schedule given twice is trained once (with a note).
        devices: ``"cpu:1"``, ``"cpu:N"`` (DDP), ``"cuda:N"``, ``"mps:1"``, ``"auto"``; configs this
            machine cannot run are skipped with the reason in the report (none runnable: an error).
        seeds: one run per seed (model init and data); 3 or more add statistics over seeds to the report.
        max_epochs: epochs per run.
        output: folder for results, report, logs and W&B runs (see :class:`OutputLayout`).
        logger: ``"wandb"`` (offline unless ``wandb_mode="online"``), ``"csv"`` or ``"none"``. Every
            run logs the LR of every optimizer step as ``lr`` (each change, so the curve is exact).
        model: LightningCLI-style ``{"class_path", "init_args"}`` (or init args of the synthetic
            classifier): any LightningModule as it is. Its own ``configure_optimizers`` builds the
            optimizer (settings and param groups kept) and the grid's schedule replaces its scheduler;
            a module whose constructor takes ``scheduler`` gets the schedule spec that way (see
            :mod:`lightning_lrsched.module_contract`). It logs ``val_loss`` in validation.
        data: the same for the datamodule. Its batch size is the global batch on every config.
        trainer: extra ``Trainer`` arguments for every run.
        executor: ``"local"`` (worker processes: one per single-process device config,
            one per DDP run) or ``"ray"`` (Ray Tune trials).
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
        divergence_factor: a run whose mean training loss of an epoch exceeds this × its best so far
            (the untrained model's first-batch loss included) is stopped as diverged (a stacked copy is
            frozen); ``None``: only non-finite losses, parameters and LRs are divergence (see
            :mod:`lightning_lrsched.compare.divergence`). A high validation loss is not divergence.
        run_timeout: seconds before a run is stopped and recorded as failed (a positive number).

    Raises:
        InvalidValue: bad input, no runnable device config, W&B online without a login, or
            another grid running on ``output``.
    """
    for name, value, example in (
        ("schedules", schedules, "['cosine', 'step']"),
        ("devices", devices, "['cpu:1']"),
        ("seeds", seeds, "[0, 1, 2]"),
    ):
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            raise InvalidType(f"`{name}` must be a list, e.g. {name}={example}: got {name}={value!r}")
        if not value:
            raise InvalidValue(f"`{name}` must not be empty, e.g. {name}={example}")
    check_choice("executor", executor, tuple(EXECUTORS))
    check_choice("mode", mode, MODES)
    check_choice("wandb_runs", wandb_runs, WANDB_RUNS)
    check_choice("wandb_mode", wandb_mode, ("offline", "online"))
    check_choice("logger", logger, LOGGERS)
    check_non_negative("tolerance", tolerance)
    if run_timeout is not None:
        check_positive("run_timeout", run_timeout)
    if divergence_factor is not None and not (
        isinstance(divergence_factor, (int, float))
        and not isinstance(divergence_factor, bool)
        and divergence_factor > 1
    ):
        raise InvalidValue(f"`divergence_factor` must be a number > 1, or None: got {divergence_factor!r}")
    layout = OutputLayout(output)
    name = experiment or layout.root.resolve().name
    configs = [parse_device(d) for d in devices]
    skipped = [(c.label, reason) for c in configs if (reason := c.unavailable())]
    runnable = [c.label for c in configs if not c.unavailable()]
    if not runnable:
        reasons = "; ".join(reason for _, reason in skipped)
        raise InvalidValue(f"`devices`: none of {', '.join(c.label for c in configs)} can run here ({reasons})")
    if logger == "wandb" and wandb_mode == "online" and (missing := wandb_login_missing()):
        raise InvalidValue(f"`wandb_mode='online'` needs a W&B login: {missing}; or use wandb_mode='offline'")
    settings = RunSettings(
        output=str(layout.root),
        logger=logger,
        wandb_mode=wandb_mode,
        experiment=name,
        project=project,
        wandb_runs=wandb_runs,
        divergence_factor=divergence_factor,
        fallback=mode == "auto",
    )
    # Piped output (a log, CI) gets a width that fits the whole table instead of rich's 80 columns.
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    # A worker imports torch and Lightning while this process checks the model and data classes (which
    # imports them too) and reads the results file: on two cores that hides seconds of start-up. One
    # started earlier in this process (`lrsched compare` does, before importing torch) is taken first.
    single = EXECUTORS[executor].takes_standby and any(c.processes == 1 for c in configs if c.label in runnable)
    if not single:
        Standby.drop_early()  # DDP workers and Ray trials start their own processes: it would wait idle
    with Standby.take() if single else nullcontext() as standby:
        grid, notes = build_grid(
            schedules,
            runnable,
            seeds,
            max_epochs,
            model=class_config("model", model, DEFAULT_MODEL),
            data=class_config("data", data, DEFAULT_DATA),
            trainer=check_trainer(trainer),
        )
        from lightning_lrsched.compare.training import check_model

        try:  # the module as it is: one optimizer, automatic optimization, and stackable if it must be
            check_model(grid[0], stacked=mode == "stacked")
        except Unstackable as error:
            raise InvalidValue(_stacked_refusal(str(error))) from None
        with GridLock(layout):
            run = GridRun(grid, notes, settings, layout, skipped, mode, tolerance, console)
            return run.run(EXECUTORS[executor](run_timeout, standby), force)


class GridRun:
    """One grid on its locked output folder: what is left to train, the executor's events, the report.

    It is the :class:`~lightning_lrsched.compare.executors.GridEvents` of its executor: each job's
    records go to ``results.jsonl`` as the job ends and the report is rewritten; the progress bar
    counts run-epochs. Whether a module that cannot be stacked is an error (``mode="stacked"``) or
    falls back to runs of their own (``"auto"``: the worker trains them) is decided in
    :meth:`unstackable`.
    """

    def __init__(
        self,
        grid: list[RunSpec],
        notes: list[str],
        settings: RunSettings,
        layout: OutputLayout,
        skipped: list[tuple[str, str]],
        mode: str,
        tolerance: float,
        console: Console,
    ) -> None:
        self.grid, self.notes, self.settings, self.layout = grid, notes, settings, layout
        self.skipped, self.mode, self.tolerance, self.console = skipped, mode, tolerance, console
        self.results = ResultsFile(layout)
        self.keys = {spec.key for spec in grid}
        self.hint = sync_hint(layout, settings.wandb_mode) if settings.logger == "wandb" else None
        self.mode_notes: dict[str, str] = {}  # how each job trains, by job name
        self.appended = 0  # records this grid added to the results file
        self._shown: tuple[int, list[str]] | None = None  # what report.* on disk show
        self._drawn: tuple[int, list[str]] | None = None  # what report.png shows, drawn at _drawn_at
        self._drawn_at = -math.inf
        self._checks: list[DeviceCheck] = []
        self._epochs_of: dict[str, int] = {}
        self._counted: dict[str, int] = {}  # run-epochs of each unfinished job the bar has counted
        self._progress: Progress | None = None
        self._task: Any = None

    def current(self) -> list[RunRecord]:
        """The newest record of every run of this grid that has one."""
        return [r for k, r in self.results.latest().items() if k in self.keys]

    def report(self, final: bool = False) -> list[DeviceCheck]:
        """Write the report of the records so far, unless it already shows them.

        The figure takes a while (about 0.4 s, on the cores the runs train on): between jobs it is drawn
        at most every :data:`FIGURE_EVERY_S` seconds, the first job's at once; the ``final`` report
        draws it whenever it is behind. The table, CSV and Markdown follow every job.
        """
        shown = (self.appended, [*self.notes, *self.mode_notes.values()])
        draw = final or _clock() - self._drawn_at >= FIGURE_EVERY_S
        if self._shown != shown or (draw and self._drawn != shown):
            self._checks = write_report(
                self.current(),
                self.layout,
                title=f"Comparison: {self.settings.experiment}",
                tolerance=self.tolerance,
                skipped=self.skipped,
                wandb_hint=self.hint,
                notes=shown[1],
                with_figure=draw,
            )
            self._shown = shown
            if draw:
                self._drawn, self._drawn_at = shown, _clock()
        return self._checks

    def _catch_up_figure(self) -> None:
        """Draw the figure if a job ended since it was last drawn."""
        if self._shown is not None and self._drawn != self._shown:
            self.report(final=True)

    # -- GridEvents ------------------------------------------------------------------------------
    def epoch(self, job: Job, runs: int) -> None:
        self._counted[job_name(job)] = self._counted.get(job_name(job), 0) + runs
        if self._progress is not None:
            self._progress.advance(self._task, runs)
        if _clock() - self._drawn_at >= FIGURE_EVERY_S:
            self._catch_up_figure()  # a job that ended within FIGURE_EVERY_S of the last figure, before a long one

    def unstackable(self, job: Job, reason: str) -> None:
        if self.mode == "stacked":
            raise InvalidValue(_stacked_refusal(reason))
        note = f"{self.mode} → sequential for {_where(job)}: {reason}"
        self.mode_notes[job_name(job)] = note
        # The worker trains the specs as runs of their own.
        self._print_note(f"[yellow]{escape(note)}[/]")

    def _print_note(self, markup: str) -> None:
        """A mode note: wrapped at words on a terminal, one line in a piped log (which is read line by line)."""
        self.console.print(markup, soft_wrap=not self.console.is_terminal)

    def result(self, job: Job, records: list[RunRecord]) -> None:
        probed = next((r.mode_reason for r in records if r.mode == "stacked" and r.mode_reason), "")
        if self.mode == "auto" and probed:
            # The probe found stacking faster: the job's note says by how much.
            note = _mode_note(job, "auto", probed)
            self.mode_notes[job_name(job)] = note
            self._print_note(escape(note))
        if records:
            self.results.append(*records)
        self.appended += len(records)
        console = self._progress.console if self._progress is not None else self.console
        for record in records:
            detail = f", best val_loss {record.best_val_loss:.4f}" if record.status != "failed" else ""
            reason = record.reason.strip().splitlines()[-1:] if record.status == "failed" else []
            line = f"{record.name}: {record.status}{detail}" + "".join(f": {r}" for r in reason)
            console.print(escape(line))
        # A run that ended early (diverged, failed) leaves its remaining epochs: the bar skips them.
        left = sum(self._epochs_of[s.key] for s in job) - self._counted.pop(job_name(job), 0)
        if self._progress is not None:
            self._progress.advance(self._task, left)
        self.report()  # once per job: a stacked run's records arrive together

    # -- the run ---------------------------------------------------------------------------------
    def run(self, executor: Executor, force: bool = False) -> Comparison:
        """Train what the results file lacks (everything with ``force``) with ``executor``, then report."""
        layout, results, console, grid = self.layout, self.results, self.console, self.grid
        for why, count in Counter(results.set_aside_unreadable()).items():
            self.notes.append(
                f"{count} line(s) of {layout.results} moved to {layout.torn}: {why}; their runs train again"
            )
        self.notes += recover_stopped_workers(layout, results)
        latest = results.latest()
        todo = [spec for spec in grid if force or spec.key not in latest or not latest[spec.key].finished]
        retried = sum(spec.key in latest and not latest[spec.key].finished for spec in todo)
        jobs = plan_jobs(todo, self.mode)
        self.mode_notes = {
            job_name(job): _mode_note(job, self.mode) for job in jobs if is_stacked(job) or self.mode == "auto"
        }
        finished = len(grid) - len(todo)
        if finished:
            console.print(f"{finished} of {len(grid)} runs already in {results.path}: skipping them")
        if retried:
            console.print(f"{retried} run(s) recorded as failed in {results.path}: training them again")
        for device, reason in self.skipped:
            console.print(f"[yellow]skipping {device}: {escape(reason)}[/]")
        for note in [*self.notes, *self.mode_notes.values()]:
            console.print(escape(note) if note.startswith(self.mode) else f"[yellow]{escape(note)}[/]")
        self._epochs_of = {spec.key: spec.max_epochs for spec in todo}
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("run-epochs"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        with self._progress:
            self._task = self._progress.add_task("grid", total=sum(self._epochs_of.values()))
            if jobs:
                try:
                    executor.run(jobs, self.settings, self)
                except BaseException:
                    # A killed or failed grid's figure shows what finished; its own error is the one to raise.
                    with contextlib.suppress(Exception):
                        self._catch_up_figure()
                    raise
        self._progress = None
        return self._finish(todo)

    def _finish(self, todo: list[RunSpec]) -> Comparison:
        console, layout, grid = self.console, self.layout, self.grid
        checks = self.report(final=True)
        records = self.current()
        if self.settings.logger == "wandb" and todo and records:
            import wandb.errors

            try:
                summary_run(records, self.settings, layout)
            except wandb.errors.Error as error:  # the runs and the report are safe: the summary is a convenience
                first = (str(error).splitlines() or [type(error).__name__])[0]
                console.print(f"[yellow]W&B summary run not logged: {escape(first)}[/]")
        print_report(records, checks, console)
        outputs = f"{layout.report_md}, {layout.report_csv}" + (f", {layout.report_png}" if records else "")
        console.print(escape(f"report: {outputs}; results: {self.results.path}"))
        if self.hint:
            console.print(escape(self.hint))
        notes = [*self.notes, *self.mode_notes.values()]
        comparison = Comparison(records, checks, self.skipped, layout.root, len(grid), notes)
        missing = len(grid) - len(records) + sum(not r.finished for r in records)
        if missing:
            console.print(f"[red]{missing} of {len(grid)} run(s) did not finish: a rerun trains them again[/]")
        return comparison


def _stacked_refusal(reason: str) -> str:
    """The one line that refuses ``mode="stacked"`` for a module that cannot be stacked (``reason``: why)."""
    return f"mode='stacked': {reason.rstrip('.')}. Use mode='auto' (falls back to sequential runs) or mode='sequential'"


def _where(job: Job) -> str:
    seeds = job_seeds(job)
    return f"{job[0].device}, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def _mode_note(job: Job, mode: str, probed: str = "") -> str:
    """One line on how a job of this grid trains, for the terminal and report.md (``probed``: auto's probe said)."""
    if is_stacked(job):
        labels = list(dict.fromkeys(spec.label for spec in job))
        shown = ", ".join(labels)
        where = f"{_where(job)}: {len(labels)} schedule(s) in one run ({shown}; {job_name(job)})"
        if probed:
            return f"{mode} → stacked for {where}: {probed}"
        # auto stacks where a short probe finds it faster; the probe's figures replace this note either way.
        return f"{mode} → stacked for {where}" + (" if a short probe finds it faster" if mode == "auto" else "")
    return f"{mode} → sequential for {_where(job)}: {job[0].label} is the only schedule to train there"
