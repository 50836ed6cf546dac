"""Per-group schedules: each param group follows its own schedule exactly as that schedule alone would.

The reference for group ``g`` is its schedule built alone (``Schedule.build``) on an optimizer of the
same groups, stepped at its own interval and fed the same metric values; its LR for group ``g``
must equal the per-group scheduler's at every optimizer step. Under Lightning: a two-group module
(one group ``plateau`` on a scripted metric) against its solo runs, and a killed run resumed from a
mid-epoch checkpoint against the uninterrupted one.
"""

from __future__ import annotations

import io
import logging
import warnings
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from lightning_lrsched import PlateauDriver
from lightning_lrsched.errors import TrainingWarning
from lightning_lrsched.schedules import GroupScheduledLR, GroupSchedules, get_schedule

for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.ERROR)

STEPS_PER_EPOCH = 4
STEP = {"name": "step", "step_size": 2}
EPOCHS = 12
# One value per epoch: improvements, then plateaus that a patience-0 rule reduces on.
METRICS = [1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.85, 0.7, 0.7, 0.7, 0.7, 0.6]

CASES = {
    "epoch-and-step": (
        {"name": "step", "step_size": 3, "gamma": 0.5},
        {"name": "warmup_cosine", "warmup": "1ep", "min_lr_ratio": 0.1},
    ),
    "plateau-and-cyclic-momentum": (
        {"name": "plateau", "patience": 0, "factor": 0.5, "cooldown": 1, "warmup": 2},
        {"name": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 6},
    ),
    "onecycle-and-plateau": (
        {"name": "onecycle", "max_lr": 0.3},
        {"name": "plateau", "patience": 1, "factor": 0.3, "min_lr": 0.005},
    ),
    "two-plateaus": (
        {"name": "plateau", "patience": 0, "factor": 0.5},
        {"name": "plateau", "patience": 2, "factor": 0.1, "monitor": "other"},
    ),
}


def _optimizer(kind: str = "sgd") -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in (0.1, 0.03)]
    if kind == "adam":
        return torch.optim.Adam(groups, lr=0.1)
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9)


def _momentum(group: dict[str, Any]) -> float:
    return group["betas"][0] if "betas" in group else group["momentum"]


def _solo_trace(spec: dict[str, Any], kind: str, metric_key: str | None) -> tuple[np.ndarray, np.ndarray]:
    """LR and momentum of every group at each optimizer step, the schedule alone at its own interval."""
    schedule = get_schedule(spec)
    optimizer = _optimizer(kind)
    scheduler = schedule.build(optimizer, total_steps=EPOCHS * STEPS_PER_EPOCH, steps_per_epoch=STEPS_PER_EPOCH)
    lrs, moms = [], []
    for step in range(EPOCHS * STEPS_PER_EPOCH):
        epoch, last = divmod(step, STEPS_PER_EPOCH)
        if schedule.is_plateau and last == 0 and epoch > 0 and metric_key is not None:
            scheduler.observe(METRICS[epoch - 1])  # validation ran at the end of the previous epoch
        lrs.append([g["lr"] for g in optimizer.param_groups])
        moms.append([_momentum(g) for g in optimizer.param_groups])
        optimizer.step()
        if schedule.interval == "step" or last == STEPS_PER_EPOCH - 1:
            scheduler.step()
    return np.asarray(lrs), np.asarray(moms)


