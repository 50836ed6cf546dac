"""Reading a run plan from a Trainer: ``plan_from_trainer``.

It is a pure function of a few public Trainer attributes, so most tests give it a stand-in
trainer; one real ``Trainer`` test checks that those attributes mean what the plan assumes (the
length it predicts is the length Lightning runs).
"""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import pytest
import torch

from lightning_lrsched.lightning import plan_from_trainer

INF = math.inf


def stand_in(estimated, batches, max_epochs=3, max_steps=-1, accumulate=1, global_step=0, epoch=0):
    """The Trainer attributes ``from_trainer`` reads, with the values Lightning gives them."""
    return SimpleNamespace(
        estimated_stepping_batches=estimated,
        num_training_batches=batches,
        accumulate_grad_batches=accumulate,
        max_epochs=max_epochs,
        max_steps=max_steps,
        global_step=global_step,
        current_epoch=epoch,
    )


@pytest.mark.parametrize(
    ("trainer", "total", "spe", "epochs"),
    [
        pytest.param(stand_in(30, 10), 30, 10, 3, id="epochs"),
        pytest.param(stand_in(15, 10, accumulate=2), 15, 5, 3, id="accumulation"),
        pytest.param(stand_in(18, 7, accumulate=2), 18, 4, 5, id="partial-accumulation-steps"),
        pytest.param(stand_in(25, 10, max_steps=25), 25, 10, 3, id="max_steps-mid-epoch"),
        # An iterable dataset without __len__: Lightning's estimate is max_steps whatever max_epochs says.
        pytest.param(stand_in(100, INF, max_epochs=-1, max_steps=100), 100, None, None, id="iterable-max_steps"),
        pytest.param(stand_in(-1, INF, max_epochs=3), None, None, 3, id="iterable-max_epochs"),
        pytest.param(stand_in(100, INF, max_epochs=3, max_steps=100), None, None, None, id="iterable-both-limits"),
        pytest.param(stand_in(INF, 10, max_epochs=-1), None, 10, None, id="unbounded"),
        pytest.param(stand_in(0, 0), None, None, 3, id="no-batches"),
    ],
)
def test_from_trainer(trainer, total, spe, epochs):
    plan = plan_from_trainer(trainer)
    assert (plan.total_steps, plan.steps_per_epoch, plan.epochs) == (total, spe, epochs)


def test_from_trainer_keeps_where_a_resumed_run_starts():
    plan = plan_from_trainer(stand_in(30, 10, global_step=12, epoch=1))
    assert (plan.global_step, plan.epoch) == (12, 1)
    assert plan.describe() == "30 optimizer steps = 3 epoch(s) of up to 10, resumed at step 12 (epoch 1)"


# -- one real Trainer ------------------------------------------------------------------------------------
class Unsized(torch.utils.data.IterableDataset):
    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for _ in range(14):
            yield torch.randn(4, generator=g), torch.tensor(0)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    ("dataset", "trainer_kwargs", "total", "spe"),
    [
        (
            torch.utils.data.TensorDataset(torch.randn(10, 4), torch.zeros(10, dtype=torch.long)),
            {"max_epochs": 3},
            15,
            5,
        ),
        (
            torch.utils.data.TensorDataset(torch.randn(10, 4), torch.zeros(10, dtype=torch.long)),
            {"max_steps": 7, "accumulate_grad_batches": 2},
            7,
            3,
        ),
        (Unsized(), {"max_steps": 9}, 9, None),
        (Unsized(), {"max_epochs": 2}, None, None),
    ],
    ids=["epochs", "max_steps-only", "unsized-max_steps", "unsized-max_epochs"],
)
def test_from_trainer_in_configure_optimizers_predicts_what_lightning_runs(
    tmp_path, dataset, trainer_kwargs, total, spe
):
    import lightning.pytorch as pl

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            return torch.nn.functional.cross_entropy(self.layer(batch[0]), batch[1])

        def configure_optimizers(self):
            self.plan = plan_from_trainer(self.trainer)
            return torch.optim.SGD(self.parameters(), lr=0.1)

    module = Module()
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_kwargs,
    )
    trainer.fit(module, torch.utils.data.DataLoader(dataset, batch_size=2))
    assert (module.plan.total_steps, module.plan.steps_per_epoch) == (total, spe)
    if total is not None:
        assert trainer.global_step == total
    if spe is not None:
        assert trainer.num_training_batches == module.plan.batches_per_epoch
