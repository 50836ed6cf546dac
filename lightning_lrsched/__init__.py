"""lightning-lrsched: learning-rate schedules for PyTorch Lightning that are correct, visible and comparable.

The names below load on first use, so ``import lightning_lrsched.schedules`` stays free of
Lightning.
"""

from __future__ import annotations

from lightning_lrsched.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "SyntheticClassifier": "lightning_lrsched.models",
    "SyntheticDataModule": "lightning_lrsched.models",
    "DigitsClassifier": "lightning_lrsched.models",
    "DigitsDataModule": "lightning_lrsched.models",
    "LRLogger": "lightning_lrsched.callbacks",
    "PlateauDetector": "lightning_lrsched.callbacks",
    "PlateauDriver": "lightning_lrsched.lightning",
    "ScheduleFreeMode": "lightning_lrsched.schedule_free",
    "ScheduleCheck": "lightning_lrsched.callbacks",
    "compare": "lightning_lrsched.compare",
    "find_lr": "lightning_lrsched.finder",
    "tune": "lightning_lrsched.tune",
    "get_schedule": "lightning_lrsched.schedules",
    "available_schedules": "lightning_lrsched.schedules",
    "preview": "lightning_lrsched.schedules",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
