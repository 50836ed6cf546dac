"""`lrsched compare` end to end: real grids of Lightning runs in worker processes, faults and mistakes included."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from lightning_lrsched.cli import main
from lightning_lrsched.compare import OutputLayout, compare
from lightning_lrsched.compare.grid import DEFAULT_DATA, DEFAULT_MODEL, build_grid
from lightning_lrsched.compare.results import GridLock, ResultsFile
from lightning_lrsched.schedules.tutorial import TUTORIAL_SCHEDULES

ROOT = Path(__file__).resolve().parents[2]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def exit_code(args: list[str]) -> int:
    try:
        main(["compare", *args])
    except SystemExit as exit_info:
        return 0 if exit_info.code is None else exit_info.code
    return 0


def logged_lr(csv_dir: Path, name: str) -> dict[int, float]:
    """The ``lr`` a run's CSV log holds, by step."""
    (path,) = (csv_dir / name).glob("version_*/metrics.csv")
    return {int(row["step"]): float(row["lr"]) for row in csv.DictReader(path.open()) if row.get("lr")}


GRID = ["--schedules", "step,cyclic", "--max-epochs", "2", "--logger", "csv"]


@pytest.fixture(scope="module")
def sequential_grid(tmp_path_factory):
    """Two schedules, one Lightning run each, CSV logs (the cross-device check runs in test_stacked.py's grid)."""
    out = tmp_path_factory.mktemp("grid") / "tutorial"
    code = exit_code([*GRID, "--output", str(out), "--mode", "sequential"])
    return out, code


def test_sequential_grid_writes_every_run_and_its_report(sequential_grid):
    out, code = sequential_grid
    assert code == 0
    records = lines(out / "results.jsonl")
    assert [r["schedule"] for r in records] == ["step", "cyclic"]
    assert all(r["status"] == "ok" and r["epochs"] == 2 and r["mode"] == "sequential" for r in records)
    assert len((out / "report.csv").read_text().splitlines()) == 3
    image = mpimg.imread(out / "report.png")
    assert image.shape[0] > 300 and image.std() > 0.01
    assert "Nothing to compare: each schedule ran on one device config only." in (out / "report.md").read_text()


def test_every_optimizer_step_lr_is_in_the_logs_and_final_lr_is_the_last_steps(sequential_grid):
    out, _ = sequential_grid
    for r in lines(out / "results.jsonl"):
        steps = r["steps"]
        assert len(r["lr_curve"]) == steps == 44
        logged = logged_lr(out / "csv", f"{r['label']}-{r['device'].replace(':', '')}-seed0")
        # Changes only: the LR at step s is the last one logged at or before s, and it must be exact.
        lrs = [logged[max(k for k in logged if k <= s)] for s in range(steps)]
        assert lrs == [p[1] for p in r["lr_curve"]]
        assert max(logged) == steps - 1 and r["final_lr"] == r["lr_curve"][-1][1]
        if r["schedule"] == "cyclic":
            assert len(set(lrs)) > 20  # the cycle, not a few points of it (log_every_n_steps is 50)


def test_rerun_skips_finished_runs_and_keeps_the_file(sequential_grid, capsys):
    out, _ = sequential_grid
    before = (out / "results.jsonl").read_bytes()
    assert exit_code([*GRID, "--output", str(out)]) == 0  # in another mode: finished runs count in any
    assert (out / "results.jsonl").read_bytes() == before
    assert "2 of 2 runs already in" in capsys.readouterr().out


def test_a_torn_line_is_set_aside_once_its_run_retrained_and_force_keeps_old_lines(tmp_path, capsys):
    out = tmp_path / "torn"
    layout = OutputLayout(out)
    grid, _ = build_grid(["step", "cosine"], ["cpu:1"], [0], 1, model=DEFAULT_MODEL, data=DEFAULT_DATA, trainer={})
    step, cosine = (spec.record("ok", "none", best_val_loss=0.5) for spec in grid)
    torn = cosine.to_json()[:60]
    out.mkdir()
    layout.results.write_text(step.to_json() + "\n" + torn)  # the machine died while cosine's line was written
    comparison = compare(["step", "cosine"], max_epochs=1, output=out, logger="none", mode="sequential")
    printed = capsys.readouterr().out
    assert "1 line(s)" in printed and "results.torn.jsonl" in printed and "1 of 2 runs already in" in printed
    assert layout.torn.read_text() == torn + "\n"
    records = lines(layout.results)  # every line parses
    assert (records[0]["label"], records[0]["best_val_loss"]) == ("step", 0.5)  # skipped, not retrained
    assert [r["key"] for r in records] == [step.key, cosine.key] and comparison.succeeded
    # --force retrains finished runs too, keeping their old lines (the newest counts).
    compare(["step"], max_epochs=1, output=out, logger="none", force=True)
    assert [r["label"] for r in lines(layout.results)] == ["step", "cosine", "step"]
    assert ResultsFile(layout).latest()[step.key].best_val_loss != 0.5
    assert "line(s)" not in capsys.readouterr().out  # the torn line is reported once


