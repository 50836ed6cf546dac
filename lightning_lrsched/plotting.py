"""Figures of LR curves (matplotlib's object API: no display, no pyplot, the host's backend untouched)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

from lightning_lrsched.errors import InvalidValue
from lightning_lrsched.schedules import Schedule, preview
from lightning_lrsched.validation import make_output_dir

IMAGE_FORMATS = tuple(sorted(FigureCanvasBase.get_supported_filetypes()))
"""Suffixes ``save_figure`` can write (png, pdf, svg, ...)."""


def schedule_figure(
    schedules: Sequence[Schedule],
    steps: int,
    *,
    steps_per_epoch: int | None = None,
    base_lr: float = 1.0,
    x: str = "steps",
    title: str | None = None,
) -> Figure:
    """One figure with the LR curve of every schedule over ``steps`` optimizer steps.

    Notes under the plot say what the curves cannot show: ``plateau``'s reductions (they depend on
    the monitored metric), and, without ``steps_per_epoch``, that an epoch of an epoch-interval
    schedule is drawn as one optimizer step.
    """
    if x not in ("steps", "epochs"):
        raise InvalidValue(f"`x` must be 'steps' or 'epochs': got x={x!r}")
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    ax = figure.add_subplot()
    per_epoch = steps_per_epoch or 1
    axis = np.arange(steps) / (per_epoch if x == "epochs" else 1)
    notes = []
    for schedule in schedules:
        ax.plot(
            axis,
            preview(schedule, steps, base_lr, steps_per_epoch),
            label=schedule.describe(),
            drawstyle="steps-post",
        )
        if schedule.is_plateau:
            notes.append(
                "plateau is drawn without reductions: they happen in training, when its metric stops improving"
            )
    if steps_per_epoch is None and any(s.interval == "epoch" for s in schedules):
        notes.append("no --steps-per-epoch: an epoch of an epoch-interval schedule is drawn as one optimizer step")
    ax.set_xlabel("epoch" if x == "epochs" else "optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(title or "Learning-rate schedule" + ("s" if len(schedules) > 1 else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if notes:
        engine = figure.get_layout_engine()
        if isinstance(engine, ConstrainedLayoutEngine):  # it is: the figure is made constrained above
            engine.set(h_pad=0.1)
        figure.supxlabel("\n".join(f"Note: {note}" for note in dict.fromkeys(notes)), fontsize="small", color="dimgray")
    return figure


def check_image_path(name: str, path: str | Path) -> Path:
    """Check that ``path`` names an image file matplotlib can write and that its folder can be written.

    Example:
        >>> check_image_path("-o", "lr.xyz")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lightning_lrsched.errors.InvalidValue: `-o` must end in an image format matplotlib writes: got -o='lr.xyz'; ...
    """
    out = Path(path)
    if out.suffix.lstrip(".").lower() not in IMAGE_FORMATS:
        formats = ", ".join(f".{f}" for f in IMAGE_FORMATS)
        raise InvalidValue(
            f"`{name}` must end in an image format matplotlib writes: got {name}={str(path)!r}; use one of {formats}"
        )
    if out.is_dir():
        raise InvalidValue(f"`{name}` must be an image file: got {name}={str(path)!r}, which is a folder")
    make_output_dir(name, out.parent, given=path)
    return out


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` (format from the suffix), creating its folder."""
    out = check_image_path("path", path)
    figure.savefig(out, dpi=120)
    return out
