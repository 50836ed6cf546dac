"""Plateau decisions under 2-process CPU DDP: every rank takes the decision of the averaged metric.

The run happens in a subprocess (``ddp_plateau_run.py``, ``strategy="ddp"``), killed with its
workers if it outlives the timeout, so a hang fails the test instead of blocking CI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from callback_helpers import (
    torch_reductions,
)
from ddp_plateau_run import CADENCES, MODES, NAN_STEP, VAL_ACC, VAL_LOSS
from harness import run_script

pytestmark = pytest.mark.usefixtures("one_thread")

SCRIPT = Path(__file__).with_name("ddp_plateau_run.py")
TIMEOUT_S = 300
STEPS_PER_EPOCH = 2


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    returncode, text = run_script(SCRIPT, str(out), timeout=TIMEOUT_S)
    # The last mode ends in an error on every rank, by design: the run must fail with it, not hang.
    assert returncode != 0 and "val_los" in text, text[-3000:]
    results = {
        mode: [json.loads((out / mode / f"rank{r}.json").read_text()) for r in (0, 1)]
        for mode in MODES
        if mode != "missing"
    }
    results["missing"] = json.loads((out / "missing" / "rank0.json").read_text())
    return results


def mean(per_rank):
    """The float32 mean of the two ranks' values, as ``strategy.reduce(..., "mean")`` computes it."""
    a, b = (np.asarray(per_rank[r], dtype=np.float32) for r in (0, 1))
    return ((a + b) / np.float32(2)).tolist()


def test_ranks_disagree_without_the_reduction():
    # Guard against a test that cannot fail: each rank's own values would give other decisions.
    for per_rank, kwargs in ((VAL_LOSS, {"patience": 0}), (VAL_ACC, {"patience": 1, "mode": "max"})):
        decisions = [torch_reductions(values, **kwargs) for values in (per_rank[0], per_rank[1], mean(per_rank))]
        assert decisions[0] != decisions[2] and decisions[1] != decisions[2]


def test_all_ranks_take_the_decisions_of_the_mean(results):
    rank0, rank1 = results["plateau"]
    assert (rank0["rank"], rank1["rank"], rank0["world_size"]) == (0, 1, 2)
    assert rank0["events"] == rank1["events"]
    assert rank0["lrs"] == rank1["lrs"]
    assert rank0["global_step"] == rank1["global_step"]

    stop_epoch = torch_reductions(mean(VAL_ACC), mode="max", patience=1)[0]
    reductions = [e for e in torch_reductions(mean(VAL_LOSS), patience=0) if e <= stop_epoch]
    events = rank0["events"]
    assert [(e["epoch"], e["action"]) for e in events["val_acc"]] == [(stop_epoch, "stop")]
    assert [e["epoch"] for e in events["val_loss"]] == reductions
    assert [e["value"] for e in events["val_loss"]] == [mean(VAL_LOSS)[i] for i in reductions]
    assert rank0["global_step"] == (stop_epoch + 1) * STEPS_PER_EPOCH
    assert rank0["lrs"] == pytest.approx([0.1 * 0.5 ** len(reductions), 0.03 * 0.5 ** len(reductions)])


def test_a_nan_loss_on_one_rank_stops_every_rank_at_the_same_step(results):
    rank0, rank1 = results["diverge"]
    assert rank0["events"] == rank1["events"]
    assert rank0["global_step"] == rank1["global_step"] == NAN_STEP + 1
    assert rank0["diverged"] == rank1["diverged"] == [True, True]
    diverged = [e for events in rank0["events"].values() for e in events if e["action"] == "diverged"]
    assert len(diverged) == 2 and all("training loss is nan" in e["reason"] for e in diverged)


def test_the_plateau_schedule_and_the_detector_decide_alike_on_the_mean(results):
    rank0, rank1 = results["schedule"]
    assert rank0["lrs"] == rank1["lrs"] and rank0["events"] == rank1["events"]
    # LRLogger under DDP: rank 0 logs every step, rank 1 nothing; on both nothing but the schedule changed the LR
    # (and ScheduleCheck, strict, found nothing to say).
    (logged0,), (logged1,) = rank0["lr_logger"], rank1["lr_logger"]
    assert logged0["steps"] == list(range(rank0["global_step"])) and logged1["steps"] == []
    assert logged0["mismatches"] == logged1["mismatches"] == 0
    reductions = torch_reductions(mean(VAL_LOSS), patience=0)
    assert [e["epoch"] for e in rank0["events"]["val_loss"]] == reductions
    assert rank0["lrs"] == pytest.approx([0.1 * 0.5 ** len(reductions), 0.03 * 0.5 ** len(reductions)])


def test_a_metric_logged_on_rank_zero_only_drives_every_rank_alike(results):
    rank0, rank1 = results["rank_local"]
    assert rank0["lrs"] == rank1["lrs"] and rank0["events"] == rank1["events"]
    reductions = torch_reductions(VAL_LOSS[0], patience=0)  # rank 0's values: the only ones logged
    assert [e["epoch"] for e in rank0["events"]["val_loss"]] == reductions
    # The mean over the ranks that logged it is rank 0's own value (a relative threshold takes the same decisions on
    # any uniform scaling, so only the values tell a mean over the world size apart).
    assert [e["value"] for e in rank0["events"]["val_loss"]] == [VAL_LOSS[0][i] for i in reductions]
    assert rank0["lrs"] == pytest.approx([0.1 * 0.5 ** len(reductions), 0.03 * 0.5 ** len(reductions)])


def test_a_monitor_nobody_logs_stops_with_an_error_naming_it(results):
    error = results["missing"]["error"]
    assert "'val_los' was not logged" in error and "val_loss" in error  # the logged keys are listed


@pytest.mark.parametrize("cadence", CADENCES)
def test_a_plateau_resumed_under_ddp_continues_exactly(results, cadence):
    _, _, step = CADENCES[cadence]
    per_rank = [r[cadence] for r in results["resume"]]
    for rank in per_rank:
        full, resumed = rank["full"], rank["resumed"]
        assert len(set(full["used"].values())) >= 3, "at least two reductions, or the resume proves nothing"
        assert min(int(s) for s in resumed["used"]) == step
        assert resumed["used"] == {s: lr for s, lr in full["used"].items() if int(s) >= step}
        assert resumed["weights"] == full["weights"]  # bit-identical (floats through JSON round-trip exactly)
    assert per_rank[0] == per_rank[1]
