"""`lrsched fit` end to end: every example config and torch's own schedulers apply the LR they promise.

Each run is a real LightningCLI fit, in-process, with :class:`lr_recorder.LRRecorder` writing down
the LR of every optimizer step. The expected LRs come from ``preview`` of the config's schedule or
from torch's scheduler of the same name. ``preview`` shares its formulas (``Curve.weights``) with
the scheduler, so against it these tests catch wiring errors (interval, durations, run length,
stepping); the formulas themselves are checked against torch and Hugging Face in tests/schedules.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
import yaml
from lr_recorder import LRRecorder, plateau_reference

from lightning_lrsched.cli import main
from lightning_lrsched.models import SyntheticDataModule
from lightning_lrsched.schedules import preview
from lightning_lrsched.schedules.tutorial import resolve_schedule

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "examples" / "configs").glob("*.yaml"))
RECORDER = f"{LRRecorder.__module__}.{LRRecorder.__name__}"
QUIET_TRAINER_ARGS = [
    "--trainer.logger",
    "false",
    "--trainer.enable_checkpointing",
    "false",
    "--trainer.enable_model_summary",
    "false",
]


def fit(tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run ``lrsched fit *args`` with the recorder; return what it recorded."""
    record = tmp_path / "lr.json"
    main(
        [
            "fit",
            *args,
            "--trainer.default_root_dir",
            str(tmp_path),
            *QUIET_TRAINER_ARGS,
            f"--trainer.callbacks+={RECORDER}",
            f"--trainer.callbacks.path={record}",
        ]
    )
    return json.loads(record.read_text())


def lrs_of(record: dict[str, Any]) -> np.ndarray:
    """The first param group's LR at each optimizer step, after checking the steps are 0, 1, 2, ..."""
    assert record["steps"] == list(range(len(record["steps"])))
    return np.array([lrs[0] for lrs in record["lrs"]])


def test_example_configs_are_found():
    names = {config.stem for config in CONFIGS}
    assert {"step", "multistep", "exponential", "cosine", "plateau", "cyclic"} <= names


# 16 short epochs (3 batches each) so that every config's schedule shows its shape: step drops at
# epoch 10, multistep at 10 and 15, cyclic runs several cycles.
EPOCHS, BATCHES = 16, 3
# At the configs' own LR the validation loss falls all 16 epochs and plateau never acts; at LR 1.0 it bounces.
LR_OVERRIDES = {"plateau": 1.0}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.stem)
def test_example_config_applies_its_schedule_at_every_step(config: Path, tmp_path: Path):
    spec = yaml.safe_load(config.read_text())
    base_lr = LR_OVERRIDES.get(config.stem, spec["model"]["lr"])
    record = fit(
        tmp_path,
        *("--config", str(config), "--model.lr", str(base_lr)),
        *("--trainer.max_epochs", str(EPOCHS), "--trainer.limit_train_batches", str(BATCHES)),
        *("--trainer.limit_val_batches", "2"),
    )
    schedule = resolve_schedule(spec["model"]["scheduler"])
    assert record["schedule"] == schedule.to_dict(), "the CLI trained with another schedule than the config's"
    total = EPOCHS * BATCHES
    assert record["run"]["num_training_batches"] == BATCHES
    assert record["run"]["estimated_stepping_batches"] == total
    lrs = lrs_of(record)
    assert len(lrs) == total
    assert record["run"]["lr"] == base_lr
    if schedule.is_plateau:
        assert len(record["metrics"]) == EPOCHS
        params = {k: v for k, v in spec["model"]["scheduler"].items() if k not in ("name", "monitor")}
        expected = plateau_reference(record["metrics"], record["metric_steps"], total, base_lr, **params)
    else:
        expected = preview(schedule, total, base_lr=base_lr, steps_per_epoch=BATCHES)
    assert np.ptp(expected) > 0, "the run is too short to show this schedule's shape"
    np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=0)


