"""Resume: a scheduler restored from ``state_dict`` continues exactly like the uninterrupted run.

For every schedule: run A steps straight through; run B steps ``k`` times and saves its
``state_dict`` (through ``torch.save``/``torch.load(weights_only=True)``, as a checkpoint would);
run C builds a fresh scheduler on a fresh optimizer (its groups at their original LRs), loads the
state and continues. C's LRs (and momenta) must equal A's at every step from ``k`` on.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from lightning_lrsched.schedules import available_schedules, get_schedule

RUN = 60
# Plateaus of 7 values: improvements, reductions and cooldowns on both sides of every save point.
METRICS = [1.0 / (1 + t // 7) for t in range(RUN)]

VALID = {
    "step": ({"step_size": 4, "gamma": 0.7}, "sgd"),
    "multistep": ({"milestones": [3, 20, 50], "gamma": 0.5}, "sgd"),
    "exponential": ({"gamma": 0.95}, "sgd"),
    "cosine": ({"eta_min": 0.001}, "sgd"),
    "cosine_restarts": ({"T_0": 5, "T_mult": 2, "eta_min": 0.001}, "sgd"),
    "polynomial": ({"total_iters": 55, "power": 2.0}, "sgd"),
    "linear": ({"start_factor": 0.1, "total_iters": 50}, "sgd"),
    "constant": ({"factor": 0.5, "total_iters": 50}, "sgd"),
    "cyclic": (
        {"base_lr": [0.01, 0.001], "max_lr": 0.1, "step_size_up": 7, "step_size_down": 4, "mode": "triangular2"},
        "adam",
    ),
    "onecycle": ({"max_lr": [0.5, 0.2], "three_phase": True}, "sgd"),
    "plateau": ({"patience": 1, "factor": 0.5, "cooldown": 1, "min_lr": [0.0, 0.01]}, "sgd"),
    "warmup_constant": ({"warmup": 20}, "sgd"),
    "warmup_linear": ({"warmup": "10%"}, "sgd"),
    "warmup_cosine": ({"warmup": 6, "min_lr_ratio": 0.1}, "adam"),
    "warmup_cosine_restarts": ({"warmup": 5, "num_cycles": 3}, "sgd"),
    "warmup_polynomial": ({"warmup": 5, "lr_end": 0.001, "power": 2.0}, "sgd"),
    "inverse_sqrt": ({"warmup": 8}, "sgd"),
    "wsd": ({"warmup": 5, "decay": "25%", "decay_type": "1-sqrt", "min_lr_ratio": 0.05}, "sgd"),
    "join": (
        {
            "schedules": [
                {"name": "linear", "start_factor": 0.1, "total_iters": 10},
                {"name": "cosine", "eta_min": 0.001},
            ],
            "boundaries": [10],
        },
        "sgd",
    ),
    "chain": (
        {"schedules": [{"name": "constant", "factor": 0.5, "total_iters": 20}, {"name": "exponential", "gamma": 0.95}]},
        "sgd",
    ),
}

CASES = [pytest.param(name, params, kind, {}, None, id=name) for name, (params, kind) in VALID.items()] + [
    pytest.param("cosine", {"warmup": 5, "eta_min": 0.001}, "sgd", {}, None, id="cosine-warmup"),
    pytest.param(
        "cyclic",
        {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 6, "warmup": "5%"},
        "sgd",
        {},
        None,
        id="cyclic-warmup-momentum",
    ),
    pytest.param("plateau", {"patience": 0, "warmup": 10}, "sgd", {}, None, id="plateau-warmup"),
    pytest.param("cosine", {"T_max": 30}, "sgd", {}, 3, id="cosine-reduced"),
    pytest.param("onecycle", {"max_lr": 0.3}, "adam", {}, 0, id="onecycle-reduced"),
    pytest.param("plateau", {"patience": 1, "factor": 0.5}, "sgd", {}, 2, id="plateau-reduced"),
    pytest.param("warmup_cosine", {"warmup": 4}, "sgd", {}, 30, id="warmup_cosine-reduced"),
    pytest.param(
        "step",
        {"step_size": "8st", "gamma": 0.5, "warmup": "1ep"},
        "sgd",
        {"steps_per_epoch": 4},
        None,
        id="epoch-interval-steps-per-epoch",
    ),
]


def test_every_schedule_is_resumed():
    assert sorted(VALID) == available_schedules()


def _advance(record, optimizer, scheduler, start, stop, metrics, rescale_at):
    """LRs and momenta at t = start .. stop; a plateau reduction by 0.5 of every group is made at t = ``rescale_at``."""
    if rescale_at is not None and start <= rescale_at < stop:
        head = _advance(record, optimizer, scheduler, start, rescale_at, metrics, None)
        scheduler.reduce(range(len(optimizer.param_groups)), 0.5, [0.0] * len(optimizer.param_groups), 1e-12)
        tail = _advance(record, optimizer, scheduler, rescale_at, stop, metrics, None)
        return tuple(np.concatenate([h[:-1], t]) for h, t in zip(head, tail, strict=True))
    return record(optimizer, scheduler, stop - start, None if metrics is None else metrics[start:stop])


def _checkpoint(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("k", [1, 17, 45])
@pytest.mark.parametrize(("name", "params", "kind", "build", "rescale_at"), CASES)
def test_resume_continues_the_uninterrupted_run(make_optimizer, record, name, params, kind, build, rescale_at, k):
    schedule = get_schedule(name, **params)
    metrics = METRICS if name == "plateau" else None
    steps_per_epoch = build.get("steps_per_epoch", 1)
    total = RUN * steps_per_epoch

    def fresh():
        optimizer = make_optimizer(kind)
        return optimizer, schedule.build(optimizer, total_steps=total, **build)

    optimizer_a, scheduler_a = fresh()
    full_lr, full_mom = _advance(record, optimizer_a, scheduler_a, 0, RUN, metrics, rescale_at)
    assert np.ptp(full_lr[:, 0]) > 0, "the LR never changes: resuming it would prove nothing"

    optimizer_b, scheduler_b = fresh()
    _advance(record, optimizer_b, scheduler_b, 0, k, metrics, rescale_at)
    state = _checkpoint(scheduler_b.state_dict())

    optimizer_c, scheduler_c = fresh()
    assert scheduler_c.last_epoch == 0
    scheduler_c.load_state_dict(state)
    # Loading sets the fresh optimizer to the LRs of the saved step, before any further step.
    np.testing.assert_array_equal([g["lr"] for g in optimizer_c.param_groups], full_lr[k])
    lr, mom = _advance(record, optimizer_c, scheduler_c, k, RUN, metrics, rescale_at)
    np.testing.assert_array_equal(lr, full_lr[k:])
    np.testing.assert_array_equal(mom, full_mom[k:])
    assert scheduler_c.last_epoch == scheduler_a.last_epoch == RUN


def test_reductions_are_kept_in_the_state_dict(make_optimizer):
    schedule = get_schedule("step", step_size=5)
    optimizer = make_optimizer()
    scheduler = schedule.build(optimizer)
    for _ in range(2):
        scheduler.reduce([0, 1], 0.5, [0.0, 0.01], 1e-12)
    state = _checkpoint(scheduler.state_dict())
    fresh = make_optimizer()
    restored = schedule.build(fresh)
    assert [g["lr"] for g in fresh.param_groups] == [0.1, 0.03]
    restored.load_state_dict(state)
    # Each group stops at its own min_lr.
    assert [g["lr"] for g in fresh.param_groups] == [0.025, 0.01]


def test_round_one_state_with_a_global_scale_still_loads(make_optimizer):
    schedule = get_schedule("step", step_size=5)
    old = {"last_epoch": 3, "peaks": [0.1, 0.03], "floors": [0.0, 0.0], "scale": 0.25, "schedule": schedule.to_dict()}
    optimizer = make_optimizer()
    schedule.build(optimizer).load_state_dict(old)
    assert [g["lr"] for g in optimizer.param_groups] == [0.025, 0.0075]
