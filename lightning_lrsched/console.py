"""The terminal view of a training run: the tutorials' per-epoch line and a closing summary."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from rich.console import Console
from rich.table import Table

METRICS = ("train_loss", "val_loss", "val_acc")


class EpochReport(Callback):
    """Print ``Epoch N | train_loss | val_loss | val_acc | lr`` after every epoch, then a summary.

    ``lr`` is the LR the epoch started with (the first param group of the first optimizer), as in
    the tutorials. Only rank zero prints.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.lr = math.nan
        self.best: dict[str, float] = {}
        self.started = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started, self.best = time.perf_counter(), {}

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        values = {k: _number(trainer.callback_metrics.get(k)) for k in METRICS}
        for key, value in values.items():
            if not math.isnan(value):
                better = max if key.endswith("acc") else min
                self.best[key] = better(self.best.get(key, value), value)
        if trainer.is_global_zero:
            cells = " | ".join(f"{k} {_fmt(v)}" for k, v in values.items())
            self.console.print(f"Epoch {trainer.current_epoch + 1:>3} | {cells} | lr {self.lr:.4g}")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        table = Table(title="Summary", show_header=True)
        for column in ("epochs", "steps", "wall time", "final lr", *(f"best {k}" for k in METRICS)):
            table.add_column(column, justify="right")
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
        table.add_row(
            str(trainer.current_epoch),
            str(trainer.global_step),
            f"{time.perf_counter() - self.started:.1f} s",
            f"{lr:.4g}",
            *(_fmt(self.best.get(k, math.nan)) for k in METRICS),
        )
        self.console.print(table)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"
