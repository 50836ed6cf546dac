"""The range test's figure: loss over LR (log scale), each rule's suggestion marked on the smoothed curve.

Built on :class:`matplotlib.figure.Figure` directly, so it needs no pyplot backend and does not
switch the caller's.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from matplotlib.figure import Figure


class RangeTestCurve(Protocol):
    """What the figure reads of a range test (an ``LRFinderResult``), so this module needs not import it."""

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestions: dict[str, float | None]
    diverged_at: int | None
    num_steps: int

    def loss_at(self, lr: float) -> float: ...


MARKERS = {"valley": "o", "slide": "s", "steep": "^", "minimum": "v", "lightning": "D"}


def finder_figure(result: RangeTestCurve, title: str | None = None) -> Figure:
    """The raw and smoothed loss of each step over its LR, with one marker per suggestion.

    The y axis spans the smoothed curve from its lowest point up to a little above its start, so a
    diverging tail does not flatten the part the suggestions come from.
    """
    figure = Figure(figsize=(8, 4.8), layout="constrained")
    ax = figure.add_subplot()
    finite = np.isfinite(result.smoothed)
    ax.plot(result.lrs, result.losses, color="0.75", linewidth=0.8, label="loss (each step)")
    ax.plot(result.lrs[finite], result.smoothed[finite], color="C0", linewidth=1.8, label="loss (smoothed)")
    for i, (rule, lr) in enumerate(result.suggestions.items()):
        if lr is None:
            continue
        color = f"C{i + 1}"
        ax.axvline(lr, color=color, linewidth=0.8, linestyle=":")
        ax.plot(
            [lr],
            [result.loss_at(lr)],
            marker=MARKERS.get(rule, "o"),
            markersize=8,
            color=color,
            markeredgecolor="black",
            linestyle="none",
            label=f"{rule}: {lr:.2e}",
        )
    smoothed = result.smoothed[finite]
    if smoothed.size:
        low, start = float(smoothed.min()), float(smoothed[0])
        high = max(start, float(np.median(smoothed)))
        pad = 0.08 * max(high - low, 1e-12)
        ax.set_ylim(low - pad, high + 3 * pad)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    stop = "" if result.diverged_at is None else f", stopped at step {result.diverged_at} (diverged)"
    ax.set_title(title or f"LR range test: {len(result.lrs)} of {result.num_steps} steps{stop}")
    ax.grid(alpha=0.3)
    # the loss is high at low LRs and past the divergence, so the lower left is where it is not
    ax.legend(fontsize="small", loc="lower left")
    return figure
