"""`lrsched compare` end to end: real grids of Lightning runs in subprocesses, real offline W&B."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from lightning_lrsched.cli import main
from lightning_lrsched.compare import SEED_SCHEDULES, compare
from lightning_lrsched.compare.results import ResultsFile

ROOT = Path(__file__).resolve().parents[2]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def default_grid(tmp_path_factory):
    """The README's main job, shortened: the six seed schedules on cpu:1 and cpu:2 DDP, one run each.

    Sequential mode, to test one Lightning run per schedule end to end (stacked mode, the default
    ``auto``'s choice here, is tested in test_stacked.py).
    """
    out = tmp_path_factory.mktemp("grid") / "tutorial"
    try:
        main(["compare", "--devices", "cpu:1,cpu:2", "--max-epochs", "2", "--output", str(out), "--mode", "sequential"])
    except SystemExit as exit_info:  # exit status 1 means a cross-device mismatch: the tests below say which
        assert exit_info.code in (0, 1, None), exit_info
    return out


def test_default_grid_writes_every_run_report_and_wandb(default_grid):
    records = lines(default_grid / "results.jsonl")
    assert len(records) == 12
    assert {(r["schedule"], r["device"]) for r in records} == {
        (s, d) for s in SEED_SCHEDULES for d in ("cpu:1", "cpu:2")
    }
    assert all(r["status"] == "ok" and r["epochs"] == 2 and r["mode"] == "sequential" for r in records)
    for name in ("report.md", "report.csv"):
        assert (default_grid / name).stat().st_size > 0
    image = mpimg.imread(default_grid / "report.png")
    assert image.shape[0] > 300 and image.std() > 0.01
    csv_rows = (default_grid / "report.csv").read_text().splitlines()
    assert len(csv_rows) == 13
    runs = sorted((default_grid / "wandb").glob("offline-run-*"))
    assert len(runs) == 13  # one per run, plus the summary run
    # Every run, the summary included, is in the experiment's group (the output folder's name).
    for run in runs:
        (log,) = run.glob("*.wandb")
        assert b"tutorial" in log.read_bytes()
    summaries = [run for run in runs if b"summary" in next(run.glob("*.wandb")).read_bytes()]
    assert len(summaries) == 1


def test_cross_device_check_passes_for_the_seed_schedules(default_grid):
    report = (default_grid / "report.md").read_text()
    rows = [line for line in report.splitlines() if "| cpu:1 | cpu:2 |" in line]
    assert len(rows) == 6
    assert all(line.endswith("| pass |") for line in rows), rows
    records = lines(default_grid / "results.jsonl")
    for schedule in SEED_SCHEDULES:
        one, two = (
            next(r for r in records if r["schedule"] == schedule and r["device"] == d) for d in ("cpu:1", "cpu:2")
        )
        assert one["lr_curve"] == two["lr_curve"]
        assert one["samples"] == two["samples"] == 2 * 700


def test_rerun_skips_finished_runs_and_keeps_the_file(default_grid, capsys):
    before = (default_grid / "results.jsonl").read_bytes()
    comparison = compare(devices=["cpu:1", "cpu:2"], max_epochs=2, output=default_grid)
    assert (default_grid / "results.jsonl").read_bytes() == before
    assert len(comparison.records) == 12
    assert "12 of 12 runs already in" in capsys.readouterr().out


def test_unavailable_device_is_skipped_with_reason(tmp_path):
    comparison = compare(["step"], devices=["cpu:1", "cuda:1"], max_epochs=1, output=tmp_path, logger="none")
    assert [r["device"] for r in comparison.records] == ["cpu:1"]
    assert comparison.skipped and comparison.skipped[0][0] == "cuda:1"
    assert "cuda:1" in (tmp_path / "report.md").read_text()


def test_diverging_run_is_recorded_and_the_grid_completes(tmp_path):
    # Cyclic with an absurd max_lr: its first val_loss is already far above the untrained model's.
    cyclic = {"name": "cyclic", "base_lr": 10.0, "max_lr": 1e6, "step_size_up": 5, "cycle_momentum": False}
    # The LR doubles every step: val_loss passes 10 x its best in epoch 2.
    exploding = {"name": "exponential", "gamma": 2.0, "interval": "step"}
    comparison = compare([cyclic, exploding, "step"], max_epochs=3, output=tmp_path, logger="none", mode="sequential")
    status = {r["schedule"]: r["status"] for r in comparison.records}
    assert status == {"cyclic": "diverged", "exponential": "diverged", "step": "ok"}
    for record in comparison.records:
        if record["status"] == "diverged":
            assert any(e["action"] == "diverged" for e in record["events"])
    assert "diverged" in (tmp_path / "report.md").read_text()


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
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    killed = lines(results)
    assert 1 <= len(killed) < 3
    main(
        [
            "compare",
            "--schedules",
            "step,cosine,exponential",
            "--max-epochs",
            "2",
            "--logger",
            "none",
            "--output",
            str(out),
            "--mode",
            "sequential",
        ]
    )
    final = lines(results)  # every line parses: no torn write
    assert len(final) == 3
    assert sorted(r["schedule"] for r in final) == ["cosine", "exponential", "step"]
    assert len({r["key"] for r in final}) == 3
    assert final[: len(killed)] == killed  # what finished before the kill is untouched


def test_cross_device_check_flags_a_real_mismatch(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    data = {"class_path": "tests.compare.naive_data.PerDeviceBatchData", "init_args": {"num_samples": 300}}
    comparison = compare(
        ["cosine"], devices=["cpu:1", "cpu:2"], max_epochs=1, output=tmp_path, logger="none", data=data
    )
    assert all(r["status"] == "ok" for r in comparison.records), comparison.records
    (check,) = comparison.checks
    assert not check.passed and not check.lr_match
    assert "LR MISMATCH" in (tmp_path / "report.md").read_text()


def test_force_reruns_and_keeps_old_lines(tmp_path):
    compare(["step"], max_epochs=1, output=tmp_path, logger="none")
    compare(["step"], max_epochs=1, output=tmp_path, logger="none", force=True)
    records = list(ResultsFile(tmp_path / "results.jsonl"))
    assert len(records) == 2 and records[0]["key"] == records[1]["key"]
    assert len(ResultsFile(tmp_path / "results.jsonl").latest()) == 1


def test_ray_executor_runs_a_two_by_one_grid(tmp_path):
    pytest.importorskip("ray.tune", reason="the `ray` extra is not installed: pip install 'lightning-lrsched[ray]'")
    comparison = compare(["step", "cosine"], max_epochs=1, output=tmp_path, logger="none", executor="ray")
    records = lines(tmp_path / "results.jsonl")
    assert sorted(r["schedule"] for r in records) == ["cosine", "step"]
    assert all(r["status"] == "ok" and r["lr_curve"] and "best_val_loss" in r for r in records)
    assert len(comparison.records) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--devices", "tpu:1"], "`devices`"),
        (["--schedules", "nosuch"], "unknown schedule"),
        (["--seeds", "a"], "--seeds"),
        (["--max-epochs", "0"], "`max_epochs`"),
        (["--config", "missing.yaml"], "--config"),
    ],
)
def test_bad_compare_input_is_one_line_error(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--output", str(tmp_path), *args])
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("lrsched compare: error:") and message in err[0]
