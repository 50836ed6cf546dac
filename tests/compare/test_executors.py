"""The executor protocol of `compare`: one registry, events to one receiver, the unstackable fallback in the worker.

Fast: no worker process; the worker's fallback runs in-process on a module vmap cannot stack (nothing trains).
"""

from __future__ import annotations

import json
import warnings

import pytest
from rich.console import Console

import lightning_lrsched.compare.worker as worker
from lightning_lrsched.compare import compare
from lightning_lrsched.compare.api import GridRun
from lightning_lrsched.compare.command import _parser
from lightning_lrsched.compare.executors import EXECUTORS
from lightning_lrsched.compare.grid import RunSettings, build_grid, class_config, plan_jobs
from lightning_lrsched.compare.layout import OutputLayout
from lightning_lrsched.errors import InvalidValue

BRANCHING_MODEL = {"class_path": "tests.compare.branching_model.BranchingClassifier", "init_args": {}}


def test_compare_and_its_command_offer_the_registered_executors(tmp_path):
    (action,) = [a for a in _parser()._actions if "--executor" in a.option_strings]
    assert tuple(action.choices) == tuple(EXECUTORS) == ("local", "ray")
    with pytest.raises(InvalidValue, match=r"`executor` must be one of 'local', 'ray': got executor='slurm'"):
        compare(["cosine"], output=tmp_path, logger="none", executor="slurm")


def grid_run(tmp_path, mode):
    specs, notes = build_grid(["step", "cosine"], ["cpu:1"], [0], 1)
    settings = RunSettings(output=str(tmp_path), logger="none", fallback=mode == "auto")
    run = GridRun(specs, notes, settings, OutputLayout(tmp_path), [], mode, 1e-3, Console(quiet=True))
    return run, plan_jobs(specs, mode)


def test_an_unstackable_job_is_an_error_in_stacked_mode_and_a_note_in_auto(tmp_path):
    run, (job,) = grid_run(tmp_path / "stacked", "stacked")
    with pytest.raises(InvalidValue, match=r"^mode='stacked': vmap cannot run it\. Use mode='auto'"):
        run.unstackable(job, "vmap cannot run it.")
    run, (job,) = grid_run(tmp_path / "auto", "auto")
    run.unstackable(job, "vmap cannot run it.")
    assert list(run.mode_notes.values()) == ["auto → sequential for cpu:1, seed 0: vmap cannot run it."]


def test_a_worker_without_the_fallback_ends_an_unstackable_job_with_no_records(tmp_path):
    # An executor waits for a job's records after its reason: none must come as an empty file, not as nothing.
    model = class_config("model", BRANCHING_MODEL, BRANCHING_MODEL)
    specs, _ = build_grid(["step", "cosine"], ["cpu:1"], [0], 1, model=model)
    batch, out = tmp_path / "batch.json", tmp_path / "out"
    out.mkdir()
    worker.write_batch(batch, RunSettings(output=str(tmp_path), logger="none"), plan_jobs(specs, "stacked"))
    assert json.loads(batch.read_text())["settings"]["fallback"] is False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert worker.main([str(batch), str(out)]) == 0
    assert worker.read_unstackable(out, 0).startswith("vmap cannot run BranchingClassifier")
    assert worker.read_records(out, 0) == []
