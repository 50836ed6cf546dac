"""How the jobs of a grid are executed: worker processes on this machine (local), or Ray Tune trials.

An :class:`Executor` takes jobs and reports what happens to them through one :class:`GridEvents`
(an epoch ended, a module cannot be stacked, a job's records); :data:`EXECUTORS` names them for
``compare(executor=...)`` and ``lrsched compare --executor``. Adding an executor is one class and
one entry there.

Local: the jobs of a single-process device config, every seed, share one worker process (the imports
and start-up are paid once; each run is still built from its seed, so sharing changes no result).
A DDP job gets a worker of its own (Lightning starts its other processes from the worker's
command). The caller watches each worker: a job that passes its time limit, or a worker that
dies, becomes ``failed`` records, and a fresh worker takes the jobs that were still to come.

A :class:`~lightning_lrsched.compare.processes.Standby` worker is started before the grid is
known: it imports torch and Lightning (seconds) while the caller checks the grid, and takes the
first single-process batch.

A killed grid: a worker's folder (its batch, its records, the pid of its process group, the W&B run
folders there were when it started) lies under the output folder, ``<output>/.workers/``, and is
removed when its batch ends. One left by a killed grid is recovered by the next grid on that folder
(:func:`recover_stopped_workers`): a worker still alive is killed, the records it wrote that never
reached ``results.jsonl`` are appended (those runs are not trained again), and the W&B run folders
of the runs it was training when it was stopped go to ``<output>/wandb/stopped/`` (out of
``wandb sync <output>/wandb/offline-run-*``), so a run trained again has one W&B run, not two.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from lightning_lrsched.compare.grid import Job, RunSettings, RunSpec, job_name
from lightning_lrsched.compare.layout import OutputLayout
from lightning_lrsched.compare.processes import WORKER, Standby, environment, kill
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.compare.worker import read_records, read_unstackable, write_batch
from lightning_lrsched.ray_session import ray_available, ray_session


class GridEvents(Protocol):
    """What an executor reports while it trains a grid's jobs; every job it is given ends in :meth:`result`."""

    def epoch(self, job: Job, runs: int) -> None:
        """An epoch of ``job`` ended, with ``runs`` of its runs still training through it."""

    def unstackable(self, job: Job, reason: str) -> None:
        """A stacked ``job``'s module cannot be stacked; :meth:`result` follows (see :attr:`RunSettings.fallback`)."""

    def result(self, job: Job, records: list[RunRecord]) -> None:
        """``job`` ended: one record per spec, in the job's order (none: an unstackable job without the fallback)."""


class Executor(Protocol):
    """Trains the jobs of a grid and reports what happens to ``events``: jobs in, events out.

    An executor is made with ``(timeout, standby)``: ``timeout`` is per run (a stacked job gets it
    once per spec it holds), ``standby`` a started worker to take first (see :attr:`takes_standby`).
    """

    takes_standby: ClassVar[bool]
    """Whether a :class:`~lightning_lrsched.compare.processes.Standby` worker can take its first jobs."""

    def __init__(self, timeout: float | None = None, standby: Standby | None = None) -> None: ...

    def run(self, jobs: Sequence[Job], settings: RunSettings, events: GridEvents) -> None: ...


_POLL_S = 0.02  # a few stat calls per poll; the last job's records are read within this


def worker_batches(jobs: Sequence[Job]) -> list[list[Job]]:
    """The jobs each worker process trains: one per single-process device config (every seed); DDP jobs alone.

    Each run seeds everything and builds its own model, data and loggers, so runs of different seeds
    share a process safely; what they share is the seconds of importing Lightning.
    """
    shared: dict[str, list[Job]] = {}
    batches: list[list[Job]] = []
    for job in jobs:
        if job[0].device_config.processes > 1:
            batches.append([job])
        else:
            key = job[0].device
            if key not in shared:
                shared[key] = []
                batches.append(shared[key])
            shared[key].append(job)
    return batches


def _failed(job: Job, settings: RunSettings, reason: str) -> list[RunRecord]:
    return [spec.record("failed", settings.logger, reason) for spec in job]


