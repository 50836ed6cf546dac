"""`SyntheticClassifier`: optimizers by torch's names, Lightning's scheduler dict, and plateau under
any validation cadence (real Trainer runs on tmp_path)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from harness import quiet_trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lr_recorder import LRRecorder, plateau_reference

from lightning_lrsched.models import SyntheticClassifier, SyntheticDataModule
from lightning_lrsched.schedules import get_schedule
from lightning_lrsched.schedules.scheduler import ScheduledLR


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Model initialisation draws from the global RNG: make it independent of the tests run before."""
    torch.manual_seed(0)


def tiny_fit(tmp_path: Path, model: SyntheticClassifier, *callbacks: L.Callback, **kwargs: Any) -> L.Trainer:
    kwargs = {"max_epochs": 2, "limit_train_batches": 3, "limit_val_batches": 1, **kwargs}
    run = quiet_trainer(tmp_path, *callbacks, **kwargs)
    run.fit(model, SyntheticDataModule(num_samples=200, batch_size=16))
    return run


# -- optimizers -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "cls", "defaults"),
    [
        ("sgd", torch.optim.SGD, {"lr": 0.05, "momentum": 0, "nesterov": False}),
        ("SGD", torch.optim.SGD, {"lr": 0.05}),
        ({"name": "sgd", "momentum": 0.9, "nesterov": True}, torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
        ({"name": "sgd", "lr": 0.3, "weight_decay": 1e-4}, torch.optim.SGD, {"lr": 0.3, "weight_decay": 1e-4}),
        ("adam", torch.optim.Adam, {"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0}),
        ({"name": "adam", "betas": [0.8, 0.99], "amsgrad": True}, torch.optim.Adam, {"amsgrad": True}),
        ("adamw", torch.optim.AdamW, {"lr": 0.05, "weight_decay": 0.01}),
        ({"name": "AdamW", "weight_decay": 0.1}, torch.optim.AdamW, {"weight_decay": 0.1}),
        ("rmsprop", torch.optim.RMSprop, {"lr": 0.05, "alpha": 0.99, "momentum": 0}),
        ({"name": "rmsprop", "alpha": 0.9, "momentum": 0.5, "centered": True}, torch.optim.RMSprop, {"centered": True}),
    ],
)
def test_optimizers_by_torch_names(spec, cls, defaults):
    model = SyntheticClassifier(optimizer=spec, lr=0.05, scheduler=None)
    optimizer = model.configure_optimizers()
    assert type(optimizer) is cls
    for key, value in defaults.items():
        got = optimizer.defaults[key]
        assert (tuple(got) if isinstance(got, (list, tuple)) else got) == value, key
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key != "name":
                got = optimizer.defaults[key]
                assert (list(got) if isinstance(value, list) else got) == value, key
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == {id(p) for p in model.parameters()}


# -- Lightning's scheduler dict ---------------------------------------------------------------------
SCHEDULES = [
    ("step", {"name": "step", "step_size": 1, "gamma": 0.5}, "epoch", None),
    ("plateau-val_acc", {"name": "plateau", "mode": "max", "monitor": "val_acc"}, "epoch", "val_acc"),
    ("onecycle", {"name": "onecycle", "max_lr": 0.5}, "step", None),
]


@pytest.mark.parametrize(("label", "scheduler", "interval", "monitor"), SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_configure_optimizers_returns_lightnings_dict(label, scheduler, interval, monitor, tmp_path: Path):
    model = SyntheticClassifier(scheduler=scheduler)
    run = tiny_fit(tmp_path, model)
    # the model keeps its trainer after fit: configure_optimizers sees the same run again
    config = model.configure_optimizers()
    assert set(config) == {"optimizer", "lr_scheduler"}
    assert isinstance(config["optimizer"], torch.optim.SGD)
    scheduler_config = config["lr_scheduler"]
    # `monitor` only for the metric-driven schedule (Lightning warns about it otherwise under manual optimization)
    assert set(scheduler_config) == {"scheduler", "interval", "frequency", "name"} | ({"monitor"} if monitor else set())
    assert isinstance(scheduler_config["scheduler"], ScheduledLR)
    assert scheduler_config["scheduler"].optimizer is config["optimizer"]
    assert scheduler_config["interval"] == interval
    assert scheduler_config["frequency"] == 1
    assert scheduler_config.get("monitor") == monitor
    assert scheduler_config["name"] == f"lr-{model.schedule.name}"
    # and Lightning took it as such during fit
    (used,) = run.lr_scheduler_configs
    assert (used.interval, used.frequency, used.monitor) == (interval, 1, monitor)
    assert isinstance(used.scheduler, ScheduledLR)
    assert used.scheduler.last_epoch == (6 if interval == "step" else 2)


def test_no_scheduler_gives_a_bare_optimizer(tmp_path: Path):
    model = SyntheticClassifier(scheduler=None, lr=0.2)
    recorder = LRRecorder(str(tmp_path / "lr.json"))
    run = tiny_fit(tmp_path, model, recorder)
    assert run.lr_scheduler_configs == []
    assert recorder.lrs == [[0.2]] * 6


def test_a_schedule_object_is_used_as_given(tmp_path: Path):
    schedule = get_schedule("step", step_size=1, gamma=0.5)
    model = SyntheticClassifier(scheduler=schedule, lr=0.2)
    assert model.schedule is schedule
    recorder = LRRecorder(str(tmp_path / "lr.json"))
    tiny_fit(tmp_path, model, recorder)
    assert [lrs[0] for lrs in recorder.lrs] == [0.2] * 3 + [0.1] * 3


def test_tutorial_names_get_the_tutorials_arguments():
    assert SyntheticClassifier(scheduler="step").schedule == get_schedule("step", step_size=10, gamma=0.1)
    assert SyntheticClassifier(scheduler="plateau").schedule == get_schedule(
        "plateau", mode="min", factor=0.5, patience=2
    )


# -- architecture -----------------------------------------------------------------------------------
def test_default_is_the_linear_10_to_2_classifier():
    model = SyntheticClassifier()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(10, 2)]
    assert model(torch.zeros(5, 10)).shape == (5, 2)


def test_hidden_layers(tmp_path: Path):
    model = SyntheticClassifier(hidden=[8, 4], input_dim=10, num_classes=3, scheduler=None)
    layers = list(model.net)
    assert [type(m) for m in layers] == [torch.nn.Linear, torch.nn.ReLU] * 2 + [torch.nn.Linear]
    assert [(m.in_features, m.out_features) for m in layers if isinstance(m, torch.nn.Linear)] == [
        (10, 8),
        (8, 4),
        (4, 3),
    ]
    assert model(torch.zeros(5, 10)).shape == (5, 3)
    # it trains: the training loss falls
    data = SyntheticDataModule(num_samples=400, num_classes=3, batch_size=20)
    run = quiet_trainer(tmp_path, max_epochs=4)
    run.validate(model, data, verbose=False)
    before = float(run.callback_metrics["val_loss"])
    run.fit(model, data)
    assert float(run.callback_metrics["val_loss"]) < before


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"lr": "abc"}, TypeError, "lr"),
        ({"lr": math.inf}, ValueError, "lr"),
        ({"input_dim": 0}, ValueError, "input_dim"),
        ({"num_classes": 1}, ValueError, "num_classes"),
        ({"num_classes": 2.0}, TypeError, "num_classes"),
        ({"hidden": [8, 0]}, ValueError, r"hidden\[1\]"),
        ({"hidden": [2.5]}, TypeError, r"hidden\[0\]"),
        ({"optimizer": "nosuch"}, ValueError, "optimizer"),
        ({"optimizer": 3}, TypeError, "optimizer"),
        ({"optimizer": {"momentum": 0.9}}, ValueError, "optimizer"),
        ({"optimizer": {"name": "adam", "momentum": 0.9}}, TypeError, "momentum"),
        ({"scheduler": "nosuch"}, ValueError, "nosuch"),
        ({"scheduler": 3}, TypeError, "scheduler"),
        ({"scheduler": {"name": "step"}}, TypeError, "step_size"),
        ({"scheduler": {"name": "step", "step_size": 2, "gamma": -1}}, ValueError, "gamma"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, error, name):
    with pytest.raises(error, match=name):
        SyntheticClassifier(**kwargs)


