"""``report.png``: LR and validation loss by samples seen, and the best validation loss of each run."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning_lrsched.compare.analysis import finite
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.compare.statistics import CONFIDENCE, RANK_METRIC, SeedStatistics, seed_statistics

if TYPE_CHECKING:
    from matplotlib.typing import LineStyleType

LINE_STYLES: tuple[LineStyleType, ...] = ("-", "--", ":", "-.")
"""One line style per device config, in the figure."""


def figure(records: Sequence[RunRecord], path: Path, statistics: SeedStatistics | None = None) -> None:
    """Three panels by schedule (colour) and device config (line style), seeds as a mean line with a min–max band.

    LR and validation loss by samples seen, and the best validation loss of each run (one dot per
    seed, the mean with the 95 % interval of the mean where the statistics over seeds have one,
    its min–max range otherwise). An axis whose values span more than 100× is logarithmic.
    """
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    statistics = statistics or seed_statistics(records)
    intervals = {(g.label, g.device): g.metrics[RANK_METRIC] for g in statistics.groups if g.enough}
    shown = [r for r in records if r.finished]
    labels = sorted({r.label for r in shown})
    devices = sorted({r.device for r in shown}, key=lambda d: (d != "cpu:1", d))
    colors = {label: colormaps["tab10"](i % 10) for i, label in enumerate(labels)}
    styles = {device: LINE_STYLES[i % 4] for i, device in enumerate(devices)}
    panels = 4 if statistics.paired else 3
    fig = Figure(figsize=(16 + 5 * (panels - 3), 5.2), layout="constrained")
    lr_ax, loss_ax, best_ax, *diff_ax = fig.subplots(1, panels)
    seeds = max((len({r.seed for r in shown if r.label == label}) for label in labels), default=1)
    groups: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for r in shown:
        groups[(r.label, r.device)].append(r)
    for (label, device), runs in groups.items():
        style = {"color": colors[label], "linestyle": styles[device]}
        _seed_band(lr_ax, [r.lr_curve for r in runs], 1, style, np, steps=True)
        _seed_band(loss_ax, [r.val_curve for r in runs if r.status == "ok"], 1, style, np)
        for r in runs:
            if r.status == "diverged" and r.val_curve:
                xs, ys = [p[0] for p in r.val_curve], [p[1] for p in r.val_curve]
                loss_ax.plot(xs, ys, **style, lw=1, alpha=0.6, gid="diverged")
                loss_ax.plot(xs[-1], ys[-1], marker="x", color=colors[label], markersize=8, gid="diverged")
    width = 0.7 / max(len(devices), 1)
    for i, device in enumerate(devices):
        offset = (i - (len(devices) - 1) / 2) * width
        for j, label in enumerate(labels):
            runs = groups.get((label, device), [])
            values = [r.best_val_loss for r in runs if r.status == "ok" and finite(r.best_val_loss)]
            x = j + offset
            if runs and not values:
                best_ax.annotate(
                    "\n".join(sorted({r.status for r in runs})),
                    (x, 0.02),
                    xycoords=("data", "axes fraction"),
                    ha="center",
                    fontsize="x-small",
                    color=colors[label],
                )
                continue
            if not values:
                continue
            best_ax.scatter([x] * len(values), values, s=12, color=colors[label], alpha=0.5, linewidths=0)
            mean, low, high = sum(values) / len(values), min(values), max(values)
            if (label, device) in intervals:
                interval = intervals[(label, device)]
                mean, low, high = interval.mean, interval.low, interval.high
            best_ax.errorbar(
                x,
                mean,
                yerr=[[mean - low], [high - mean]],
                fmt="o" if styles[device] == "-" else "s",
                color=colors[label],
                markerfacecolor="white" if styles[device] != "-" else colors[label],
                capsize=3,
            )
    best_ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    best_ax.margins(y=0.15)  # the axis spans the values, not 0..max: small differences stay visible
    seeds_text = f"mean over {seeds} seeds, band: min–max" if seeds > 1 else "one seed"
    lr_ax.set(title="Learning rate", xlabel="samples seen", ylabel="LR")
    loss_ax.set(title=f"Validation loss ({seeds_text})", xlabel="samples seen", ylabel="val_loss")
    bar = f"bar: {CONFIDENCE:.0%} interval of the mean" if intervals else "bar: min–max"
    best_ax.set(title=f"Best validation loss\n(dots: seeds; {bar})", ylabel="best val_loss")
    if diff_ax:
        _paired_panel(diff_ax[0], records, statistics, labels, devices, colors, styles)
    for ax in (lr_ax, loss_ax, best_ax):
        # A loss falls 10× and more in the first epochs: on a linear axis the schedules' late gaps vanish.
        _scale_to_healthy(ax, log_above=10.0 if ax is loss_ax else 100.0)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colors[label], lw=2, label=label) for label in labels]
    if len(devices) > 1:
        handles += [
            Line2D(
                [],
                [],
                color="black",
                linestyle=styles[d],
                marker="o" if styles[d] == "-" else "s",
                markerfacecolor="black" if styles[d] == "-" else "white",
                label=d,
            )
            for d in devices
        ]
    if any(r.status == "diverged" for r in shown):
        handles.append(Line2D([], [], color="black", marker="x", linestyle="none", label="diverged (stopped)"))
    fig.legend(handles=handles, loc="outside right upper", fontsize="small", title="schedule / device")
    fig.savefig(path, dpi=110)


def _paired_panel(
    ax: Any,
    records: Sequence[RunRecord],
    statistics: SeedStatistics,
    labels: list[str],
    devices: list[str],
    colors: dict[str, Any],
    styles: dict[str, LineStyleType],
) -> None:
    """Each schedule's best validation loss minus the best schedule's, seed by seed, with the paired interval."""
    by_seed = {(r.label, r.device, r.seed): getattr(r, RANK_METRIC) for r in records if r.status == "ok"}
    width = 0.7 / max(len(devices), 1)
    for i, device in enumerate(devices):
        offset = (i - (len(devices) - 1) / 2) * width
        for p in (p for p in statistics.paired if p.device == device):
            best = statistics.best(device)
            seeds = [s for s in best.seeds if (p.label, device, s) in by_seed] if best else []
            diffs = [by_seed[(p.label, device, s)] - by_seed[(p.best, device, s)] for s in seeds]
            x = labels.index(p.label) + offset
            ax.scatter([x] * len(diffs), diffs, s=12, color=colors[p.label], alpha=0.5, linewidths=0)
            ax.errorbar(
                x,
                p.diff,
                yerr=[[p.diff - p.low], [p.high - p.diff]],
                fmt="o" if styles[device] == "-" else "s",
                color=colors[p.label],
                markerfacecolor=colors[p.label] if not p.indistinguishable else "white",
                capsize=3,
            )
        best = statistics.best(device)
        if best is not None:
            ax.scatter([labels.index(best.label) + offset], [0.0], marker="*", s=90, color=colors[best.label])
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    level = f"{CONFIDENCE:.0%}"
    title = f"Paired difference from the best (★)\n(dots: seeds; bar: {level} interval;\nhollow: indistinguishable)"
    ax.set(title=title, ylabel="Δ best val_loss")
    ax.grid(alpha=0.3)


def _seed_band(
    ax: Any, curves: list[list[list[float]]], column: int, style: dict[str, Any], np: Any, steps: bool = False
) -> None:
    """One mean line over the seeds' curves with a min–max band; each curve alone where their samples differ."""
    curves = [c for c in curves if c]
    if not curves:
        return
    draw: dict[str, Any] = {"drawstyle": "steps-post"} if steps else {}
    if max(len(c) for c in curves) == 1:
        draw["marker"] = "o"  # one point (a one-epoch run's validation) draws no line
    xs = [p[0] for p in curves[0]]
    if all([p[0] for p in c] == xs for c in curves):
        values = np.array([[p[column] for p in c] for c in curves], dtype=float)
        with np.errstate(all="ignore"):
            ax.plot(xs, np.nanmean(values, axis=0), **style, **draw)
            if len(curves) > 1:
                step = "post" if steps else None
                ax.fill_between(
                    xs, np.nanmin(values, 0), np.nanmax(values, 0), color=style["color"], alpha=0.15, lw=0, step=step
                )
        return
    for curve in curves:
        ax.plot([p[0] for p in curve], [p[column] for p in curve], **style, **draw, lw=1)