def run_batch(
    jobs: Sequence[Job],
    settings: RunSettings,
    events: GridEvents,
    timeout: float | None = None,
    standby: Standby | None = None,
) -> None:
    """Train ``jobs`` in worker processes, one after the other; every job ends in ``events.result``.

    ``timeout`` is per run: a stacked job gets it once per spec it holds. ``standby``: the worker
    that takes the jobs first (single-process device configs only), if it still can.
    """
    layout = OutputLayout(settings.output)
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.workers.mkdir(parents=True, exist_ok=True)
    pending = list(jobs)
    while pending:
        log = layout.log(job_name(pending[0]))
        # Under the output folder, not /tmp: what a killed grid's worker wrote is found by the next grid.
        out = Path(tempfile.mkdtemp(prefix="worker-", dir=layout.workers))
        (out / WANDB_BEFORE).write_text(json.dumps(_wandb_runs(layout)))
        batch = out / "batch.json"
        write_batch(batch, settings, pending)
        process = standby.hand_over(batch, out, log) if standby is not None else None
        standby = None  # a worker that ends early leaves the rest of the batch to a fresh one
        if process is None:
            with log.open("a") as handle:
                process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                    [*WORKER, str(batch), str(out)],
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    env=environment(pending[0][0].device_config.processes),
                    start_new_session=True,  # a kill reaches its DDP processes too
                )
        (out / GROUP).write_text(str(process.pid))
        try:
            done = _watch(process, pending, out, settings, log, events, timeout)
        finally:
            kill(process)  # a signal, an error: the folder stays for the next grid to recover what it holds
        shutil.rmtree(out, ignore_errors=True)
        pending = pending[done:]
    try:
        layout.workers.rmdir()
    except OSError:
        pass  # another worker's folder (a grid killed before) waits for recovery


WANDB_BEFORE = "wandb-before.json"
"""In a worker's folder: the W&B run folders of the output folder when the worker started."""
GROUP = "group"
"""In a worker's folder: the pid of the worker, which leads its process group."""


def _wandb_runs(layout: OutputLayout) -> list[str]:
    if not layout.wandb.is_dir():
        return []
    return sorted(p.name for p in layout.wandb.iterdir() if p.is_dir() and p.name.startswith(("run-", "offline-run-")))


def _run_folder(wandb_dir: str | None) -> str | None:
    """The name of the W&B run folder a record's ``wandb_dir`` lies in."""
    parts = Path(wandb_dir).parts if wandb_dir else ()
    return next((part for part in parts if part.startswith(("run-", "offline-run-"))), None)


