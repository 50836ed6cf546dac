"""The same seed trains the same model on 1 CPU process and on 2 (DDP): same data, same losses.

The 2-process run is a real ``lrsched fit --trainer.strategy ddp`` in a subprocess (Lightning
launches the second process itself); the 1-process run is the same command without DDP, in-process.
Before the data module brought its own unshuffled sampler, Lightning's shuffling DistributedSampler
gave the two processes parts of different global batches, and the first-epoch train_loss differed
by 5e-3 (relative).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_lrsched.cli import main

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 2
METRICS = ("train_loss", "val_loss", "val_acc")


def command(devices: int, out: Path) -> list[str]:
    strategy = ["--trainer.strategy", "ddp"] if devices > 1 else []
    return [
        "fit",
        *("--trainer.accelerator", "cpu", "--trainer.devices", str(devices), *strategy),
        *("--trainer.max_epochs", str(EPOCHS), "--trainer.default_root_dir", str(out)),
        *("--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(out)),
        *("--trainer.enable_checkpointing", "false", "--trainer.enable_model_summary", "false"),
        *("--seed_everything", "7", "--data.seed", "3"),
    ]


def epoch_metrics(out: Path) -> dict[tuple[int, str], float]:
    """``(epoch, metric) -> value`` from the run's ``metrics.csv``."""
    (path,) = out.glob("lightning_logs/version_*/metrics.csv")
    values = {}
    with path.open() as file:
        for row in csv.DictReader(file):
            for metric in METRICS:
                if row.get(metric):
                    values[int(row["epoch"]), metric] = float(row[metric])
    return values


def test_two_ddp_processes_train_like_one(tmp_path: Path):
    two, one = tmp_path / "two", tmp_path / "one"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env["OMP_NUM_THREADS"] = "1"
    with subprocess.Popen(
        [sys.executable, "-m", "lightning_lrsched", *command(2, two)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # one process group: a timeout kills rank 1 with rank 0
    ) as ddp:
        main(command(1, one))  # meanwhile
        try:
            output, _ = ddp.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(ddp.pid, signal.SIGKILL)
            output, _ = ddp.communicate()
            pytest.fail(f"the 2-process run did not finish in 240 s:\n{output[-3000:]}")
    assert ddp.returncode == 0, output[-3000:]
    assert "Starting with 2 processes" in output, "the subprocess did not run 2 DDP processes"
    single, double = epoch_metrics(one), epoch_metrics(two)
    assert set(single) == {(epoch, metric) for epoch in range(EPOCHS) for metric in METRICS}
    assert set(double) == set(single)
    for key, value in single.items():
        assert double[key] == pytest.approx(value, rel=1e-6), f"{key}: 1 process {value}, 2 processes {double[key]}"
