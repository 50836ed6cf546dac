"""PlateauDetector: torch's ReduceLROnPlateau decisions on fresh values, and its three actions."""

from __future__ import annotations

import math

import pytest
import torch
from callback_helpers import (
    ScriptedModule,
    catalog,
    data,
    f32,
    per_group,
    torch_reductions,
    trainer,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_lrsched import LRLogger, PlateauDetector

pytestmark = pytest.mark.usefixtures("one_thread")


def run_detector(tmp_path, values, metric="val_loss", trainer_kwargs=None, module_kwargs=None, **detector_kwargs):
    """Fit with ``values[i]`` logged as ``metric`` by validation run ``i``; return the detector and trainer."""
    detector = PlateauDetector(monitor=metric, **detector_kwargs)
    options = {"max_epochs": len(values), "limit_train_batches": 1, "callbacks": [detector]}
    options.update(trainer_kwargs or {})
    t = trainer(tmp_path, **options)
    module = ScriptedModule(groups=1, scripted={metric: f32(values)}, **(module_kwargs or {}))
    t.fit(module, data(2), data(1))
    return detector, t


TABLE = [
    ("improving", [5, 4, 3, 2, 1, 0.5], {"patience": 1}),
    ("flat", [1, 1, 1, 1, 1, 1, 1], {"patience": 1}),
    ("flat-patience-0", [1, 1, 1, 1, 1], {"patience": 0}),
    ("cooldown", [1, 1, 1, 1, 1, 1, 1, 1], {"patience": 0, "cooldown": 2}),
    ("rel-threshold", [1.0, 0.95, 0.91, 0.9, 0.89, 0.88], {"patience": 0, "threshold": 0.05}),
    ("abs-threshold", [1.0, 0.95, 0.91, 0.9, 0.89, 0.88], {"patience": 0, "threshold": 0.05, "threshold_mode": "abs"}),
    ("max-mode", [0.1, 0.2, 0.2, 0.15, 0.3, 0.3, 0.3], {"patience": 1, "mode": "max"}),
    ("negative-rel", [-1.0, -0.99, -1.0, -1.01, -1.0, -1.2], {"patience": 0, "threshold": 0.05}),
    ("bounce", [3, 1, 2, 2, 0.5, 2, 2, 2], {"patience": 1, "cooldown": 1}),
]


@pytest.mark.parametrize(("values", "kwargs"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE])
def test_flags_plateaus_where_torch_reduces(tmp_path, values, kwargs):
    detector, _ = run_detector(tmp_path, values, **kwargs)
    expected = torch_reductions(f32(values), **kwargs)
    assert [e["epoch"] for e in detector.events] == expected
    assert all(e["action"] == "log" for e in detector.events)
    assert [e["value"] for e in detector.events] == [f32(values)[i] for i in expected]


@settings(max_examples=12, deadline=None)
@given(
    values=st.lists(st.floats(0.0, 4.0, width=32).map(lambda v: round(v, 1)), min_size=1, max_size=12),
    mode=st.sampled_from(["min", "max"]),
    patience=st.integers(0, 3),
    cooldown=st.integers(0, 2),
    threshold=st.sampled_from([0.0, 1e-4, 0.1]),
    threshold_mode=st.sampled_from(["rel", "abs"]),
)
def test_flags_plateaus_where_torch_reduces_on_any_sequence(
    tmp_path_factory, values, mode, patience, cooldown, threshold, threshold_mode
):
    kwargs = dict(mode=mode, patience=patience, cooldown=cooldown, threshold=threshold, threshold_mode=threshold_mode)
    detector, _ = run_detector(tmp_path_factory.mktemp("run"), values, **kwargs)
    assert [e["epoch"] for e in detector.events] == torch_reductions(f32(values), **kwargs)


def test_judges_each_validation_run_when_validating_several_times_per_epoch(tmp_path):
    values = [1, 1, 0.5, 0.5, 0.5, 0.4, 0.4, 0.4]
    detector, _ = run_detector(
        tmp_path,
        values,
        patience=1,
        trainer_kwargs={"max_epochs": 4, "limit_train_batches": 2, "val_check_interval": 1},
    )
    # Validation run i follows optimizer step i + 1.
    assert [e["step"] - 1 for e in detector.events] == torch_reductions(f32(values), patience=1) == [4, 7]


def test_judges_the_value_at_every_validation_end_as_early_stopping_does(tmp_path):
    # Validation runs 1 and 3 do not log val_loss: what callback_metrics holds then (run 0's / 2's
    # value) is judged, as EarlyStopping would; a monitor never logged at all is warned about.
    detector, _ = run_detector(tmp_path, [1.0, None, 1.0, None, 1.0], patience=0)
    assert [e["epoch"] for e in detector.events] == [1, 2, 3, 4]


def test_validation_every_other_epoch(tmp_path):
    values = [1.0, 1.0, 1.0]
    detector, _ = run_detector(
        tmp_path, values, patience=0, trainer_kwargs={"max_epochs": 6, "check_val_every_n_epoch": 2}
    )
    assert [e["epoch"] for e in detector.events] == [3, 5]


def test_ignores_the_sanity_check(tmp_path):
    # The sanity check logs 0.0, which would become the best value if it were judged.
    values = [1.0, 0.9, 0.8, 0.8]
    detector, _ = run_detector(
        tmp_path, values, patience=0, trainer_kwargs={"num_sanity_val_steps": 1}, module_kwargs={"sanity_value": 0.0}
    )
    assert [e["epoch"] for e in detector.events] == [3]


def test_min_delta_also_requires_an_absolute_improvement(tmp_path):
    values = [1.0, 0.95, 0.92, 0.85]
    without, _ = run_detector(tmp_path / "a", values, patience=0)
    with_delta, _ = run_detector(tmp_path / "b", values, patience=0, min_delta=0.1)
    assert without.events == []
    assert [e["epoch"] for e in with_delta.events] == [1, 2]


def test_reduce_rescales_a_catalog_schedule_and_respects_min_lr(tmp_path):
    detector = PlateauDetector(patience=0, action="reduce", factor=0.5, min_lr=[0.04, 0.01])
    lr_logger = LRLogger(logging_interval="step")
    t = trainer(tmp_path, max_epochs=4, limit_train_batches=2, callbacks=[detector, lr_logger])
    module = ScriptedModule(
        scheduler=catalog({"name": "step", "step_size": 100}), scripted={"val_loss": [1.0, 1.0, 1.0, 1.0]}
    )
    t.fit(module, data(2), data(1))
    scheduler = t.lr_scheduler_configs[0].scheduler
    # Plateaus at epochs 1, 2, 3: x0.5, then each group stops at its own min_lr (torch's rule per group).
    assert [e["epoch"] for e in detector.events] == [1, 2, 3]
    assert scheduler.peaks == pytest.approx([0.04, 0.01])
    lrs = {step: (row["lr-step/pg1"], row["lr-step/pg2"]) for step, row in lr_logger.history}
    assert lrs[2] == pytest.approx((0.1, 0.03))  # epoch 1, before its validation
    assert lrs[4] == pytest.approx((0.05, 0.015))  # the reduction survives the epoch-end scheduler step
    assert lrs[7] == pytest.approx((0.04, 0.01))
    assert lr_logger.mismatches == 0


def test_reduce_rescales_per_group_schedules(tmp_path):
    detector = PlateauDetector(patience=0, action="reduce", factor=0.5)
    lr_logger = LRLogger(logging_interval="step")
    t = trainer(tmp_path, max_epochs=3, limit_train_batches=2, callbacks=[detector, lr_logger])
    schedules = per_group([{"name": "step", "step_size": 100}, {"name": "warmup_constant", "warmup": 2}])
    t.fit(ScriptedModule(scheduler=schedules, scripted={"val_loss": [1.0, 1.0, 2.0]}), data(2), data(1))
    assert [e["epoch"] for e in detector.events] == [1, 2]
    assert t.lr_scheduler_configs[0].scheduler.peaks == pytest.approx([0.025, 0.0075])
    lrs = {step: (row["lr-groups/pg1"], row["lr-groups/pg2"]) for step, row in lr_logger.history}
    assert lrs[3] == pytest.approx((0.1, 0.03)) and lrs[4] == pytest.approx((0.05, 0.015))
    assert lr_logger.mismatches == 0


def test_reduce_multiplies_the_lr_without_a_scheduler_down_to_min_lr(tmp_path):
    detector = PlateauDetector(patience=0, action="reduce", factor=0.1, min_lr=0.002)
    t = trainer(tmp_path, max_epochs=4, limit_train_batches=1, callbacks=[detector])
    t.fit(ScriptedModule(scripted={"val_loss": [1.0, 1.0, 1.0, 1.0]}), data(1), data(1))
    # Plateaus at epochs 1, 2, 3: (0.1, 0.03) -> (0.01, 0.003) -> (0.002, 0.002) -> unchanged.
    assert [g["lr"] for g in t.optimizers[0].param_groups] == pytest.approx([0.002, 0.002])
    assert len(detector.events) == 3


def test_reduce_persists_under_a_chainable_torch_scheduler(tmp_path):
    def steplr(optimizer, trainer):
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)

    detector = PlateauDetector(patience=0, action="reduce", factor=0.1)
    t = trainer(tmp_path, max_epochs=3, limit_train_batches=1, callbacks=[detector])
    t.fit(ScriptedModule(scheduler=steplr, scripted={"val_loss": [1.0, 1.0, 2.0]}), data(1), data(1))
    # 3 epoch-end halvings and 2 plateaus (epochs 1 and 2): 0.1 * 0.5^3 * 0.1^2.
    assert [e["epoch"] for e in detector.events] == [1, 2]
    assert t.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3 * 0.01)


