"""A datamodule with the common multi-device mistake: a fixed per-device batch.

On N devices each process draws ``batch_size`` samples, so the global batch grows N-fold and the
run takes N times fewer steps: its LR by samples seen differs from the 1-device run's.
"""

from torch.utils.data import DataLoader, TensorDataset

from lightning_lrsched.models import SyntheticDataModule


class PerDeviceBatchData(SyntheticDataModule):
    def train_dataloader(self) -> DataLoader:
        rows = self.splits["train"]
        return DataLoader(TensorDataset(self.x[rows], self.y[rows]), batch_size=self.hparams.batch_size)
