"""Composite schedules: ``join`` against torch's ``SequentialLR``, ``chain`` against ``ChainedScheduler``.

On a fresh optimizer torch's composites are right, and ours must give the same LRs step by step.
On resume they are not: torch's schedulers continue from the optimizer's current LR, so a scheduler
state loaded onto a fresh optimizer (or a ``last_epoch=N`` construction, pytorch#162591) restarts
from the base LR. Ours is a closed form of the step count and must equal the uninterrupted run.
"""

from __future__ import annotations

import io
import warnings
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from torch.optim import lr_scheduler as tl
from torch.utils.data import DataLoader, TensorDataset

from lightning_lrsched import PlateauDriver
from lightning_lrsched.callbacks.schedule_check import RunPlan, check_schedulers
from lightning_lrsched.schedules import PlateauLR, Schedule, get_schedule, preview
from lightning_lrsched.schedules.run import durations, needs_epoch_length, needs_run_length

STEPS = 20

# (torch scheduler on an optimizer, our spec); every schedule here is right in torch on a fresh optimizer.
SEQUENTIAL = {
    "linear-warmup-then-cosine": (
        lambda o: tl.SequentialLR(
            o,
            [tl.LinearLR(o, start_factor=0.1, total_iters=5), tl.CosineAnnealingLR(o, T_max=15, eta_min=0.001)],
            milestones=[5],
        ),
        # T_max left out: a part's run-length default is its own span (20 - 5 = 15).
        {
            "schedules": [
                {"name": "linear", "start_factor": 0.1, "total_iters": 5},
                {"name": "cosine", "eta_min": 0.001},
            ],
            "boundaries": [5],
        },
    ),
    "three-parts": (
        lambda o: tl.SequentialLR(
            o,
            [
                tl.ConstantLR(o, factor=0.5, total_iters=3),
                tl.ExponentialLR(o, gamma=0.9),
                tl.StepLR(o, step_size=2, gamma=0.5),
            ],
            milestones=[3, 8],
        ),
        {
            "schedules": [
                {"name": "constant", "factor": 0.5, "total_iters": 3},
                {"name": "exponential", "gamma": 0.9},
                {"name": "step", "step_size": 2, "gamma": 0.5},
            ],
            "boundaries": [3, 8],
        },
    ),
    "pytorch-67586": (
        lambda o: tl.SequentialLR(o, [tl.LinearLR(o, total_iters=5), tl.ExponentialLR(o, gamma=0.9)], milestones=[5]),
        {"schedules": ["linear", {"name": "exponential", "gamma": 0.9}], "boundaries": [5]},
    ),
}
CHAINED = {
    "constant-times-exponential": (
        lambda o: tl.ChainedScheduler([tl.ConstantLR(o, factor=0.5, total_iters=3), tl.ExponentialLR(o, gamma=0.9)]),
        {"schedules": [{"name": "constant", "factor": 0.5, "total_iters": 3}, {"name": "exponential", "gamma": 0.9}]},
    ),
    "linear-times-step": (
        lambda o: tl.ChainedScheduler(
            [tl.LinearLR(o, start_factor=0.2, total_iters=4), tl.StepLR(o, step_size=3, gamma=0.5)]
        ),
        {
            "schedules": [
                {"name": "linear", "start_factor": 0.2, "total_iters": 4},
                {"name": "step", "step_size": 3, "gamma": 0.5},
            ]
        },
    ),
    "multistep-times-polynomial": (
        lambda o: tl.ChainedScheduler(
            [tl.MultiStepLR(o, milestones=[2, 5], gamma=0.5), tl.PolynomialLR(o, total_iters=15, power=2.0)]
        ),
        {
            "schedules": [
                {"name": "multistep", "milestones": [2, 5], "gamma": 0.5},
                {"name": "polynomial", "total_iters": 15, "power": 2.0},
            ]
        },
    ),
}
CASES = [pytest.param("join", *case, id=f"join-{key}") for key, case in SEQUENTIAL.items()] + [
    pytest.param("chain", *case, id=f"chain-{key}") for key, case in CHAINED.items()
]


def _torch_lrs(optimizer, scheduler, steps):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's SequentialLR warns about its own step(epoch) calls
        lrs = []
        for _ in range(steps):
            lrs.append([g["lr"] for g in optimizer.param_groups])
            optimizer.step()
            scheduler.step()
    return np.asarray(lrs)


