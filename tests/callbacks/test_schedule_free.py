"""Schedule-free optimizers: by name, as a grid entry, and switched between train and eval mode by the package.

Needs the ``schedulefree`` extra for the training tests; without it (simulated by hiding the module)
naming one is a one-line error that says how to install it.
"""

from __future__ import annotations

import sys

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_lrsched import ScheduleFreeMode
from lightning_lrsched.compare import compare
from lightning_lrsched.compare.command import compare_settings
from lightning_lrsched.compare.grid import NO_SCHEDULE, build_grid
from lightning_lrsched.errors import InvalidValue, UsageError
from lightning_lrsched.models import SyntheticClassifier, SyntheticDataModule
from lightning_lrsched.optim import make_optimizer

pytestmark = pytest.mark.usefixtures("one_thread")
HINT = "pip install lightning-lrsched[schedulefree]"


class ModeRecorder(SyntheticClassifier):
    """Records the optimizer's mode at every step and the weights each validation sees."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.train_modes: list[bool] = []
        self.val_modes: list[bool] = []
        self.val_weights: list[torch.Tensor] = []

    def _mode(self) -> bool:
        return self.trainer.optimizers[0].param_groups[0]["train_mode"]

    def training_step(self, batch, batch_idx):
        self.train_modes.append(self._mode())
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        if batch_idx == 0:
            self.val_modes.append(self._mode())
            self.val_weights.append(self.net[0].weight.detach().clone())
        super().validation_step(batch, batch_idx)


@pytest.mark.parametrize("optimizer", [{"name": "adamw_schedulefree", "lr": 0.01}, {"name": "sgd_schedulefree"}])
def test_trains_in_train_mode_and_validates_and_saves_in_eval_mode(tmp_path, optimizer):
    pytest.importorskip("schedulefree")
    pl.seed_everything(0, verbose=False)
    model = ModeRecorder(optimizer=optimizer, lr=0.5, scheduler=None)
    assert any(isinstance(c, ScheduleFreeMode) for c in model.configure_callbacks())  # attached by the model
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = pl.Trainer(
        max_epochs=3,
        limit_train_batches=5,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[checkpoint],
        default_root_dir=tmp_path,
    )
    trainer.fit(model, SyntheticDataModule(seed=0))
    optimizer_ = trainer.optimizers[0]
    assert model.train_modes == [True] * 15 and model.val_modes == [False] * 4  # the sanity check too
    # Validation saw the evaluation weights (fit ends in eval mode), not the training point.
    assert torch.equal(model.val_weights[-1], model.net[0].weight)
    optimizer_.train()
    assert not torch.allclose(model.val_weights[-1], model.net[0].weight)
    optimizer_.eval()
    assert trainer.callback_metrics["val_loss"] < 0.69  # it learned (ln 2 at the start)
    # The checkpoint saved at validation's end holds the evaluation weights and says so.
    saved = torch.load(checkpoint.last_model_path, weights_only=False)
    assert torch.equal(saved["state_dict"]["net.0.weight"], model.val_weights[-1])
    assert [g["train_mode"] for g in saved["optimizer_states"][0]["param_groups"]] == [False]


def test_a_torch_optimizer_is_left_alone(tmp_path):
    model = SyntheticClassifier(optimizer="adamw", scheduler=None)
    assert not any(isinstance(c, ScheduleFreeMode) for c in model.configure_callbacks())
    trainer = pl.Trainer(
        max_steps=2, logger=False, enable_progress_bar=False, enable_checkpointing=False, callbacks=[ScheduleFreeMode()]
    )
    trainer.fit(model, SyntheticDataModule(seed=0))  # no train()/eval() to call: nothing breaks
    assert trainer.global_step == 2


def test_a_schedule_free_grid_entry_trains_at_a_constant_lr_with_its_optimizer():
    pytest.importorskip("schedulefree")
    specs, _ = build_grid(["cosine", {"name": "sgd_schedulefree", "lr": 0.5}, "adamw_schedulefree"], ["cpu:1"], [0], 2)
    assert [s.label for s in specs] == ["cosine", "sgd_schedulefree", "adamw_schedulefree"]
    assert [s.model["init_args"].get("optimizer") for s in specs] == [
        None,
        {"name": "sgd_schedulefree", "lr": 0.5},
        {"name": "adamw_schedulefree"},
    ]
    assert specs[1].schedule == {**NO_SCHEDULE, "interval": "epoch"}
    assert len({s.stack_key for s in specs}) == 3  # another optimizer: never stacked with the scheduled runs


@pytest.mark.parametrize("lr", [-1, 0, float("nan"), "abc"])
def test_a_schedule_free_entry_with_a_bad_lr_is_refused_before_training(lr):
    pytest.importorskip("schedulefree")  # AdamWScheduleFree itself takes lr=-1 and trains on to "diverged"
    with pytest.raises(InvalidValue, match=r"`adamw_schedulefree`: `lr` must be a positive number: got lr="):
        build_grid([{"name": "adamw_schedulefree", "lr": lr}], ["cpu:1"], [0], 1)
    with pytest.raises(UsageError, match=r"^--schedules: `adamw_schedulefree`: `lr` must be a positive number"):
        compare_settings(["--schedules", f"adamw_schedulefree(lr={lr})"])


def test_a_schedule_free_record_stores_its_optimizer_not_the_constant_schedule():
    pytest.importorskip("schedulefree")
    specs, _ = build_grid(["cosine", {"name": "adamw_schedulefree", "lr": 0.01}], ["cpu:1"], [0], 1)
    cosine, free = (spec.record("ok", "none") for spec in specs)
    assert (free.schedule, free.params) == ("adamw_schedulefree", {"lr": 0.01})
    assert (cosine.schedule, cosine.params) == ("cosine", {"eta_min": 0.0, "interval": "epoch"})


def test_compare_runs_a_schedule_free_baseline(tmp_path):
    pytest.importorskip("schedulefree")
    comparison = compare(
        ["cosine", {"name": "adamw_schedulefree", "lr": 0.01}], max_epochs=2, output=tmp_path, logger="none"
    )
    assert [(r.label, r.status, r.epochs) for r in comparison.records] == [
        ("cosine", "ok", 2),
        ("adamw_schedulefree", "ok", 2),
    ]
    free = comparison.records[1]
    assert {lr for _, lr in free.lr_curve} == {0.01}  # no schedule: the optimizer's own LR


@pytest.fixture
def without_schedulefree(monkeypatch):
    monkeypatch.setitem(sys.modules, "schedulefree", None)  # `import schedulefree` raises ImportError


def test_without_the_extra_naming_one_is_a_one_line_error(without_schedulefree):
    message = rf"`optimizer`: adamw_schedulefree needs the optional extra `schedulefree`: {HINT}".replace("[", r"\[")
    with pytest.raises(InvalidValue, match=f"^{message}$"):
        make_optimizer("adamw_schedulefree", torch.nn.Linear(2, 1).parameters(), lr=0.1)
    with pytest.raises(InvalidValue, match=message):
        SyntheticClassifier(optimizer="adamw_schedulefree", scheduler=None)
    with pytest.raises(InvalidValue, match=message):
        build_grid(["cosine", "adamw_schedulefree"], ["cpu:1"], [0], 1)
    with pytest.raises(UsageError, match=f"^--schedules: {message}$"):
        compare_settings(["--schedules", "cosine,adamw_schedulefree"])
    # The torch optimizers need nothing more.
    assert type(make_optimizer("adamw", torch.nn.Linear(2, 1).parameters(), lr=0.1)).__name__ == "AdamW"
