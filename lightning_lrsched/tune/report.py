"""The report of a tune: ``report.md`` (rungs, trials, the confirmation's paired statistics) and ``lr_curves.png``."""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lightning_lrsched.compare.statistics import RANK_METRIC

if TYPE_CHECKING:
    from lightning_lrsched.tune.api import Tuning
    from lightning_lrsched.tune.space import Task

SHOWN_TRIALS = 15
"""The search table lists the configurations that got furthest; trials.jsonl has them all."""


def _num(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "—"


def _schedule_text(spec: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={float(f'{v:.3g}') if isinstance(v, float) else v}" for k, v in spec.items() if k != "name")
    return f"{spec['name']}({args})"


def rung_table(tuning: Tuning) -> list[tuple[int, int, int]]:
    """Per rung: its epoch, the copies that reached it, and the copies that went on past it."""
    rows = []
    for i, epoch in enumerate(tuning.rungs):
        reached = sum(t.rung >= i for t in tuning.trials if t.state != "invalid")
        passed = sum(t.rung > i for t in tuning.trials if t.state != "invalid") if i < len(tuning.rungs) - 1 else 0
        rows.append((epoch, reached, passed))
    return rows


def write_report(tuning: Tuning, task: Task) -> None:
    root = tuning.output
    lines = [f"# Tune: {root.resolve().name}", ""]
    states = Counter(t.state for t in tuning.trials)
    lines += [
        f"{len(tuning.trials)} configurations of {task.model['class_path'].rpartition('.')[2]} on "
        f"{task.data['class_path'].rpartition('.')[2]}, {task.max_epochs} epochs, peak LR in "
        f"{tuning.lr_range[0]:.3g}..{tuning.lr_range[1]:.3g} (log); "
        + ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        + ".",
        "",
        "Successive halving (synchronous, Hyperband's inner loop) over the copies of one stacked run: at each rung the "
        "copies still training are ranked by best validation loss so far and the best 1/eta go on; schedules are "
        "resolved against the full run. Proposals: Optuna's TPE sampler.",
        "",
        "| Rung epoch | Copies reached | Went on |",
        "|---:|---:|---:|",
        *[
            f"| {e} | {r} | {p if i < len(tuning.rungs) - 1 else '—'} |"
            for i, (e, r, p) in enumerate(rung_table(tuning))
        ],
        "",
        "## Search (furthest first)",
        "",
        "| Configuration | Schedule | Peak LR | State | Epochs | Best val loss |",
        "|---|---|---:|---|---:|---:|",
    ]
    ranked = sorted(
        tuning.trials, key=lambda t: (-t.rung, math.inf if math.isnan(t.best_val_loss) else t.best_val_loss)
    )
    for t in ranked[:SHOWN_TRIALS]:
        lines.append(
            f"| {t.label} | `{_schedule_text(t.schedule)}` | {t.lr:.3g} | {t.state} | {t.epochs} "
            f"| {_num(t.best_val_loss)} |"
        )
    if len(ranked) > SHOWN_TRIALS:
        lines.append(f"\n({len(ranked) - SHOWN_TRIALS} more in trials.jsonl)")
    lines += ["", "## Confirmation", ""]
    stats = tuning.statistics
    if stats is None:
        lines.append("Not run (confirm=False).")
    elif stats.missing:
        lines.append(stats.missing)
    else:
        device = stats.devices()[0]
        paired = {p.label: p for p in stats.paired}
        seeds = ", ".join(map(str, sorted({r.seed for r in tuning.records})))
        lines += [
            f"Each configuration trained in full on seeds {seeds} "
            f"with `compare` (confirm/<configuration>/). Paired against the best, seed by seed, in {RANK_METRIC}.",
            "",
            "| Configuration | Mean best val loss | 95% CI | Diff to best | 95% CI of diff | Indistinguishable |",
            "|---|---:|---|---:|---|---|",
        ]
        for group in stats.groups:
            if not group.enough:
                lines.append(f"| {group.label} | — (fewer than 3 seeds ended ok) | | | | |")
                continue
            e = group.metrics[RANK_METRIC]
            p = paired.get(group.label)
            if p is None:
                tail = "— | — | best"
            else:
                tail = f"{p.diff:+.4f} | [{p.low:+.4f}, {p.high:+.4f}] | {'yes' if p.indistinguishable else 'no'}"
            lines.append(f"| {group.label} | {e.mean:.4f} | [{e.low:.4f}, {e.high:.4f}] | {tail} |")
        lines += ["", stats.verdict(device)]
    best = tuning.best
    lines += [
        "",
        "## The configuration to use",
        "",
        f"{best.label}: `lr: {best.lr:.4g}`, `scheduler: {_schedule_text(best.schedule)}` "
        "(`lrsched tune --write-config best.yaml` writes it as a `lrsched fit` config).",
        "",
        "![LR curves](lr_curves.png)",
        *([""] + [f"- {n}" for n in tuning.notes] if tuning.notes else []),
        "",
    ]
    (root / "report.md").write_text("\n".join(lines))
    lr_figure(tuning, task.max_epochs).savefig(root / "lr_curves.png", dpi=110)


def lr_figure(tuning: Tuning, max_epochs: int) -> Any:
    """The LR over epochs of each confirmed configuration: as its first seed's run recorded it, else its schedule's."""
    from matplotlib.figure import Figure

    from lightning_lrsched.schedules import get_schedule, preview

    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for config in tuning.top:
        runs = sorted((r for r in tuning.records if r.label == config.label and r.lr_curve), key=lambda r: r.seed)
        if runs and runs[0].epochs and runs[0].samples:
            per_epoch = runs[0].samples / runs[0].epochs
            x = [p[0] / per_epoch for p in runs[0].lr_curve]
            y = [p[1] for p in runs[0].lr_curve]
        elif tuning.steps_per_epoch:
            spe = tuning.steps_per_epoch
            y = preview(
                get_schedule(config.schedule), max_epochs * spe, base_lr=config.lr, steps_per_epoch=spe
            ).tolist()
            x = [i / spe for i in range(len(y))]
        else:
            continue
        best = " (best)" if config.label == tuning.best.label else ""
        axes.plot(x, y, label=f"{config.label}{best}: {_schedule_text(config.schedule)}"[:80])
    axes.set_xlabel("epoch")
    axes.set_ylabel("learning rate")
    axes.set_title("LR of the confirmed configurations")
    if axes.lines:
        axes.legend(fontsize=7)
    return figure


def print_summary(tuning: Tuning, console: Console) -> None:
    table = Table(title="tune: confirmed configurations" if tuning.statistics else "tune: best of the search")
    for heading in ("Configuration", "Schedule", "Peak LR", "Search best val loss", "Confirmed mean"):
        table.add_column(heading)
    by_label = {t.label: t for t in tuning.trials}
    groups = {g.label: g for g in tuning.statistics.groups} if tuning.statistics else {}
    for config in tuning.top:
        group = groups.get(config.label)
        mean = group.metrics[RANK_METRIC].mean if group is not None and group.enough else math.nan
        table.add_row(
            escape(config.label),
            escape(_schedule_text(config.schedule)),
            f"{config.lr:.3g}",
            _num(by_label[config.label].best_val_loss),
            _num(mean),
        )
    console.print(table)
    if tuning.statistics is not None and not tuning.statistics.missing:
        console.print(escape(tuning.statistics.verdict(tuning.statistics.devices()[0])))
    for note in tuning.notes:
        console.print(f"[yellow]{escape(note)}[/]")
    console.print(
        escape(f"best: {tuning.best.label}; report: {tuning.output / 'report.md'}, {tuning.output / 'lr_curves.png'}")
    )