def test_reduce_warns_under_a_scheduler_that_would_undo_it(tmp_path):
    def lambdalr(optimizer, trainer):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)

    with pytest.warns(RuntimeWarning, match="LambdaLR recomputes the LR"):
        run_detector(tmp_path, [1.0], action="reduce", module_kwargs={"scheduler": lambdalr})


def test_stop_ends_training_at_the_plateau(tmp_path):
    detector, t = run_detector(tmp_path, [1.0, 0.5, 0.6, 0.7, 0.8, 0.9], patience=1, action="stop")
    assert [(e["epoch"], e["action"]) for e in detector.events] == [(3, "stop")]
    assert t.should_stop and t.global_step == 4


@pytest.mark.parametrize(
    ("values", "kwargs", "epoch", "reason"),
    [
        ([1.0, 0.5, math.nan, 0.1], {}, 2, "val_loss is nan"),
        ([1.0, 0.5, math.inf, 0.1], {}, 2, "val_loss is inf"),
        ([1.0, 0.5, 1.6, 0.1], {"divergence_factor": 3.0}, 2, "above divergence_factor=3"),
    ],
)
def test_divergence_stops_with_a_warning_naming_the_step(tmp_path, values, kwargs, epoch, reason):
    with pytest.warns(RuntimeWarning, match=f"diverged at step {epoch + 1} .*{reason}"):
        detector, t = run_detector(tmp_path, values, **kwargs)
    assert detector.diverged and t.should_stop
    assert detector.events[-1]["action"] == "diverged" and detector.events[-1]["epoch"] == epoch
    assert t.global_step == epoch + 1


