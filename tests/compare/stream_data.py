"""A datamodule whose loaders have no length: an IterableDataset streaming the synthetic task's samples."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset


class _Stream(IterableDataset):
    def __init__(self, seed: int, samples: int) -> None:
        self.seed, self.samples = seed, samples

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.samples):
            x = torch.randn(10, generator=generator)
            yield x, (x.sum() > 0).long()


class StreamData(L.LightningDataModule):
    """10 features, 2 classes (the sign of their sum), streamed: 96 training samples and 32 for validation."""

    def __init__(self, seed: int = 0, batch_size: int = 16) -> None:
        super().__init__()
        self.seed, self.batch_size = seed, batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Stream(self.seed, 96), batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_Stream(self.seed + 1, 32), batch_size=self.batch_size)