def test_example_config_default_length_trains_to_completion(tmp_path: Path, capsys):
    """A config at its own epoch length (3 full epochs here, not 20), the epoch lines and the summary."""
    config = next(c for c in CONFIGS if c.stem == "cosine")
    record = fit(tmp_path, "--config", str(config), "--trainer.max_epochs", "3")
    data = SyntheticDataModule(**yaml.safe_load(config.read_text())["data"])
    per_epoch = math.ceil(len(data.splits["train"]) / data.hparams.batch_size)
    lrs = lrs_of(record)
    assert len(lrs) == 3 * per_epoch
    expected = preview(resolve_schedule({"name": "cosine", "eta_min": 0.0}), 3 * per_epoch, 0.1, per_epoch)
    np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=0)
    assert len(record["metrics"]) == 3
    # EpochReport: "Epoch 1/3  loss 0.5619  val_loss 0.4381  val_acc 0.8650  last-step lr 0.075"
    out = capsys.readouterr().out
    pattern = r"^Epoch (\d+)/3  loss [\d.]+  val_loss ([\d.]+)  val_acc [\d.]+  last-step lr (\S+)$"
    report = [match.groups() for line in out.splitlines() if (match := re.match(pattern, line))]
    assert [int(epoch) for epoch, _, _ in report] == [1, 2, 3]
    last_step_lrs = lrs[per_epoch - 1 :: per_epoch]
    for (_, val_loss, lr), metric, last_lr in zip(report, record["metrics"], last_step_lrs, strict=True):
        assert float(val_loss) == pytest.approx(metric, abs=5e-5)
        assert lr == f"{last_lr:.3g}"
    assert "v_num" not in out
    # One meaning of "final LR": the LR the last optimizer step used, in the summary as in the last epoch line.
    (summary,) = [line for line in out.splitlines() if "final lr:" in line]
    assert f"(step {3 * per_epoch - 1})" in summary
    assert f" {lrs[-1]:.3g} " in out.split("Summary")[1]
    # cosine ends at eta_min=0 after its last scheduler step, an LR no optimizer step used
    assert lrs[-1] > 0


def test_validate_and_test_subcommands(tmp_path: Path, capsys):
    for command, metric in (("validate", "val_loss"), ("test", "test_acc")):
        main([command, "--trainer.default_root_dir", str(tmp_path / command), *QUIET_TRAINER_ARGS])
        assert metric in capsys.readouterr().out