def test_nan_is_judged_like_torch_without_check_finite(tmp_path):
    values = [1.0, math.nan, math.nan, 0.5]
    detector, t = run_detector(tmp_path, values, patience=0, check_finite=False)
    assert not detector.diverged and t.global_step == 4
    assert [e["epoch"] for e in detector.events] == torch_reductions(values, patience=0) == [1, 2]


@pytest.mark.parametrize(("every", "stop"), [(1, 4), (2, 4), (5, 5)])
def test_non_finite_training_loss_stops_at_the_next_check(tmp_path, every, stop):
    detector = PlateauDetector(loss_check_every=every)
    t = trainer(tmp_path, max_epochs=3, callbacks=[detector])
    with pytest.warns(RuntimeWarning, match=f"diverged at step {stop} .*training loss is nan"):
        t.fit(ScriptedModule(train_loss={k: math.nan for k in range(3, 15)}), data(5))
    assert detector.diverged and t.global_step == stop
    assert detector.events[-1]["action"] == "diverged"


def test_a_record_only_divergence_does_not_stop_training(tmp_path):
    detector = PlateauDetector(loss_check_every=1, divergence_action="record")
    t = trainer(tmp_path, max_epochs=2, callbacks=[detector])
    t.fit(ScriptedModule(train_loss={3: math.nan}), data(5))
    assert detector.diverged and t.global_step == 10 and detector.events[-1]["action"] == "diverged"


def test_a_missing_monitor_is_warned_about_once_naming_the_logged_keys(tmp_path):
    detector = PlateauDetector(monitor="val_los")
    t = trainer(tmp_path, max_epochs=3, callbacks=[detector])
    with pytest.warns(RuntimeWarning, match=r"'val_los' was not logged.*Logged metrics: .*val_loss") as seen:
        t.fit(ScriptedModule(scripted={"val_loss": [1.0, 1.0, 1.0]}), data(1), data(1))
    assert sum("was not logged" in str(w.message) for w in seen) == 1
    with pytest.raises(ValueError, match="'val_los' was not logged"):
        trainer(tmp_path, max_epochs=1, callbacks=[PlateauDetector(monitor="val_los", strict=True)]).fit(
            ScriptedModule(scripted={"val_loss": [1.0]}), data(1), data(1)
        )