def test_timeouts_fail_runs_that_the_next_invocation_retrains(tmp_path, capsys):
    out = tmp_path / "retry"
    # 0.5 s cannot even import Lightning: the run times out; an unavailable config is skipped, with its reason.
    args = ["--schedules", "step", "--devices", "cpu:1,cpu:4096", "--max-epochs", "1", "--logger", "none"]
    assert exit_code([*args, "--output", str(out), "--run-timeout", "0.5"]) == 1
    (failed,) = lines(out / "results.jsonl")
    assert failed["status"] == "failed" and "timed out after 0.5 s" in failed["reason"]
    assert "cpu:4096" in (out / "report.md").read_text()
    # Given twice, a schedule and a seed are trained once (with a note).
    assert exit_code([*args, "--output", str(out), "--seeds", "0,0", "--schedules", "step,step"]) == 0
    printed = capsys.readouterr().out
    assert "1 run(s) recorded as failed" in printed and "trained once" in printed
    assert [r["status"] for r in lines(out / "results.jsonl")] == ["failed", "ok"]


def test_an_invalid_schedule_fails_alone_and_the_rest_of_its_stack_trains(tmp_path):
    out = tmp_path / "invalid"
    too_long = {"name": "warmup_cosine", "warmup": "50ep"}
    comparison = compare(["step", too_long, "cyclic"], max_epochs=1, output=out, logger="csv", mode="stacked")
    status = {r.schedule: (r.status, r.reason) for r in comparison.records}
    assert status["step"] == status["cyclic"] == ("ok", "")
    assert (
        status["warmup_cosine"][0] == "failed" and "`warmup` must be shorter than the run" in status["warmup_cosine"][1]
    )
    assert not comparison.succeeded
    # Stacked copies log the LR of every step under the key a run of its own uses.
    for r in comparison.records:
        if r.status == "ok":
            logged = logged_lr(out / "csv", f"{r.label}-cpu1-seed0")
            assert [logged[max(k for k in logged if k <= s)] for s in range(r.steps)] == [p[1] for p in r.lr_curve]


def test_diverging_runs_are_recorded_in_sequential_mode_and_the_grid_completes(tmp_path):
    # Cyclic with an absurd max_lr: its first val_loss is already far above the untrained model's.
    cyclic = {"name": "cyclic", "base_lr": 10.0, "max_lr": 1e6, "step_size_up": 5, "cycle_momentum": False}
    doubling = {"name": "exponential", "gamma": 2.0, "interval": "step"}  # val_loss passes 10 x its best
    overflowing = {"name": "exponential", "gamma": 100.0, "interval": "step"}  # the LR passes float32's range
    schedules = [cyclic, doubling, overflowing, "step"]
    comparison = compare(schedules, max_epochs=3, output=tmp_path, logger="none", mode="sequential")
    by_params = {(r.schedule, r.params.get("gamma")): r for r in comparison.records}
    assert by_params[("cyclic", None)].status == "diverged"
    assert by_params[("exponential", 2.0)].status == "diverged"
    overflow = by_params[("exponential", 100.0)]
    assert overflow.status == "diverged" and "overflows" in overflow.reason
    assert by_params[("step", 0.1)].status == "ok"
    assert all(any(e["action"] == "diverged" for e in r.events) for r in comparison.records if r.status == "diverged")
    assert comparison.succeeded  # diverged runs are results
    assert "diverged" in (tmp_path / "report.md").read_text()
    for line in (tmp_path / "results.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in results.jsonl"))


