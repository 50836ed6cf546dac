"""The comparison report: terminal table, ``report.csv``, ``report.md``, ``report.png``.

Written after every run from ``results.jsonl``, so it is always current. The cross-device check
compares each schedule's runs across device configs: the LR by samples seen must match
exactly, and the final validation loss within a stated relative tolerance. With 3 seeds or more,
the statistics over seeds (:mod:`lightning_lrsched.compare.statistics`) say which schedule is
best and which the seeds cannot tell from it.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lightning_lrsched.compare.layout import OutputLayout
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.compare.statistics import (
    CONFIDENCE,
    METRICS,
    MIN_SEEDS,
    RANK_METRIC,
    Estimate,
    SeedStatistics,
    seed_statistics,
)

if TYPE_CHECKING:
    from matplotlib.typing import LineStyleType

LINE_STYLES: tuple[LineStyleType, ...] = ("-", "--", ":", "-.")
"""One line style per device config, in the figure."""

COLUMNS = (
    ("Scheduler", "label"),
    ("Device", "device"),
    ("Seed", "seed"),
    ("Epoch", "epochs"),
    ("Loss", "final_train_loss"),
    ("Val loss", "final_val_loss"),
    ("Best val loss", "best_val_loss"),
    ("Val acc", "final_val_acc"),
    ("Final LR", "final_lr"),
    ("Status", "status"),
    ("Time (s)", "wall_time"),
    ("Steps/s", "steps_per_s"),
)
COMPACT_COLUMNS = (
    ("Scheduler", "label"),
    ("Device", "device"),
    ("Seed", "seed"),
    ("Best val", "best_val_loss"),
    ("Val acc", "final_val_acc"),
    ("Final LR", "final_lr"),
    ("Status", "status"),
)
"""What a terminal narrower than the full table shows (report.md and report.csv keep every column)."""
FULL_TABLE_WIDTH = 130
LR_RTOL = 1e-12


@dataclass(frozen=True)
class DeviceCheck:
    """One schedule and seed, a device config compared with the reference config."""

    label: str
    seed: int
    reference: str
    device: str
    lr_max_diff: float
    val_loss_diff: float
    tolerance: float
    not_comparable: str = ""
    """Why the two runs cannot be compared (their global batches differ), "" when they can."""

    @property
    def lr_match(self) -> bool:
        return self.lr_max_diff <= LR_RTOL

    @property
    def loss_match(self) -> bool:
        return self.val_loss_diff <= self.tolerance

    @property
    def passed(self) -> bool:
        """The runs match; runs that cannot be compared neither pass nor fail (their reason is reported)."""
        return bool(self.not_comparable) or (self.lr_match and self.loss_match)

    @property
    def verdict(self) -> str:
        if self.not_comparable:
            return f"not comparable: {self.not_comparable}"
        return "pass" if self.passed else ("LR MISMATCH" if not self.lr_match else "LOSS MISMATCH")


def ranked(records: Sequence[RunRecord]) -> list[RunRecord]:
    """Best first: finished runs by best validation loss, then diverged, then failed."""
    order = {"ok": 0, "diverged": 1, "failed": 2}

    def key(r: RunRecord) -> tuple[int, float, str, str, int]:
        loss = r.best_val_loss if _finite(r.best_val_loss) else math.inf
        return order.get(r.status, 3), loss, r.label, r.device, r.seed

    return sorted(records, key=key)


def _relative_lr_diff(a: list[list[float]], b: list[list[float]]) -> float:
    """Largest LR difference relative to the largest LR; inf when the sample grids differ."""
    if len(a) != len(b) or any(p[0] != q[0] for p, q in zip(a, b, strict=True)):
        return math.inf
    scale = max((abs(p[1]) for p in a), default=0.0) or 1.0
    return max((abs(p[1] - q[1]) for p, q in zip(a, b, strict=True)), default=0.0) / scale


def cross_device(records: Sequence[RunRecord], tolerance: float) -> list[DeviceCheck]:
    """Compare every schedule's runs on each device config with its run on the first config."""
    groups: dict[tuple[str, int], list[RunRecord]] = defaultdict(list)
    for record in records:
        if record.finished:
            groups[(record.label, record.seed)].append(record)
    checks = []
    for (label, seed), runs in sorted(groups.items()):
        runs = sorted(runs, key=lambda r: (r.device != "cpu:1", r.device))
        reference = runs[0]
        for other in runs[1:]:
            ref_loss, loss = reference.final_val_loss, other.final_val_loss
            if _finite(loss, ref_loss):
                loss_diff = abs(loss - ref_loss) / max(abs(ref_loss), 1e-12)
            else:  # two runs without a final loss (both diverged before validating) agree
                loss_diff = 0.0 if not (_finite(loss) or _finite(ref_loss)) else math.inf
            lr_diff = _relative_lr_diff(reference.lr_curve, other.lr_curve)
            batches = global_batch(reference), global_batch(other)
            why = ""
            if None not in batches and batches[0] != batches[1]:
                why = (
                    f"the global batch is {batches[0]:g} on {reference.device} and {batches[1]:g} on {other.device} "
                    "(the datamodule's batch size is per process: give the multi-process config batch/N)"
                )
                lr_diff = loss_diff = math.nan
            checks.append(DeviceCheck(label, seed, reference.device, other.device, lr_diff, loss_diff, tolerance, why))
    return checks


