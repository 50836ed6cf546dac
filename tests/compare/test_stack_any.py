"""Stacked mode for any module that follows the stacking protocol, the digits model included.

Each stacked copy is compared with the run of its own that ``--mode sequential`` trains (same seed,
weights, batches): per-epoch losses and accuracies within 1e-5 relative. A module with buffers
(BatchNorm) stacks them per copy; a module vmap cannot run, or that does not say how to score a
batch, falls back to sequential with a one-line reason.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import replace

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from lightning_lrsched.compare import worker
from lightning_lrsched.compare.grid import RunSettings, Unstackable, build_grid, class_config, plan_jobs
from lightning_lrsched.compare.stacked import CopyCallbacks, StackedModule, stacked_metrics_of
from lightning_lrsched.compare.training import train_solo, train_stacked
from lightning_lrsched.models import DigitsClassifier, SyntheticClassifier
from lightning_lrsched.schedules import get_schedule

for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.ERROR)

DIGITS_MODEL = {"class_path": "lightning_lrsched.models.DigitsClassifier", "init_args": {"hidden": [32]}}
DIGITS_DATA = {"class_path": "lightning_lrsched.models.DigitsDataModule", "init_args": {"batch_size": 64}}
SYNTHETIC_DATA = {"class_path": "lightning_lrsched.models.SyntheticDataModule", "init_args": {}}
BATCHNORM_MODEL = {"class_path": "tests.compare.batchnorm_model.BatchNormClassifier", "init_args": {}}
BRANCHING_MODEL = {"class_path": "tests.compare.branching_model.BranchingClassifier", "init_args": {}}
SCALAR_MODEL = {"class_path": "tests.compare.scalar_model.TemperatureClassifier", "init_args": {}}
FROZEN_MODEL = {
    "class_path": "tests.compare.frozen_model.FrozenLayerClassifier",
    "init_args": {"optimizer": {"name": "adamw", "weight_decay": 0.1}},
}


def grid(schedules, epochs, model, data, seeds=(0,)):
    model, data = class_config("model", model, model), class_config("data", data, data)
    return build_grid(schedules, ["cpu:1"], list(seeds), epochs, model=model, data=data)[0]


def settings(tmp_path) -> RunSettings:
    return RunSettings(output=str(tmp_path), logger="none")


def worst(ours: list[list[float]], solo: list[list[float]], column: int = 1) -> float:
    """Largest relative difference of two curves' values at the same samples."""
    assert [p[0] for p in ours] == [p[0] for p in solo]
    return max(abs(p[column] - q[column]) / abs(q[column]) for p, q in zip(ours, solo, strict=True))