def torch_trace(scheduler_class: type, steps: int, **kwargs: Any) -> np.ndarray:
    """The LR of each of ``steps`` optimizer steps with a torch scheduler stepped once per step."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = scheduler_class(optimizer, **kwargs)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(lrs)


TORCH_SCHEDULERS = {
    "OneCycleLR": (torch.optim.lr_scheduler.OneCycleLR, {"max_lr": 0.5, "total_steps": 44}),
    "CyclicLR": (torch.optim.lr_scheduler.CyclicLR, {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 5}),
}


@pytest.mark.parametrize("name", TORCH_SCHEDULERS)
def test_torch_per_batch_scheduler_from_cli_steps_every_optimizer_step(name: str, tmp_path: Path):
    scheduler_class, kwargs = TORCH_SCHEDULERS[name]
    options = [x for key, value in kwargs.items() for x in (f"--lr_scheduler.{key}", str(value))]
    record = fit(
        tmp_path,
        *("--optimizer", "SGD", "--optimizer.lr", "0.1", "--lr_scheduler", name, *options),
        "--trainer.max_epochs",
        "2",
    )
    lrs = lrs_of(record)
    first_epoch = lrs[np.array(record["epochs"]) == 0]
    assert len(set(first_epoch.tolist())) > 1, "the LR did not change within an epoch: stepped per epoch?"
    np.testing.assert_allclose(lrs, torch_trace(scheduler_class, len(lrs), **kwargs), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "scheduler",
    [
        ["--lr_scheduler", "torch.optim.lr_scheduler.ReduceLROnPlateau"],
        ["--lr_scheduler", "ReduceLROnPlateau", "--lr_scheduler.monitor", "val_loss"],
    ],
    ids=["torch", "lightning"],
)
def test_reduce_lr_on_plateau_from_cli_monitors_val_loss(scheduler: list[str], tmp_path: Path):
    # threshold 0.5: only a halving of val_loss is an improvement, so the second epoch must reduce.
    kwargs = {"patience": 0, "threshold": 0.5, "factor": 0.1}
    options = [x for key, value in kwargs.items() for x in (f"--lr_scheduler.{key}", str(value))]
    record = fit(
        tmp_path, "--optimizer", "SGD", "--optimizer.lr", "0.1", *scheduler, *options, "--trainer.max_epochs", "3"
    )
    lrs = lrs_of(record)
    assert len(record["metrics"]) == 3
    assert lrs[0] == 0.1 and lrs[-1] < 0.1, "ReduceLROnPlateau never reduced the LR"
    expected = plateau_reference(record["metrics"], record["metric_steps"], len(lrs), 0.1, **kwargs)
    np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=0)


# -- bad input: at most three lines on stderr, exit status 2, no training ----------------------------
ONE_CYCLE = ["--optimizer", "SGD", "--optimizer.lr", "0.1", "--lr_scheduler", "OneCycleLR"]
BAD_FIT = {
    "unknown schedule": (["--model.scheduler", "nosuch"], ["nosuch", "schedule", "cosine"]),
    "bad schedule argument": (["--model.scheduler", "{name: step, step_size: 2, gamma: -1}"], ["gamma", "-1"]),
    "missing schedule argument": (["--model.scheduler", "{name: step}"], ["step_size"]),
    "unknown schedule argument": (["--model.scheduler", "{name: step, step_size: 2, gama: 0.5}"], ["gama"]),
    "unknown model argument": (
        ["--model.schedular", "cosine"],
        ["--model", "'schedular' is not accepted", "scheduler"],
    ),
    "unknown optimizer": (["--model.optimizer", "nosuch"], ["optimizer", "nosuch"]),
    "bad optimizer argument": (["--model.optimizer", "{name: sgd, momentum: -1}"], ["optimizer", "momentum"]),
    "unknown optimizer argument": (["--model.optimizer", "{name: adam, momentum: 0.9}"], ["optimizer", "momentum"]),
    "non-number lr": (["--model.lr", "abc"], ["--model.lr", "abc"]),
    "nan lr": (["--model.lr", "nan"], ["--model.lr", "must be a finite number", "nan"]),
    "negative lr": (["--model.lr", "-1"], ["lr"]),
    "bad data argument": (["--data.batch_size", "0"], ["batch_size"]),
    "non-number max_epochs": (["--trainer.max_epochs", "abc"], ["--trainer.max_epochs", "expected an int", "abc"]),
    "non-number seed": (["--seed_everything", "abc"], ["--seed_everything", "bool or int", "abc"]),
    "unknown top-level option": (["--nosuch", "1"], ["--nosuch"]),
    "unknown trainer option": (["--trainer.nosuch", "1"], ["--trainer.nosuch"]),
    "unavailable accelerator": (["--trainer.accelerator", "tpu"], ["--trainer.accelerator", "tpu", "cpu"]),
    "missing checkpoint": (["--ckpt_path", "missing.ckpt"], ["--ckpt_path", "missing.ckpt"]),
    "root dir is a file": (["--trainer.default_root_dir", "{tmp}/afile"], ["default_root_dir", "afile", "file"]),
    "root dir under a file": (["--trainer.default_root_dir", "{tmp}/afile/sub"], ["default_root_dir", "afile/sub"]),
    "root dir not writable": (["--trainer.default_root_dir", "/proc/lrsched/out"], ["default_root_dir", "/proc"]),
    "torch scheduler without optimizer": (
        ["--lr_scheduler", "StepLR", "--lr_scheduler.step_size", "2"],
        ["--lr_scheduler StepLR", "needs --optimizer", "--model.scheduler"],
    ),
    "OneCycleLR without max_lr": (ONE_CYCLE, ["--lr_scheduler", "max_lr"]),
    "OneCycleLR shorter than the run": (
        [*ONE_CYCLE, "--lr_scheduler.max_lr", "0.5", "--lr_scheduler.total_steps", "10"],
        ["total_steps 10", "shorter than the run", "22 optimizer steps", "leave total_steps out"],
    ),
    "a scheduler Lightning would never step": (
        [
            *("--model", "tests.compare.own_models.ManualOptimization", "--optimizer", "SGD", "--optimizer.lr", "0.1"),
            *("--lr_scheduler", "StepLR", "--lr_scheduler.step_size", "1"),
        ],
        ["--lr_scheduler", "ManualOptimization uses manual optimization", "use automatic optimization"],
    ),
    "unknown optimizer class": (["--optimizer", "SGDD"], ["--optimizer", "SGDD", "Adam", "did you mean 'SGD'"]),
    # torch's own checks when configure_optimizers builds them: were tracebacks called a bug.
    "torch refuses the optimizer's value": (
        ["--optimizer", "SGD", "--optimizer.lr", "-1"],
        ["--optimizer SGD", "Invalid learning rate: -1.0"],
    ),
    "torch refuses the scheduler's value": (
        ["--optimizer", "SGD", "--optimizer.lr", "0.1", "--lr_scheduler", "LinearLR", "--lr_scheduler.start_factor=5"],
        ["--lr_scheduler LinearLR", "Starting multiplicative factor"],
    ),
    "no batch per optimizer step": (["--trainer.accumulate_grad_batches", "0"], ["accumulate_grad_batches", ">= 1"]),
    "no device": (["--trainer.devices", "0"], ["--trainer.devices", ">= 1", "got '0'"]),
    "config not YAML": (["--config", "{tmp}/bad.yaml"], ["bad.yaml", "not valid YAML at line 3, column 1"]),
}


@pytest.fixture
def quiet_lightning(caplog: pytest.LogCaptureFixture) -> None:
    """Keep Lightning's info lines ("Seed set to 0") out of the stderr under test."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        caplog.set_level(logging.WARNING, logger=name)