def global_batch(record: RunRecord) -> float | None:
    """Samples per optimizer step over all processes (``None`` for a run that took no step)."""
    return record.samples / record.steps if record.steps else None


def _finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _cell(value: Any, key: str = "") -> str:
    if key in ("wall_time", "steps_per_s") and isinstance(value, float) and math.isfinite(value):
        return f"{value:.1f}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.4f}"
    return str(value)


def terminal_table(records: Sequence[RunRecord], title: str = "Comparison", width: int = FULL_TABLE_WIDTH) -> Table:
    """The results, best first; a terminal narrower than the full table gets its main columns."""
    columns = COLUMNS if width >= FULL_TABLE_WIDTH else COMPACT_COLUMNS
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True)
    for header, _ in columns:
        left = header in ("Scheduler", "Device", "Status")
        table.add_column(header, justify="left" if left else "right", overflow="fold")
    for record in ranked(records):
        style = {"diverged": "yellow", "failed": "red"}.get(record.status)
        table.add_row(*(_cell(getattr(record, key), key) for _, key in columns), style=style)
    return table


def write_csv(records: Sequence[RunRecord], path: Path) -> None:
    """One row per run, every column of the table plus the schedule, its params (JSON) and the reason."""
    keys = [key for _, key in COLUMNS] + ["schedule", "params", "best_val_acc", "steps", "mode", "reason"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        for record in ranked(records):
            row = {k: getattr(record, k) for k in keys}
            row["params"] = json.dumps(record.params, sort_keys=True)
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})


