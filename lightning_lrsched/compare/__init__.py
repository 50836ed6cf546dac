"""Compare schedules side by side: schedules × device configs × seeds, a report, W&B runs.

The names below are imported when first used: a worker process (``python -m
lightning_lrsched.compare.worker``) and the standby worker that ``lrsched compare`` starts before it
imports torch (:mod:`.processes`) need none of them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Comparison": "api",
    "compare": "api",
    "SEED_SCHEDULES": "grid",
    "RunSpec": "grid",
    "OutputLayout": "layout",
    "RunRecord": "record",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # once: the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