def _monitor(spec: dict[str, Any]) -> str | None:
    return spec.get("monitor", "val_loss") if spec["name"] == "plateau" else None


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("case", CASES)
def test_each_group_follows_its_solo_schedule(case, kind):
    specs = CASES[case]
    groups = GroupSchedules(list(specs))
    optimizer = _optimizer(kind)
    scheduler = groups.build(optimizer, total_steps=EPOCHS * STEPS_PER_EPOCH, steps_per_epoch=STEPS_PER_EPOCH)
    lrs, moms = [], []
    for step in range(EPOCHS * STEPS_PER_EPOCH):
        epoch, last = divmod(step, STEPS_PER_EPOCH)
        if last == 0 and epoch > 0:
            # Validation ended the previous epoch: each plateau lane judges its metric (as PlateauDriver does).
            for i, lane in enumerate(scheduler.lanes):
                if lane.monitor is not None:
                    scheduler.observe(METRICS[epoch - 1], i)
        optimizer.step()
        lrs.append([g["lr"] for g in optimizer.param_groups])
        moms.append([_momentum(g) for g in optimizer.param_groups])
        if groups.interval == "step" or last == STEPS_PER_EPOCH - 1:
            scheduler.step()
    lrs, moms = np.asarray(lrs), np.asarray(moms)
    for g, spec in enumerate(specs):
        solo_lrs, solo_moms = _solo_trace(spec, kind, _monitor(spec))
        np.testing.assert_allclose(lrs[:, g], solo_lrs[:, g], rtol=1e-12, atol=0, err_msg=f"group {g}: {spec}")
        np.testing.assert_allclose(moms[:, g], solo_moms[:, g], rtol=1e-12, atol=0, err_msg=f"group {g}: {spec}")
        assert np.ptp(lrs[:, g]) > 0, f"group {g} never changes its LR: the comparison would prove nothing"
    for g, spec in enumerate(specs):
        if spec["name"] == "plateau":
            assert lrs[-1, g] < lrs[0, g] * 0.9 or spec.get("warmup"), "no plateau reduction happened"


def test_interval_is_shared_or_step():
    assert GroupSchedules(["cosine", STEP]).interval == "epoch"
    assert GroupSchedules(["cosine", {"name": "warmup_linear", "warmup": 2}]).interval == "step"
    scheduler = GroupSchedules(["cosine", {"name": "warmup_linear", "warmup": 2}]).build(
        _optimizer(), total_steps=20, steps_per_epoch=5
    )
    assert [lane.stride for lane in scheduler.lanes] == [5, 1]


def _checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("k", [5, 23])
def test_state_dict_resume_continues_exactly(k):
    specs = CASES["plateau-and-cyclic-momentum"]
    total = EPOCHS * STEPS_PER_EPOCH

    def run(scheduler, optimizer, start, stop):
        out = []
        for step in range(start, stop):
            optimizer.step()
            scheduler.step()
            if step % STEPS_PER_EPOCH == 0:
                scheduler.observe(METRICS[step // STEPS_PER_EPOCH], lane=0)
            out.append([g["lr"] for g in optimizer.param_groups] + [_momentum(g) for g in optimizer.param_groups])
        return out

    def fresh():
        optimizer = _optimizer()
        return optimizer, GroupSchedules(list(specs)).build(optimizer, total_steps=total, steps_per_epoch=4)

    optimizer_a, scheduler_a = fresh()
    full = run(scheduler_a, optimizer_a, 0, total)
    optimizer_b, scheduler_b = fresh()
    run(scheduler_b, optimizer_b, 0, k)
    state = _checkpoint(scheduler_b.state_dict())
    assert [lane["schedule"] for lane in state["lanes"]] == [get_schedule(s).to_dict() for s in specs]
    optimizer_c, scheduler_c = fresh()
    scheduler_c.load_state_dict(state)
    assert run(scheduler_c, optimizer_c, k, total) == full[k:]
    assert scheduler_c.judges[0].state_dict() == scheduler_a.judges[0].state_dict()


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: GroupSchedules("cosine"), TypeError, "one schedule per param group"),
        (lambda: GroupSchedules([]), TypeError, "non-empty list"),
        (lambda: GroupSchedules(["cosine"]).build(_optimizer()), ValueError, "1 schedules but the optimizer has 2"),
        (
            lambda: GroupSchedules(["cosine", "plateau"]).build(_optimizer(), monitors=["a"]),
            ValueError,
            r"`monitors` must have one entry per schedule \(2\): got 1",
        ),
        (lambda: GroupSchedules(["cosine", "nosuch"]), ValueError, "unknown schedule 'nosuch'"),
        (lambda: _two_group_scheduler().observe(1.0), ValueError, "not a `plateau`"),
        (
            lambda: _two_group_scheduler().load_state_dict(_three_group_state()),
            ValueError,
            r"saved with other settings: 3 schedule\(s\) in the checkpoint, 2 now",
        ),
    ],
)
def test_invalid_use_is_a_clear_error(make, error, match):
    with pytest.raises(error, match=match):
        make()


def _two_group_scheduler() -> GroupScheduledLR:
    return GroupSchedules(["cosine", STEP]).build(_optimizer(), total_steps=10)


