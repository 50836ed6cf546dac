"""The parts of `lrsched compare` that need no training: records, results file, lock, grid, CLI parsing, report."""

from __future__ import annotations

import fcntl
import io
import json
import math
import os
import re

import matplotlib.image as mpimg
import pytest
from harness import run_record
from rich.console import Console

from lightning_lrsched.compare import compare
from lightning_lrsched.compare.command import compare_settings, parse_schedule, split_top_level
from lightning_lrsched.compare.executors import worker_batches
from lightning_lrsched.compare.grid import build_grid, plan_jobs
from lightning_lrsched.compare.layout import OutputLayout
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.compare.report import cross_device, figure, markdown, print_report, write_csv
from lightning_lrsched.compare.results import GridLock, ResultsFile
from lightning_lrsched.errors import UsageError


def test_record_lines_are_strict_json_and_read_back():
    diverged = run_record(status="diverged", reason="val_loss is nan", best=math.nan, lr_curve=[[0, math.inf]])
    line = diverged.to_json()
    data = json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert data["best_val_loss"] is None and data["lr_curve"] == [[0, None]] and data["status"] == "diverged"
    back = RunRecord.from_json(line)
    assert math.isnan(back.best_val_loss) and math.isnan(back.lr_curve[0][1])
    assert back.to_json() == line
    with pytest.raises(ValueError, match="needs"):
        RunRecord.from_json('{"key": "k"}')


def test_append_after_a_torn_line_starts_a_fresh_line_and_the_torn_line_is_set_aside(tmp_path):
    layout = OutputLayout(tmp_path)
    results = ResultsFile(layout)
    results.append(run_record("step"))
    torn = run_record("cosine").to_json()[:40]
    with layout.results.open("a") as handle:
        handle.write(torn)  # a crash mid-write: no newline
    results.append(run_record("cyclic"), run_record("cosine"))  # a stacked run's records: one write
    assert [r.label for r in results] == ["step", "cyclic", "cosine"]  # the next records did not continue it
    assert results.set_aside_unreadable() == ["not a whole JSON line (a write cut short)"]
    assert layout.torn.read_text() == torn + "\n"
    lines = layout.results.read_text().splitlines()
    assert [json.loads(line)["label"] for line in lines] == ["step", "cyclic", "cosine"]
    assert results.set_aside_unreadable() == []  # reported once


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("seed", "zero", "field seed must be an integer: got 'zero'"),
        ("val_curve", "0.1,0.2", "field val_curve must be a list of [number, ...] points: got '0.1,0.2'"),
        ("best_val_loss", "low", "field best_val_loss must be a number or null: got 'low'"),
        ("status", "done", "field status must be one of ok, diverged, failed: got 'done'"),
    ],
)
def test_a_record_with_a_field_of_the_wrong_kind_is_set_aside_with_what_is_wrong(tmp_path, field, value, why):
    layout = OutputLayout(tmp_path)
    results = ResultsFile(layout)
    data = json.loads(run_record("cosine").to_json())
    data[field] = value
    with layout.results.open("w") as handle:
        handle.write(json.dumps(data) + "\n")
    results.append(run_record("step"))
    with pytest.raises(ValueError, match=why.replace("[", r"\[")):
        RunRecord.from_json(json.dumps(data))
    assert [r.label for r in results] == ["step"]  # the report and the rerun read the rest
    assert results.set_aside_unreadable() == [f"not a valid record: {why}"]
    assert json.loads(layout.torn.read_text())[field] == value


def test_a_grid_sets_a_wrong_kind_of_record_aside_and_trains_its_run_again(tmp_path):
    layout = OutputLayout(tmp_path)
    data = json.loads(run_record("cosine").to_json())
    (spec,), _ = build_grid(["cosine"], ["cpu:1"], [0], 1)
    data.update(key=spec.key, seed="zero")
    layout.results.write_text(json.dumps(data) + "\n")
    comparison = compare(["cosine"], max_epochs=1, output=tmp_path, logger="none")
    assert comparison.succeeded and [r.seed for r in comparison.records] == [0]
    (note,) = [n for n in comparison.notes if "moved to" in n]
    assert "not a valid record: field seed must be an integer: got 'zero'" in note and "cut short" not in note


def test_a_second_grid_on_the_same_output_is_refused(tmp_path):
    layout = OutputLayout(tmp_path)
    with GridLock(layout):
        with pytest.raises(ValueError, match=rf"another lrsched compare \(pid {os.getpid()}\) is running"):
            with GridLock(layout):
                pass
    with GridLock(layout):  # released at exit
        pass


