"""``report.md``: the results table, statistics over seeds, diverged or failed runs, the cross-device check, notes."""

from __future__ import annotations

import math
from collections.abc import Sequence

from lightning_lrsched.compare.analysis import COLUMNS, LR_RTOL, DeviceCheck, mode_line, ranked
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.compare.report.cells import cell, estimate_cell, signed
from lightning_lrsched.compare.statistics import CONFIDENCE, METRICS, MIN_SEEDS, SeedStatistics, seed_statistics


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
        lines.append("| " + " | ".join(cell(getattr(record, k), k) for _, k in COLUMNS) + " |")
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
                f"| {c.label} | {c.seed} | {c.reference} | {c.device} | {_difference(c.lr_max_diff)} | "
                f"{_difference(c.val_loss_diff)} | {verdict} |"
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


def _difference(value: float) -> str:
    """A relative difference in the cross-device table; ``-`` where none was measured (runs not comparable)."""
    return "-" if math.isnan(value) else f"{value:.3g}"


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
            cells = [estimate_cell(g.metrics.get(field)) for field, _ in METRICS]
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
                f"| {p.label} | {p.device} | {p.best} | {signed(p.diff)} | [{signed(p.low)}, {signed(p.high)}] | "
                f"{p.agree}/{p.seeds} | {verdict} |"
            )
    lines += [""] + [statistics.verdict(device) for device in statistics.devices()]
    return lines
