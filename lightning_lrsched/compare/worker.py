"""The worker protocol: ``python -m lightning_lrsched.compare.worker BATCH.json OUT_DIR``.

``BATCH.json`` holds the grid's :class:`RunSettings` and a list of jobs, each a list of specs
(one spec: a run of its own; several: one stacked run). The worker trains the jobs one after the
other in this process (Python, torch and Lightning are imported once) and writes, for job ``i``:

- ``OUT_DIR/i.jsonl``: one :class:`RunRecord` line per spec, when the job ends (atomically: the
  file appears whole), or ``OUT_DIR/i.unstackable``: why its module cannot be stacked (nothing trained);
- ``OUT_DIR/progress``: a line ``i n`` at each epoch end, ``n`` the runs that trained through it.

A failing run becomes ``failed`` records and the worker goes on with the next job; a crash or a
hang is the caller's to notice (:mod:`lightning_lrsched.compare.executors`). Under DDP Lightning
starts the other processes from this same command, and only rank zero writes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from lightning_lrsched.compare.grid import Job, RunSettings, RunSpec, Unstackable, is_stacked
from lightning_lrsched.compare.record import RunRecord


def write_batch(path: Path, settings: RunSettings, jobs: list[Job]) -> None:
    payload = {"settings": settings.to_dict(), "jobs": [[spec.to_dict() for spec in job] for job in jobs]}
    path.write_text(json.dumps(payload))


def read_batch(path: Path) -> tuple[RunSettings, list[Job]]:
    payload = json.loads(path.read_text())
    jobs = [tuple(RunSpec.from_dict(spec) for spec in job) for job in payload["jobs"]]
    return RunSettings(**payload["settings"]), jobs


def write_records(out: Path, index: int, records: list[RunRecord]) -> None:
    tmp = out / f"{index}.jsonl.tmp"
    tmp.write_text("".join(record.to_json() + "\n" for record in records))
    tmp.replace(out / f"{index}.jsonl")


def read_result(out: Path, index: int) -> list[RunRecord] | str | None:
    """Job ``index``'s records, why it could not be stacked, or ``None`` while it has no result."""
    records = out / f"{index}.jsonl"
    if records.exists():
        return [RunRecord.from_json(line) for line in records.read_text().splitlines() if line.strip()]
    unstackable = out / f"{index}.unstackable"
    if unstackable.exists():
        return unstackable.read_text()
    return None


def train_job(job: Job, settings: RunSettings, on_epoch: Any) -> list[RunRecord] | None:
    """Train one job here; rank zero returns one record per spec (``failed`` ones for an error).

    Raises:
        Unstackable: a stacked job whose module cannot be stacked (nothing was trained).
    """
    from lightning_lrsched.compare.training import failure_reason, train_solo, train_stacked

    try:
        if is_stacked(job):
            return train_stacked(job, settings, on_epoch)
        return train_solo(job[0], settings, on_epoch)
    except Unstackable:
        raise
    except Exception as error:  # the grid records any failure of the run and goes on
        if int(os.environ.get("LOCAL_RANK", "0")) != 0:
            raise
        return [spec.record("failed", settings.logger, failure_reason(error)) for spec in job]


def main(argv: list[str]) -> int:
    batch_path, out_dir = Path(argv[0]), Path(argv[1])
    settings, jobs = read_batch(batch_path)
    rank_zero = int(os.environ.get("LOCAL_RANK", "0")) == 0
    for index, job in enumerate(jobs):

        def on_epoch(runs: int, index: int = index) -> None:
            with (out_dir / "progress").open("a") as progress:
                progress.write(f"{index} {runs}\n")

        try:
            records = train_job(job, settings, on_epoch)
        except Unstackable as error:
            if rank_zero:
                tmp = out_dir / f"{index}.unstackable.tmp"
                tmp.write_text(str(error))
                tmp.replace(out_dir / f"{index}.unstackable")
            continue
        if records is not None and rank_zero:
            write_records(out_dir, index, records)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
