"""What test folders share (tests/ is on the path of every test): a quiet Trainer, a subprocess that cannot hang,
a comparison's run record."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lightning_lrsched.compare.record import RunRecord


def quiet_trainer(root: Path, *callbacks: Callback, **overrides: Any) -> pl.Trainer:
    """A one-process CPU Trainer without logger, progress bar or model summary; checkpointing only with a
    ModelCheckpoint (among ``callbacks`` or ``overrides["callbacks"]``). The tests' one Trainer factory."""
    callbacks = (*callbacks, *(overrides.pop("callbacks", None) or ()))
    options: dict[str, Any] = {
        "default_root_dir": root,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": any(isinstance(c, ModelCheckpoint) for c in callbacks),
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "callbacks": list(callbacks),
    }
    return pl.Trainer(**{**options, **overrides})


def run_script(script: Path, *args: str, timeout: float = 300) -> tuple[int, str]:
    """``python script *args`` (one thread, warnings off) in its own process group: ``(exit status, output)``.

    A run past ``timeout`` kills the whole group (DDP ranks included) and fails the test instead of hanging.
    """
    # tests/ on its path too, as on every test's: the script's helpers import the shared ones from here.
    path = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": path}
    process = subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=script.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{script.name} hung (killed after {timeout} s):\n{output.decode()[-3000:]}")
    return process.returncode, output.decode()


def run_record(
    label: str = "step",
    seed: int = 0,
    best: float = 0.3,
    *,
    device: str = "cpu:1",
    status: str = "ok",
    acc: float = 0.85,
    **fields: Any,
) -> RunRecord:
    """A comparison's record of one run: best (and final) val loss ``best`` and val acc ``acc``, at the last of two
    validations; the LR goes from 0.1 to 0.01. ``fields`` set any other field; ``final_lr`` follows ``lr_curve``."""
    lr_curve = fields.pop("lr_curve", [[0, 0.1], [32, 0.1], [64, 0.01]])
    values: dict[str, Any] = {
        "key": f"{label}-{device}-{seed}",
        "label": label,
        "schedule": label,
        "params": {"gamma": 0.1, "milestones": [1, 2]},
        "device": device,
        "seed": seed,
        "max_epochs": 2,
        "mode": "sequential",
        "logger": "none",
        "status": status,
        "best_val_loss": best,
        "final_val_loss": best,
        "best_val_acc": acc,
        "final_val_acc": acc,
        "final_lr": lr_curve[-1][1] if lr_curve else math.nan,
        "lr_curve": lr_curve,
        "val_curve": [[32, best + 0.1, acc - 0.05], [64, best, acc]],
    }
    return RunRecord(**{**values, **fields})
