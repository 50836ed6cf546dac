"""A killed `lrsched compare`: no process of its grid outlives it, and what its workers wrote is not lost.

Real ``python -m lightning_lrsched compare`` processes, killed mid-run with SIGTERM, SIGHUP, SIGINT
or SIGKILL (of the command or of its process group); the processes of the grid are found through
``/proc`` by the process groups its workers lead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lightning_lrsched.compare import OutputLayout
from lightning_lrsched.compare.executors import GROUP, WANDB_BEFORE, recover_stopped_workers
from lightning_lrsched.compare.grid import build_grid
from lightning_lrsched.compare.results import ResultsFile

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes through /proc")


def _group_members(groups: set[int]) -> list[int]:
    """Live (not zombie) processes whose process group is one of ``groups``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) in groups:
            members.append(int(stat.parent.name))
    return members


def _wait(condition, what: str, limit: float = 120.0):
    deadline = time.monotonic() + limit
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)
    return value


def _compare(out: Path, device: str, mode: str, epochs: int) -> list[str]:
    return [
        sys.executable, "-m", "lightning_lrsched", "compare", "--schedules", "step,cosine", "--devices", device,
        "--mode", mode, "--max-epochs", str(epochs), "--logger", "none", "--output", str(out),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("device", "mode", "sig", "whole_group"),
    [
        ("cpu:1", "sequential", signal.SIGTERM, False),
        ("cpu:1", "stacked", signal.SIGHUP, True),
        ("cpu:1", "sequential", signal.SIGKILL, True),
        ("cpu:2", "sequential", signal.SIGKILL, False),  # the DDP processes' parent is the worker, not the caller
    ],
)
def test_a_killed_grid_leaves_no_process_and_a_rerun_completes(tmp_path, device, mode, sig, whole_group):
    out = tmp_path / "grid"
    layout = OutputLayout(out)
    caller = subprocess.Popen(
        _compare(out, device, mode, 1000), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a shell job has
    )  # fmt: skip
    try:
        # Mid-run: the worker has reported an epoch and has not written the job's records.
        progress = _wait(lambda: next(layout.workers.glob("*/progress"), None), "an epoch to end")
        groups = {int((progress.parent / GROUP).read_text())}
        assert _group_members(groups), "the worker is running"
        if whole_group:
            os.killpg(caller.pid, sig)
        else:
            caller.send_signal(sig)
        caller.wait(timeout=60)
        # No process of the grid is left: not the worker, not the DDP processes Lightning started from it.
        _wait(lambda: not _group_members(groups), f"the processes of groups {groups} to end", limit=60)
        # ... because they were ended, not because they finished (1000 epochs take minutes).
        assert not list(progress.parent.glob("*.jsonl"))
    finally:
        if caller.poll() is None:
            os.killpg(caller.pid, signal.SIGKILL)
    if sig != signal.SIGKILL:
        assert caller.returncode == 128 + sig
        (line,) = caller.stderr.read().strip().splitlines()
        assert line.startswith(f"lrsched compare: stopped by {signal.Signals(sig).name}: ")
    # A rerun on the folder ends what the killed grid left there (a shorter run: the records' recovery has its test).
    rerun = subprocess.run(_compare(out, device, mode, 2), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    records = [json.loads(line) for line in layout.results.read_text().splitlines()]
    assert [(r["max_epochs"], r["status"]) for r in records] == [(2, "ok"), (2, "ok")]
    assert not layout.workers.exists()


def test_records_a_stopped_worker_wrote_are_recovered_and_its_stopped_wandb_runs_set_aside(tmp_path):
    layout = OutputLayout(tmp_path)
    (done, stopped), _ = build_grid(["step", "cosine"], ["cpu:1"], [0], 1)
    earlier = layout.wandb / "offline-run-1-earlier"  # a grid before: its run stays where it is
    finished_run, stopped_run = layout.wandb / "offline-run-2-done", layout.wandb / "offline-run-3-stopped"
    earlier.mkdir(parents=True)
    worker = layout.workers / "worker-x"
    worker.mkdir(parents=True)
    (worker / WANDB_BEFORE).write_text(json.dumps([earlier.name]))
    (worker / GROUP).write_text(str(os.getpid()))  # not a worker's command line: nothing is killed
    finished_run.mkdir()
    stopped_run.mkdir()
    record = done.record("ok", "wandb", "", wandb_dir=str(finished_run / "files"))
    (worker / "0.jsonl").write_text(record.to_json() + "\n")
    results = ResultsFile(layout)

    notes = recover_stopped_workers(layout, results)

    assert [r.key for r in results] == [done.key]  # the stopped run (cosine) trains again
    assert sorted(p.name for p in layout.wandb.iterdir()) == [earlier.name, finished_run.name, "stopped"]
    assert [p.name for p in layout.wandb_stopped.iterdir()] == [stopped_run.name]
    assert not worker.exists() and len(notes) == 2
    assert recover_stopped_workers(layout, results) == [] and len(list(results)) == 1  # once
    assert stopped.key not in {r.key for r in results}