def test_bad_optimizer_value_is_a_value_error_naming_it():
    model = SyntheticClassifier(optimizer={"name": "sgd", "momentum": -1}, scheduler=None)
    with pytest.raises(ValueError, match=r"optimizer.*momentum"):
        model.configure_optimizers()


# -- plateau under every validation cadence ---------------------------------------------------------
# patience 0 and a 10% threshold: some validation runs improve, most reduce the LR (for any init seed).
PLATEAU = {"mode": "min", "factor": 0.5, "patience": 0, "threshold": 0.1}


@pytest.mark.parametrize(
    ("cadence", "observations", "metric_steps"),
    [
        ({"check_val_every_n_epoch": 2, "max_epochs": 7}, 3, [8, 16, 24]),
        ({"val_check_interval": 0.5, "max_epochs": 4}, 8, [2, 4, 6, 8, 10, 12, 14, 16]),
        ({"check_val_every_n_epoch": 1, "max_epochs": 5}, 5, [4, 8, 12, 16, 20]),
    ],
    ids=["every-2-epochs", "twice-per-epoch", "every-epoch"],
)
def test_plateau_acts_once_per_validation_run(cadence, observations, metric_steps, tmp_path: Path):
    model = SyntheticClassifier(lr=0.5, scheduler={"name": "plateau", **PLATEAU})
    recorder = LRRecorder(str(tmp_path / "lr.json"))
    run = quiet_trainer(tmp_path, recorder, limit_train_batches=4, **cadence)
    run.fit(model, SyntheticDataModule(num_samples=300, batch_size=16))
    steps = cadence["max_epochs"] * 4
    assert recorder.steps == list(range(steps))
    assert len(recorder.metrics) == observations
    assert recorder.metric_steps == metric_steps
    lrs = np.array([lrs[0] for lrs in recorder.lrs])
    expected = plateau_reference(recorder.metrics, recorder.metric_steps, steps, 0.5, **PLATEAU)
    assert expected[-1] < 0.5, "choose a threshold that makes the run reduce at least once"
    np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=0)


def test_a_classifier_built_from_a_schedule_object_reloads_with_that_schedule(tmp_path: Path):
    from lightning_lrsched.schedules import get_schedule

    schedule = get_schedule("cosine", T_max=5, eta_min=0.01)
    saves = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    run = quiet_trainer(tmp_path, saves, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    run.fit(SyntheticClassifier(scheduler=schedule), SyntheticDataModule(num_samples=100, batch_size=16))
    reloaded = SyntheticClassifier.load_from_checkpoint(tmp_path / "ckpt" / "last.ckpt")
    assert reloaded.schedule == schedule  # not the default `step`
