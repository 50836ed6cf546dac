"""Lightning callbacks: log the LRs actually used, act on plateaus, and check schedules against the run.

Each uses public Lightning API only and keeps its state under explicit keys.
"""

from lightning_lrsched.callbacks.lr_logger import LRLogger
from lightning_lrsched.callbacks.plateau_detector import PlateauDetector
from lightning_lrsched.callbacks.schedule_check import ScheduleCheck, ScheduleWarning
from lightning_lrsched.callbacks.schedule_free import ScheduleFreeMode

__all__ = ["LRLogger", "PlateauDetector", "ScheduleCheck", "ScheduleFreeMode", "ScheduleWarning"]
