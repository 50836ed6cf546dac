"""The stacked copies' optimizer step made once on the stacked tensors equals each copy's own optimizer.

K copies of two parameters in two param groups (a no-decay group, as Hugging Face sets them up),
each copy with its own LRs, changing every step: the vectorised step at the largest LR then ``lerp``
by each copy's share of it must leave every row where that copy's own optimizer (torch's, on tensors
of its own) leaves it, state included, through a state-dict round trip and after copies are dropped.
"""

from __future__ import annotations

import math

import pytest
import torch
from harness import quiet_trainer
from lightning.pytorch.callbacks import Callback
from torch import nn

from lightning_lrsched.compare.grid import Unstackable
from lightning_lrsched.compare.stacked import StackedModule
from lightning_lrsched.compare.stacked.optimizer import LINEAR_IN_LR, VectorisedOptimizer, check_shareable, vectorise
from lightning_lrsched.models import SyntheticClassifier, SyntheticDataModule
from lightning_lrsched.schedules.tutorial import resolve_schedule

K = 3
SETTINGS = {
    torch.optim.SGD: {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
    torch.optim.Adam: {"weight_decay": 1e-2, "amsgrad": True},
    torch.optim.AdamW: {"betas": (0.9, 0.98), "weight_decay": 0.1},
    torch.optim.RMSprop: {"momentum": 0.5, "centered": True, "weight_decay": 1e-3},
    torch.optim.Adagrad: {"lr_decay": 0.1, "weight_decay": 1e-3, "initial_accumulator_value": 0.1},
    torch.optim.Adamax: {"weight_decay": 1e-3},
    torch.optim.NAdam: {"decoupled_weight_decay": True, "weight_decay": 0.1},
    torch.optim.RAdam: {"decoupled_weight_decay": True, "weight_decay": 0.1},
    torch.optim.Adadelta: {"weight_decay": 1e-3},
}


class Copies:
    """K copies of two parameters (stacked, and each copy's own as views of its rows), one optimizer for all."""

    def __init__(self, kind: type[torch.optim.Optimizer], seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.stacked = [
            nn.Parameter(torch.randn(K, 4, 3, generator=generator)),
            nn.Parameter(torch.randn(K, 3, generator=generator)),
        ]
        self.params = [[nn.Parameter(s.detach()[k], requires_grad=False) for s in self.stacked] for k in range(K)]
        groups = []
        for own in self.params:  # each copy's two groups: decay on the matrix, none on the bias
            groups += [{"params": [own[0]]}, {"params": [own[1]], "weight_decay": 0.0}]
        # The settings as constructor arguments, as a module passes them (Adagrad's first sums come from there).
        self.merged = kind(groups, lr=0.01, **SETTINGS[kind])
        self.groups = [[2 * k, 2 * k + 1] for k in range(K)]
        self.training = torch.ones(K, dtype=torch.bool)
        made = vectorise(self.merged, self.groups, self.params, self.stacked, lambda: self.training)
        assert isinstance(made, VectorisedOptimizer), made
        self.optimizer = made

    def step(self, grads: list[torch.Tensor], lrs: list[float]) -> None:
        for k, lr in enumerate(lrs):
            for g in self.groups[k]:
                self.optimizer.param_groups[g]["lr"] = lr
        for stacked, grad in zip(self.stacked, grads, strict=True):
            stacked.grad = grad.clone()
        self.optimizer.step()


class Solo:
    """One copy as a run of its own: its two parameters, its optimizer of two groups."""

    def __init__(self, kind: type[torch.optim.Optimizer], copies: Copies, k: int) -> None:
        self.params = [nn.Parameter(s.detach()[k].clone()) for s in copies.stacked]
        groups = [{"params": [self.params[0]]}, {"params": [self.params[1]], "weight_decay": 0.0}]
        self.optimizer = kind(groups, lr=0.01, **SETTINGS[kind])

    def step(self, grads: list[torch.Tensor], lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        for param, grad in zip(self.params, grads, strict=True):
            param.grad = grad.clone()
        self.optimizer.step()


def lrs_at(step: int) -> list[float]:
    """Each copy's LR at ``step``: apart from each other, and moving."""
    return [0.1 * (k + 1) * math.cos(step / 7) ** 2 + 1e-3 for k in range(K)]


def assert_rows_equal(copies: Copies, solos: dict[int, Solo], rows: list[int]) -> None:
    for row, k in enumerate(rows):
        for stacked, own in zip(copies.stacked, solos[k].params, strict=True):
            torch.testing.assert_close(stacked.detach()[row], own.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", LINEAR_IN_LR, ids=lambda kind: kind.__name__)
def test_each_row_steps_as_its_copys_own_optimizer(kind):
    copies = Copies(kind)
    solos = {k: Solo(kind, copies, k) for k in range(K)}
    generator = torch.Generator().manual_seed(1)
    for step in range(8):
        grads = [torch.randn(s.shape, generator=generator) for s in copies.stacked]
        copies.step(grads, lrs_at(step))
        for k, solo in solos.items():
            solo.step([g[k] for g in grads], lrs_at(step)[k])
    assert_rows_equal(copies, solos, list(range(K)))
    # Not trivial: the copies moved, and apart.
    assert not torch.equal(copies.stacked[0][0], copies.stacked[0][1])
    # The copies' own views are their rows (what loggers, clipping and checkpoints of each copy see).
    assert torch.equal(copies.params[2][0], copies.stacked[0][2])


@pytest.mark.parametrize("kind", [torch.optim.SGD, torch.optim.AdamW], ids=lambda kind: kind.__name__)
def test_state_survives_a_state_dict_round_trip_and_dropped_copies(kind):
    copies = Copies(kind)
    solos = {k: Solo(kind, copies, k) for k in range(K)}
    generator = torch.Generator().manual_seed(2)

    def advance(steps: range, rows: list[int]) -> None:
        for step in steps:
            grads = [torch.randn(s.shape, generator=generator) for s in copies.stacked]
            copies.step(grads, [lrs_at(step)[k] for k in rows])
            for row, k in enumerate(rows):
                solos[k].step([g[row] for g in grads], lrs_at(step)[k])

    advance(range(4), [0, 1, 2])
    saved = copies.optimizer.state_dict()
    assert "stacked" in saved and saved["stacked"]["state"]  # the rows' momentum and moments are in the checkpoint
    resumed = Copies(kind)
    with torch.no_grad():
        for new, old in zip(resumed.stacked, copies.stacked, strict=True):
            new.copy_(old)
    resumed.optimizer.load_state_dict(saved)
    copies = resumed
    advance(range(4, 6), [0, 1, 2])
    assert_rows_equal(copies, solos, [0, 1, 2])
    # Copy 1 leaves: rows 0 and 2 keep their parameters and state, renumbered.
    kept = [0, 2]
    copies.stacked = [nn.Parameter(s.detach()[kept]) for s in copies.stacked]
    copies.groups = [[0, 1], [2, 3]]
    copies.optimizer.param_groups[:] = [g for i, g in enumerate(copies.optimizer.param_groups) if i not in (2, 3)]
    copies.optimizer.keep_rows(kept, copies.stacked, copies.groups)
    copies.training = copies.training[kept]
    advance(range(6, 9), kept)
    assert_rows_equal(copies, solos, kept)


def test_a_frozen_copys_row_stays_where_it_was_even_when_its_update_is_not_finite():
    copies = Copies(torch.optim.Adam)
    before = [s.detach().clone() for s in copies.stacked]
    copies.training[1] = False
    grads = [torch.ones(s.shape) for s in copies.stacked]
    grads[0][1] = math.nan
    copies.step(grads, lrs_at(0))
    assert all(torch.equal(s.detach()[1], b[1]) for s, b in zip(copies.stacked, before, strict=True))
    assert all(not torch.equal(s.detach()[0], b[0]) for s, b in zip(copies.stacked, before, strict=True))
    assert all(bool(s.detach().isfinite().all()) for s in copies.stacked)


def test_a_state_of_a_per_copy_optimizer_is_refused_not_dropped():
    copies = Copies(torch.optim.SGD)
    per_copy = torch.optim.SGD([p for own in copies.params for p in own], lr=0.1, momentum=0.9)
    for p in per_copy.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    per_copy.step()
    state = per_copy.state_dict()
    state["param_groups"] = copies.optimizer.state_dict()["param_groups"]
    with pytest.raises(ValueError, match="stepped each copy on its own"):
        copies.optimizer.load_state_dict(state)


class SteppedAsItLikes(torch.optim.SGD):
    """A subclass: its step may not be SGD's."""


def test_optimizers_not_linear_in_the_lr_step_each_copy():
    param = nn.Parameter(torch.zeros(2, 3))
    own = [[nn.Parameter(param.detach()[k])] for k in range(2)]
    merged = torch.optim.ASGD([{"params": own[0]}, {"params": own[1]}], lr=0.1)
    reason = "ASGD is not one of torch's optimizers whose update is linear in the LR"
    assert reason in vectorise(merged, [[0], [1]], own, [param], lambda: torch.ones(2, dtype=torch.bool))
    # A subclass may step otherwise, across the copies' groups too: not stacked at all.
    merged = SteppedAsItLikes([{"params": own[0]}, {"params": own[1]}], lr=0.1)
    with pytest.raises(Unstackable, match=r"^SteppedAsItLikes is not known to step each param group on its own"):
        check_shareable(merged)


def test_copies_whose_groups_differ_step_each_on_its_own():
    param = nn.Parameter(torch.zeros(2, 3))
    own = [[nn.Parameter(param.detach()[k])] for k in range(2)]
    merged = torch.optim.SGD([{"params": own[0], "momentum": 0.9}, {"params": own[1], "momentum": 0.5}], lr=0.1)
    made = vectorise(merged, [[0], [1]], own, [param], lambda: torch.ones(2, dtype=torch.bool))
    assert made == "the copies' param groups differ in their parameters or settings"


def stacked_run(tmp_path, *schedules: str) -> tuple[StackedModule, torch.optim.Optimizer]:
    torch.manual_seed(0)
    copies = [
        SyntheticClassifier(optimizer={"name": "sgd", "momentum": 0.9}, lr=0.1, scheduler=None) for _ in schedules
    ]
    module = StackedModule(copies, list(schedules), [resolve_schedule(s) for s in schedules])
    trainer = quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=3, limit_val_batches=1)
    trainer.fit(module, SyntheticDataModule())
    return module, trainer.optimizers[0]


def test_a_stacked_run_steps_its_copies_as_one_unless_a_schedule_cycles_momentum(tmp_path):
    module, optimizer = stacked_run(tmp_path / "a", "step", "cosine")
    assert isinstance(optimizer, VectorisedOptimizer) and module.per_copy_step is None
    # cyclic sets each copy's momentum apart from the others': one update cannot serve them all.
    module, optimizer = stacked_run(tmp_path / "b", "step", "cyclic")
    assert not isinstance(optimizer, VectorisedOptimizer)
    assert module.per_copy_step == "a schedule cycles momentum, which then differs between the copies"


def test_large_lrs_and_small_updates_keep_each_copys_update():
    # Updates far below the parameters' rounding at lr 1 (gradients of 1e-9 on weights of ~1) but not at the
    # copies' LRs: each row must still move as its copy's own optimizer moves it (a step at lr 1, then scaled,
    # would lose them all); the copy at the largest LR gets the optimizer's own update, bit for bit.
    copies = Copies(torch.optim.SGD)
    solos = {k: Solo(torch.optim.SGD, copies, k) for k in range(K)}
    lrs = [1e2, 1e3, 1.0]
    for _ in range(3):
        grads = [torch.full(s.shape, 1e-9) for s in copies.stacked]
        copies.step(grads, lrs)
        for k, solo in solos.items():
            solo.step([g[k] for g in grads], lrs[k])
    assert_rows_equal(copies, solos, list(range(K)))
    assert all(torch.equal(s.detach()[1], own.detach()) for s, own in zip(copies.stacked, solos[1].params, strict=True))
    moved = [
        (s.detach()[0] - own.detach()).abs().max()
        for s, own in zip(copies.stacked, Copies(torch.optim.SGD).stacked, strict=True)
    ]
    assert min(moved) > 0  # not trivial: the update at lr 1e2 is visible


def amp_run(tmp_path, names: list[str], scaler: torch.amp.GradScaler) -> tuple[list[nn.Module], torch.optim.Optimizer]:
    """Copies of one seed (SGD with momentum: its update scales with the gradient), stacked under a CPU GradScaler."""
    from lightning.pytorch.plugins import MixedPrecision

    copies = []
    for _ in names:
        torch.manual_seed(0)
        copies.append(SyntheticClassifier(optimizer={"name": "sgd", "momentum": 0.9}, lr=0.1, scheduler=None))
    module = StackedModule(copies, names, [resolve_schedule(name) for name in names])
    trainer = quiet_trainer(
        tmp_path,
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)],
        max_epochs=2,
        limit_train_batches=5,
        limit_val_batches=2,
    )
    trainer.fit(module, SyntheticDataModule())
    return copies, trainer.optimizers[0]


def test_under_a_grad_scaler_the_one_update_is_each_copys_own(tmp_path, monkeypatch):
    # The scaler unscales the copies' gradients (views of the stacked ones) and skips the steps that overflow
    # (a first scale of 2^24 overflows half precision: the scale must come down before any update).
    names = ["step", "cosine"]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24)
    vectorised, optimizer = amp_run(tmp_path / "one", names, scaler)
    assert isinstance(optimizer, VectorisedOptimizer) and scaler.get_scale() < 2.0**24
    monkeypatch.setattr("lightning_lrsched.compare.stacked.module.vectorise", lambda *args: "stepped per copy")
    per_copy, optimizer = amp_run(tmp_path / "each", names, torch.amp.GradScaler("cpu", init_scale=2.0**24))
    assert not isinstance(optimizer, VectorisedOptimizer)
    for ours, theirs in zip(vectorised, per_copy, strict=True):
        for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # Not trivial: the two schedules trained the copies apart.
    assert not torch.equal(next(vectorised[0].parameters()), next(vectorised[1].parameters()))