def _ours(name, spec, optimizer, steps=STEPS):
    return get_schedule(name, **spec).build(optimizer, total_steps=steps)


def _checkpoint(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize(("name", "make_torch", "spec"), CASES)
def test_matches_torch_on_a_fresh_optimizer(make_optimizer, record, assert_tracks, name, make_torch, spec):
    reference_optimizer = make_optimizer()
    reference = _torch_lrs(reference_optimizer, make_torch(reference_optimizer), STEPS + 5)
    optimizer = make_optimizer()
    ours, _ = record(optimizer, _ours(name, spec, optimizer), STEPS + 4)
    assert np.ptp(reference[:, 0]) > 0
    assert_tracks(ours, reference)
    np.testing.assert_allclose(preview(get_schedule(name, **spec), STEPS, base_lr=0.1), reference[:STEPS, 0], rtol=1e-9)


@pytest.mark.parametrize("k", [2, 5, 9, 15])
@pytest.mark.parametrize(("name", "make_torch", "spec"), CASES)
def test_resume_from_the_scheduler_state_continues_the_uninterrupted_run(
    make_optimizer, record, name, make_torch, spec, k
):
    full_optimizer = make_optimizer()
    full, _ = record(full_optimizer, _ours(name, spec, full_optimizer), STEPS)
    saved_optimizer = make_optimizer()
    saved = _ours(name, spec, saved_optimizer)
    record(saved_optimizer, saved, k)
    state = _checkpoint(saved.state_dict())
    # A fresh optimizer at its original LRs: only the scheduler's state carries the position.
    optimizer = make_optimizer()
    resumed = _ours(name, spec, optimizer)
    resumed.load_state_dict(state)
    lrs, _ = record(optimizer, resumed, STEPS - k)
    np.testing.assert_array_equal(lrs, full[k:])


@pytest.mark.parametrize(("name", "make_torch", "spec"), CASES)
def test_torch_resume_from_the_scheduler_state_is_wrong_where_ours_is_right(make_optimizer, name, make_torch, spec):
    # The claim the README makes: if torch ever fixes this, the README must say so.
    k = 9
    full_optimizer = make_optimizer()
    full = _torch_lrs(full_optimizer, make_torch(full_optimizer), STEPS)
    saved_optimizer = make_optimizer()
    saved = make_torch(saved_optimizer)
    _torch_lrs(saved_optimizer, saved, k)
    optimizer = make_optimizer()
    resumed = make_torch(optimizer)
    resumed.load_state_dict(saved.state_dict())
    assert not np.allclose(_torch_lrs(optimizer, resumed, STEPS - k), full[k:])


def test_torch_sequential_lr_built_with_last_epoch_starts_wrong_where_ours_is_right(make_optimizer):
    # pytorch#162591: SequentialLR(..., last_epoch=N) sets the first part's LR whatever N is.
    optimizer = make_optimizer(lrs=(0.1,))
    optimizer.param_groups[0]["initial_lr"] = 0.1
    parts = [tl.ConstantLR(optimizer, factor=0.5, total_iters=3, last_epoch=5), tl.ExponentialLR(optimizer, 0.9, 5)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tl.SequentialLR(optimizer, parts, milestones=[3], last_epoch=5)
    spec = SEQUENTIAL["three-parts"][1]
    expected = 0.1 * 0.9**2  # two steps into the exponential part
    assert optimizer.param_groups[0]["lr"] != pytest.approx(expected)
    ours = get_schedule("join", schedules=spec["schedules"][:2], boundaries=[3])
    assert preview(ours, 6, base_lr=0.1)[5] == pytest.approx(expected, rel=1e-12)


# -- plateau as the last part of a join -------------------------------------------------------------------
WARMUP_PLATEAU = {
    "schedules": [
        {"name": "linear", "start_factor": 0.1, "total_iters": 10},
        {"name": "plateau", "patience": 1, "factor": 0.5, "min_lr": [0.0, 0.01]},
    ],
    "boundaries": [10],
}
METRICS = [1.0 / (1 + t // 7) for t in range(40)]


def test_warmup_then_plateau_is_a_plateau_scheduler(make_optimizer, record):
    schedule = get_schedule("join", **WARMUP_PLATEAU)
    assert schedule.is_plateau and schedule.interval == "epoch" and schedule.monitor == "val_loss"
    assert get_schedule("chain", schedules=["cosine", {"name": "plateau", "monitor": "val_acc"}]).monitor == "val_acc"
    assert get_schedule("cosine").monitor is None
    optimizer = make_optimizer()
    scheduler = schedule.build(optimizer, total_steps=40)
    assert isinstance(scheduler, PlateauLR) and scheduler.rule.patience == 1
    lrs, _ = record(optimizer, scheduler, 39, METRICS)
    # The plateau part alone gives the peak as its reductions lower it; the warmup scales that peak.
    alone_optimizer = make_optimizer()
    alone = get_schedule("plateau", **{k: v for k, v in WARMUP_PLATEAU["schedules"][1].items() if k != "name"})
    peaks, _ = record(alone_optimizer, alone.build(alone_optimizer), 39, METRICS)
    warmup = np.minimum(0.1 + 0.9 * np.arange(40) / 10, 1.0)
    np.testing.assert_allclose(lrs, warmup[:, None] * peaks, rtol=1e-12)
    assert peaks[10, 0] < 0.1 and lrs[-1, 1] == 0.01, "reduced during the warmup already, down to min_lr"


@pytest.mark.parametrize("k", [3, 9, 10, 22])
def test_warmup_then_plateau_resumes_mid_part(make_optimizer, record, k):
    schedule = get_schedule("join", **WARMUP_PLATEAU)

    def fresh():
        optimizer = make_optimizer()
        return optimizer, schedule.build(optimizer, total_steps=40)

    optimizer, scheduler = fresh()
    full, _ = record(optimizer, scheduler, 39, METRICS)
    optimizer, scheduler = fresh()
    record(optimizer, scheduler, k, METRICS)
    state = _checkpoint(scheduler.state_dict())
    optimizer, resumed = fresh()
    resumed.load_state_dict(state)
    lrs, _ = record(optimizer, resumed, 39 - k, METRICS[k:])
    np.testing.assert_array_equal(lrs, full[k:])


class _ConstantLoss(L.LightningModule):
    def __init__(self, schedule: Schedule) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(10, 2)
        self.schedule = schedule

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", 1.0)  # never improves: every validation after the first is bad

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        return {"optimizer": optimizer, "lr_scheduler": self.schedule.lightning_config(optimizer, self.trainer)}


class _Trace(Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_under_lightning_plateau_after_warmup_is_driven_by_validation(tmp_path):
    schedule = get_schedule(
        "join",
        schedules=[{"name": "linear", "start_factor": 0.5, "total_iters": 2}, {"name": "plateau", "patience": 1}],
        boundaries=[2],
    )
    x = torch.randn(16, 10, generator=torch.Generator().manual_seed(0))
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)
    trace = _Trace()
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_epochs=5,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[trace, PlateauDriver()],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(_ConstantLoss(schedule), data, data)
    per_epoch = trace.lrs[::2]
    assert trace.lrs[1::2] == per_epoch, "an epoch schedule changes the LR between epochs only"
    # Warmup 0.05 -> 0.075, then the peak; the validations of epochs 1 and 2 are bad (patience 1), so the LR is
    # reduced x0.1 at the end of epoch 2: a validation during the warmup counts.
    np.testing.assert_allclose(per_epoch, [0.05, 0.075, 0.1, 0.01, 0.01])


# -- specs: made once, saved as plain data, refused when wrong --------------------------------------------
def test_spec_round_trips_through_yaml_and_get_schedule():
    schedule = get_schedule(
        "join",
        schedules=[
            {"name": "warmup_constant", "warmup": "2ep"},
            {"name": "chain", "schedules": ["cosine", {"name": "plateau", "monitor": "val_acc", "mode": "max"}]},
        ],
        boundaries=["10%"],
    )
    spec = yaml.safe_load(yaml.safe_dump(schedule.to_dict()))
    assert spec["schedules"][1]["schedules"][1] == {
        "name": "plateau",
        "monitor": "val_acc",
        "mode": "max",
        "interval": "step",
    }
    again = get_schedule(spec)
    assert again == schedule and again.fingerprint() == schedule.fingerprint()
    assert again.interval == "step" and [p.interval for p in again.parts] == ["step", "step"]
    assert Schedule.__eq__(again, get_schedule(spec | {"boundaries": ["20%"]})) is False


def test_part_given_as_a_schedule_object():
    cosine = get_schedule("cosine", eta_min=0.01, interval="step")
    schedule = get_schedule("join", schedules=[{"name": "warmup_constant", "warmup": 4}, cosine], boundaries=[4])
    assert schedule.parts[1] is cosine
    lr = preview(schedule, 12)
    np.testing.assert_allclose(lr[:5], [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(lr[4:], preview(cosine, 8), rtol=1e-12)


def test_generic_warmup_of_a_composite_ramps_to_its_first_value():
    inner = {"schedules": [{"name": "constant", "factor": 0.5, "total_iters": 3}, "cosine"], "boundaries": [3]}
    plain = preview(get_schedule("join", **inner), 10)
    warmed = preview(get_schedule("join", **inner, warmup=4), 14)
    np.testing.assert_allclose(warmed[:5], [0.0, 0.125, 0.25, 0.375, 0.5])
    np.testing.assert_allclose(warmed[4:], plain, rtol=1e-12)


def test_nested_join_resolves_each_default_against_its_own_span():
    inner = {"name": "join", "schedules": ["cosine", "cosine"], "boundaries": [4]}
    schedule = get_schedule("join", schedules=[{"name": "warmup_constant", "warmup": 2}, inner], boundaries=[2])
    lr = preview(schedule, 12)
    # 2 warmup steps, then a 4-step cosine, then a cosine over the 6 steps left.
    np.testing.assert_allclose(lr[2:6], preview(get_schedule("cosine", T_max=4), 4), rtol=1e-12)
    np.testing.assert_allclose(lr[6:], preview(get_schedule("cosine", T_max=6), 6), rtol=1e-12)


def test_chain_with_a_floor_and_momentum_part(make_optimizer, record):
    cyclic = {"name": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2}
    schedule = get_schedule("chain", schedules=[{"name": "exponential", "gamma": 0.5}, cyclic])
    optimizer = make_optimizer()
    lrs, momenta = record(optimizer, schedule.build(optimizer, total_steps=8), 4)
    alone_optimizer = make_optimizer()
    alone, alone_momenta = record(alone_optimizer, get_schedule(**cyclic).build(alone_optimizer), 4)
    np.testing.assert_allclose(lrs[:, 0], alone[:, 0] * 0.5 ** np.arange(5), rtol=1e-12)
    np.testing.assert_allclose(momenta, alone_momenta, rtol=1e-12)


def test_durations_and_run_length_look_inside_the_parts():
    schedule = get_schedule(
        "join",
        schedules=[{"name": "warmup_constant", "warmup": "1ep"}, {"name": "cosine", "T_max": 90}],
        boundaries=[10],
    )
    assert [(arg, str(d)) for arg, d in durations(schedule)] == [
        ("boundaries", "10"),
        ("schedules[0].warmup", "1ep"),
        ("schedules[1].T_max", "90"),
    ]
    assert needs_run_length(schedule) is None
    assert needs_epoch_length(schedule) == "schedules[0].warmup"
    # Only the last part of a join reaches the end of the run; every part of a chain does.
    assert needs_run_length(get_schedule("join", schedules=["cosine", "constant"], boundaries=[5]).parts[0]) == "T_max"
    assert (
        needs_run_length(get_schedule("join", schedules=["cosine", {"name": "step", "step_size": 2}], boundaries=[5]))
        is None
    )
    assert needs_run_length(get_schedule("chain", schedules=["cosine", "constant"])) == "schedules[0].T_max"
    assert needs_run_length(get_schedule("join", schedules=["constant", "cosine"], boundaries=["5%"])) == "boundaries"


def test_lightning_config_refuses_an_unknown_run_length_naming_the_part(make_optimizer):
    trainer = SimpleNamespace(
        estimated_stepping_batches=float("inf"), num_training_batches=float("inf"), train_dataloader=object(),
        accumulate_grad_batches=1, max_epochs=-1, max_steps=-1, global_step=0, current_epoch=0, callbacks=[],
    )  # fmt: skip
    schedule = get_schedule("join", schedules=[{"name": "warmup_constant", "warmup": 5}, "cosine"], boundaries=[5])
    with pytest.raises(ValueError, match=r"`join` needs the run length for `schedules\[1\]\.T_max`"):
        schedule.lightning_config(make_optimizer(), trainer)


INVALID = {
    "boundaries not increasing": (
        {"schedules": ["constant", "cosine", "cosine"], "boundaries": [5, 5]},
        r"`boundaries` must be strictly increasing and >= 1: got boundaries=\['5', '5'\] = \[5, 5\] epochs",
    ),
    "boundary at 0": ({"schedules": ["constant", "cosine"], "boundaries": [0]}, r"strictly increasing and >= 1"),
    "boundary past the run": (
        {"schedules": ["constant", "cosine"], "boundaries": ["100%"]},
        r"`boundaries` must lie inside the run, so that every part runs: got boundaries=\['100%'\] = \[20\] epochs, "
        r"run=20 epochs",
    ),
    "boundary count": (
        {"schedules": ["constant", "cosine"], "boundaries": [2, 4]},
        r"`boundaries` must have one duration per part after the first \(1\): got 2 for 2 schedules",
    ),
    "bad boundary": ({"schedules": ["constant", "cosine"], "boundaries": ["5 epochs"]}, r"`boundaries\[0\]` must be"),
    "plateau not last": (
        {"schedules": ["plateau", "cosine"], "boundaries": [5]},
        r"only the last part of `join` may be driven by a metric \(plateau\): schedules\[0\] is 'plateau'",
    ),
    "part invalid for its span": (
        {"schedules": ["constant", {"name": "warmup_cosine", "warmup": 15}], "boundaries": [5]},
        r"`schedules\[1\]` of `join` \(warmup_cosine, steps 5\.\.20\): `warmup` must be shorter than the run: "
        r"got warmup=15 steps, total=15 steps",
    ),
    "bad part argument": (
        {"schedules": ["constant", {"name": "cosine", "eta_min": -1}], "boundaries": [5]},
        r"`schedules\[1\]` of `join`: `eta_min` must be",
    ),
    "unknown part": (
        {"schedules": ["constant", "nope"], "boundaries": [5]},
        r"`schedules\[1\]` of `join`: unknown schedule 'nope'",
    ),
    "one part": ({"schedules": ["cosine"], "boundaries": []}, r"`join` needs `schedules`: a list of at least two"),
    "schedules not a list": ({"schedules": "cosine", "boundaries": [1]}, r"`join` needs `schedules`"),
    "part intervals differ": (
        {
            "schedules": [{"name": "constant", "interval": "step"}, {"name": "cosine", "interval": "epoch"}],
            "boundaries": [5],
        },
        r"name different intervals \(schedules\[0\] has interval='step', schedules\[1\] has interval='epoch'\)",
    ),
    "part interval clashes": (
        {"schedules": ["constant", {"name": "cosine", "interval": "epoch"}], "boundaries": [5], "interval": "step"},
        r"run on its clock, interval='step', but schedules\[1\] has interval='epoch'",
    ),
    "absolute and relative LRs": (
        {"schedules": ["constant", {"name": "onecycle", "max_lr": 0.5}], "boundaries": [5]},
        r"part 1 of the join sets absolute LRs \(max_lr\) while part 0 scales each group's own LR",
    ),
}
CYCLIC = {"name": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 3}
ONECYCLE = {"name": "onecycle", "max_lr": 0.05}
INVALID["momentum ranges differ"] = (
    {"schedules": [CYCLIC, ONECYCLE], "boundaries": [12]},
    r"must share their momentum range: part 0 has \(0\.8, 0\.9\), part 1 has \(0\.85, 0\.95\)$",
)
CHAIN_INVALID = {
    "two floors": (
        {"schedules": [{"name": "cosine", "eta_min": 0.01}, {"name": "cosine", "eta_min": 0.02}]},
        r"at most one part of a chain may have a floor LR \(eta_min, base_lr\): parts \[0, 1\] do",
    ),
    "two plateaus": (
        {"schedules": ["plateau", "plateau"]},
        r"at most one part of a chain may be `plateau`: parts \[0, 1\]",
    ),
}


@pytest.mark.parametrize(("spec", "message"), INVALID.values(), ids=INVALID.keys())
def test_invalid_join_is_refused(make_optimizer, spec, message):
    with pytest.raises((ValueError, TypeError), match=message):
        get_schedule("join", **spec).build(make_optimizer(), total_steps=20)


@pytest.mark.parametrize(("spec", "message"), CHAIN_INVALID.values(), ids=CHAIN_INVALID.keys())
def test_invalid_chain_is_refused(make_optimizer, spec, message):
    with pytest.raises(ValueError, match=message):
        get_schedule("chain", **spec).build(make_optimizer(), total_steps=20)


# -- ScheduleCheck looks inside -------------------------------------------------------------------------
def _findings(schedule, plan):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = schedule.build(optimizer, **plan.build_args(schedule.interval))
    config = SimpleNamespace(scheduler=scheduler, interval=schedule.interval, frequency=1, name="lr", monitor=None)
    return check_schedulers([config], plan)


def test_schedule_check_checks_each_part_against_its_span():
    plan = RunPlan(total_steps=100, batches_per_epoch=10)
    warm = {"name": "linear", "start_factor": 0.1, "total_iters": 5}
    # A warmup ending at its boundary and a cosine over the rest: nothing to report.
    assert _findings(get_schedule("join", schedules=[warm, "cosine"], boundaries=[5]), plan) == []
    found = _findings(get_schedule("join", schedules=[warm, {"name": "cosine", "T_max": 2}], boundaries=[5]), plan)
    assert [(f.code, f.scheduler) for f in found] == [
        ("ends-early", "lr (join, interval='epoch') part 1 (cosine, epochs 5..end)")
    ]
    assert "cosine ends after 2 epochs but the run lasts 5" in found[0].message
    late = _findings(get_schedule("join", schedules=[warm | {"total_iters": 8}, "cosine"], boundaries=[5]), plan)
    assert [f.code for f in late] == ["ends-late"] and "total_iters=8" in late[0].message


def test_schedule_check_finds_a_per_step_part_stepped_per_epoch():
    plan = RunPlan(total_steps=100, batches_per_epoch=10)
    schedule = get_schedule(
        "join", schedules=[{"name": "warmup_linear", "warmup": 3}, "cosine"], boundaries=[5], interval="epoch"
    )
    assert [f.code for f in _findings(schedule, plan)] == ["step-schedule-per-epoch"]


def test_a_join_lane_among_param_groups(make_optimizer, record):
    from lightning_lrsched.schedules import GroupSchedules

    join = {"name": "join", "schedules": [{"name": "warmup_constant", "warmup": 3}, "cosine"], "boundaries": [3]}
    step = {"name": "step", "step_size": 1, "gamma": 0.5}
    optimizer = make_optimizer()
    # Mixed intervals: the scheduler steps per optimizer step, the epoch schedule every 4 of them.
    lrs, _ = record(optimizer, GroupSchedules([join, step]).build(optimizer, total_steps=12, steps_per_epoch=4), 11)
    np.testing.assert_allclose(lrs[:, 0], preview(get_schedule(join), 12, base_lr=0.1), rtol=1e-12)
    np.testing.assert_allclose(lrs[:, 1], preview(get_schedule(step), 12, base_lr=0.03, steps_per_epoch=4))


def test_compare_grid_takes_nested_specs():
    from lightning_lrsched.compare.grid import build_grid

    spec = {
        "name": "join",
        "schedules": [{"name": "warmup_constant", "warmup": "1ep"}, "plateau"],
        "boundaries": ["1ep"],
    }
    (run,), _ = build_grid([spec], ["cpu:1"], [0], 3)
    assert run.label == "join" and get_schedule(run.schedule) == get_schedule(spec)
    assert run.schedule["schedules"][1] == {"name": "plateau", "interval": "step"}


def test_join_of_parts_with_different_absolute_lrs_keeps_each_part_as_it_is():
    parts = [CYCLIC | {"cycle_momentum": False}, ONECYCLE | {"cycle_momentum": False}]
    lr = preview(get_schedule("join", schedules=parts, boundaries=[12]), 30)
    np.testing.assert_allclose(lr[:12], preview(get_schedule(parts[0]), 12), rtol=1e-12)
    np.testing.assert_allclose(lr[12:], preview(get_schedule(parts[1]), 18), rtol=1e-12)
