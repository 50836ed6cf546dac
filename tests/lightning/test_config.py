"""``lightning_config``: Lightning's scheduler dict, checked against the Trainer's callbacks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lightning_lrsched.lightning import PlateauDriver, lightning_config
from lightning_lrsched.schedules import GroupSchedules, get_schedule


def trainer_with(callbacks):
    """The public Trainer attributes lightning_config reads: 2 epochs of 5 steps."""
    return SimpleNamespace(
        estimated_stepping_batches=10,
        num_training_batches=5,
        accumulate_grad_batches=1,
        max_epochs=2,
        max_steps=-1,
        global_step=0,
        current_epoch=0,
        callbacks=callbacks,
    )


def optimizer(groups=1):
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(groups)], lr=0.1)


class OwnDriver(PlateauDriver):
    """A user's subclass still drives plateau schedules."""


@pytest.mark.parametrize(
    ("callbacks", "accepted"),
    [
        ([PlateauDriver()], True),
        ([OwnDriver()], True),
        ([], False),
        # Something that only looks like a driver does not feed the schedule: refused.
        ([SimpleNamespace(drives_plateau_schedules=True)], False),
    ],
    ids=["driver", "subclass", "none", "look-alike"],
)
def test_a_plateau_schedule_needs_a_plateau_driver_among_the_callbacks(callbacks, accepted):
    build = lambda: get_schedule("plateau").lightning_config(optimizer(), trainer_with(callbacks))  # noqa: E731
    if accepted:
        assert build()["monitor"] == "val_loss"
    else:
        with pytest.raises(ValueError, match=r"add lightning_lrsched.PlateauDriver\(\)"):
            build()


def test_the_entry_points_are_the_layers_functions():
    """``Schedule.lightning_config`` and ``GroupSchedules.lightning_config`` give what the layer builds."""
    trainer = trainer_with([])
    schedule = get_schedule("cosine")
    via_method = schedule.lightning_config(optimizer(), trainer)
    via_layer = lightning_config(schedule, optimizer(), trainer)
    assert {k: v for k, v in via_method.items() if k != "scheduler"} == {
        "interval": "epoch",
        "frequency": 1,
        "name": "lr-cosine",
    }
    assert via_method.keys() == via_layer.keys()
    assert (
        via_method["scheduler"].resolved_run
        == via_layer["scheduler"].resolved_run
        == {
            "total_steps": 10,
            "steps_per_epoch": 5,
        }
    )
    groups = GroupSchedules(
        [{"name": "warmup_cosine", "warmup": 2}, {"name": "step", "step_size": 1}]
    ).lightning_config(optimizer(2), trainer)
    assert (groups["name"], groups["interval"]) == ("lr-groups", "step")