def test_sigkill_mid_grid_then_rerun_gives_every_run_once(tmp_path):
    out = tmp_path / "killed"
    command = [
        sys.executable, "-m", "lightning_lrsched", "compare", "--schedules", "step,cosine,exponential",
        "--max-epochs", "2", "--logger", "none", "--output", str(out), "--mode", "sequential",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (results.exists() and results.read_text().count("\n") >= 1):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    killed = lines(results)
    assert 1 <= len(killed) < 3
    assert exit_code(command[4:]) == 0
    final = lines(results)  # every line parses: no torn write
    assert sorted(r["schedule"] for r in final) == ["cosine", "exponential", "step"]
    assert len({r["key"] for r in final}) == 3
    assert final[: len(killed)] == killed  # what finished before the kill is untouched


def test_cross_device_check_reports_a_per_process_batch_as_not_comparable(tmp_path, monkeypatch):
    # The datamodule's batch size is per process: cpu:2 sees twice the samples per step. That is not a
    # mismatch of the schedule (exit 0) and never an "inf" LR difference: the report says why.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    config = tmp_path / "naive.yaml"
    data = {"class_path": "tests.compare.naive_data.PerDeviceBatchData", "init_args": {"num_samples": 300}}
    config.write_text(json.dumps({"data": data}))
    args = ["--schedules", "cosine", "--devices", "cpu:1,cpu:2", "--max-epochs", "1", "--logger", "none"]
    assert exit_code([*args, "--output", str(tmp_path / "out"), "--config", str(config)]) == 0
    records = lines(tmp_path / "out" / "results.jsonl")
    assert all(r["status"] == "ok" for r in records), records
    report = (tmp_path / "out" / "report.md").read_text()
    assert "not comparable: the global batch is" in report and "| inf |" not in report


def test_ray_executor_runs_a_two_by_one_grid(tmp_path, capfd, monkeypatch):
    pytest.importorskip("ray.tune", reason="the `ray` extra is not installed: pip install 'lightning-lrsched[ray]'")
    monkeypatch.delenv("RAY_AIR_NEW_OUTPUT", raising=False)
    comparison = compare(["step", "cosine"], max_epochs=1, output=tmp_path, logger="none", executor="ray")
    assert sorted(r.schedule for r in comparison.records) == ["cosine", "step"]
    assert all(r.status == "ok" and r.lr_curve for r in comparison.records)
    # Tune's experiment table and hints, and Ray's start-up log, stay out of the terminal; the variable
    # that silences them is not left behind.
    out, err = capfd.readouterr()
    for noise in ("Configuration for experiment", "View detailed results", "Started a local Ray instance"):
        assert noise not in out + err
    assert "RAY_AIR_NEW_OUTPUT" not in os.environ


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--devices", "tpu:1"], "`devices`"),
        (["--devices", "cpu:4096"], "none of cpu:4096 can run here"),
        (["--schedules", "nosuch"], "unknown schedule"),
        (["--schedules", "onecycle"], "--schedules 'onecycle(arg=value)'"),
        (["--schedules", "onecycle(max_lr"], "name(arg=value, ...)"),
        (["--seeds", "a"], "--seeds"),
        (["--max-epochs", "0"], "`max_epochs`"),
        (["--run-timeout", "0"], "`run_timeout` must be > 0"),
        (["--run-timeout", "-5"], "`run_timeout` must be > 0"),
        (["--config", "missing.yaml"], "--config"),
        (["--wandb-mode", "online"], "needs a W&B login"),
        (["--devices", ""], "--devices: give at least one, e.g. --devices cpu:1: got ''"),
        (["--config", "{tmp}/string.yaml"], "`schedules` must be a list, e.g. schedules: [cosine, step]: got 'cosine'"),
        # A fit config's trainer section: compare sets these itself (each run failed with a TypeError).
        (["--config", "{tmp}/owned.yaml"], "`trainer.max_epochs`: compare sets it for every run; give max_epochs"),
        (["--config", "{tmp}/typo.yaml"], "`trainer.gradient_clip` is not a Trainer argument"),
    ],
)
def test_bad_compare_input_is_one_line_error(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: not logged in to W&B
    monkeypatch.chdir(tmp_path)
    (tmp_path / "string.yaml").write_text("schedules: cosine\n")
    (tmp_path / "owned.yaml").write_text("trainer: {max_epochs: 5, default_root_dir: runs/fit}\n")
    (tmp_path / "typo.yaml").write_text("trainer: {gradient_clip: 1.0}\n")
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    assert exit_code(["--output", str(tmp_path), *args]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("lrsched compare: error:") and message in err[0], err
    assert not (tmp_path / "results.jsonl").exists()


@pytest.mark.parametrize(
    ("given", "error", "words"),
    [
        ({"devices": "cpu:1"}, TypeError, "`devices` must be a list, e.g. devices=['cpu:1']: got devices='cpu:1'"),
        ({"seeds": 0}, TypeError, "`seeds` must be a list, e.g. seeds=[0, 1, 2]: got seeds=0"),
        ({"schedules": "cosine"}, TypeError, "`schedules` must be a list"),
        ({"devices": []}, ValueError, "`devices` must not be empty"),
    ],
)
def test_compare_names_a_setting_that_is_not_a_list(tmp_path, given, error, words):
    with pytest.raises(error, match=re.escape(words)):
        compare(**{"schedules": ["cosine"], "output": tmp_path, "logger": "none", **given})
    assert not (tmp_path / "results.jsonl").exists()


def test_a_second_grid_on_a_busy_output_exits_2(tmp_path, capsys):
    with GridLock(OutputLayout(tmp_path)):
        assert exit_code(["--schedules", "step", "--output", str(tmp_path), "--logger", "none"]) == 2
    (err,) = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert "another lrsched compare" in err and "is running on" in err


@pytest.mark.slow
def test_readme_job_six_tutorial_schedules_on_one_and_two_processes(tmp_path):
    """The README's main job (scripts/main), shortened to 3 epochs: auto mode stacks each device config's runs."""
    out = tmp_path / "tutorial"
    assert exit_code(["--devices", "cpu:1,cpu:2", "--max-epochs", "3", "--output", str(out)]) == 0
    records = lines(out / "results.jsonl")
    assert {(r["schedule"], r["device"]) for r in records} == {
        (s, d) for s in TUTORIAL_SCHEDULES for d in ("cpu:1", "cpu:2")
    }
    assert all(r["status"] == "ok" and r["mode"] == "stacked" for r in records)
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 13  # one per run, plus the summary run