def assert_short_error(capsys: pytest.CaptureFixture, error: pytest.ExceptionInfo, command: str, words: list[str]):
    assert error.value.code == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3, f"expected at most three lines on stderr, got {lines}"
    assert lines[0].startswith(f"lrsched {command}: error: ")
    assert "Traceback" not in captured.err
    assert "Epoch" not in captured.out, "it trained before reporting the error"
    for word in words:
        assert word in " ".join(lines), f"{word!r} is not named in {lines!r}"


@pytest.mark.parametrize("case", BAD_FIT)
def test_bad_fit_input_exits_2_with_a_short_message(case: str, tmp_path: Path, capsys, quiet_lightning):
    (tmp_path / "afile").write_text("")
    (tmp_path / "bad.yaml").write_text("model:\n  scheduler: [a\n")
    args, words = BAD_FIT[case]
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    with pytest.raises(SystemExit) as error:
        main(
            [
                "fit",
                "--trainer.max_epochs",
                "1",
                "--trainer.default_root_dir",
                str(tmp_path),
                *QUIET_TRAINER_ARGS,
                *args,
            ]
        )
    assert_short_error(capsys, error, "fit", words)


# -- the fit path: callbacks, torch schedulers, config.yaml ---------------------------------------
TINY = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]


def test_fit_attaches_lr_logger_and_schedule_check_unless_switched_off(tmp_path: Path):
    for switch in ("true", "false"):
        root = tmp_path / switch
        logger = ["--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(root)]
        main(["fit", *TINY, "--lr_callbacks", switch, *logger, "--trainer.enable_checkpointing", "false"])
        header = (root / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
        # LRLogger logs the LR of every step under LearningRateMonitor's key for the module's schedule
        assert ("lr-step" in header) == (switch == "true"), header


def test_fit_warns_about_a_plateau_monitor_that_is_not_logged(tmp_path: Path, capsys, quiet_lightning):
    plateau = ["--model.scheduler", "{name: plateau, monitor: val_los}"]
    main(["fit", *TINY, *QUIET_TRAINER_ARGS, *plateau])
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line or "logged" in line]
    text = " ".join(warnings)
    assert warnings[0].startswith("lrsched fit: warning: ScheduleCheck"), warnings
    assert "'val_los'" in text and "val_loss" in text and "val_acc" in text, "the logged keys are not named"
    main(["fit", *TINY, *QUIET_TRAINER_ARGS, *plateau, "--lr_callbacks", "false"])
    assert "ScheduleCheck" not in capsys.readouterr().err, "--lr_callbacks false still attached ScheduleCheck"


def test_fit_without_logger_writes_no_config_yaml_and_runs_twice(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        main(["fit", *TINY, "--trainer.logger", "false", "--trainer.enable_checkpointing", "false"])
    assert list(tmp_path.iterdir()) == []


def test_one_cycle_from_the_command_line_takes_total_steps_from_the_run(tmp_path: Path):
    record = fit(tmp_path, *ONE_CYCLE, "--lr_scheduler.max_lr", "0.5", "--trainer.max_epochs", "2")
    lrs = lrs_of(record)
    assert len(lrs) == record["run"]["estimated_stepping_batches"] == 44
    expected = torch_trace(torch.optim.lr_scheduler.OneCycleLR, 44, max_lr=0.5, total_steps=44)
    np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=0)


def test_lrsched_cli_is_importable_and_subclassable(tmp_path: Path):
    from lightning_lrsched.cli import LRSchedCLI
    from lightning_lrsched.models import SyntheticClassifier

    class ThreeEpochCLI(LRSchedCLI):
        DEFAULTS: ClassVar[dict[str, Any]] = {**LRSchedCLI.DEFAULTS, "trainer_defaults": {"max_epochs": 3}}

    cli = ThreeEpochCLI(args=["--model.scheduler", "cosine", "--trainer.default_root_dir", str(tmp_path)], run=False)
    assert isinstance(cli.model, SyntheticClassifier)
    assert cli.model.schedule.name == "cosine"
    assert cli.trainer.max_epochs == 3


def test_fit_schedules_the_weight_decay_from_the_command_line(tmp_path: Path):
    logger = ["--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", str(tmp_path)]
    schedules = ["--model.optimizer", "{name: adamw, weight_decay: 0.1}"]
    schedules += ["--model.weight_decay_schedule", "{name: cosine, interval: step}"]
    every_step = ["--trainer.log_every_n_steps", "1", "--trainer.limit_train_batches", "6"]
    main(["fit", *TINY, *every_step, *schedules, *logger, "--trainer.enable_checkpointing", "false"])
    rows = list(csv.DictReader((tmp_path / "lightning_logs" / "version_0" / "metrics.csv").open()))
    decay = [float(r["weight_decay-cosine"]) for r in rows if r.get("weight_decay-cosine")]
    assert decay[0] == pytest.approx(0.1) and decay[-1] < 0.01, "the weight decay follows a cosine to ~0"
    assert decay == sorted(decay, reverse=True)


def test_a_resume_that_asks_for_another_schedule_is_refused_naming_each_difference(tmp_path: Path, capsys):
    onecycle = ["--model.scheduler", "{name: onecycle, max_lr: 0.5}"]
    saving = ["--trainer.logger", "false", "--trainer.enable_model_summary", "false"]
    main(["fit", *TINY, *onecycle, "--trainer.default_root_dir", str(tmp_path), *saving])
    (ckpt,) = tmp_path.glob("**/*.ckpt")
    resume = ["fit", *TINY, "--trainer.max_epochs", "2", *saving, "--ckpt_path", str(ckpt)]
    resume += ["--trainer.default_root_dir", str(tmp_path / "resumed")]
    capsys.readouterr()
    with pytest.raises(SystemExit) as error:  # LightningCLI would load the checkpoint's onecycle over it
        main([*resume, "--model.scheduler", "cosine", "--model.lr", "0.05"])
    assert_short_error(
        capsys, error, "fit", ["`scheduler` was {'name': 'onecycle', 'max_lr': 0.5}, now 'cosine'", "`lr` was 0.1"]
    )
    main([*resume, *onecycle])  # the settings it was saved with (given again, or left out) resume
    main(resume)


@pytest.mark.parametrize("damage", ["empty", "truncated", "bit-flipped", "a tensor", "text"])
def test_a_damaged_or_foreign_checkpoint_is_one_line(tmp_path: Path, capsys, damage: str):
    saving = ["--trainer.logger", "false", "--trainer.enable_model_summary", "false"]
    main(["fit", *TINY, "--trainer.default_root_dir", str(tmp_path), *saving])
    (ckpt,) = tmp_path.glob("**/*.ckpt")
    data = ckpt.read_bytes()
    bad = tmp_path / "bad.ckpt"
    if damage == "a tensor":
        torch.save(torch.zeros(3), bad)
    else:
        at = data.index(b"data.pkl") + 100  # in the pickle of the checkpoint's structure
        flipped = data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1 :]
        bad.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "bit-flipped": flipped}.get(damage, b"hi"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as error:
        main(["fit", *TINY, *saving, "--ckpt_path", str(bad), "--trainer.default_root_dir", str(tmp_path / "r")])
    assert_short_error(capsys, error, "fit", ["--ckpt_path", str(bad), "checkpoint"])


@pytest.mark.parametrize(
    ("metrics", "shown"),
    [
        ({"train_loss": 0.5, "val_loss": 0.4}, "loss 0.5000  val_loss 0.4000"),
        ({"loss": 0.25, "val_loss": 0.4}, "loss 0.2500  val_loss 0.4000"),  # Lightning's own `loss` key
        ({"train/loss_epoch": 0.3, "train/loss_step": 0.1}, "train/loss_epoch 0.3000  val_loss -"),
        ({"val_loss": 0.4}, "Epoch 1/3  val_loss 0.4000"),  # no training loss logged: no "loss -" column
    ],
)
def test_the_epoch_line_shows_the_training_loss_the_module_logs(metrics, shown):
    from types import SimpleNamespace

    from rich.console import Console

    from lightning_lrsched.console import EpochReport

    console = Console(record=True, width=200)
    report = EpochReport(console)
    trainer = SimpleNamespace(
        callback_metrics={k: torch.tensor(v) for k, v in metrics.items()},
        is_global_zero=True,
        current_epoch=0,
        max_epochs=3,
        progress_bar_callback=None,
    )
    report.on_train_epoch_end(trainer, None)
    line = console.export_text().strip()
    assert shown in line and "  loss -" not in line, line


def test_fit_without_a_logger_writes_nothing_next_to_you(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["fit", *TINY, "--trainer.logger", "false", "--trainer.enable_model_summary", "false"])
    assert list(tmp_path.iterdir()) == []  # no checkpoints/ (nor config.yaml, nor lightning_logs/)