def test_the_refusal_names_the_command_that_holds_the_folder(tmp_path):
    layout = OutputLayout(tmp_path)
    with GridLock(layout, command="tune"):
        with pytest.raises(ValueError, match=rf"another lrsched tune \(pid {os.getpid()}\) is running"):
            with GridLock(layout):
                pass
    with GridLock(layout) as lock:
        assert lock.path.read_text() == f"{os.getpid()} compare"
    # a lock held by an older version, which wrote its pid only
    fd = os.open(layout.lock, os.O_RDWR | os.O_TRUNC)
    try:
        os.write(fd, b"4242")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match=r"another lrsched compare \(pid 4242\) is running"):
            with GridLock(layout, command="tune"):
                pass
    finally:
        os.close(fd)


def test_duplicates_are_trained_once_with_a_note():
    specs, notes = build_grid(["cosine", "cosine", {"name": "step", "step_size": 2}], ["cpu:1", "CPU:1"], [0, 0], 1)
    assert [(s.label, s.device, s.seed) for s in specs] == [("cosine", "cpu:1", 0), ("step", "cpu:1", 0)]
    assert len(notes) == 3 and all("trained once" in note for note in notes)


def test_plan_jobs_groups_what_can_share_a_run_and_workers_are_shared_per_device_and_seed():
    grid, _ = build_grid(["step", "cosine", "cyclic"], ["cpu:1", "cpu:2"], [0, 1], 2)
    jobs = plan_jobs(grid, "auto")
    assert all(s.mode == "stacked" for job in jobs for s in job)
    # cpu:1: one stacked run across both seeds; cpu:2 (DDP): one per seed.
    assert [(job[0].device, len(job), sorted({s.seed for s in job})) for job in jobs] == [
        ("cpu:1", 6, [0, 1]),
        ("cpu:2", 3, [0]),
        ("cpu:2", 3, [1]),
    ]
    assert [len(job) for job in plan_jobs(grid, "sequential")] == [1] * 12
    single, _ = build_grid(["step"], ["cpu:1"], [0], 2)
    assert [[s.mode for s in job] for job in plan_jobs(single, "auto")] == [["sequential"]]
    # Another optimizer is another run; the mode is not part of a run's key.
    adam, _ = build_grid(["step"], ["cpu:1"], [0], 2, model={"class_path": "x.Y", "init_args": {"optimizer": "adam"}})
    assert len(plan_jobs([*grid[:1], *adam], "auto")) == 2
    assert plan_jobs(grid, "stacked")[0][0].key == grid[0].key
    with pytest.raises(ValueError, match="`mode` must be one of auto, sequential, stacked"):
        plan_jobs(grid, "parallel")
    batches = worker_batches(plan_jobs(grid, "sequential"))
    # cpu:1: one worker for its 6 runs (both seeds); cpu:2 (DDP): one worker per run.
    assert sorted(len(b) for b in batches) == [1] * 6 + [6]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("step", ["step"]),
        ("onecycle(max_lr=0.5),cosine", [{"name": "onecycle", "max_lr": 0.5}, "cosine"]),
        ("multistep(milestones=[5, 8], gamma=0.5)", [{"name": "multistep", "milestones": [5, 8], "gamma": 0.5}]),
        ("warmup_cosine(warmup=2ep)", [{"name": "warmup_cosine", "warmup": "2ep"}]),
    ],
)
def test_schedules_take_arguments_inline(text, expected):
    assert [parse_schedule(part) for part in split_top_level(text)] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cosine(T_max=)", "--schedules: T_max has no value in 'cosine(T_max=)': give one (T_max=value) or leave"),
        ("cosine(T_max= )", "--schedules: T_max has no value in 'cosine(T_max= )'"),
        ("onecycle(max_lr=0.5, max_lr=0.6)", "--schedules: max_lr given twice in 'onecycle(max_lr=0.5, max_lr=0.6)'"),
    ],
)
def test_an_empty_or_repeated_inline_argument_is_refused(text, message):
    with pytest.raises(UsageError, match=f"^{re.escape(message)}"):
        parse_schedule(text)


def test_a_missing_schedule_argument_says_how_to_give_it():
    with pytest.raises(UsageError) as error:
        compare_settings(["--schedules", "onecycle"])
    message = str(error.value)
    assert "max_lr" in message and "--schedules 'onecycle(arg=value)'" in message and "--config" in message
    assert compare_settings(["--schedules", "onecycle(max_lr=0.5)"])["schedules"] == [
        {"name": "onecycle", "max_lr": 0.5}
    ]


def test_cross_device_check_treats_two_missing_losses_as_agreeing():
    nan = math.nan
    both = [
        run_record(device="cpu:1", status="diverged", best=nan),
        run_record(device="cpu:2", status="diverged", best=nan),
    ]
    (check,) = cross_device(both, 1e-3)
    assert check.passed
    one = [run_record(device="cpu:1"), run_record(device="cpu:2", status="diverged", best=nan)]
    assert not cross_device(one, 1e-3)[0].passed


