"""`lrsched fit` as a user runs it (a real process, the user's warnings): an error found while the run is set up
is the only output, and Lightning's start-up lines ("GPU available", tips) still come once the run starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--trainer.max_epochs", "1", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]


def lrsched(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    """``lrsched ARGS`` in ``tmp_path``: the exit status and the non-blank lines of stdout and stderr together."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run(
        [sys.executable, "-m", "lightning_lrsched", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=300,
        check=False,
    )
    return done.returncode, [line for line in done.stdout.decode().splitlines() if line.strip()]


def test_an_error_found_at_the_start_of_the_run_is_at_most_three_lines(tmp_path):
    code, lines = lrsched(tmp_path, "fit", "--model.scheduler", "{name: linear, warmup: 100000}", *TINY)
    assert code == 2, lines
    assert 1 <= len(lines) <= 3, lines
    assert lines[-1].startswith("lrsched fit: error: `warmup` must be shorter than the run"), lines
    assert not any("GPU available" in line for line in lines), lines


def test_lightnings_start_up_lines_are_printed_once_the_run_starts(tmp_path):
    code, lines = lrsched(tmp_path, "fit", *TINY, "--trainer.limit_train_batches", "2")
    assert code == 0, lines
    assert sum(line.startswith("GPU available:") for line in lines) == 1, lines
    assert lines.index(next(line for line in lines if line.startswith("GPU available:"))) < lines.index(
        next(line for line in lines if line.startswith("Epoch 1/1"))
    )