def _three_group_state() -> dict[str, Any]:
    optimizer = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(3)], lr=0.1)
    return GroupSchedules(["cosine", STEP, STEP]).build(optimizer, total_steps=10).state_dict()


# -- under Lightning ----------------------------------------------------------------------------
BATCHES = 5
LIGHTNING_EPOCHS = 6
VAL_LOSS = [1.0, 1.0, 1.0, 0.8, 0.8, 0.9]
BACKBONE = {"name": "warmup_cosine", "warmup": 4, "min_lr_ratio": 0.1}
HEAD = {"name": "plateau", "patience": 0, "factor": 0.5, "cooldown": 1}


class TwoGroups(L.LightningModule):
    """``Linear(10, 2)``: weight ("backbone") and bias ("head", a third of the LR) in two groups.

    ``schedules`` is a list of two specs (per-group) or one spec (a solo run of that schedule on
    both groups). Validation logs a scripted ``val_loss`` per epoch, so plateau decisions do not
    depend on training.
    """

    def __init__(self, schedules: list[dict[str, Any]] | dict[str, Any]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(10, 2)
        self.schedules = schedules

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(self.layer(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        value = 5.0 if self.trainer.sanity_checking else VAL_LOSS[self.current_epoch]
        self.log("val_loss", value)

    def configure_optimizers(self) -> Any:
        groups = [{"params": [self.layer.weight]}, {"params": [self.layer.bias], "lr": 0.1 / 3}]
        optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
        if isinstance(self.schedules, list):
            config = GroupSchedules(self.schedules).lightning_config(optimizer, self.trainer)
        else:
            config = get_schedule(self.schedules).lightning_config(optimizer, self.trainer)
        return {"optimizer": optimizer, "lr_scheduler": config}


class LRTrace(Callback):
    def __init__(self) -> None:
        self.rows: dict[int, list[float]] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.rows[trainer.global_step] = [g["lr"] for g in optimizer.param_groups]


class Killed(Exception):
    pass


class Kill(Callback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.at:
            raise Killed(f"killed at step {self.at}")


def _loader(batches: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batches * 8, 10, generator=g)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)


def _fit(root, schedules, *, callbacks=(), ckpt_path=None) -> tuple[L.Trainer, LRTrace]:
    trace = LRTrace()
    trainer = L.Trainer(
        default_root_dir=root,
        max_epochs=LIGHTNING_EPOCHS,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=1,
        limit_val_batches=1,
        callbacks=[trace, PlateauDriver(), *callbacks],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's notes on tiny data; ours must not appear
        warnings.simplefilter("error", TrainingWarning)
        trainer.fit(TwoGroups(schedules), _loader(BATCHES), _loader(1), ckpt_path=ckpt_path)
    return trainer, trace


def test_under_lightning_each_group_matches_its_solo_run_and_resumes_exactly(tmp_path):
    _, together = _fit(tmp_path / "groups", [BACKBONE, HEAD])
    steps = sorted(together.rows)
    assert steps == list(range(LIGHTNING_EPOCHS * BATCHES))
    for g, spec in enumerate((BACKBONE, HEAD)):
        _, solo = _fit(tmp_path / f"solo{g}", spec)
        assert [together.rows[s][g] for s in steps] == [solo.rows[s][g] for s in steps], spec["name"]
    head = [together.rows[s][1] for s in steps]
    assert head[0] == pytest.approx(0.1 / 3) and head[-1] == pytest.approx(0.1 / 3 / 4), "two plateau reductions"

    # A mid-epoch checkpoint (step 12, in epoch 2, after the first reduction), a kill, a resume.
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=12, save_top_k=-1, filename="{step}")
    with pytest.raises(Killed):
        _fit(tmp_path / "killed", [BACKBONE, HEAD], callbacks=[checkpoints, Kill(14)])
    resumed, trace = _fit(tmp_path / "killed", [BACKBONE, HEAD], ckpt_path=tmp_path / "ckpt" / "step=12.ckpt")
    assert min(trace.rows) == 12
    assert trace.rows == {s: row for s, row in together.rows.items() if s >= 12}
    scheduler = resumed.lr_scheduler_configs[0].scheduler
    assert isinstance(scheduler, GroupScheduledLR) and scheduler.judges[1] is not None