def stacked_and_solo(specs, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (job,) = plan_jobs(specs, "stacked")
        stacked = train_stacked(job, settings(tmp_path), lambda runs: None)
        solos = [train_solo(spec, settings(tmp_path), lambda runs: None)[0] for spec in specs]
    return stacked, solos


def assert_copies_equal_solo_runs(stacked, solos, epochs):
    for ours, solo in zip(stacked, solos, strict=True):
        assert (ours.mode, solo.mode) == ("stacked", "sequential")
        assert ours.status == solo.status == "ok", ours.label
        assert (
            (ours.epochs, ours.steps, ours.samples)
            == (solo.epochs, solo.steps, solo.samples)
            == (
                epochs,
                solo.steps,
                solo.samples,
            )
        )
        assert len(ours.train_curve) == len(ours.val_curve) == epochs
        for column in (1, 2):
            assert worst(ours.val_curve, solo.val_curve, column) <= 1e-5, ours.label
        assert worst(ours.train_curve, solo.train_curve) <= 1e-5, ours.label
        assert worst(ours.lr_curve, solo.lr_curve) <= 1e-5, ours.label
    # Not trivial: the schedules trained the copies apart.
    assert len({round(r.final_val_loss, 6) for r in stacked}) == len(stacked)


def test_digits_copies_equal_their_solo_runs(tmp_path, one_thread):
    specs = grid(["exponential", "cosine", "cyclic"], 3, DIGITS_MODEL, DIGITS_DATA)
    stacked, solos = stacked_and_solo(specs, tmp_path)
    assert_copies_equal_solo_runs(stacked, solos, 3)
    assert all(r.steps == 3 * 23 for r in stacked)  # 1 438 training images in batches of 64


def test_copies_of_several_seeds_equal_their_solo_runs(tmp_path, one_thread):
    # On cpu:1 one stacked run holds every seed: each copy its own seed's weights and batch order.
    specs = grid(["exponential", "cosine"], 3, DIGITS_MODEL, DIGITS_DATA, seeds=(0, 1))
    (job,) = plan_jobs(specs, "stacked")
    assert sorted((s.label, s.seed) for s in job) == [
        ("cosine", 0),
        ("cosine", 1),
        ("exponential", 0),
        ("exponential", 1),
    ]
    stacked, solos = stacked_and_solo(specs, tmp_path)
    assert [(r.label, r.seed) for r in stacked] == [(s.label, s.seed) for s in specs]  # each copy's own seed
    assert_copies_equal_solo_runs(stacked, solos, 3)
    # Not trivial: the seeds trained the same schedule apart (other weights, other batch order).
    by_seed = {(r.label, r.seed): r.train_curve[0][1] for r in stacked}
    assert by_seed[("cosine", 0)] != by_seed[("cosine", 1)]


def test_copies_of_several_seeds_with_seeded_validation_splits(tmp_path, one_thread):
    # The synthetic data depends on the seed throughout (its validation split too): each copy is judged on its own.
    specs = grid(
        ["step", "cosine"],
        2,
        {"class_path": "lightning_lrsched.models.SyntheticClassifier"},
        SYNTHETIC_DATA,
        seeds=(0, 1),
    )
    stacked, solos = stacked_and_solo(specs, tmp_path)
    assert_copies_equal_solo_runs(stacked, solos, 2)


def test_buffers_are_stacked_per_copy(tmp_path, one_thread):
    # BatchNorm's running statistics are buffers: each copy keeps its own, as a run of its own does.
    specs = grid(["step", {"name": "exponential", "gamma": 0.5}], 2, BATCHNORM_MODEL, SYNTHETIC_DATA)
    stacked, solos = stacked_and_solo(specs, tmp_path)
    assert_copies_equal_solo_runs(stacked, solos, 2)


def test_a_zero_dimensional_parameter_is_stacked(tmp_path, one_thread):
    # A learned temperature: one number per copy, checked and updated like any other parameter.
    specs = grid(["step", "cosine"], 2, SCALAR_MODEL, SYNTHETIC_DATA)
    stacked, solos = stacked_and_solo(specs, tmp_path)
    assert_copies_equal_solo_runs(stacked, solos, 2)


def test_a_layer_the_module_froze_stays_frozen(tmp_path, one_thread):
    # No gradient and no update (AdamW's weight decay included) for it, in each copy as in its run of its own.
    specs = grid(["step", "cosine"], 2, FROZEN_MODEL, SYNTHETIC_DATA)
    stacked, solos = stacked_and_solo(specs, tmp_path)
    assert_copies_equal_solo_runs(stacked, solos, 2)


def test_a_gradient_written_into_the_same_tensor_every_step_reaches_the_copies_every_step():
    # DDP with gradient_as_bucket_view=True hands every step's gradient over in the same tensor.
    torch.manual_seed(0)
    copies = [DigitsClassifier(hidden=[8]) for _ in range(2)]
    copies[1].load_state_dict(copies[0].state_dict())
    module = StackedModule(copies, ["a", "b"], [get_schedule("cosine")] * 2)
    optimizer = torch.optim.SGD([{"params": list(c.parameters())} for c in copies], lr=0.1)
    buckets = [torch.ones_like(stacked) for stacked in module.stacked]
    for step in range(3):
        for stacked, bucket in zip(module.stacked, buckets, strict=True):
            stacked.grad = bucket
        module._share_gradients()
        assert all(p.grad is not None for c in copies for p in c.parameters()), step
        optimizer.step()
        module.optimizer_zero_grad(0, step, optimizer)
    assert float(copies[0].net[0].bias[0] - module.stacked[1][0, 0]) == 0.0  # the copies are the stacked rows


def test_copies_follow_their_module_to_another_dtype(tmp_path, one_thread):
    # Lightning converts the module (its copies, its stacked parameters) before configure_optimizers,
    # as it moves it to a GPU: the copies' parameters must be views of the stacked ones again.
    model = class_config("model", SCALAR_MODEL, SCALAR_MODEL)
    data = class_config("data", SYNTHETIC_DATA, SYNTHETIC_DATA)
    specs = build_grid(["step", "cosine"], ["cpu:1"], [0], 2, model=model, data=data, trainer={"precision": "64-true"})
    stacked, solos = stacked_and_solo(specs[0], tmp_path)
    assert_copies_equal_solo_runs(stacked, solos, 2)


def gradient_check(grads: dict[int, float]) -> list[tuple[int, str]]:
    """Give copy k of four every gradient element ``grads.get(k, 0.5)``; return what the module's check reported."""
    torch.manual_seed(0)
    copies = [DigitsClassifier(hidden=[8]) for _ in range(4)]
    for c in copies[1:]:
        c.load_state_dict(copies[0].state_dict())
    reported: list[tuple[int, str]] = []
    module = StackedModule(copies, list("abcd"), [get_schedule("cosine")] * 4, lambda k, v, r: reported.append((k, r)))
    for stacked in module.stacked:  # what a backward pass leaves, handed to the copies as the module does
        stacked.grad = torch.stack([torch.full_like(stacked[k], grads.get(k, 0.5)) for k in range(4)])
    module._share_gradients()
    module._freeze_non_finite()
    return reported


def test_the_gradient_check_reports_exactly_the_copies_with_a_non_finite_gradient():
    assert gradient_check({}) == []
    reported = gradient_check({1: math.nan, 3: -math.inf})
    assert [k for k, _ in reported] == [1, 3]
    assert reported[0][1].startswith("the gradient of b is not finite")
    # Finite but huge: the per-copy sum the check starts from overflows float32; the copy is still fine.
    assert gradient_check({0: 3e38, 2: -3e38}) == []


def test_buffers_are_written_back_to_each_copy():
    torch.manual_seed(0)
    from tests.compare.batchnorm_model import BatchNormClassifier

    copies = [BatchNormClassifier(), BatchNormClassifier()]
    module = StackedModule(copies, ["a", "b"], [get_schedule("cosine")] * 2)
    batch = (torch.randn(16, 10), torch.randint(0, 2, (16,)))
    module.probe(batch)  # leaves the copies as they were
    assert all(int(c.net[1].num_batches_tracked) == 0 for c in copies)
    module.scores(batch)
    means = [c.net[1].running_mean.clone() for c in copies]
    assert all(int(c.net[1].num_batches_tracked) == 1 for c in copies)
    for copy, mean in zip(copies, means, strict=True):  # each copy's own statistics, as if it ran alone
        solo = nn.BatchNorm1d(8)
        solo(copy.net[0](batch[0]).detach())
        assert torch.allclose(mean, solo.running_mean, rtol=1e-6, atol=1e-7)
    assert not torch.equal(means[0], means[1])


def test_a_module_vmap_cannot_run_is_unstackable_in_one_line(tmp_path):
    specs = grid(["step", "cosine"], 1, BRANCHING_MODEL, SYNTHETIC_DATA)
    (job,) = plan_jobs(specs, "stacked")
    with pytest.raises(
        Unstackable, match=r"^vmap cannot run BranchingClassifier: .*data-dependent control flow"
    ) as error:
        train_stacked(job, settings(tmp_path), lambda runs: None)
    assert "\n" not in str(error.value)


def test_the_worker_falls_back_to_sequential_with_the_reason(tmp_path):
    specs = grid(["step", "cosine"], 1, BRANCHING_MODEL, SYNTHETIC_DATA)
    batch, out = tmp_path / "batch.json", tmp_path / "out"
    out.mkdir()
    worker.write_batch(batch, replace(settings(tmp_path), fallback=True), plan_jobs(specs, "auto"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert worker.main([str(batch), str(out)]) == 0
    reason = worker.read_unstackable(out, 0)
    assert reason.startswith("vmap cannot run BranchingClassifier") and "\n" not in reason
    records = [json.loads(line) for line in (out / "0.jsonl").read_text().splitlines()]
    assert [(r["label"], r["mode"], r["status"]) for r in records] == [
        ("step", "sequential", "ok"),
        ("cosine", "sequential", "ok"),
    ]


class OwnStep(DigitsClassifier):
    """Overrides the training step: the inherited ``stacked_metrics`` may no longer say what it minimises."""

    def training_step(self, batch, batch_idx):
        return super().training_step(batch, batch_idx) + 0.1 * sum(p.square().sum() for p in self.parameters())


class OwnStepAndMetrics(OwnStep):
    def stacked_metrics(self, batch):
        metrics = super().stacked_metrics(batch)
        return {**metrics, "loss": metrics["loss"] + 0.1 * sum(p.square().sum() for p in self.parameters())}


class WarmsUpByHand(DigitsClassifier):
    """Lightning's documented warm-up recipe: the LR set by hand in ``optimizer_step``."""

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure):
        optimizer.step(closure=optimizer_closure)
        for group in optimizer.param_groups:
            group["lr"] = min(1.0, (self.trainer.global_step + 1) / 5) * 0.1


class ClipsByHand(DigitsClassifier):
    def on_before_optimizer_step(self, optimizer):
        torch.nn.utils.clip_grad_norm_(self.parameters(), 0.1)


class ZeroesToNone(DigitsClassifier):
    def optimizer_zero_grad(self, epoch, batch_idx, optimizer):
        optimizer.zero_grad(set_to_none=True)


def test_a_module_that_changes_its_steps_in_a_hook_is_not_stacked():
    # A stacked run steps the copies itself: it would not call these, and the copies would not equal their runs.
    with pytest.raises(Unstackable, match=r"WarmsUpByHand overrides `optimizer_step` \(in WarmsUpByHand\)"):
        stacked_metrics_of(WarmsUpByHand())
    with pytest.raises(Unstackable, match="ClipsByHand overrides `on_before_optimizer_step`"):
        stacked_metrics_of(ClipsByHand())
    # Any hook Lightning calls while compare trains and validates: an EMA, an unfreezing, an attribute set up, a
    # batch's own preprocessing, clipping by hand.
    for hook in (
        "on_train_batch_end", "on_train_epoch_start", "on_validation_start", "on_after_batch_transfer", "setup",
        "clip_gradients",
    ):  # fmt: skip
        own = type("OwnHook", (DigitsClassifier,), {hook: lambda self, *args: None})
        with pytest.raises(Unstackable, match=rf"OwnHook overrides `{hook}` \(in OwnHook\)"):
            stacked_metrics_of(own())
    # Not those compare never reaches (testing) or that come after the last step: stacked.
    for hook in ("on_test_epoch_end", "on_fit_end", "on_train_end", "teardown"):
        own = type("OwnHook", (DigitsClassifier,), {hook: lambda self, *args: None})
        assert stacked_metrics_of(own()) is SyntheticClassifier.stacked_metrics
    # A Lightning demo's override is a module's own too (LightningLSTM resets its state at each epoch's end).
    from lightning.pytorch.demos import LightningLSTM

    lstm = type("DemoLSTM", (LightningLSTM,), {"stacked_metrics": lambda self, batch: {}})
    with pytest.raises(Unstackable, match=r"DemoLSTM overrides `on_train_epoch_end` \(in LightningLSTM\)"):
        stacked_metrics_of(lstm(vocab_size=4))
    # Zeroing the gradients its own way changes nothing a step computes: stacked.
    assert stacked_metrics_of(ZeroesToNone()) is SyntheticClassifier.stacked_metrics


def test_the_stacking_protocol():
    assert stacked_metrics_of(DigitsClassifier()) is SyntheticClassifier.stacked_metrics
    with pytest.raises(Unstackable, match=r"OwnStep overrides `training_step` .* define OwnStep.stacked_metrics"):
        stacked_metrics_of(OwnStep())
    assert stacked_metrics_of(OwnStepAndMetrics()) is OwnStepAndMetrics.stacked_metrics
    with pytest.raises(Unstackable, match="Linear has no `stacked_metrics"):
        stacked_metrics_of(nn.Linear(2, 2))
    with pytest.raises(Unstackable, match=r"copies' parameters and buffers differ .*net.0.weight"):
        StackedModule(
            [DigitsClassifier(hidden=[8]), DigitsClassifier(hidden=[9])], ["a", "b"], [get_schedule("cosine")] * 2
        )


def test_digits_metrics_match_the_steps():
    torch.manual_seed(0)
    model = DigitsClassifier(hidden=[8])
    batch = (torch.rand(20, 64), torch.randint(0, 10, (20,)))
    metrics = model.stacked_metrics(batch)
    logits = model(batch[0])
    assert torch.equal(metrics["loss"], torch.nn.functional.cross_entropy(logits, batch[1]))
    model.val_acc(logits, batch[1])
    assert torch.allclose(metrics["acc"], model.val_acc.compute())


def test_a_module_scheduling_another_hyperparameter_is_not_stacked():
    from lightning_lrsched.models import SyntheticClassifier

    copies = [SyntheticClassifier(weight_decay_schedule={"name": "cosine"}) for _ in range(2)]
    for c in copies[1:]:
        c.load_state_dict(copies[0].state_dict())
    with pytest.raises(Unstackable, match="schedules weight_decay besides the LR"):
        StackedModule(copies, ["a", "b"], [get_schedule("step", step_size=2), get_schedule("cosine")])


class Calls(Callback):
    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.calls.append((self.name, batch_idx))

    def state_dict(self):
        return {"name": self.name}


class Quiet(Callback):
    pass


def test_copy_callbacks_call_each_hook_on_the_callbacks_that_define_it_in_order():
    calls = []
    callbacks = CopyCallbacks([Calls("a", calls), Quiet(), Calls("b", calls)])
    callbacks.on_train_batch_end(None, None, None, None, 3)
    callbacks.on_validation_end(None, None)  # defined by none of them: nothing to call
    assert calls == [("a", 3), ("b", 3)]
    assert callbacks.state_dict() == {"0": {"name": "a"}, "1": {}, "2": {"name": "b"}}


class StopsEarly(DigitsClassifier):
    def configure_callbacks(self):
        from lightning.pytorch.callbacks import EarlyStopping

        return [*super().configure_callbacks(), EarlyStopping(monitor="val_loss")]


def test_a_module_with_callbacks_of_its_own_is_not_stacked():
    # The stacked Trainer would run an EarlyStopping once for all the copies, on val_loss that a stacked run logs per
    # copy (val_loss/<label>): it crashed the run. This package's own (a plateau driver) serve every copy.
    from lightning_lrsched.compare.stacked.module import check_stackable

    with pytest.raises(Unstackable, match=r"^StopsEarly.configure_callbacks returns EarlyStopping: a stacked run"):
        check_stackable(StopsEarly())
    assert check_stackable(DigitsClassifier()) is SyntheticClassifier.stacked_metrics


class ReadsTheTrainer(DigitsClassifier):
    def configure_callbacks(self):
        # Outside a run there is no Trainer: Lightning raises. In one, this package's driver (as its parent's).
        return super().configure_callbacks()[: self.trainer.max_epochs]


def test_callbacks_that_need_the_trainer_are_left_to_the_run():
    from lightning_lrsched.compare.stacked.module import check_stackable

    assert check_stackable(ReadsTheTrainer()) is SyntheticClassifier.stacked_metrics
