"""The terminal view of a training run: the tutorials' per-epoch line, a progress bar, a closing summary.

``lrsched fit`` prints one line per epoch, in the tutorials' "Epoch, Loss, LR" spirit::

    Epoch  3/20  loss 0.4630  val_loss 0.4066  val_acc 0.8650  last-step lr 0.0905

where ``last-step lr`` is the LR the epoch's last optimizer step used; the closing summary's
``final lr`` is the one the run's last optimizer step used, and names that step. In a terminal a
progress bar shows the epoch running (``Epoch 3/20``, the same numbering); through a pipe or into
a file only the lines are written.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from rich.console import Console
from rich.table import Table
from torch.optim import Optimizer

METRICS = ("train_loss", "val_loss", "val_acc")
LABELS = {"train_loss": "loss"}
"""Metric keys and their label in the epoch line (Keras' ``loss``, ``val_loss``, ``val_acc``)."""


def epoch_label(epoch: int, max_epochs: int | None) -> str:
    """``Epoch 3/20``: 1-based, as in the tutorials, with the run's length when it has one.

    Example:
        >>> epoch_label(2, 20), epoch_label(2, -1)
        ('Epoch  3/20', 'Epoch 3')
    """
    if max_epochs is None or max_epochs < 1:
        return f"Epoch {epoch + 1}"
    return f"Epoch {epoch + 1:>{len(str(max_epochs))}}/{max_epochs}"


class EpochProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar without its metrics (the epoch line has them) and with the epoch line's numbering.

    Only in a terminal: through a pipe a bar is a stream of carriage returns, so it turns itself off.
    Put :class:`EpochReport` before it in the callbacks, so the epoch line is written before the bar
    clears itself at the epoch's end.
    """

    def __init__(self) -> None:
        super().__init__(leave=False)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if not sys.stdout.isatty():
            self.disable()

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        return {}

    def init_train_tqdm(self) -> Any:
        bar = super().init_train_tqdm()
        # The epoch lines stay; a finished bar left under them would repeat the last one.
        bar.leave = False
        return bar

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(epoch_label(trainer.current_epoch, trainer.max_epochs))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        # Lightning's "`Trainer.fit` stopped" line comes next, on its own line rather than on the bar.
        if not self.train_progress_bar.disable:
            self.train_progress_bar.clear()


class EpochReport(Callback):
    """Print ``Epoch N/M  loss  val_loss  val_acc  last-step lr`` after every epoch, then a summary.

    ``last-step lr`` is the LR that the epoch's last optimizer step used (first param group of the first
    optimizer), and the summary's ``final lr`` is the one the run's last step used: one meaning of
    "final LR" everywhere. Lines go through the progress bar when one is showing, so they do not
    land on it. Only rank zero prints.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.lr = math.nan
        self.step: int | None = None
        self.best: dict[str, float] = {}
        self.started = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started, self.best, self.lr, self.step = time.perf_counter(), {}, math.nan, None

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer) -> None:
        if optimizer is trainer.optimizers[0]:
            self.lr, self.step = optimizer.param_groups[0]["lr"], trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        values = {k: _number(trainer.callback_metrics.get(k)) for k in METRICS}
        loss_key = _train_loss_key(trainer.callback_metrics)
        values["train_loss"] = _number(trainer.callback_metrics.get(loss_key)) if loss_key else math.nan
        for key, value in values.items():
            if not math.isnan(value):
                better = max if key.endswith("acc") else min
                self.best[key] = better(self.best.get(key, value), value)
        if trainer.is_global_zero:
            shown = {k: v for k, v in values.items() if k != "train_loss" or loss_key or "train_loss" in self.best}
            labels = {**LABELS, "train_loss": LABELS["train_loss"] if loss_key in (None, "train_loss") else loss_key}
            cells = "  ".join(f"{labels.get(k, k)} {_fmt(v)}" for k, v in shown.items())
            lr = "-" if self.step is None else _lr(self.lr)
            self._print(
                trainer, f"{epoch_label(trainer.current_epoch, trainer.max_epochs)}  {cells}  last-step lr {lr}"
            )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        caption = "final lr: the LR the last optimizer step used" + (
            "" if self.step is None else f" (step {self.step})"
        )
        table = Table(title="Summary", caption=caption, show_header=True)
        for column in ("epochs", "steps", "wall time", "final lr", *(f"best {LABELS.get(k, k)}" for k in METRICS)):
            table.add_column(column, justify="right")
        table.add_row(
            str(trainer.current_epoch),
            str(trainer.global_step),
            f"{time.perf_counter() - self.started:.1f} s",
            "-" if self.step is None else _lr(self.lr),
            *(_fmt(self.best.get(k, math.nan)) for k in METRICS),
        )
        self.console.print(table)

    def _print(self, trainer: L.Trainer, line: str) -> None:
        bar = trainer.progress_bar_callback
        # TQDM and Rich bars say whether they are shown; the ProgressBar base class does not.
        if bar is not None and getattr(bar, "is_enabled", False):
            bar.print(line)
        else:
            self.console.print(line, markup=False, soft_wrap=True)


def _train_loss_key(metrics: dict[str, Any]) -> str | None:
    """The training loss the module logs: ``train_loss``, else the one metric that names a loss outside validation.

    ``None`` when it logs none: the epoch line then leaves the loss out rather than show ``loss -`` every epoch.
    """
    if "train_loss" in metrics:
        return "train_loss"
    losses = [k for k in metrics if "loss" in k.lower() and not k.lower().startswith(("val", "test"))]
    epoch = [k for k in losses if not k.endswith("_step")]
    return next(iter(epoch or losses), None)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _lr(value: float) -> str:
    # Three significant digits keep a 200-epoch line within 80 columns.
    return f"{value:.3g}"


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"
