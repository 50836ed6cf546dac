"""transformers' schedule table (``tests/optimization/test_optimization.py``), retargeted at our schedules.

Upstream's ``ScheduleInitTest.test_schedulers``: an ``AdamW(lr=10.0)``, ten steps, the LR before
each step against a table of expected values (``tol=1e-2``), then the same run with a
save-and-reload of the scheduler state at step 5, which must give identical LRs. Upstream builds
every schedule on ONE optimizer, shared by the whole table, and relies on ``initial_lr`` for each
new schedule to start from 10.0 again: that part is ``test_schedulers_shared_optimizer``.

Beyond upstream's table, ``wsd`` and ``cosine_with_min_lr`` (no upstream expectations) are checked
against the installed transformers functions on the same grid.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

from lightning_lrsched.schedules import get_schedule

NUM_STEPS = 10
TOL = 1e-2  # upstream's
COMMON = {"warmup": 2, "total": 10}  # upstream's {"num_warmup_steps": 2, "num_training_steps": 10}

# (our spec, upstream's expected LRs), id = upstream's schedule function
TABLE = [
    # HF's constant schedule is ConstantLR with factor 1: nothing changes.
    pytest.param({"name": "constant", "factor": 1.0}, [10.0] * NUM_STEPS, id="get_constant_schedule"),
    pytest.param(
        {"name": "warmup_constant", "warmup": 4},
        [0.0, 2.5, 5.0, 7.5, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0],
        id="get_constant_schedule_with_warmup",
    ),
    pytest.param(
        {"name": "warmup_linear", **COMMON},
        [0.0, 5.0, 10.0, 8.75, 7.5, 6.25, 5.0, 3.75, 2.5, 1.25],
        id="get_linear_schedule_with_warmup",
    ),
    pytest.param(
        {"name": "warmup_cosine", **COMMON},
        [0.0, 5.0, 10.0, 9.61, 8.53, 6.91, 5.0, 3.08, 1.46, 0.38],
        id="get_cosine_schedule_with_warmup",
    ),
    pytest.param(
        {"name": "warmup_cosine_restarts", **COMMON, "num_cycles": 2},
        [0.0, 5.0, 10.0, 8.53, 5.0, 1.46, 10.0, 8.53, 5.0, 1.46],
        id="get_cosine_with_hard_restarts_schedule_with_warmup",
    ),
    pytest.param(
        {"name": "warmup_polynomial", **COMMON, "power": 2.0, "lr_end": 1e-7},
        [0.0, 5.0, 10.0, 7.656, 5.625, 3.906, 2.5, 1.406, 0.625, 0.156],
        id="get_polynomial_decay_schedule_with_warmup",
    ),
    pytest.param(
        {"name": "inverse_sqrt", "warmup": 2},
        [0.0, 5.0, 10.0, 8.165, 7.071, 6.325, 5.774, 5.345, 5.0, 4.714],
        id="get_inverse_sqrt_schedule",
    ),
]


def _optimizer() -> torch.optim.Optimizer:
    """Upstream's ``AdamW(nn.Linear(50, 50).parameters(), lr=10.0)``."""
    return torch.optim.AdamW(nn.Linear(50, 50).parameters(), lr=10.0)


def _unwrap(optimizer: torch.optim.Optimizer, scheduler, num_steps: int = NUM_STEPS) -> list[float]:
    """Upstream's ``unwrap_schedule``: the LR before each step (``get_last_lr``, not torch's warning ``get_lr``)."""
    lrs = []
    for _ in range(num_steps):
        lrs.append(float(scheduler.get_last_lr()[0]))
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize(("spec", "expected"), TABLE)
def test_schedulers(spec, expected):
    optimizer = _optimizer()
    scheduler = get_schedule(spec).build(optimizer)
    assert len(scheduler.get_last_lr()) == 1
    assert _unwrap(optimizer, scheduler) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize(("spec", "expected"), TABLE)
def test_schedulers_save_and_reload(spec, expected, tmp_path):
    """Upstream's ``unwrap_and_save_reload_schedule``: torch.save / torch.load / load_state_dict at step 5."""
    optimizer = _optimizer()
    lrs_1 = _unwrap(optimizer, get_schedule(spec).build(optimizer))
    optimizer = _optimizer()
    scheduler = get_schedule(spec).build(optimizer)
    lrs_2 = []
    for step in range(NUM_STEPS):
        lrs_2.append(float(scheduler.get_last_lr()[0]))
        optimizer.step()
        scheduler.step()
        if step == NUM_STEPS // 2:
            torch.save(scheduler.state_dict(), tmp_path / "schedule.bin")
            scheduler.load_state_dict(torch.load(tmp_path / "schedule.bin"))
    assert lrs_2 == lrs_1


