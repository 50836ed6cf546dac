"""LightningModules written as a user writes them, knowing nothing of lightning-lrsched.

No ``scheduler`` argument; each ``configure_optimizers`` builds its own optimizer (and a scheduler of
its own, which a comparison replaces). Each says how to score a batch (``stacked_metrics``) so that
it can be stacked, and logs ``train_loss``, ``val_loss`` and ``val_acc``.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn


class OwnClassifier(L.LightningModule):
    """A small MLP; subclasses choose the optimizer."""

    def __init__(self, hidden: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 2))

    def forward(self, x):
        return self.net(x)

    def stacked_metrics(self, batch):
        x, y = batch
        logits = self(x)
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(-1) == y).float().mean()}

    def training_step(self, batch, batch_idx):
        loss = self.stacked_metrics(batch)["loss"]
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        metrics = self.stacked_metrics(batch)
        self.log("val_loss", metrics["loss"])
        self.log("val_acc", metrics["acc"])


class MomentumClassifier(OwnClassifier):
    """SGD with momentum, Nesterov and weight decay, and a StepLR of its own (replaced by the comparison's)."""

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=1e-3)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.01)}


class OwnPlateauClassifier(OwnClassifier):
    """SGD with a ReduceLROnPlateau of its own on val_loss: Lightning steps it only once a validation has run."""

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.2, momentum=0.9)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}


class TwoGroupClassifier(OwnClassifier):
    """AdamW with the Hugging Face split: weights decay, biases do not; betas and LR per group; a warmup of its own."""

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if n.endswith("weight")]
        no_decay = [p for n, p in self.named_parameters() if n.endswith("bias")]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0, "lr": 0.005}],
            lr=0.01,
            betas=(0.8, 0.95),
        )
        warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, step / 10))
        return [optimizer], [{"scheduler": warmup, "interval": "step"}]


class DropoutClassifier(MomentumClassifier):
    """Dropout in training: each stacked copy must draw the masks its run of its own draws."""

    def __init__(self) -> None:
        super().__init__(hidden=32, dropout=0.3)


class TwoOptimizers(OwnClassifier):
    def configure_optimizers(self):
        return [torch.optim.SGD(self.net[0].parameters(), lr=0.1), torch.optim.Adam(self.net[3].parameters())]


class ManualOptimization(OwnClassifier):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class NoOptimizer(OwnClassifier):
    def configure_optimizers(self):
        return None


class ShrinksAfterEachBatch(MomentumClassifier):
    """Changes its weights in a hook of its own after each step (as an EMA or a weight constraint does)."""

    def on_train_batch_end(self, outputs, batch, batch_idx):
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.mul_(0.99)
