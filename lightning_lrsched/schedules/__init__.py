"""Learning-rate schedules as closed forms: the catalog, previews and the torch adapter.

This layer is pure math and torch: it imports nothing from Lightning.

Example:
    >>> from lightning_lrsched.schedules import get_schedule, preview
    >>> sched = get_schedule("warmup_linear", warmup=2, total=4)
    >>> preview(sched, 5).tolist()
    [0.0, 0.5, 1.0, 0.5, 0.0]
"""

from lightning_lrsched.schedules.duration import Duration, Run, parse_duration
from lightning_lrsched.schedules.per_group import GroupSchedules
from lightning_lrsched.schedules.plateau_rule import PlateauJudge, PlateauRule
from lightning_lrsched.schedules.preview import preview
from lightning_lrsched.schedules.schedule import Schedule, available_schedules, get_schedule
from lightning_lrsched.schedules.scheduler import GroupScheduledLR, Lane, PlateauLR, ScheduledLR

__all__ = [
    "Duration",
    "GroupScheduledLR",
    "GroupSchedules",
    "Lane",
    "PlateauJudge",
    "PlateauLR",
    "PlateauRule",
    "Run",
    "Schedule",
    "ScheduledLR",
    "available_schedules",
    "get_schedule",
    "parse_duration",
    "preview",
]
