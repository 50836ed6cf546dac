"""How a value reads in the report's tables (terminal and Markdown)."""

from __future__ import annotations

import math
from typing import Any

from lightning_lrsched.compare.statistics import Estimate


def cell(value: Any, key: str = "") -> str:
    if key in ("wall_time", "steps_per_s") and isinstance(value, float) and math.isfinite(value):
        return f"{value:.1f}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.4f}"
    return str(value)


def estimate_cell(value: Estimate | None) -> str:
    if value is None:
        return "-"
    return f"{cell(value.mean)} ± {value.std:.2g} [{cell(value.low)}, {cell(value.high)}]"


def signed(value: float) -> str:
    return ("+" if value > 0 else "") + cell(value)
