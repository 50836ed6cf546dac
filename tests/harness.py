"""What test folders share (tests/ is on the path of every test): a quiet Trainer, a subprocess that cannot hang."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
from lightning.pytorch.callbacks import Callback, ModelCheckpoint


def quiet_trainer(root: Path, *callbacks: Callback, **overrides: Any) -> pl.Trainer:
    """A CPU Trainer without logger, progress bar or model summary; checkpointing only with a ModelCheckpoint."""
    options: dict[str, Any] = {
        "default_root_dir": root,
        "accelerator": "cpu",
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
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
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
