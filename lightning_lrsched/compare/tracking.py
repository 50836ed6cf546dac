"""W&B for a comparison: the summary run that closes a grid, and how to upload offline runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning_lrsched.compare.report import COLUMNS, ranked


def sync_hint(output: Path, mode: str) -> str:
    if mode == "online":
        return "Runs were logged online to W&B."
    return (
        f"Runs were logged offline (no account or network needed) under `{output / 'wandb'}`. "
        f"Upload them with `wandb sync {output / 'wandb'}/offline-run-*` (after `wandb login`)."
    )


def summary_run(records: Sequence[dict[str, Any]], *, project: str, experiment: str, output: Path, mode: str) -> str:
    """Log the results table and an LR-curve overlay to one W&B run in the experiment's group."""
    import wandb

    run = wandb.init(
        project=project,
        group=experiment,
        job_type="summary",
        name=f"{experiment}-summary",
        dir=str(output),
        mode=mode,
        settings=wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True, silent=True),
    )
    try:
        ordered = ranked(records)
        table = wandb.Table(columns=[h for h, _ in COLUMNS])
        for record in ordered:
            table.add_data(*(record.get(key) for _, key in COLUMNS))
        curves = [r for r in ordered if r.get("lr_curve")]
        overlay = wandb.plot.line_series(
            xs=[[p[0] for p in r["lr_curve"]] for r in curves],
            ys=[[p[1] for p in r["lr_curve"]] for r in curves],
            keys=[f"{r['label']} {r['device']} s{r['seed']}" for r in curves],
            title="LR by samples seen",
            xname="samples seen",
        )
        logged: dict[str, Any] = {"results": table, "lr_overlay": overlay}
        if (output / "report.png").exists():
            logged["report"] = wandb.Image(str(output / "report.png"))
        run.log(logged)
        return str(run.dir).removesuffix("/files")
    finally:
        run.finish()
