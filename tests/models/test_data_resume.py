"""A run killed after a mid-epoch checkpoint resumes on the next batch of the same epoch.

Real Trainer runs: an uninterrupted run, and a run that ``ModelCheckpoint(every_n_train_steps=...)``
saves and that is then killed, resumed with ``trainer.fit(..., ckpt_path=<the file it wrote>)`` to
the same end. From the checkpoint on, the resumed run sees the uninterrupted run's batches, in the
same order, at the same steps, and ends with bit-identical weights. Before the data module's loader
was resumable, a resume at step 13 trained batches 0-3 of epoch 1 again and never 5-8.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from harness import quiet_trainer

from lightning_lrsched.models import SyntheticClassifier, SyntheticDataModule

EPOCHS = 3
BATCHES = 9  # per epoch: 140 training samples in global batches of 16
SCHEDULES = {
    "cosine": "cosine",  # the tutorial's, one LR per epoch
    "warmup_cosine": {"name": "warmup_cosine", "warmup": 4},  # a new LR every step, across the checkpoint
    # no schedule: nothing asks for estimated_stepping_batches, so Lightning restores the loader's state too
    "constant": None,
}


class Killed(Exception):
    pass


class Kill(L.Callback):
    """Raise before training step ``at``, as a killed process would stop."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int):
        if trainer.global_step == self.at:
            raise Killed(f"killed at step {self.at}")


class Batches(L.Callback):
    """Every training batch: ``(global_step, epoch, batch_idx)`` and its inputs."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, int, int]] = []
        self.inputs: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int):
        self.steps.append((trainer.global_step, trainer.current_epoch, batch_idx))
        self.inputs.append(batch[0].clone())


def fit(root: Path, scheduler: Any, *callbacks: L.Callback, ckpt_path: Path | None = None) -> L.LightningModule:
    torch.manual_seed(0)  # the initial weights; a resumed run loads them from the checkpoint
    model = SyntheticClassifier(optimizer={"name": "sgd", "momentum": 0.9}, lr=0.2, scheduler=scheduler)
    trainer = quiet_trainer(root, *callbacks, devices=1, max_epochs=EPOCHS, num_sanity_val_steps=0)
    trainer.fit(model, SyntheticDataModule(num_samples=200, batch_size=16, seed=3), ckpt_path=ckpt_path)
    assert trainer.global_step == EPOCHS * BATCHES
    return model


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[L.LightningModule, Batches]]:
    runs = {}
    for name, scheduler in SCHEDULES.items():
        batches = Batches()
        runs[name] = fit(tmp_path_factory.mktemp(name), scheduler, batches), batches
    return runs


@pytest.mark.parametrize(
    ("name", "checkpoint_at"),
    [
        ("cosine", 13),  # epoch 1 after its batch 3
        ("warmup_cosine", 13),
        ("warmup_cosine", 2),  # before the end of warmup, in the first epoch
        ("constant", 13),
        ("cosine", 18),  # the end of epoch 1: the resume starts epoch 2
    ],
)
def test_a_resumed_run_trains_on_the_batches_of_the_uninterrupted_run(
    tmp_path: Path, uninterrupted, name: str, checkpoint_at: int
):
    reference, seen = uninterrupted[name]
    checkpoints = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=tmp_path / "ckpt", every_n_train_steps=checkpoint_at, save_top_k=-1, filename="{step}"
    )
    with pytest.raises(Killed):
        fit(tmp_path, SCHEDULES[name], checkpoints, Kill(checkpoint_at + 1))
    ckpt = tmp_path / "ckpt" / f"step={checkpoint_at}.ckpt"
    assert ckpt.exists(), f"ModelCheckpoint wrote {sorted(p.name for p in ckpt.parent.iterdir())}"

    after = Batches()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = fit(tmp_path, SCHEDULES[name], after, ckpt_path=ckpt)
    assert not [w for w in caught if "not resumable" in str(w.message)], "Lightning found the loader not resumable"

    epoch, batch_idx = divmod(checkpoint_at, BATCHES)
    assert after.steps[0] == (checkpoint_at, epoch, batch_idx), "the resume starts on the batch after the checkpoint"
    assert after.steps == seen.steps[checkpoint_at:]
    for step, (x, expected) in enumerate(zip(after.inputs, seen.inputs[checkpoint_at:], strict=True), checkpoint_at):
        assert torch.equal(x, expected), f"step {step} trained on another batch than the uninterrupted run"
    for (key, value), expected in zip(resumed.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.equal(value, expected), f"{key} differs from the uninterrupted run's"