def _end_group(folder: Path) -> None:
    """Kill a stopped grid's worker group if it is somehow still alive (its pid names a worker still)."""
    try:
        pid = int((folder / GROUP).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"lightning_lrsched.compare.worker" in cmdline:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def recover_stopped_workers(layout: OutputLayout, results: Any) -> list[str]:
    """Recover what the workers of a killed grid on this output folder left; return notes saying what.

    Call it with the grid's lock held. For each folder under ``<output>/.workers/``: a worker still
    running is killed; the records it wrote are appended to ``results`` (a
    :class:`~lightning_lrsched.compare.results.ResultsFile`) unless a finished record of the run is
    there already; the W&B run folders that appeared while it ran and that no record names (the runs
    it was training when stopped: they train again) move to ``<output>/wandb/stopped/``.
    """
    if not layout.workers.is_dir():
        return []
    recovered, stopped = 0, []
    for folder in sorted(p for p in layout.workers.iterdir() if p.is_dir()):
        _end_group(folder)
        records: list[RunRecord] = []
        for path in sorted(folder.glob("*.jsonl"), key=lambda p: p.stem):
            try:
                records += [RunRecord.from_json(line) for line in path.read_text().splitlines() if line.strip()]
            except (ValueError, TypeError):
                continue  # not ours to trust: its runs train again
        latest = results.latest()
        fresh = [r for r in records if not (r.key in latest and latest[r.key].finished)]
        if fresh:
            results.append(*fresh)
            recovered += len(fresh)
        try:
            before = set(json.loads((folder / WANDB_BEFORE).read_text()))
        except (OSError, ValueError):
            before = None  # no way to tell its runs from others: leave W&B as it is
        if before is not None:
            named = {_run_folder(record.wandb_dir) for record in results}
            for name in _wandb_runs(layout):
                if name not in before and name not in named:
                    layout.wandb_stopped.mkdir(parents=True, exist_ok=True)
                    os.replace(layout.wandb / name, layout.wandb_stopped / name)
                    stopped.append(name)
        shutil.rmtree(folder, ignore_errors=True)
    notes = []
    if recovered:
        notes.append(f"{recovered} record(s) written by the worker of a stopped grid were added to {layout.results}")
    if stopped:
        notes.append(
            f"{len(stopped)} W&B run(s) stopped mid-way by a killed grid moved to {layout.wandb_stopped} "
            "(their runs train again)"
        )
    return notes


def _watch(
    process: subprocess.Popen,
    jobs: list[Job],
    out: Path,
    settings: RunSettings,
    log: Path,
    events: GridEvents,
    timeout: float | None,
) -> int:
    """Follow one worker through ``jobs``; return how many jobs ended (with a result, or failed)."""
    current, started, progress_read, noted = 0, time.monotonic(), 0, -1
    while current < len(jobs):
        progress_read = _read_progress(out / "progress", progress_read, jobs, events)
        # Why a job did not stack comes first: its records (the fallback's, or none) follow.
        reason = read_unstackable(out, current) if noted != current else None
        if reason is not None:
            noted = current
            events.unstackable(jobs[current], reason)
            continue
        records = read_records(out, current)
        if records is not None:
            events.result(jobs[current], records)
            current, started = current + 1, time.monotonic()
            continue
        code = process.poll()
        limit = None if timeout is None else timeout * len(jobs[current])
        if code is None and limit is not None and time.monotonic() - started > limit:
            kill(process)
            events.result(jobs[current], _failed(jobs[current], settings, f"timed out after {limit:g} s; log: {log}"))
            return current + 1
        if code is not None:
            if read_records(out, current) is not None or (noted != current and read_unstackable(out, current)):
                continue  # written just before the worker exited
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            reason = f"the worker process exited with status {code} before the run ended; log: {log}\n{tail}"
            events.result(jobs[current], _failed(jobs[current], settings, reason))
            return current + 1
        time.sleep(_POLL_S)
    process.wait()
    return current


def _read_progress(path: Path, offset: int, jobs: list[Job], events: GridEvents) -> int:
    if not path.exists():
        return offset
    with path.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read()
    whole = chunk[: chunk.rfind(b"\n") + 1]
    for line in whole.decode().splitlines():
        index, runs = (int(v) for v in line.split())
        events.epoch(jobs[index], runs)
    return offset + len(whole)


class LocalExecutor:
    """Worker processes on this machine (see :func:`worker_batches`); ``standby`` takes a first single-process batch."""

    takes_standby: ClassVar[bool] = True

    def __init__(self, timeout: float | None = None, standby: Standby | None = None) -> None:
        self.timeout, self.standby = timeout, standby

    def run(self, jobs: Sequence[Job], settings: RunSettings, events: GridEvents) -> None:
        standby = self.standby
        for batch in worker_batches(jobs):
            single = batch[0][0].device_config.processes == 1
            run_batch(batch, settings, events, self.timeout, standby if single else None)
            standby = None if single else standby


class _TrialEvents:
    """What one Ray trial's worker reported, as the trial's metrics (JSON lines of its records)."""

    def __init__(self) -> None:
        self.ended: dict[str, str] = {}

    def epoch(self, job: Job, runs: int) -> None:
        pass  # Ray reports per job, not per epoch

    def unstackable(self, job: Job, reason: str) -> None:
        self.ended["unstackable"] = reason

    def result(self, job: Job, records: list[RunRecord]) -> None:
        self.ended["records"] = "\n".join(record.to_json() for record in records)


class RayExecutor:
    """Every job as one Ray Tune trial with the resources its device config needs.

    Each trial trains its job through :func:`run_batch` (a worker process of its own: DDP
    relaunches its command, which a Ray worker process cannot be) and reports the records'
    JSON lines to Tune. Progress is reported per job, not per epoch. Trials start their own
    processes: a standby worker is not taken.
    """

    takes_standby: ClassVar[bool] = False

    def __init__(self, timeout: float | None = None, standby: Standby | None = None) -> None:
        self.timeout = timeout

    def run(self, jobs: Sequence[Job], settings: RunSettings, events: GridEvents) -> None:
        reason = ray_available()
        if reason:
            raise RuntimeError(reason)
        from ray import tune

        timeout = self.timeout

        def trainable(config: dict) -> dict:
            job = tuple(RunSpec.from_dict(s) for s in config["job"])
            trial = _TrialEvents()
            run_batch([job], settings, trial, timeout)
            return trial.ended

        with ray_session(num_cpus=os.cpu_count()):
            by_resources: dict[tuple[int, int], list[Job]] = {}
            for job in jobs:
                device = job[0].device_config
                gpus = device.processes if device.accelerator == "cuda" else 0
                by_resources.setdefault((device.processes, gpus), []).append(job)
            storage = OutputLayout(settings.output).logs.resolve() / "ray"
            for (cpus, gpus), group in by_resources.items():
                trials = [[s.to_dict() for s in job] for job in group]
                tuner = tune.Tuner(
                    tune.with_resources(trainable, {"cpu": cpus, "gpu": gpus}),
                    param_space={"job": tune.grid_search(trials)},
                    run_config=tune.RunConfig(storage_path=str(storage), name="grid", verbose=0),
                )
                for result in tuner.fit():  # type: ignore[attr-defined]  # ResultGrid iterates by __getitem__/__len__
                    job = tuple(RunSpec.from_dict(s) for s in result.config["job"])
                    metrics = result.metrics or {}
                    if "unstackable" in metrics:
                        events.unstackable(job, metrics["unstackable"])
                    if result.error is not None or "records" not in metrics:
                        events.result(job, _failed(job, settings, f"Ray trial failed: {result.error}"))
                    else:
                        lines = metrics["records"].splitlines()
                        events.result(job, [RunRecord.from_json(line) for line in lines])


EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor, "ray": RayExecutor}
"""The executors by name, as ``compare(executor=...)`` and ``lrsched compare --executor`` take them."""
