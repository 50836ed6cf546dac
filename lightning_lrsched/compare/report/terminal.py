"""The report in the terminal: the results table, the statistics over seeds and the cross-device verdicts."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lightning_lrsched.compare.analysis import COLUMNS, DeviceCheck, mode_line, ranked
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.compare.report.cells import cell, signed
from lightning_lrsched.compare.statistics import CONFIDENCE, MIN_SEEDS, RANK_METRIC, SeedStatistics, seed_statistics

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


def terminal_table(records: Sequence[RunRecord], title: str = "Comparison", width: int = FULL_TABLE_WIDTH) -> Table:
    """The results, best first; a terminal narrower than the full table gets its main columns."""
    columns = COLUMNS if width >= FULL_TABLE_WIDTH else COMPACT_COLUMNS
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True)
    for header, _ in columns:
        left = header in ("Scheduler", "Device", "Status")
        table.add_column(header, justify="left" if left else "right", overflow="fold")
    for record in ranked(records):
        style = {"diverged": "yellow", "failed": "red"}.get(record.status)
        table.add_row(*(cell(getattr(record, key), key) for _, key in columns), style=style)
    return table


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
        loss = f"{cell(best.mean)} ± {best.std:.2g}" if g.enough and best else f"< {MIN_SEEDS} seeds"
        p = paired.get((g.label, g.device))
        if p is not None:
            cells = [signed(p.diff), f"[{signed(p.low)}, {signed(p.high)}]", f"{p.agree}/{p.seeds}"]
        else:
            cells = ["best" if g.enough and statistics.best(g.device) is g else "-", "", ""]
        style = "dim" if p is not None and not p.indistinguishable else None
        table.add_row(g.label, g.device, str(len(g.seeds)), loss, *cells, style=style)
    return table


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
        apart = sum(bool(c.not_comparable) for c in checks)
        matched = len(checks) - len(failed) - apart
        parts = [f"[red]{len(failed)} mismatch(es)[/]"] if failed else []
        if matched:
            parts.append("[green]all match[/]" if matched == len(checks) else f"[green]{matched} match[/]")
        if apart:
            parts.append(f"[yellow]{apart} not comparable[/]")
        verdict = ", ".join(parts)
        console.print(f"Cross-device check: {len(checks)} comparison(s), {verdict}")
        for c in checks:
            if c.not_comparable:
                console.print(escape(f"  {c.label} seed {c.seed}: {c.device} vs {c.reference}: {c.verdict}"))
        for c in failed:
            console.print(
                f"  [red]{c.label} seed {c.seed}: {c.device} vs {c.reference}: "
                f"LR diff {c.lr_max_diff:.3g}, val loss diff {c.val_loss_diff:.3g}[/]"
            )