class Drop(Callback):
    """Copy 1 leaves the run at the end of the first epoch (as ``lrsched tune`` stops a trial)."""

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            pl_module.drop([1])


def test_dropping_a_copy_mid_run_keeps_the_others_as_per_copy_stepping_does(tmp_path, monkeypatch):
    def run(root):
        names = ["step", "cosine", "linear"]
        copies = []
        for _ in names:
            torch.manual_seed(0)
            copies.append(SyntheticClassifier(optimizer={"name": "adam"}, lr=0.05, scheduler=None))
        module = StackedModule(copies, names, [resolve_schedule(name) for name in names])
        trainer = quiet_trainer(root, Drop(), max_epochs=2, limit_train_batches=5, limit_val_batches=2)
        trainer.fit(module, SyntheticDataModule())
        return module, trainer.optimizers[0]

    vectorised, optimizer = run(tmp_path / "one")
    assert isinstance(optimizer, VectorisedOptimizer) and vectorised.labels == ["step", "linear"]
    assert all(state["exp_avg"].shape[0] == 2 for state in optimizer.inner.state.values())
    monkeypatch.setattr("lightning_lrsched.compare.stacked.module.vectorise", lambda *args: "stepped per copy")
    per_copy, _ = run(tmp_path / "each")
    for ours, theirs in zip(vectorised.copies, per_copy.copies, strict=True):
        for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_copies_buffers_follow_a_move_without_a_fit_and_every_name_of_a_shared_buffer(tmp_path):
    from tests.compare.batchnorm_model import BatchNormClassifier

    copies = []
    for _ in range(2):
        torch.manual_seed(0)
        copy = BatchNormClassifier()
        copy.register_buffer("shared", torch.ones(3))
        copy.net[0].register_buffer("shared", copy.shared)  # one buffer under two names
        copies.append(copy)
    module = StackedModule(copies, ["a", "b"], [resolve_schedule("cosine")] * 2)
    assert copies[1].shared is copies[1].net[0].shared and copies[1].shared._base is not None
    # validate in double precision: Lightning moves the module, and no configure_optimizers re-stacks it.
    quiet_trainer(tmp_path, precision="64-true", limit_val_batches=2).validate(module, SyntheticDataModule())
    stacked = module._stacked_buffers["module.net.1.running_mean"]
    assert stacked.dtype == torch.float64
    for k, copy in enumerate(copies):  # each copy's buffer is its row of the stacked one, which validation updated
        mean = copy.net[1].running_mean
        assert mean.untyped_storage().data_ptr() == stacked.untyped_storage().data_ptr()
        assert torch.equal(mean, stacked[k]) and copy.shared is copy.net[0].shared