def test_messages_count_the_validation_runs_since_the_best(tmp_path, caplog):
    detector = PlateauDetector(patience=1)
    t = trainer(tmp_path, max_epochs=6, callbacks=[detector])
    t.fit(ScriptedModule(scripted={"val_loss": [1.0] * 6}), data(1), data(1))
    # Plateaus after validation runs 3 and 5 (each counts patience + 1 = 2 bad values): 2, then 4 runs.
    assert [e["reason"].split(" for ")[1] for e in detector.events] == ["2 validation runs", "4 validation runs"]


def test_two_detectors_coexist_and_checkpoint_their_state(tmp_path):
    loss = PlateauDetector(monitor="val_loss", patience=0)
    acc = PlateauDetector(monitor="val_acc", mode="max", patience=0)
    assert loss.state_key != acc.state_key
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    t = trainer(tmp_path, max_epochs=3, limit_train_batches=1, callbacks=[loss, acc, checkpoint])
    module = ScriptedModule(scripted={"val_loss": [1.0, 1.0, 0.5], "val_acc": [0.5, 0.6, 0.6]})
    t.fit(module, data(1), data(1))
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)["callbacks"]
    assert saved[loss.state_key]["events"] == loss.events and [e["epoch"] for e in loss.events] == [1]
    assert saved[acc.state_key]["events"] == acc.events and [e["epoch"] for e in acc.events] == [2]
    assert saved[loss.state_key]["best"] == 0.5 and saved[acc.state_key]["best"] == pytest.approx(0.6)


def test_state_dict_round_trip_and_older_checkpoints():
    detector = PlateauDetector(patience=3)
    detector.judge.update(1.0)
    detector.judge.update(2.0)
    state = detector.state_dict()
    assert set(state) == {"best", "num_bad", "cooldown_counter", "since_best", "events", "diverged", "baseline"}
    restored = PlateauDetector(patience=3)
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    # A checkpoint from before `events` and `diverged` existed, with EarlyStopping's `wait`.
    old = PlateauDetector(patience=3)
    old.load_state_dict({"best": 0.5, "wait": 2, "scale": 0.5})
    assert (old.judge.best, old.judge.num_bad, old.events) == (0.5, 2, [])
    assert old.judge.update(0.6) is False and old.judge.update(0.6) is True  # 4 bad values > patience 3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"action": "shrink"}, ValueError, "`action` must be one of 'log', 'reduce', 'stop': got action='shrink'"),
        ({"patience": -1}, ValueError, "patience"),
        ({"mode": "up"}, ValueError, "mode"),
        ({"factor": 1.5}, ValueError, "factor"),
        ({"min_delta": -0.1}, ValueError, "min_delta"),
        ({"divergence_factor": 0.5}, ValueError, "divergence_factor"),
        ({"divergence_factor": 2.0, "mode": "max"}, ValueError, "mode='min'"),
        ({"monitor": ""}, TypeError, "monitor"),
        ({"check_finite": 1}, TypeError, "check_finite"),
    ],
)
def test_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        PlateauDetector(**kwargs)


def test_divergence_counts_from_the_untrained_models_value(tmp_path):
    """A run whose loss explodes before its first validation never gets worse than its own best;
    the sanity check's value of the untrained model is the reference that catches it."""
    import lightning as L

    from lightning_lrsched import SyntheticClassifier, SyntheticDataModule
    from lightning_lrsched.callbacks import PlateauDetector

    absurd = {"name": "cyclic", "base_lr": 10.0, "max_lr": 1e6, "step_size_up": 5, "cycle_momentum": False}
    detector = PlateauDetector(divergence_factor=10.0)
    trainer = L.Trainer(
        max_epochs=3,
        callbacks=[detector],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(SyntheticClassifier(scheduler=absurd), SyntheticDataModule(num_samples=200))
    assert 0 < detector.baseline < 2.0
    assert detector.diverged and trainer.current_epoch == 1
    assert [e["action"] for e in detector.events] == ["diverged"]
    assert "untrained model" in detector.events[0]["reason"]
    assert detector.state_dict()["baseline"] == detector.baseline


def test_a_per_group_min_lr_of_the_wrong_length_fails_before_training(tmp_path):
    detector = PlateauDetector(action="reduce", min_lr=[0.1, 0.2, 0.3])
    t = trainer(tmp_path, max_epochs=2, callbacks=[detector])
    with pytest.raises(ValueError, match="`min_lr` has 3 values but the optimizer has 2 param groups"):
        t.fit(ScriptedModule(scripted={"val_loss": [1.0, 1.0]}), data(2), data(1))
    assert t.global_step == 0
