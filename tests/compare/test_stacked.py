"""Stacked comparisons: K schedules trained side by side in one Lightning run equal K runs of their own.

The equivalence test trains the tutorial schedules (and onecycle, warmup_cosine, and a plateau that
really reduces) stacked and alone, in this process, and compares every copy's per-epoch losses and
the LR of every optimizer step with its solo run. The others run ``compare`` end to end (worker
subprocesses, offline W&B): modes, records, report, per-copy divergence, the fallback for a module
vmap cannot stack.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from pathlib import Path

import pytest
import torch

from lightning_lrsched.compare import compare
from lightning_lrsched.compare.grid import (
    DEFAULT_DATA,
    DEFAULT_MODEL,
    RunSettings,
    Unstackable,
    build_grid,
    class_config,
    plan_jobs,
)
from lightning_lrsched.compare.training import train_solo, train_stacked

for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.ERROR)

ROOT = Path(__file__).resolve().parents[2]
REDUCING_PLATEAU = {"name": "plateau", "patience": 0, "factor": 0.5, "threshold": 0.05}
SCHEDULES = [
    "step",
    "multistep",
    "exponential",
    "cosine",
    "plateau",
    "cyclic",
    {"name": "onecycle", "max_lr": 0.2},
    {"name": "warmup_cosine", "warmup": "2ep"},
    REDUCING_PLATEAU,
]
BRANCHING_MODEL = {"class_path": "tests.compare.branching_model.BranchingClassifier", "init_args": {}}


def specs(schedules, epochs, **what):
    model = class_config("model", what.pop("model", None), DEFAULT_MODEL)
    data = class_config("data", None, DEFAULT_DATA)
    return build_grid(schedules, ["cpu:1"], [0], epochs, model=model, data=data, **what)[0]


def settings(tmp_path) -> RunSettings:
    return RunSettings(output=str(tmp_path), logger="none")


def run_stacked(grid, tmp_path):
    (job,) = plan_jobs(grid, "stacked")
    return train_stacked(job, settings(tmp_path), lambda runs: None)


def run(spec, tmp_path):
    (record,) = train_solo(spec, settings(tmp_path), lambda runs: None)
    return record


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def worst(ours: list[list[float]], solo: list[list[float]], column: int = 1) -> float:
    """Largest relative difference of a curve's values (a zero must be matched exactly), at the same samples."""
    assert [p[0] for p in ours] == [p[0] for p in solo]
    pairs = [(p[column], q[column]) for p, q in zip(ours, solo, strict=True)]
    return max(abs(a - b) / abs(b) if b else (0.0 if a == b else math.inf) for a, b in pairs)


