"""W&B for a comparison: the summary run that closes a grid, the login check, and how to upload offline runs."""

from __future__ import annotations

import netrc
import os
from collections.abc import Sequence
from urllib.parse import urlparse

from lightning_lrsched.compare.analysis import COLUMNS, ranked
from lightning_lrsched.compare.grid import RunSettings
from lightning_lrsched.compare.layout import OutputLayout
from lightning_lrsched.compare.record import RunRecord
from lightning_lrsched.compare.statistics import METRICS, SeedStatistics, seed_statistics

STATISTICS_COLUMNS = (
    ["Scheduler", "Device", "Seeds"]
    + [f"{heading} {part}" for _, heading in METRICS for part in ("mean", "std", "95% low", "95% high")]
    + ["Best", "Δ best val loss", "Δ 95% low", "Δ 95% high", "Agree", "Verdict"]
)
"""The summary run's ``statistics`` table: report.md's statistics over seeds, one row per (schedule, device)."""


def sync_hint(layout: OutputLayout, mode: str) -> str:
    if mode == "online":
        return "Runs were logged online to W&B."
    return (
        f"Runs were logged offline (no account or network needed) under `{layout.wandb}`. "
        f"Upload them with `wandb sync {layout.wandb}/offline-run-*` (after `wandb login`)."
    )


def wandb_login_missing() -> str | None:
    """Why online W&B would fail to log in here (no key where `wandb login` puts it), or ``None``."""
    if os.environ.get("WANDB_API_KEY"):
        return None
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        if netrc.netrc().authenticators(host):
            return None
    except (FileNotFoundError, netrc.NetrcParseError):
        pass
    return f"no WANDB_API_KEY and no entry for {host} in ~/.netrc: run `wandb login`"


def summary_run(records: Sequence[RunRecord], settings: RunSettings, layout: OutputLayout) -> str:
    """Log the results table and an LR-curve overlay (when any run has one) to one W&B run in the grid's group.

    With 3 seeds or more it also logs the statistics over seeds (a ``statistics`` table, and each
    device config's verdict sentence in the run's summary as ``verdict/<device>``).
    """
    import wandb

    from lightning_lrsched.compare.training import wandb_settings

    run = wandb.init(
        project=settings.project,
        group=settings.experiment,
        job_type="summary",
        name=f"{settings.experiment}-summary",
        dir=str(layout.wandb_save_dir),
        mode="online" if settings.wandb_mode == "online" else "offline",  # the two modes compare accepts
        settings=wandb_settings(),
        reinit="create_new",
    )
    try:
        ordered = ranked(records)
        table = wandb.Table(columns=[header for header, _ in COLUMNS])
        for record in ordered:
            table.add_data(*(_cell(getattr(record, key)) for _, key in COLUMNS))
        logged: dict[str, object] = {"results": table}
        statistics = seed_statistics(records)
        if not statistics.missing:
            logged["statistics"] = wandb.Table(columns=list(STATISTICS_COLUMNS), data=statistics_rows(statistics))
            for device in statistics.devices():
                run.summary[f"verdict/{device}"] = statistics.verdict(device)
        curves = [r for r in ordered if r.lr_curve]
        if curves:  # line_series cannot draw zero series
            logged["lr_overlay"] = wandb.plot.line_series(
                xs=[[p[0] for p in r.lr_curve] for r in curves],
                ys=[[p[1] for p in r.lr_curve] for r in curves],
                keys=[r.name for r in curves],
                title="LR by samples seen",
                xname="samples seen",
            )
        if layout.report_png.exists():
            logged["report"] = wandb.Image(str(layout.report_png))
        run.log(logged)
        return str(run.settings.sync_dir)
    finally:
        run.finish()


def statistics_rows(statistics: SeedStatistics) -> list[list[object]]:
    """One row of :data:`STATISTICS_COLUMNS` per (schedule, device config); empty cells are ``None``."""
    paired = {(p.label, p.device): p for p in statistics.paired}
    rows = []
    for g in statistics.groups:
        row: list[object] = [g.label, g.device, len(g.seeds)]
        for field, _ in METRICS:
            e = g.metrics.get(field)
            row += [e.mean, e.std, e.low, e.high] if e else [None] * 4
        p = paired.get((g.label, g.device))
        if p is not None:
            row += [p.best, p.diff, p.low, p.high, p.agree, "indistinguishable" if p.indistinguishable else "worse"]
        else:
            is_best = g.enough and statistics.best(g.device) is g
            row += [g.label if is_best else None, None, None, None, None, "best" if is_best else None]
        rows.append([_cell(v) for v in row])
    return rows


def _cell(value: object) -> object:
    return None if isinstance(value, float) and value != value else value