def test_terminal_table_fits_80_columns_without_cutting_values():
    records = [run_record("warmup_cosine", best=0.2934), run_record("exponential", best=0.3101, status="diverged")]
    console = Console(width=80, record=True, file=io.StringIO())
    print_report(records, [], console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    for value in ("warmup_cosine", "exponential", "0.2934", "0.3101", "diverged", "0.0100"):
        assert value in text


def test_report_csv_params_are_json(tmp_path):
    write_csv([run_record()], tmp_path / "report.csv")
    header, row = (tmp_path / "report.csv").read_text().splitlines()[:2]
    import csv

    (parsed,) = csv.DictReader([header, row])
    assert json.loads(parsed["params"]) == {"gamma": 0.1, "milestones": [1, 2]}


def test_figure_uses_a_log_axis_for_wide_values_and_keeps_the_legend_off_the_panels(tmp_path):
    from matplotlib.figure import Figure

    saved: list[Figure] = []
    original = Figure.savefig

    def keep(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    records = [run_record(label, seed=seed, best=best + seed * 0.01) for seed in (0, 1, 2) for label, best in
               (("step", 0.29), ("cosine", 0.31))]  # fmt: skip
    records.append(run_record("slow_start", best=0.3, val_curve=[[32, 50.0, 0.5], [64, 0.3, 0.8]]))  # spans > 100x
    records.append(run_record("exploding", status="diverged", best=0.5, val_curve=[[32, 0.5, 0.5], [64, 9e4, 0.1]]))
    Figure.savefig = keep
    try:
        figure(records, tmp_path / "report.png")
    finally:
        Figure.savefig = original
    (fig,) = saved
    lr_ax, loss_ax, best_ax, *_ = fig.axes  # a fourth panel (paired differences) with 3 seeds or more
    assert loss_ax.get_yscale() == "log" and lr_ax.get_yscale() == "linear"
    assert loss_ax.get_ylim()[1] < 9e4  # the diverged run runs off the axis instead of flattening the others
    low, high = best_ax.get_ylim()
    assert 0.2 < low < 0.29 and high < 0.6  # the spread is visible: the axis does not start at 0
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)
    assert mpimg.imread(tmp_path / "report.png").std() > 0.01


def test_wandb_summary_run_copes_with_no_curves(tmp_path):
    from pathlib import Path

    from lightning_lrsched.compare.grid import RunSettings
    from lightning_lrsched.compare.tracking import summary_run

    failed = run_record(status="failed", reason="every run failed", lr_curve=[], val_curve=[])
    # It used to raise IndexError in wandb's line_series when no run had an LR curve.
    folder = summary_run([failed], RunSettings(output=str(tmp_path), experiment="nothing"), OutputLayout(tmp_path))
    assert Path(folder).parent == tmp_path / "wandb" and Path(folder).name.startswith("offline-run-")


def test_runs_whose_global_batch_differs_are_not_comparable_and_say_why(tmp_path):
    # A datamodule whose batch size is per process: cpu:2 takes 2 x 32 samples per step, cpu:1 takes 32.
    one = run_record(device="cpu:1", samples=64, steps=2, lr_curve=[[0, 0.1], [32, 0.1]])
    two = run_record(device="cpu:2", samples=64, steps=1, lr_curve=[[0, 0.1]])
    (check,) = cross_device([one, two], 1e-3)
    assert check.passed and check.not_comparable.startswith("the global batch is 32 on cpu:1 and 64 on cpu:2")
    assert check.verdict.startswith("not comparable: ") and "inf" not in check.verdict
    # Same global batch: compared as before (here the LRs differ).
    other = run_record(device="cpu:2", samples=64, steps=2, lr_curve=[[0, 0.1], [32, 0.2]])
    (check,) = cross_device([one, other], 1e-3)
    assert not check.not_comparable and not check.passed and check.verdict == "LR MISMATCH"
    console = Console(record=True, width=200)
    print_report([one, two], cross_device([one, two], 1e-3), console)
    shown = console.export_text()
    assert "1 not comparable" in shown and "the global batch is 32 on cpu:1" in shown
    assert "match" not in shown  # none was compared: none matched (it said "all match")
    text = markdown([one, two], cross_device([one, two], 1e-3), [], title="t", tolerance=1e-3, wandb_hint=None)
    (row,) = [line for line in text.splitlines() if "not comparable" in line]
    assert "| - | - |" in row and "nan" not in row  # no difference was measured


def test_a_one_epoch_run_shows_its_validation_loss_as_a_point(tmp_path, monkeypatch):
    # One validation: a line through one point draws nothing, so the panel would be blank.
    from matplotlib.figure import Figure

    saved: list[Figure] = []
    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (saved.append(self), original(self, *a, **k))[1])
    records = [
        run_record(label, best=best, val_curve=[[64, best, 0.8]]) for label, best in (("step", 0.3), ("cosine", 0.4))
    ]
    figure(records, tmp_path / "report.png")
    (fig,) = saved
    loss_ax = fig.axes[1]
    assert loss_ax.get_lines() and all(line.get_marker() == "o" for line in loss_ax.get_lines())
