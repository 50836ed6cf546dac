"""The training loss a run records is the loss ``training_step`` returned, whatever the Trainer's settings."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from harness import quiet_trainer
from torch.utils.data import DataLoader, TensorDataset

from lightning_lrsched.compare.divergence import DivergenceCheck


class _Frozen(L.LightningModule):
    """A linear model at LR 0: every epoch's loss is the same, known one."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.linear(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.parametrize("accumulate", [1, 2, 3])
def test_the_recorded_training_loss_is_not_divided_by_gradient_accumulation(tmp_path, one_thread, accumulate):
    # Lightning hands callbacks the loss divided by accumulate_grad_batches; the record must not halve it.
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 4, generator=generator), torch.randn(24, 1, generator=generator)
    model = _Frozen()
    with torch.no_grad():
        expected = float(F.mse_loss(model.linear(x), y))
    check = DivergenceCheck(10.0)
    trainer = quiet_trainer(tmp_path, check, max_epochs=1, accumulate_grad_batches=accumulate)
    trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=4))
    assert check.epoch_losses == [pytest.approx(expected, rel=1e-6)]
