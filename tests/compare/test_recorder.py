"""What a comparison records per run: bounded series, thinned past their limit, evenly, from the first point on; a
module that logs no ``val_loss`` is refused at its first validation."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from harness import quiet_trainer
from torch.utils.data import DataLoader, TensorDataset

from lightning_lrsched.compare.recorder import BoundedSeries, RunRecorder
from lightning_lrsched.errors import InvalidValue


@pytest.mark.parametrize("limit", [1, 3, 4])
def test_a_bounded_series_past_its_limit_keeps_every_stride_th_point_and_never_twice_the_limit(limit):
    series = BoundedSeries(limit)
    for n in range(1, 40 * limit + 1):
        series.add(n - 1, 10.0 * (n - 1))  # the n-th point of the run
        kept = [x for x, _ in series.points]
        assert len(kept) < 2 * limit, f"{n} points added"
        assert kept == list(range(0, n, series.stride)), f"{n} points added: stride {series.stride}, kept {kept}"
        assert series.points == [[x, 10.0 * x] for x in kept]
        if n >= 2 * limit:
            assert len(kept) >= limit, "thinned below its limit"
    assert series.stride >= 32  # the test went well past the limit, several halvings deep


def test_a_bounded_series_within_its_limit_keeps_every_point():
    series = BoundedSeries()
    for step in range(2 * 2000 - 1):
        series.add(step, 0.1)
    assert series.stride == 1 and [x for x, _ in series.points] == list(range(2 * 2000 - 1))


class _LogsValidLoss(L.LightningModule):
    """Logs its validation loss as ``valid/loss``: the report, which ranks on ``val_loss``, would have nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return F.mse_loss(self.linear(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx):
        self.log("valid/loss", F.mse_loss(self.linear(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_module_that_logs_no_val_loss_is_refused_at_the_sanity_check_before_training(tmp_path, one_thread):
    data = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    model = _LogsValidLoss()
    trainer = quiet_trainer(tmp_path, RunRecorder(), max_epochs=1)
    with pytest.raises(InvalidValue, match=r"_LogsValidLoss logs no `val_loss` .*\(it logged: valid/loss\)"):
        trainer.fit(model, data, data)
    assert trainer.global_step == 0


class _SkipsSanity(_LogsValidLoss):
    """Validates nothing while Lightning sanity-checks (a common early return), then logs under ``key``."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def validation_step(self, batch, batch_idx):
        if self.trainer.sanity_checking:
            return None
        self.log(self.key, F.mse_loss(self.linear(batch[0]), batch[1]))
        return None


def test_a_module_that_skips_the_sanity_check_is_judged_at_its_first_validation(tmp_path, one_thread):
    data = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    recorder = RunRecorder()
    trainer = quiet_trainer(tmp_path, recorder, max_epochs=2)
    trainer.fit(_SkipsSanity("val_loss"), data, data)  # it logs val_loss: it was refused for the empty sanity check
    assert len(recorder.val.points) == 2
    trainer = quiet_trainer(tmp_path, RunRecorder(), max_epochs=2)
    with pytest.raises(InvalidValue, match=r"_SkipsSanity logs no `val_loss` .*\(it logged: valid/loss\)"):
        trainer.fit(_SkipsSanity("valid/loss"), data, data)
    assert trainer.global_step == 2 and trainer.current_epoch == 0  # refused at the first epoch's validation


@pytest.mark.parametrize("accumulate", [1, 2])
def test_each_steps_lr_is_recorded_at_the_samples_seen_when_the_step_began(tmp_path, one_thread, accumulate):
    # 6 batches of 4: with gradients accumulated over 2 batches, steps begin at 0, 8 and 16 samples (not 4, 12, 20).
    data = DataLoader(TensorDataset(torch.randn(24, 2), torch.randn(24, 1)), batch_size=4)
    recorder = RunRecorder()
    trainer = quiet_trainer(tmp_path, recorder, max_epochs=1, accumulate_grad_batches=accumulate, limit_val_batches=0)
    trainer.fit(_LogsValidLoss(), data)
    assert [point[0] for point in recorder.lr.points] == list(range(0, 24, 4 * accumulate))
