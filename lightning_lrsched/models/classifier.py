"""`SyntheticClassifier`: the tutorials' classifier as a LightningModule, scheduled by name."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lightning_lrsched.lightning import PlateauDriver
from lightning_lrsched.optim import is_schedule_free, make_optimizer, optimizer_spec
from lightning_lrsched.schedule_free import ScheduleFreeMode
from lightning_lrsched.schedules import Schedule
from lightning_lrsched.schedules.tutorial import resolve_schedule
from lightning_lrsched.validation import check_int, check_positive


class SyntheticClassifier(L.LightningModule):
    """A linear classifier (10 inputs → 2 classes by default) trained with a named schedule.

    ``configure_optimizers`` returns Lightning's dict built by :meth:`Schedule.lightning_config`,
    so step-based schedules step per optimizer step, durations resolve against the real run,
    and ``plateau`` monitors its metric. Logs ``train_loss``, ``val_loss``, ``val_acc`` (epoch
    means, synced across processes) and ``test_loss``, ``test_acc``.

    Args:
        optimizer: ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``, or ``{"name": ..., **torch_args}``;
            or ``"adamw_schedulefree"``, ``"sgd_schedulefree"`` (extra ``schedulefree``; give ``scheduler=None``),
            whose train/eval mode :class:`~lightning_lrsched.ScheduleFreeMode` switches.
        lr: the learning rate (peak LR of the schedule; ignored by schedules with absolute LRs).
        scheduler: a schedule name (the seed six get the tutorials' arguments), a spec
            ``{"name": ..., **params}``, a :class:`Schedule`, or ``None`` for a constant LR.
        input_dim: input features.
        num_classes: output classes.
        hidden: widths of hidden layers (ReLU between); empty for the linear model.
        weight_decay_schedule: a schedule (as ``scheduler``) for the optimizer's weight decay, relative to
            its value (e.g. ``{"name": "cosine"}``), or ``None``.
        momentum_schedule: a schedule for SGD's momentum or Adam's first beta, or ``None``.

    Example:
        >>> model = SyntheticClassifier(optimizer={"name": "sgd", "momentum": 0.9}, scheduler="cosine")
        >>> model(torch.zeros(4, 10)).shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        optimizer: str | dict[str, Any] = "sgd",
        lr: float = 0.1,
        scheduler: str | dict[str, Any] | None = "step",
        input_dim: int = 10,
        num_classes: int = 2,
        hidden: Sequence[int] = (),
        weight_decay_schedule: str | dict[str, Any] | None = None,
        momentum_schedule: str | dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        optimizer_spec(optimizer)
        check_positive("lr", lr)
        check_int("input_dim", input_dim, minimum=1)
        check_int("num_classes", num_classes, minimum=2)
        widths = [check_int(f"hidden[{i}]", h, minimum=1) for i, h in enumerate(hidden)]
        self.schedule: Schedule | None = None if scheduler is None else resolve_schedule(scheduler)
        # Hyperparameters other than the LR, each with its own schedule (None: left as the optimizer has it).
        self.param_schedules: dict[str, Schedule] = {
            param: resolve_schedule(spec)
            for param, spec in (("weight_decay", weight_decay_schedule), ("momentum", momentum_schedule))
            if spec is not None
        }
        self.save_hyperparameters()
        given = {"scheduler": scheduler, "weight_decay_schedule": weight_decay_schedule}
        given["momentum_schedule"] = momentum_schedule
        for name, value in given.items():
            if isinstance(value, Schedule):  # saved as its spec, so load_from_checkpoint rebuilds the same one
                self.hparams[name] = value.to_dict()
        dims = [input_dim, *widths, num_classes]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(dims)):
            layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(dims) - 2 else [])
        self.net = nn.Sequential(*layers)
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.example_input_array = torch.zeros(1, input_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, sync_dist=True, prog_bar=True)
        return loss

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, accuracy: MulticlassAccuracy) -> None:
        x, y = batch
        logits = self(x)
        accuracy(logits, y)
        self.log(f"{stage}_loss", F.cross_entropy(logits, y), sync_dist=True, prog_bar=True)
        self.log(f"{stage}_acc", accuracy, prog_bar=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_acc)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_acc)

    def stacked_metrics(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What the steps compute on ``batch``, as plain tensors: the stacking protocol of ``lrsched compare``.

        ``loss`` is what ``training_step`` minimises and ``validation_step`` logs as ``val_loss``;
        ``acc`` is the batch's ``val_acc``. No ``self.log`` and no metric objects, so ``torch.func.vmap``
        can run it over stacked copies (see :mod:`lightning_lrsched.compare.stacked`).
        """
        x, y = batch
        logits = self(x)
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(dim=-1) == y).float().mean()}

    def configure_callbacks(self) -> list[Callback]:
        # The `plateau` schedule follows validation results through this callback.
        callbacks: list[Callback] = [PlateauDriver()]
        if is_schedule_free(self.hparams["optimizer"]):
            # Schedule-free optimizers evaluate and checkpoint in their eval mode: this callback switches it.
            callbacks.append(ScheduleFreeMode())
        return callbacks

    def configure_optimizers(self) -> Any:
        optimizer = make_optimizer(self.hparams["optimizer"], self.parameters(), self.hparams["lr"])
        configs = [] if self.schedule is None else [self.schedule.lightning_config(optimizer, self.trainer)]
        configs += [s.lightning_config(optimizer, self.trainer, param=p) for p, s in self.param_schedules.items()]
        if not configs:
            return optimizer
        if len(configs) == 1:
            return {"optimizer": optimizer, "lr_scheduler": configs[0]}
        return [optimizer], configs
