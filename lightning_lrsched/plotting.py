"""Figures of LR curves (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from lightning_lrsched.errors import InvalidValue
from lightning_lrsched.schedules import Schedule, preview


def schedule_figure(
    schedules: Sequence[Schedule],
    steps: int,
    *,
    steps_per_epoch: int | None = None,
    base_lr: float = 1.0,
    x: str = "steps",
    title: str | None = None,
) -> Figure:
    """One figure with the LR curve of every schedule over ``steps`` optimizer steps."""
    if x not in ("steps", "epochs"):
        raise InvalidValue(f"`x` must be 'steps' or 'epochs': got x={x!r}")
    figure, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    per_epoch = steps_per_epoch or 1
    axis = np.arange(steps) / (per_epoch if x == "epochs" else 1)
    for schedule in schedules:
        args = ", ".join(f"{k}={v}" for k, v in schedule.to_dict().items() if k not in ("name", "interval"))
        ax.plot(
            axis,
            preview(schedule, steps, base_lr, steps_per_epoch),
            label=f"{schedule.name}({args})",
            drawstyle="steps-post",
        )
    ax.set_xlabel("epoch" if x == "epochs" else "optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(title or "Learning-rate schedule" + ("s" if len(schedules) > 1 else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return figure


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` (format from the suffix) and close it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
