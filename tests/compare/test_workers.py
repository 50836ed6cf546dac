"""Worker processes of `lrsched compare`: the standby worker that takes the first batch, one report per change,
and the command's quick exit (real worker processes and a real ``python -m lightning_lrsched`` process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import lightning_lrsched.compare.api as api
from lightning_lrsched.compare import OutputLayout, compare
from lightning_lrsched.compare.executors import LocalExecutor
from lightning_lrsched.compare.grid import RunSettings, build_grid, job_name, plan_jobs
from lightning_lrsched.compare.processes import Standby

ROOT = Path(__file__).resolve().parents[2]


class Collect:
    """The grid events of a test: the records, in the order the jobs ended."""

    def __init__(self):
        self.records = []

    def epoch(self, job, runs):
        pass

    def unstackable(self, job, reason):
        pytest.fail(f"unexpected unstackable: {reason}")

    def result(self, job, records):
        self.records.extend(records)


def train(jobs, settings, standby):
    events = Collect()
    LocalExecutor(timeout=300, standby=standby).run(jobs, settings, events)
    return events.records


@pytest.fixture
def two_runs(tmp_path):
    specs, _ = build_grid(["step", "cosine"], ["cpu:1"], [0], 1)
    return plan_jobs(specs, "sequential"), RunSettings(output=str(tmp_path / "out"), logger="none")


def test_a_standby_worker_trains_the_first_batch_and_its_log_keeps_what_it_printed(two_runs, monkeypatch):
    jobs, settings = two_runs
    handed: list = []
    real = Standby.hand_over
    monkeypatch.setattr(Standby, "hand_over", lambda self, *a: handed.append(real(self, *a)) or handed[-1])
    with Standby() as standby:
        records = train(jobs, settings, standby)
        assert standby.process is None  # handed over: closing it stops nothing
    assert [(r.label, r.status) for r in records] == [("step", "ok"), ("cosine", "ok")]
    (process,) = handed
    assert process is not None and process.returncode == 0  # it trained both runs, then left
    log = OutputLayout(settings.output).log(job_name(jobs[0])).read_text()
    # What it printed while waiting comes first in the batch's log, then the runs'.
    assert log.index(f"standby worker {process.pid}: imports done") < log.index("Trainer.fit")


def test_a_standby_that_ended_leaves_its_batch_to_a_fresh_worker(two_runs):
    jobs, settings = two_runs
    with Standby() as standby:
        standby.process.kill()
        standby.process.wait()
        records = train(jobs, settings, standby)
    assert [r.status for r in records] == ["ok", "ok"]
    assert "standby worker" not in OutputLayout(settings.output).log(job_name(jobs[0])).read_text()


def test_the_standby_worker_starts_without_importing_torch():
    # `lrsched compare` starts it before importing torch itself: the module that starts it imports none.
    code = (
        "import sys, lightning_lrsched.compare.processes; "
        "loaded = [m for m in ('torch', 'lightning') if m in sys.modules]; assert not loaded, loaded; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr


def test_a_standby_started_early_is_taken_once_by_the_next_grid():
    # `lrsched compare` starts one before it imports torch; compare() takes it instead of starting its own.
    with Standby.early() as early:
        assert Standby.take() is early
        with Standby.take() as fresh:  # taken already: the next grid starts its own
            assert fresh is not early and fresh.process is not None
        assert fresh.process is None
    assert early.process is None
    ended = Standby.early()
    ended.close()  # gone before any grid took it (bad arguments, say): not handed out
    with Standby.take() as fresh:
        assert fresh is not ended and fresh.process is not None
    unused = Standby.early()
    Standby.drop_early()  # a grid with no single-process config stops it before it trains
    assert unused.process is None
    with Standby.take() as fresh:
        assert fresh is not unused


def test_an_unused_standby_is_stopped_and_one_whose_caller_ended_leaves_by_itself():
    with Standby() as standby:
        process = standby.process
    assert process.poll() is not None
    # Its caller gone (standard input closed), a standby that finished importing exits on its own, cleanly.
    orphan = Standby()
    try:
        orphan.process.stdin.close()
        assert orphan.process.wait(timeout=120) == 0
    finally:
        orphan.close()


def test_the_report_is_written_once_per_change(tmp_path, monkeypatch):
    writes: list[int] = []
    real = api.write_report
    monkeypatch.setattr(
        api, "write_report", lambda records, *a, **k: writes.append(len(records)) or real(records, *a, **k)
    )
    out = tmp_path / "once"
    compare(["cosine"], max_epochs=1, output=out, logger="none")
    assert writes == [1]  # after the run; the final report would have shown the same
    compare(["cosine"], max_epochs=1, output=out, logger="none")
    assert writes == [1, 1]  # a rerun with nothing to train still writes its report
    assert (out / "report.md").exists()


@pytest.mark.parametrize(("every", "drawn"), [(1e9, [True, False, False, True]), (0.0, [True, True, True])])
def test_the_figure_is_redrawn_at_most_every_few_seconds_between_jobs_and_always_at_the_end(
    tmp_path, monkeypatch, every, drawn
):
    # Three runs of their own, one job each: the table follows every job; the figure (0.4 s on the cores the
    # runs train on) the first job, then only once FIGURE_EVERY_S has passed, and at the end if it is behind.
    writes: list[tuple[int, bool]] = []
    real = api.write_report

    def spy(records, *args, **kwargs):
        writes.append((len(records), kwargs["with_figure"]))
        return real(records, *args, **kwargs)

    monkeypatch.setattr(api, "write_report", spy)
    monkeypatch.setattr(api, "FIGURE_EVERY_S", every)
    out = tmp_path / "grid"
    comparison = compare(["step", "cosine", "exponential"], max_epochs=1, output=out, logger="none", mode="sequential")
    assert [w[1] for w in writes] == drawn
    assert [w[0] for w in writes] == [1, 2, 3, 3][: len(drawn)]
    assert comparison.succeeded and all(r.label in (out / "report.md").read_text() for r in comparison.records)


def test_a_figure_left_behind_catches_up_while_a_long_job_trains(tmp_path, monkeypatch):
    # Three jobs' records handed to a grid by hand, on a clock of our own. Job 2 ends 1 s after the figure: not
    # drawn. Job 3 then trains long (its first epoch ends at 100 s): the figure catches up there, not at job 3's
    # end; the final figure shows all three.
    import io

    from rich.console import Console

    schedules = ["step", "cosine", "exponential"]
    records = compare(schedules, max_epochs=1, output=tmp_path / "a", logger="none", mode="sequential").records
    grid, notes = build_grid(schedules, ["cpu:1"], [0], 1)
    settings = RunSettings(output=str(tmp_path / "b"), logger="none")
    run = api.GridRun(
        grid, notes, settings, OutputLayout(tmp_path / "b"), [], "sequential", 1e-3, Console(file=io.StringIO())
    )
    run._epochs_of = {spec.key: 1 for spec in grid}
    writes: list[tuple[int, bool]] = []
    real = api.write_report

    def spy(records, *args, **kwargs):
        writes.append((len(records), kwargs["with_figure"]))
        return real(records, *args, **kwargs)

    clock = [0.0]
    monkeypatch.setattr(api, "write_report", spy)
    monkeypatch.setattr(api, "_clock", lambda: clock[0])
    jobs = {job[0].label: job for job in plan_jobs(grid, "sequential")}
    by_label = {r.label: r for r in records}
    run.result(jobs["step"], [by_label["step"]])
    clock[0] = 1.0
    run.epoch(jobs["cosine"], 1)
    run.result(jobs["cosine"], [by_label["cosine"]])
    clock[0] = 100.0
    run.epoch(jobs["exponential"], 1)
    run.result(jobs["exponential"], [by_label["exponential"]])
    run.report(final=True)
    assert writes == [(1, True), (2, False), (2, True), (3, False), (3, True)]


def test_a_grid_stopped_mid_way_leaves_a_figure_of_what_finished(tmp_path, monkeypatch):
    # Ctrl-C after the second of three jobs, its figure not yet drawn: the figure catches up before the grid ends.
    writes: list[tuple[int, bool]] = []
    real_write, real_result = api.write_report, api.GridRun.result

    def spy(records, *args, **kwargs):
        writes.append((len(records), kwargs["with_figure"]))
        return real_write(records, *args, **kwargs)

    def result(self, job, records):
        real_result(self, job, records)
        if self.appended == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(api, "write_report", spy)
    monkeypatch.setattr(api.GridRun, "result", result)
    monkeypatch.setattr(api, "FIGURE_EVERY_S", 1e9)
    with pytest.raises(KeyboardInterrupt):
        compare(["step", "cosine", "exponential"], max_epochs=1, output=tmp_path, logger="none", mode="sequential")
    assert writes == [(1, True), (2, False), (2, True)]


@pytest.mark.parametrize(("schedules", "status"), [("cosine", 0), ("step,warmup_cosine(warmup=50ep)", 1)])
def test_lrsched_compare_leaves_quickly_with_every_file_written(tmp_path, schedules, status):
    out = tmp_path / "cli"
    command = [sys.executable, "-m", "lightning_lrsched", "compare", "--schedules", schedules, "--max-epochs", "1"]
    done = subprocess.run(
        [*command, "--logger", "csv", "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == status, done.stderr[-2000:]
    assert f"results: {out / 'results.jsonl'}" in " ".join(done.stdout.split())  # flushed before the quick exit
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "failed"][: len(records)] and len(records) == status + 1
    assert (out / "report.png").stat().st_size > 0 and records[0]["label"] in (out / "report.md").read_text()
    assert list((out / "csv").glob("*/version_*/metrics.csv"))


def test_a_grid_without_a_single_process_config_stops_the_early_standby(tmp_path):
    # DDP workers start their own processes: the standby `lrsched compare` started would only wait, holding memory.
    with Standby.early() as early:
        comparison = compare(["step"], ["cpu:2"], max_epochs=1, output=tmp_path, logger="none")
        assert comparison.succeeded and [r.device for r in comparison.records] == ["cpu:2"]
        assert early.process is None  # stopped when the grid started, not when the command ends


def test_a_disk_full_mid_grid_is_one_line_and_keeps_the_report_whole(tmp_path, monkeypatch, capsys):
    import errno

    import lightning_lrsched.compare.report as report
    from lightning_lrsched.cli import main

    out = tmp_path / "full"
    compare(["cosine"], max_epochs=1, output=out, logger="none")
    png = (out / "report.png").read_bytes()

    def full(records, path, statistics):
        Path(path).write_bytes(b"")  # savefig had opened the file when the disk filled
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(report, "figure", full)
    with pytest.raises(SystemExit) as stop:
        main(
            [
                "compare",
                "--schedules",
                "cosine",
                "--max-epochs",
                "1",
                "--logger",
                "none",
                "--force",
                "--output",
                *[str(out)],
            ]
        )
    assert stop.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("lrsched compare: error: No space left on device: ") and "kept" in line
    assert (out / "report.png").read_bytes() == png  # the previous report, whole
    assert len((out / "results.jsonl").read_text().splitlines()) == 2  # the run that ended before is kept


def test_a_lock_that_is_a_folder_is_one_line(tmp_path):
    (tmp_path / ".lock").mkdir()
    with pytest.raises(ValueError, match=r"`output`: .*\.lock is a folder.*move that folder away"):
        compare(["cosine"], max_epochs=1, output=tmp_path, logger="none")