@pytest.mark.parametrize(("spec", "expected"), TABLE)
def test_schedulers_resume_in_a_new_process(spec, expected, tmp_path):
    """Beyond upstream: the reload goes into a NEW optimizer and scheduler, as a resumed run builds them."""
    optimizer = _optimizer()
    lrs_1 = _unwrap(optimizer, get_schedule(spec).build(optimizer))
    optimizer = _optimizer()
    scheduler = get_schedule(spec).build(optimizer)
    lrs_2 = _unwrap(optimizer, scheduler, NUM_STEPS // 2)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp_path / "ckpt.pt")
    checkpoint = torch.load(tmp_path / "ckpt.pt")
    resumed_optimizer = _optimizer()
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    resumed = get_schedule(spec).build(resumed_optimizer)
    resumed.load_state_dict(checkpoint["scheduler"])
    lrs_2 += _unwrap(resumed_optimizer, resumed, NUM_STEPS - NUM_STEPS // 2)
    assert lrs_2 == lrs_1


def test_schedulers_shared_optimizer():
    """Upstream's table exactly as upstream runs it: every schedule on one shared optimizer, in order."""
    optimizer = _optimizer()
    for param in TABLE:
        spec, expected = param.values
        for _ in range(2):  # upstream builds each twice: the normal run, then the save-and-reload run
            lrs = _unwrap(optimizer, get_schedule(spec).build(optimizer))
            assert lrs == pytest.approx(expected, abs=TOL), param.id


# our spec -> the transformers function and its arguments, on upstream's grid (lr 10, 10 steps)
BEYOND_TABLE = [
    pytest.param(
        {"name": "wsd", "warmup": 2, "decay": 4, "total": 10},
        lambda o: transformers.get_wsd_schedule(o, num_warmup_steps=2, num_decay_steps=4, num_training_steps=10),
        id="get_wsd_schedule",
    ),
    pytest.param(
        {"name": "wsd", "warmup": 2, "decay": 4, "total": 10, "warmup_type": "1-sqrt", "decay_type": "linear"}
        | {"min_lr_ratio": 0.1},
        lambda o: transformers.get_wsd_schedule(
            o,
            num_warmup_steps=2,
            num_decay_steps=4,
            num_training_steps=10,
            warmup_type="1-sqrt",
            decay_type="linear",
            min_lr_ratio=0.1,
        ),
        id="get_wsd_schedule-1-sqrt-linear-min_lr_ratio",
    ),
    pytest.param(
        {"name": "warmup_cosine", **COMMON, "min_lr_ratio": 0.1},
        lambda o: transformers.get_cosine_with_min_lr_schedule_with_warmup(
            o, num_warmup_steps=2, num_training_steps=10, min_lr_rate=0.1
        ),
        id="get_cosine_with_min_lr_schedule_with_warmup",
    ),
]


@pytest.mark.parametrize(("spec", "transformers_schedule"), BEYOND_TABLE)
def test_schedulers_beyond_the_table(spec, transformers_schedule):
    ours_opt, hf_opt = _optimizer(), _optimizer()
    ours = _unwrap(ours_opt, get_schedule(spec).build(ours_opt), NUM_STEPS + 3)
    reference = _unwrap(hf_opt, transformers_schedule(hf_opt), NUM_STEPS + 3)
    assert ours == pytest.approx(reference, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("spec", "expected"), TABLE)
def test_schedulers_match_transformers_closely(spec, expected):
    """Upstream's rounded table is checked at 1e-2; the real functions agree with ours to 1e-9."""
    name = spec["name"]
    hf_function = {
        "constant": lambda o: transformers.get_constant_schedule(o),
        "warmup_constant": lambda o: transformers.get_constant_schedule_with_warmup(o, 4),
        "warmup_linear": lambda o: transformers.get_linear_schedule_with_warmup(o, 2, 10),
        "warmup_cosine": lambda o: transformers.get_cosine_schedule_with_warmup(o, 2, 10),
        "warmup_cosine_restarts": lambda o: transformers.get_cosine_with_hard_restarts_schedule_with_warmup(
            o, 2, 10, num_cycles=2
        ),
        "warmup_polynomial": lambda o: transformers.get_polynomial_decay_schedule_with_warmup(
            o, 2, 10, lr_end=1e-7, power=2.0
        ),
        "inverse_sqrt": lambda o: transformers.get_inverse_sqrt_schedule(o, 2),
    }[name]
    ours_opt, hf_opt = _optimizer(), _optimizer()
    ours = _unwrap(ours_opt, get_schedule(spec).build(ours_opt))
    assert ours == pytest.approx(_unwrap(hf_opt, hf_function(hf_opt)), rel=1e-9, abs=1e-12)