def markdown(
    records: Sequence[RunRecord],
    checks: Sequence[DeviceCheck],
    skipped: Sequence[tuple[str, str]],
    *,
    title: str,
    tolerance: float,
    wandb_hint: str | None,
    notes: Sequence[str] = (),
    statistics: SeedStatistics | None = None,
) -> str:
    lines = [f"# {title}", "", f"{len(records)} runs, best first (by best validation loss). {mode_line(records)}", ""]
    lines += ["| " + " | ".join(h for h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for record in ranked(records):
        lines.append("| " + " | ".join(_cell(getattr(record, k), k) for _, k in COLUMNS) + " |")
    lines += ["", *statistics_markdown(statistics or seed_statistics(records))]
    problems = [r for r in records if r.status != "ok"]
    if problems:
        lines += ["", "## Diverged or failed runs", ""]
        for r in problems:
            reason = r.reason.strip().splitlines()
            detail = f": {reason[-1]}" if reason else ""
            retry = " (trained again by the next run of the grid)" if r.status == "failed" else ""
            lines.append(f"- {r.label} on {r.device}, seed {r.seed}: **{r.status}**{detail}{retry}")
    lines += ["", "## Cross-device check", ""]
    if checks:
        lines += [
            f"The LR at every optimizer step, by samples seen, must match the reference device config exactly "
            f"(relative difference <= {LR_RTOL:g}); the final validation loss must agree within a relative "
            f"tolerance of {tolerance:g}.",
            "",
            "| Scheduler | Seed | Reference | Device | LR max rel. diff | Val loss rel. diff | Result |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in checks:
            verdict = c.verdict if c.passed else f"**{c.verdict}**"
            lines.append(
                f"| {c.label} | {c.seed} | {c.reference} | {c.device} | {c.lr_max_diff:.3g} | "
                f"{c.val_loss_diff:.3g} | {verdict} |"
            )
    else:
        lines.append("Nothing to compare: each schedule ran on one device config only.")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    if skipped:
        lines += ["", "## Skipped device configs", ""] + [f"- {device}: {reason}" for device, reason in skipped]
    if wandb_hint:
        lines += ["", "## W&B", "", wandb_hint]
    return "\n".join(lines) + "\n"


def _estimate_cell(value: Estimate | None) -> str:
    if value is None:
        return "-"
    return f"{_cell(value.mean)} ± {value.std:.2g} [{_cell(value.low)}, {_cell(value.high)}]"


def _signed(value: float) -> str:
    return ("+" if value > 0 else "") + _cell(value)


def statistics_markdown(statistics: SeedStatistics) -> list[str]:
    """The "Statistics over seeds" section of report.md: per-schedule estimates, paired comparisons, verdicts."""
    lines = ["## Statistics over seeds", ""]
    if statistics.missing:
        return [*lines, statistics.missing]
    level = f"{CONFIDENCE:.0%}"
    lines += [
        f"Only runs that ended ok count. Each cell: mean ± standard deviation over the seeds (n) "
        f"[{level} Student-t interval of the mean]. Best first on each device config, by mean best validation loss.",
        "",
        "| Scheduler | Device | Seeds | " + " | ".join(h for _, h in METRICS) + " |",
        "|---|---|---|" + "---|" * len(METRICS),
    ]
    for g in statistics.groups:
        seeds = f"{len(g.seeds)}" + (f" ({g.excluded} not ok)" if g.excluded else "")
        if not g.enough:
            cells = [f"fewer than {MIN_SEEDS} seeds"] + ["-"] * (len(METRICS) - 1)
        else:
            cells = [_estimate_cell(g.metrics.get(field)) for field, _ in METRICS]
        lines.append(f"| {g.label} | {g.device} | {seeds} | " + " | ".join(cells) + " |")
    if statistics.paired:
        lines += [
            "",
            f"Paired comparison with the best schedule of each device config: seed s of every schedule starts "
            f"from the same initial weights and sees the same batches, so the difference in best validation loss "
            f"is taken seed by seed. Δ > 0: worse than the best; the {level} interval is a paired t interval; "
            f"*agree*: the seeds on which the best schedule is better.",
            "",
            f"| Scheduler | Device | Best | Δ best val loss | {level} interval | Agree | Verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in statistics.paired:
            verdict = "indistinguishable" if p.indistinguishable else "worse"
            lines.append(
                f"| {p.label} | {p.device} | {p.best} | {_signed(p.diff)} | [{_signed(p.low)}, {_signed(p.high)}] | "
                f"{p.agree}/{p.seeds} | {verdict} |"
            )
    lines += [""] + [statistics.verdict(device) for device in statistics.devices()]
    return lines


def statistics_table(statistics: SeedStatistics) -> Table:
    """The terminal's view of the statistics: best val loss per schedule and its paired difference from the best."""
    level = f"{CONFIDENCE:.0%}"
    title = f"Statistics over seeds ({level} intervals)"
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True)
    # "n" (seeds), std to 2 digits: the seven columns fit an 80-column terminal
    for header in ("Scheduler", "Device", "n", "Best val loss", "Δ vs best", f"{level} interval", "Agree"):
        table.add_column(header, justify="left" if header in ("Scheduler", "Device") else "right", overflow="fold")
    paired = {(p.label, p.device): p for p in statistics.paired}
    for g in statistics.groups:
        best = g.metrics.get(RANK_METRIC)
        loss = f"{_cell(best.mean)} ± {best.std:.2g}" if g.enough and best else f"< {MIN_SEEDS} seeds"
        p = paired.get((g.label, g.device))
        if p is not None:
            cells = [_signed(p.diff), f"[{_signed(p.low)}, {_signed(p.high)}]", f"{p.agree}/{p.seeds}"]
        else:
            cells = ["best" if g.enough and statistics.best(g.device) is g else "-", "", ""]
        style = "dim" if p is not None and not p.indistinguishable else None
        table.add_row(g.label, g.device, str(len(g.seeds)), loss, *cells, style=style)
    return table


def mode_line(records: Sequence[RunRecord]) -> str:
    """How the runs were trained: stacked (side by side in one Lightning run) or sequential."""
    counts = {m: sum(r.mode == m for r in records) for m in ("stacked", "sequential")}
    if not counts["stacked"]:
        return "Mode: sequential (one Lightning run per schedule)."
    if not counts["sequential"]:
        return "Mode: stacked (schedules side by side in one Lightning run)."
    return (
        f"Mode: stacked for {counts['stacked']} runs (schedules side by side in one Lightning run), "
        f"sequential for {counts['sequential']}."
    )


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
            values = [r.best_val_loss for r in runs if r.status == "ok" and _finite(r.best_val_loss)]
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
    draw = {"drawstyle": "steps-post"} if steps else {}
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


def write_report(
    records: Sequence[RunRecord],
    layout: OutputLayout,
    *,
    title: str,
    tolerance: float,
    skipped: Sequence[tuple[str, str]] = (),
    wandb_hint: str | None = None,
    notes: Sequence[str] = (),
) -> list[DeviceCheck]:
    """Write report.csv, report.md and report.png; return the cross-device checks.

    Each file is written next to its place and then moved there, so a full disk or a kill mid-write
    leaves the previous report whole, never an empty or cut ``report.png``.
    """
    layout.root.mkdir(parents=True, exist_ok=True)
    checks = cross_device(records, tolerance)
    statistics = seed_statistics(records)
    with _replacing(layout.report_csv) as tmp:
        write_csv(records, tmp)
    text = markdown(
        records,
        checks,
        skipped,
        title=title,
        tolerance=tolerance,
        wandb_hint=wandb_hint,
        notes=notes,
        statistics=statistics,
    )
    with _replacing(layout.report_md) as tmp:
        tmp.write_text(text)
    if any(r.finished for r in records):
        with _replacing(layout.report_png) as tmp:
            figure(records, tmp, statistics)
    return checks


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path`` (same suffix, for the figure's format) that replaces it at the end."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def print_report(records: Sequence[RunRecord], checks: Sequence[DeviceCheck], console: Console) -> None:
    console.print(terminal_table(records, width=console.width))
    if records:
        console.print(mode_line(records))
        statistics = seed_statistics(records)
        if statistics.missing:
            console.print(f"Statistics over seeds: {statistics.missing}")
        else:
            console.print(statistics_table(statistics))
            for device in statistics.devices():
                console.print(statistics.verdict(device))
    failed = [c for c in checks if not c.passed]
    if checks:
        verdict = "[green]all match[/]" if not failed else f"[red]{len(failed)} mismatch(es)[/]"
        apart = sum(bool(c.not_comparable) for c in checks)
        if apart:
            verdict += f", [yellow]{apart} not comparable[/]"
        console.print(f"Cross-device check: {len(checks)} comparison(s), {verdict}")
        for c in checks:
            if c.not_comparable:
                console.print(escape(f"  {c.label} seed {c.seed}: {c.device} vs {c.reference}: {c.verdict}"))
        for c in failed:
            console.print(
                f"  [red]{c.label} seed {c.seed}: {c.device} vs {c.reference}: "
                f"LR diff {c.lr_max_diff:.3g}, val loss diff {c.val_loss_diff:.3g}[/]"
            )