def test_stacked_copies_match_their_solo_runs(tmp_path, one_thread):
    grid = specs(SCHEDULES, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stacked = run_stacked(grid, tmp_path)
        solos = [run(spec, tmp_path) for spec in grid]
    assert [r.label for r in stacked] == [s.label for s in grid]
    for ours, solo in zip(stacked, solos, strict=True):
        label = ours.label
        assert ours.mode == "stacked" and solo.mode == "sequential"
        assert ours.status == solo.status == "ok", label
        assert (ours.epochs, ours.steps, ours.samples) == (solo.epochs, solo.steps, solo.samples)
        assert len(ours.train_curve) == len(ours.val_curve) == 10
        assert len(ours.lr_curve) == ours.steps == 220
        assert worst(ours.train_curve, solo.train_curve) <= 1e-5, label
        assert worst(ours.val_curve, solo.val_curve) <= 1e-5, label
        assert worst(ours.val_curve, solo.val_curve, column=2) <= 1e-5, label
        assert worst(ours.lr_curve, solo.lr_curve) <= 1e-5, label
        assert ours.final_lr == ours.lr_curve[-1][1] and abs(ours.final_lr - solo.final_lr) <= 1e-5 * solo.final_lr
        assert ours.events == solo.events
    # Not trivial: the copies really trained differently, and the plateau copy reduced on its own metric.
    assert len({round(r.final_val_loss, 6) for r in stacked}) >= 5
    reducing = stacked[SCHEDULES.index(REDUCING_PLATEAU)]
    assert reducing.final_lr < 0.1 and stacked[SCHEDULES.index("plateau")].final_lr == 0.1


def test_a_diverging_copy_is_frozen_and_the_others_go_on(tmp_path):
    exploding = {"name": "exponential", "gamma": 2.0, "interval": "step"}
    grid = specs([exploding, "cosine"], 3, trainer={"gradient_clip_val": 1.0})
    epochs: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (job,) = plan_jobs(grid, "stacked")
        diverged, healthy = train_stacked(job, settings(tmp_path), epochs.append)
        solo = run(grid[1], tmp_path)
        solo_diverged = run(grid[0], tmp_path)
    assert diverged.status == "diverged" and "the mean training loss of the epoch" in diverged.reason
    assert [e["action"] for e in diverged.events] == ["diverged"]
    # Frozen at the first epoch end, its training loss far above the untrained model's: its curves end there.
    assert diverged.epochs == 1 and diverged.steps == 22 and len(diverged.lr_curve) == 22
    # Its run of its own stops there too, and says so: 1 epoch, not 2 (Lightning counts the stopped epoch as done).
    assert (solo_diverged.status, solo_diverged.epochs, solo_diverged.steps) == ("diverged", 1, 22)
    # ... and keeps the training loss of the epoch it diverged in (issue 20 item 7).
    assert len(diverged.train_curve) == diverged.epochs
    assert diverged.final_train_loss is not None and math.isfinite(diverged.final_train_loss)
    assert diverged.final_train_loss == diverged.train_curve[-1][-1]
    # The other copy trained to the end as if alone (per-copy gradient clipping included).
    assert healthy.status == "ok" and healthy.epochs == 3 and healthy.steps == 66
    assert worst(healthy.val_curve, solo.val_curve) <= 1e-5
    assert worst(healthy.lr_curve, solo.lr_curve) <= 1e-12
    assert epochs == [1, 1, 1]  # progress: each epoch end, with the copies still training (one, from epoch 1)


def test_an_lr_overflow_is_diverged_in_both_modes_and_freezes_only_its_copy(tmp_path):
    # The update would overflow float32: a run of its own stops as diverged; stacked, the others go on.
    # The LR passes float32's range at step 20, before the first validation (step 22) could catch it.
    overflowing = {"name": "exponential", "gamma": 100.0, "interval": "step"}
    grid = specs([overflowing, "cosine"], 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen, healthy = run_stacked(grid, tmp_path)
        solo = run(grid[0], tmp_path)
    assert frozen.status == solo.status == "diverged"
    assert "overflows" in frozen.reason and "overflows" in solo.reason
    # Neither records the step that was not taken: the last LR is the last one applied.
    assert frozen.lr_curve == solo.lr_curve and frozen.final_lr == solo.final_lr == frozen.lr_curve[-1][1]
    # Ended mid-epoch (step 20 of 22), both keep that epoch's training loss so far, the same (issue 20 item 7).
    assert len(frozen.train_curve) == frozen.epochs == len(solo.train_curve) == solo.epochs == 1
    assert frozen.final_train_loss == frozen.train_curve[-1][-1] and math.isfinite(frozen.final_train_loss)
    assert abs(frozen.final_train_loss - solo.final_train_loss) <= 1e-5 * abs(solo.final_train_loss)
    assert healthy.status == "ok" and healthy.steps == 44 and math.isfinite(healthy.final_val_loss)


@pytest.fixture(scope="module")
def stacked_grid(tmp_path_factory):
    """The main job's path: ``lrsched compare`` in its default mode (auto) on cpu:1 and cpu:2 (DDP), W&B runs."""
    out = tmp_path_factory.mktemp("stacked") / "auto"
    comparison = compare(["step", "cosine", "plateau"], ["cpu:1", "cpu:2"], max_epochs=2, output=out)
    return out, comparison


def test_auto_stacks_on_one_and_two_processes_and_records_like_sequential(stacked_grid):
    out, comparison = stacked_grid
    assert comparison.succeeded and len(comparison.checks) == 3 and all(c.passed for c in comparison.checks)
    records = lines(out / "results.jsonl")
    assert sorted((r["schedule"], r["device"]) for r in records) == sorted(
        (s, d) for s in ("step", "cosine", "plateau") for d in ("cpu:1", "cpu:2")
    )
    assert all(r["mode"] == "stacked" and r["status"] == "ok" and r["epochs"] == 2 for r in records)
    assert all(r["samples"] == 2 * 700 and len(r["lr_curve"]) == 44 for r in records)
    report = (out / "report.md").read_text()
    assert "Mode: stacked" in report and "auto → stacked for cpu:2, seed 0: 3 schedule(s) in one run" in report
    assert len(comparison.notes) == 2
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 7  # one per schedule and device config, as in sequential mode, plus the summary
    logs = {str(run): next(run.glob("*.wandb")).read_bytes() for run in runs}
    per_copy = {run for run, log in logs.items() if b"summary" not in log}
    assert {r["wandb_dir"] for r in records} == per_copy
    for record in records:
        log = logs[record["wandb_dir"]]
        # Each run holds its own copy's metrics, named as in a run of its own.
        assert f"{record['label']}-{record['device'].replace(':', '')}-seed0".encode() in log
        assert b"val_loss" in log and b"val_loss/" not in log


def test_rerun_in_another_mode_skips_finished_schedules(stacked_grid, capsys):
    out, _ = stacked_grid
    before = (out / "results.jsonl").read_bytes()
    comparison = compare(["step", "cosine", "plateau"], ["cpu:1", "cpu:2"], max_epochs=2, output=out, mode="sequential")
    assert (out / "results.jsonl").read_bytes() == before
    assert len(comparison.records) == 6
    assert "6 of 6 runs already in" in capsys.readouterr().out


def test_wandb_single_run_has_per_copy_metric_names(tmp_path):
    compare(["step", "cosine"], max_epochs=1, output=tmp_path, mode="stacked", wandb_runs="single")
    records = lines(tmp_path / "results.jsonl")
    assert len({r["wandb_dir"] for r in records}) == 1
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 2  # the stacked run and the summary
    (stacked,) = [r for r in runs if str(r) == records[0]["wandb_dir"]]
    log = next(stacked.glob("*.wandb")).read_bytes()
    assert b"val_loss/step" in log and b"val_loss/cosine" in log and b"stacked-cpu1-seed0" in log
    assert b"lr/step" in log and b"lr/cosine" in log


@pytest.fixture
def test_models_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def test_unstackable_module_falls_back_in_auto_and_is_an_error_in_stacked(tmp_path, test_models_importable, capsys):
    with pytest.raises(ValueError, match=r"mode='stacked': vmap cannot run BranchingClassifier: .*data-dependent"):
        compare(
            ["step", "cosine"],
            max_epochs=1,
            output=tmp_path / "stacked",
            logger="none",
            mode="stacked",
            model=BRANCHING_MODEL,
        )
    assert not (tmp_path / "stacked" / "results.jsonl").exists()

    comparison = compare(
        ["step", "cosine"], max_epochs=1, output=tmp_path / "auto-branching", logger="none", model=BRANCHING_MODEL
    )
    assert [(r.mode, r.status) for r in comparison.records] == [("sequential", "ok")] * 2
    (note,) = comparison.notes
    assert note.startswith("auto → sequential for cpu:1, seed 0: vmap cannot run BranchingClassifier")
    assert "\n" not in note and note in (tmp_path / "auto-branching" / "report.md").read_text()
    assert "auto → sequential for cpu:1, seed 0: vmap cannot run" in " ".join(capsys.readouterr().out.split())


def test_modules_without_the_stacking_contract_are_unstackable():
    from lightning_lrsched.compare.stacked import StackedModule, stacked_metrics_of
    from lightning_lrsched.schedules import get_schedule

    with pytest.raises(Unstackable, match="Linear has no `stacked_metrics"):
        stacked_metrics_of(torch.nn.Linear(2, 2))
    # The protocol itself is tested in test_stack_any.py.
    schedules = [get_schedule("cosine"), get_schedule("plateau")]
    with pytest.raises(Unstackable, match="Linear has no `stacked_metrics"):
        StackedModule([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)], ["a", "b"], schedules)
