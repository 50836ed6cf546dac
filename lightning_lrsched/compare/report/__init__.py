"""The comparison report: terminal table, ``report.csv``, ``report.md``, ``report.png``.

Written after every job from ``results.jsonl``, so it is always current (the figure at most every
few seconds between jobs, and at the end: see ``GridRun.report``). What the records say
(cross-device checks, ranking) is :mod:`lightning_lrsched.compare.analysis`; each view is a module
here: :mod:`.terminal`, :mod:`.md`, :mod:`.csv`, :mod:`.png`. With 3 seeds or more, the statistics
over seeds (:mod:`lightning_lrsched.compare.statistics`) say which schedule is best and which the
seeds cannot tell from it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lightning_lrsched.compare.analysis import DeviceCheck, cross_device
from lightning_lrsched.compare.layout import OutputLayout
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.compare.report.csv import write_csv
from lightning_lrsched.compare.report.md import markdown
from lightning_lrsched.compare.report.png import figure
from lightning_lrsched.compare.report.terminal import print_report, terminal_table
from lightning_lrsched.compare.statistics import seed_statistics

__all__ = [
    "DeviceCheck",
    "cross_device",
    "figure",
    "markdown",
    "print_report",
    "terminal_table",
    "write_csv",
    "write_report",
]


def write_report(
    records: Sequence[RunRecord],
    layout: OutputLayout,
    *,
    title: str,
    tolerance: float,
    skipped: Sequence[tuple[str, str]] = (),
    wandb_hint: str | None = None,
    notes: Sequence[str] = (),
    with_figure: bool = True,
) -> list[DeviceCheck]:
    """Write report.csv, report.md and report.png (unless ``with_figure`` is false); return the cross-device checks.

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
    if with_figure and any(r.finished for r in records):
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
