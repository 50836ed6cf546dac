"""`LRRecorder`: a test callback that writes down the LR Lightning actually applies, step by step.

Add it from the command line (``--trainer.callbacks+=lr_recorder.LRRecorder
--trainer.callbacks.path=lr.json``), from a config file, or in a Trainer's ``callbacks``. It also
holds :func:`plateau_reference`, the LR torch's ``ReduceLROnPlateau`` gives for the same metrics.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


class LRRecorder(Callback):
    """Record every optimizer step's LRs and every fresh value of ``monitor``, and write them as JSON.

    ``on_before_optimizer_step`` runs inside ``optimizer.step()``, before the update: the LRs it sees
    are the ones the update uses (a ``plateau`` decision was applied earlier, by ``PlateauDriver`` at
    the end of the validation run before this step).

    Args:
        path: the JSON file written after every validation run and at the end of ``fit``:
            ``steps`` (``global_step`` of each optimizer step), ``epochs``, ``lrs`` (one list of
            param-group LRs per step), ``metrics`` (``monitor`` after each validation run, sanity
            check excluded), ``metric_steps`` (``global_step`` when each was logged), ``schedule``
            (the module's ``schedule.to_dict()``, if it has one) and ``run`` (the Trainer's
            ``num_training_batches`` and ``estimated_stepping_batches``, and the model's ``lr``).
        monitor: the metric to record at the end of each validation run.
    """

    def __init__(self, path: str, monitor: str = "val_loss") -> None:
        self.path = Path(path)
        self.monitor = monitor
        self.steps: list[int] = []
        self.epochs: list[int] = []
        self.lrs: list[list[float]] = []
        self.metrics: list[float] = []
        self.metric_steps: list[int] = []
        self.schedule: dict[str, Any] | None = None
        self.run: dict[str, Any] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        schedule = getattr(pl_module, "schedule", None)
        self.schedule = None if schedule is None else schedule.to_dict()
        self.run = {
            "num_training_batches": trainer.num_training_batches,
            "estimated_stepping_batches": trainer.estimated_stepping_batches,
            "lr": pl_module.hparams.get("lr"),
        }

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        self.steps.append(trainer.global_step)
        self.epochs.append(trainer.current_epoch)
        self.lrs.append([float(group["lr"]) for group in trainer.optimizers[0].param_groups])

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None:
            self.metrics.append(float(value))
            self.metric_steps.append(trainer.global_step)
        self.write()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write()

    def record(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "epochs": self.epochs,
            "lrs": self.lrs,
            "metrics": self.metrics,
            "metric_steps": self.metric_steps,
            "schedule": self.schedule,
            "run": self.run,
        }

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.record()))


def plateau_reference(
    metrics: Sequence[float], metric_steps: Sequence[int], num_steps: int, lr: float, **kwargs: Any
) -> np.ndarray:
    """The LR at each of ``num_steps`` optimizer steps under torch's ``ReduceLROnPlateau(**kwargs)``.

    ``metrics[i]``, logged when ``global_step`` was ``metric_steps[i]``, is fed to torch's scheduler
    once, in order; the LR it leaves is the LR of every optimizer step from ``metric_steps[i]`` on.
    """
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **kwargs)
    expected = np.empty(num_steps)
    start = 0
    for value, step in zip(metrics, metric_steps, strict=True):
        expected[start:step] = optimizer.param_groups[0]["lr"]
        scheduler.step(value)
        start = step
    expected[start:] = optimizer.param_groups[0]["lr"]
    return expected
