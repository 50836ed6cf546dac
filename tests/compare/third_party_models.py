"""Modules we did not write: Lightning's demo BoringModel, and a BatchNorm ResNet from a tiny `transformers` config.

Each is used as it is, save what compare's report reads: ``val_loss`` logged in validation. The
ResNet also says how to score a batch (``stacked_metrics``) so that it can be stacked.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.demos.boring_classes import BoringModel
from torch.utils.data import DataLoader, TensorDataset


class LoggingBoringModel(BoringModel):
    """Lightning's BoringModel (SGD at 0.1 with a StepLR of its own), logging its validation loss."""

    def validation_step(self, batch, batch_idx):
        out = super().validation_step(batch, batch_idx)
        self.log("val_loss", out["x"])
        return out


class TinyResNet(L.LightningModule):
    """``transformers``' ResNet (BatchNorm) from a tiny config, SGD with momentum and weight decay."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import ResNetConfig, ResNetForImageClassification

        config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=2)
        self.net = ResNetForImageClassification(config)

    def stacked_metrics(self, batch):
        x, y = batch
        logits = self.net(pixel_values=x).logits
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(-1) == y).float().mean()}

    def training_step(self, batch, batch_idx):
        return self.stacked_metrics(batch)["loss"]

    def validation_step(self, batch, batch_idx):
        metrics = self.stacked_metrics(batch)
        self.log("val_loss", metrics["loss"])
        self.log("val_acc", metrics["acc"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)


class TinyImages(L.LightningDataModule):
    """3x16x16 images whose class is whether the red channel is brighter than the blue one."""

    def __init__(self, seed: int = 0, batch_size: int = 16) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(192, 3, 16, 16, generator=generator)
        y = (x[:, 0].mean((1, 2)) > x[:, 2].mean((1, 2))).long()
        self.train_set, self.val_set = TensorDataset(x[:128], y[:128]), TensorDataset(x[128:], y[128:])
        self.batch_size = batch_size
        self.seed = seed

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, generator=generator)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size)