def _scale_to_healthy(ax: Any, log_above: float = 100.0) -> None:
    """Fit the y axis to the runs that did not diverge (diverged ones run off it), log when they span > ``log_above``×.

    A diverged run's loss, thousands of times the others', would otherwise flatten every
    difference that matters; it is still drawn up to the axis edge, and marked where it stopped.
    """
    import numpy as np
    from matplotlib.collections import PathCollection, PolyCollection

    healthy = [line.get_ydata() for line in ax.get_lines() if line.get_gid() != "diverged"]
    healthy += [[p[1] for p in np.asarray(c.get_offsets())] for c in ax.collections if isinstance(c, PathCollection)]
    healthy += [
        np.asarray(path.vertices)[:, 1]
        for c in ax.collections
        if isinstance(c, PolyCollection)
        for path in c.get_paths()
    ]
    values = np.concatenate([np.asarray(v, dtype=float).ravel() for v in healthy]) if healthy else np.array([])
    values = values[np.isfinite(values)]
    if not values.size:
        return
    low, high = float(values.min()), float(values.max())
    if low > 0 and high > log_above * low:
        ax.set_yscale("log")
        ax.set_ylim(low / 1.5, high * 1.5)
    elif any(line.get_gid() == "diverged" for line in ax.get_lines()):
        pad = 0.1 * (high - low) or 0.1 * abs(high) or 1.0
        ax.set_ylim(low - pad, high + pad)
    marked: dict[Any, float] = {}
    for line in ax.get_lines():
        if line.get_gid() == "diverged" and line.get_marker() == "x":
            top = ax.get_ylim()[1]
            x, y = line.get_xdata()[0], line.get_ydata()[0]
            if y > top:  # off the axis: marked on its top edge, with the largest value of its colour
                line.set_ydata([top])
                marked[(line.get_color(), x)] = max(y, marked.get((line.get_color(), x), y))
    for (color, x), y in marked.items():
        ax.annotate(
            f"↑ {y:.3g}",
            (x, ax.get_ylim()[1]),
            xytext=(6, -2),
            textcoords="offset points",
            fontsize="x-small",
            color=color,
            va="top",
        )
