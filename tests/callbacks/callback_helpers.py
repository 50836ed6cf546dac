"""A tiny LightningModule, a recording logger and a Trainer factory for the callback tests.

The module trains ``nn.Linear(10, 2)`` on a seeded in-memory dataset; its optimizer and scheduler
come from a factory, and it can log a scripted ``val_loss`` (one value per validation run), so a
test controls exactly what a plateau rule sees.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from harness import quiet_trainer
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader, TensorDataset

from lightning_lrsched import PlateauDriver
from lightning_lrsched.schedules import GroupSchedules, get_schedule

for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.ERROR)

BATCH = 32


OptimizerFactory = Callable[[list[dict[str, Any]]], torch.optim.Optimizer]


def f32(values: Sequence[float | None]) -> list[float | None]:
    """The values as the float32 numbers ``self.log`` turns them into."""
    return [None if v is None else float(np.float32(v)) for v in values]


def torch_reductions(
    values: Sequence[float],
    mode: str = "min",
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
) -> list[int]:
    """Indices of ``values`` at which torch's ReduceLROnPlateau reduces the LR."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode=mode,
        factor=0.5,
        patience=patience,
        threshold=threshold,
        threshold_mode=threshold_mode,
        cooldown=cooldown,
        eps=0.0,  # so that every decision shows up as a lower LR
    )
    out = []
    for i, value in enumerate(values):
        before = optimizer.param_groups[0]["lr"]
        scheduler.step(value)
        if optimizer.param_groups[0]["lr"] < before:
            out.append(i)
    return out


def data(batches: int = 5, seed: int = 0) -> DataLoader:
    """``batches`` batches of 32 seeded samples, always in the same order."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batches * BATCH, 10, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=BATCH)


def sgd(groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=1e-4)


def adam(groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=0.01, weight_decay=1e-5)


def catalog(spec: dict[str, Any], name: str | None = None) -> Callable[[torch.optim.Optimizer, pl.Trainer], Any]:
    """A scheduler factory for a catalog schedule, through ``Schedule.lightning_config``."""

    def make(optimizer: torch.optim.Optimizer, trainer: pl.Trainer) -> Any:
        return get_schedule(spec).lightning_config(optimizer, trainer, name=name)

    return make


def per_group(
    specs: Sequence[dict[str, Any]], name: str | None = None
) -> Callable[[torch.optim.Optimizer, pl.Trainer], Any]:
    """A scheduler factory giving param group ``i`` the catalog schedule ``specs[i]`` (GroupSchedules)."""

    def make(optimizer: torch.optim.Optimizer, trainer: pl.Trainer) -> Any:
        return GroupSchedules(list(specs)).lightning_config(optimizer, trainer, name=name)

    return make


class ScriptedModule(pl.LightningModule):
    """``nn.Linear(10, 2)`` with a configurable optimizer and scheduler, and scripted validation metrics.

    Args:
        optimizer: makes the optimizer from param groups.
        scheduler: ``(optimizer, trainer) -> scheduler or Lightning scheduler dict``, or ``None``.
        groups: 1 (all parameters) or 2 (weight and bias, the bias at a third of the LR).
        group_names: names for the param groups.
        scripted: ``{metric: values}``; validation run ``i`` logs ``values[i]`` for each metric
            (``None`` entries are not logged). Sanity checks log ``sanity_value``.
        per_epoch: index ``scripted`` by ``current_epoch`` instead of by validation run (needed
            when a resumed run must log the same values as the uninterrupted one).
        train_loss: ``{global_step: value}`` to replace the training loss at those steps (e.g. NaN).
    """

    def __init__(
        self,
        optimizer: OptimizerFactory = sgd,
        scheduler: Callable[[torch.optim.Optimizer, pl.Trainer], Any] | None = None,
        groups: int = 2,
        group_names: Sequence[str] | None = None,
        scripted: dict[str, Sequence[float | None]] | None = None,
        per_epoch: bool = False,
        sanity_value: float = 123.0,
        train_loss: dict[int, float] | None = None,
    ) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(10, 2)
        self.make_optimizer = optimizer
        self.make_scheduler = scheduler
        self.groups = groups
        self.group_names = group_names
        self.scripted = scripted or {}
        self.per_epoch = per_epoch
        self.sanity_value = sanity_value
        self.train_loss = train_loss or {}
        self.val_runs = 0

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.layer(x), y)
        if self.global_step in self.train_loss:
            loss = loss * 0 + self.train_loss[self.global_step]
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_step_loss", torch.nn.functional.cross_entropy(self.layer(x), y))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            for key in self.scripted:
                self.log(key, self.sanity_value)
            return
        index = self.current_epoch if self.per_epoch else self.val_runs
        self.val_runs += 1
        for key, values in self.scripted.items():
            if index < len(values) and values[index] is not None:
                self.log(key, float(values[index]))

    def configure_optimizers(self) -> Any:
        if self.groups == 1:
            groups = [{"params": list(self.parameters())}]
        else:
            groups = [{"params": [self.layer.weight]}, {"params": [self.layer.bias], "lr": 0.03}]
        for group, name in zip(groups, self.group_names or (), strict=False):
            group["name"] = name
        optimizer = self.make_optimizer(groups)
        if self.make_scheduler is None:
            return optimizer
        scheduler = self.make_scheduler(optimizer, self.trainer)
        if not isinstance(scheduler, dict):
            scheduler = {"scheduler": scheduler}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


class RecordingLogger(Logger):
    """Keeps every ``log_metrics`` call as ``(source, metrics, step)`` and every image logged.

    ``source`` is whatever the test set on the logger before the call (None by default), so a test
    can tell which callback logged what.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, dict[str, float], int | None]] = []
        self.images: list[tuple[str, list[Any], int | None]] = []
        self.source: Any = None

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls.append((self.source, dict(metrics), step))

    def log_image(self, key: str, images: list[Any], step: int | None = None) -> None:
        self.images.append((key, images, step))

    def series(self, source: Any = None) -> dict[tuple[str, int], float]:
        """``(key, step) -> value`` of the calls from ``source`` (the last value when repeated)."""
        return {(k, step): v for s, metrics, step in self.calls if s == source for k, v in metrics.items()}


def trainer(root: Any, **kwargs: Any) -> pl.Trainer:
    """:func:`harness.quiet_trainer` with the callback tests' defaults (3 epochs, logging every step, one validation
    batch, no sanity check) and a PlateauDriver, which a plateau schedule follows (harmless for the others)."""
    callbacks = list(kwargs.pop("callbacks", None) or ())
    if not any(isinstance(c, PlateauDriver) for c in callbacks):
        callbacks.append(PlateauDriver())
    defaults = {"max_epochs": 3, "log_every_n_steps": 1, "num_sanity_val_steps": 0, "limit_val_batches": 1}
    return quiet_trainer(root, *callbacks, **{**defaults, **kwargs})
