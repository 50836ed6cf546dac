"""Compare schedules side by side: schedules × device configs × seeds, a report, W&B runs."""

from lightning_lrsched.compare.api import Comparison, compare
from lightning_lrsched.compare.grid import SEED_SCHEDULES, RunSpec
from lightning_lrsched.compare.layout import OutputLayout
from lightning_lrsched.compare.record import RunRecord

__all__ = ["SEED_SCHEDULES", "Comparison", "OutputLayout", "RunRecord", "RunSpec", "compare"]
