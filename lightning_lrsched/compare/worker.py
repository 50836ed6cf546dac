"""The worker protocol: ``python -m lightning_lrsched.compare.worker BATCH.json OUT_DIR``.

``BATCH.json`` holds the grid's :class:`RunSettings` and a list of jobs, each a list of specs
(one spec: a run of its own; several: one stacked run). The worker trains the jobs one after the
other in this process (Python, torch and Lightning are imported once) and writes, for job ``i``:

- ``OUT_DIR/i.jsonl``: one :class:`RunRecord` line per spec, when the job ends (atomically: the
  file appears whole);
- ``OUT_DIR/i.unstackable``: why a stacked job's module cannot be stacked, before its ``i.jsonl``.
  With :attr:`RunSettings.fallback` (``mode="auto"``) the worker then trains each spec as a run of
  its own; without it nothing of the job is trained and ``i.jsonl`` is empty. This is the one place
  the fallback happens: an executor only passes both on (``unstackable``, then ``result``);
- ``OUT_DIR/progress``: a line ``i n`` at each epoch end, ``n`` the runs that trained through it.

A failing run becomes ``failed`` records and the worker goes on with the next job; a crash or a
hang is the caller's to notice (:mod:`lightning_lrsched.compare.executors`). A worker whose
caller is gone ends itself and its DDP processes
(:func:`~lightning_lrsched.compare.processes.watch_parent`); ``OUT_DIR`` lies under the grid's
output folder, so records it wrote that its caller never read reach ``results.jsonl`` on the next
run (:func:`~lightning_lrsched.compare.executors.recover_stopped_workers`). Under DDP Lightning
starts the other processes from this same command, and only rank zero writes.

``python -m lightning_lrsched.compare.worker --standby OUTPUT`` is a worker started before its
batch exists (single-process device configs only): it imports torch and Lightning, then reads one
line ``{"batch", "out", "log"}`` on its standard input, moves what it printed so far (``OUTPUT``,
its standard output until then) to the end of ``log``, writes to ``log`` from then on, and goes
on as ``python -m lightning_lrsched.compare.worker BATCH OUT_DIR``. End of input instead: it exits.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from lightning_lrsched.compare.grid import Job, RunSettings, RunSpec, Unstackable, is_stacked
from lightning_lrsched.compare.processes import STANDBY, watch_parent
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.quick_exit import leave


def write_batch(path: Path, settings: RunSettings, jobs: list[Job]) -> None:
    payload = {"settings": settings.to_dict(), "jobs": [[spec.to_dict() for spec in job] for job in jobs]}
    path.write_text(json.dumps(payload))


def read_batch(path: Path) -> tuple[RunSettings, list[Job]]:
    payload = json.loads(path.read_text())
    jobs = [tuple(RunSpec.from_dict(spec) for spec in job) for job in payload["jobs"]]
    return RunSettings(**payload["settings"]), jobs


def write_records(out: Path, index: int, records: list[RunRecord]) -> None:
    _write_atomically(out / f"{index}.jsonl", "".join(record.to_json() + "\n" for record in records))


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_records(out: Path, index: int) -> list[RunRecord] | None:
    """Job ``index``'s records, or ``None`` while it has none."""
    records = out / f"{index}.jsonl"
    if records.exists():
        return [RunRecord.from_json(line) for line in records.read_text().splitlines() if line.strip()]
    return None


def read_unstackable(out: Path, index: int) -> str | None:
    """Why job ``index``'s module cannot be stacked, or ``None``."""
    path = out / f"{index}.unstackable"
    return path.read_text() if path.exists() else None


def train_job(job: Job, settings: RunSettings, on_epoch: Any, decide: bool = False) -> list[RunRecord] | None:
    """Train one job here; rank zero returns one record per spec (``failed`` ones for an error).

    Raises:
        Unstackable: a stacked job whose module cannot be stacked (nothing was trained).
    """
    from lightning_lrsched.compare.training import failure_reason, train_solo, train_stacked

    try:
        if is_stacked(job):
            return train_stacked(job, settings, on_epoch, decide)
        return train_solo(job[0], settings, on_epoch)
    except Unstackable:
        raise
    except Exception as error:  # the grid records any failure of the run and goes on
        if int(os.environ.get("LOCAL_RANK", "0")) != 0:
            raise
        return [spec.record("failed", settings.logger, failure_reason(error)) for spec in job]


def _fall_back(job: Job, settings: RunSettings, on_epoch: Any, why: str = "") -> list[RunRecord] | None:
    """Train an unstackable job's specs as runs of their own; rank zero gets their records (``why`` in each)."""
    # In this same process: the solo runs are built from their seeds as in a worker of their own.
    solos = [train_job((replace(spec, mode="sequential"),), settings, on_epoch) for spec in job]
    if None in solos:
        return None
    return [replace(record, mode_reason=why) for solo in solos for record in solo or []]


def _import_training() -> None:
    """Import what training needs (torch, Lightning: seconds), then exempt it from garbage collection.

    Half a million objects come with those imports and live as long as the process: each full
    collection (about one per thousand steps of a stacked run) would walk them all, a quarter of a
    second each time. ``gc.freeze`` leaves them out; what the runs create is collected as before.
    """
    import lightning_lrsched.compare.training  # noqa: F401

    gc.freeze()


def standby(output: Path) -> int:
    """Import what training needs, then wait for one batch on standard input (see the module docstring)."""
    started = time.perf_counter()
    _import_training()  # the seconds a standby worker is for
    print(f"standby worker {os.getpid()}: imports done in {time.perf_counter() - started:.1f} s", flush=True)
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the caller ended (or needed no worker) before handing a batch over
    handover = json.loads(line)
    _write_to(Path(handover["log"]), output)
    return main([handover["batch"], handover["out"]])


def _write_to(log: Path, output: Path) -> None:
    """From now on standard output and error go to the end of ``log``, after what went to ``output`` so far."""
    sys.stdout.flush()
    sys.stderr.flush()
    with log.open("ab") as handle:
        handle.write(output.read_bytes())
        handle.flush()
        os.dup2(handle.fileno(), sys.stdout.fileno())
        os.dup2(handle.fileno(), sys.stderr.fileno())


def main(argv: list[str]) -> int:
    batch_path, out_dir = Path(argv[0]), Path(argv[1])
    settings, jobs = read_batch(batch_path)
    rank_zero = int(os.environ.get("LOCAL_RANK", "0")) == 0
    for index, job in enumerate(jobs):

        def on_epoch(runs: int, index: int = index) -> None:
            with (out_dir / "progress").open("a") as progress:
                progress.write(f"{index} {runs}\n")

        try:
            records = train_job(job, settings, on_epoch, decide=settings.fallback)
        except Unstackable as error:
            if rank_zero:
                _write_atomically(out_dir / f"{index}.unstackable", str(error))
            records = _fall_back(job, settings, on_epoch, str(error)) if settings.fallback else []
        if records is not None and rank_zero:
            write_records(out_dir, index, records)
    return 0


def _run(argv: list[str]) -> int:
    if argv[:1] == [STANDBY]:
        return standby(Path(argv[1]))
    _import_training()
    return main(argv)


if __name__ == "__main__":
    watch_parent()  # a caller killed with SIGKILL takes this process (and its DDP processes) with it
    leave(_run(sys.argv[1:]))
