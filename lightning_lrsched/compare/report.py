"""The comparison report: terminal table, ``report.csv``, ``report.md``, ``report.png``.

Written after every run from ``results.jsonl``, so it is always current. The cross-device check
compares each schedule's runs across device configs: the LR by samples seen must match
exactly, and the final validation loss within a stated relative tolerance.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

COLUMNS = (
    ("Scheduler", "label"),
    ("Device", "device"),
    ("Seed", "seed"),
    ("Epoch", "epochs"),
    ("Loss", "final_train_loss"),
    ("Val loss", "final_val_loss"),
    ("Best val loss", "best_val_loss"),
    ("Val acc", "final_val_acc"),
    ("LR", "final_lr"),
    ("Status", "status"),
    ("Time (s)", "wall_time"),
    ("Steps/s", "steps_per_s"),
)
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

    @property
    def lr_match(self) -> bool:
        return self.lr_max_diff <= LR_RTOL

    @property
    def loss_match(self) -> bool:
        return self.val_loss_diff <= self.tolerance

    @property
    def passed(self) -> bool:
        return self.lr_match and self.loss_match


def ranked(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best first: finished runs by best validation loss, then diverged, then failed."""
    order = {"ok": 0, "diverged": 1, "failed": 2}

    def key(r: dict[str, Any]) -> tuple[int, float, str]:
        loss = r.get("best_val_loss", math.nan)
        return order.get(r["status"], 3), loss if _finite(loss) else math.inf, r["label"]

    return sorted(records, key=key)


def _relative_lr_diff(a: list[list[float]], b: list[list[float]]) -> float:
    """Largest LR difference relative to the largest LR; inf when the sample grids differ."""
    if len(a) != len(b) or any(p[0] != q[0] for p, q in zip(a, b, strict=True)):
        return math.inf
    scale = max((abs(p[1]) for p in a), default=0.0) or 1.0
    return max((abs(p[1] - q[1]) for p, q in zip(a, b, strict=True)), default=0.0) / scale


def cross_device(records: Sequence[dict[str, Any]], tolerance: float) -> list[DeviceCheck]:
    """Compare every schedule's runs on each device config with its run on the first config."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record["status"] != "failed":
            groups[(record["label"], record["seed"])].append(record)
    checks = []
    for (label, seed), runs in sorted(groups.items()):
        runs = sorted(runs, key=lambda r: (r["device"] != "cpu:1", r["device"]))
        reference = runs[0]
        for other in runs[1:]:
            ref_loss, loss = reference.get("final_val_loss", math.nan), other.get("final_val_loss", math.nan)
            loss_diff = abs(loss - ref_loss) / max(abs(ref_loss), 1e-12) if _finite(loss, ref_loss) else math.inf
            checks.append(
                DeviceCheck(
                    label,
                    seed,
                    reference["device"],
                    other["device"],
                    _relative_lr_diff(reference.get("lr_curve", []), other.get("lr_curve", [])),
                    loss_diff,
                    tolerance,
                )
            )
    return checks


def _finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _cell(value: Any, key: str = "") -> str:
    if key in ("wall_time", "steps_per_s") and isinstance(value, float) and math.isfinite(value):
        return f"{value:.1f}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.4f}"
    return str(value)


def terminal_table(records: Sequence[dict[str, Any]], title: str = "Comparison") -> Table:
    table = Table(title=title)
    for header, _ in COLUMNS:
        table.add_column(header, justify="left" if header in ("Scheduler", "Device", "Status") else "right")
    for record in ranked(records):
        style = {"diverged": "yellow", "failed": "red"}.get(record["status"])
        table.add_row(*(_cell(record.get(key, math.nan), key) for _, key in COLUMNS), style=style)
    return table


def write_csv(records: Sequence[dict[str, Any]], path: Path) -> None:
    keys = [key for _, key in COLUMNS] + ["schedule", "params", "best_val_acc", "steps", "mode", "reason"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        for record in ranked(records):
            writer.writerow({k: record.get(k, "") for k in keys})


def markdown(
    records: Sequence[dict[str, Any]],
    checks: Sequence[DeviceCheck],
    skipped: Sequence[tuple[str, str]],
    *,
    title: str,
    tolerance: float,
    wandb_hint: str | None,
    mode_notes: Sequence[str] = (),
) -> str:
    lines = [f"# {title}", "", f"{len(records)} runs, best first (by best validation loss). {mode_line(records)}", ""]
    lines += ["| " + " | ".join(h for h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for record in ranked(records):
        lines.append("| " + " | ".join(_cell(record.get(k, math.nan), k) for _, k in COLUMNS) + " |")
    problems = [r for r in records if r["status"] != "ok"]
    if problems:
        lines += ["", "## Diverged or failed runs", ""]
        for r in problems:
            reason = (r.get("reason") or "").strip().splitlines()
            detail = f": {reason[-1]}" if reason else ""
            lines.append(f"- {r['label']} on {r['device']}, seed {r['seed']}: **{r['status']}**{detail}")
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
            verdict = "pass" if c.passed else ("**LR MISMATCH**" if not c.lr_match else "**LOSS MISMATCH**")
            lines.append(
                f"| {c.label} | {c.seed} | {c.reference} | {c.device} | {c.lr_max_diff:.3g} | "
                f"{c.val_loss_diff:.3g} | {verdict} |"
            )
    else:
        lines.append("Nothing to compare: each schedule ran on one device config only.")
    if mode_notes:
        lines += ["", "## Mode", ""] + [f"- {note}" for note in mode_notes]
    if skipped:
        lines += ["", "## Skipped device configs", ""] + [f"- {device}: {reason}" for device, reason in skipped]
    if wandb_hint:
        lines += ["", "## W&B", "", wandb_hint]
    return "\n".join(lines) + "\n"


def mode_line(records: Sequence[dict[str, Any]]) -> str:
    """How the runs were trained: stacked (side by side in one Lightning run) or sequential.

    Example:
        >>> mode_line([{"mode": "stacked"}, {"mode": "stacked"}, {"mode": "sequential"}])
        'Mode: stacked for 2 runs (schedules side by side in one Lightning run), sequential for 1.'
    """
    counts = {m: sum(r.get("mode") == m for r in records) for m in ("stacked", "sequential")}
    if not counts["stacked"]:
        return "Mode: sequential (one Lightning run per schedule)."
    if not counts["sequential"]:
        return "Mode: stacked (schedules side by side in one Lightning run)."
    return (
        f"Mode: stacked for {counts['stacked']} runs (schedules side by side in one Lightning run), "
        f"sequential for {counts['sequential']}."
    )


def figure(records: Sequence[dict[str, Any]], path: Path) -> None:
    """LR curves and validation-loss curves by samples seen; best val loss per schedule and device."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lr_ax, loss_ax, bar_ax) = plt.subplots(1, 3, figsize=(17, 5), layout="constrained")
    labels = sorted({r["label"] for r in records})
    devices = sorted({r["device"] for r in records})
    colors = {label: plt.get_cmap("tab10")(i % 10) for i, label in enumerate(labels)}
    styles = {device: ("-", "--", ":", "-.")[i % 4] for i, device in enumerate(devices)}
    for r in records:
        if r["status"] == "failed":
            continue
        name = f"{r['label']} {r['device']} s{r['seed']}"
        lr = r.get("lr_curve") or []
        val = r.get("val_curve") or []
        style = {"color": colors[r["label"]], "linestyle": styles[r["device"]]}
        if lr:
            lr_ax.plot([p[0] for p in lr], [p[1] for p in lr], label=name, drawstyle="steps-post", **style)
        if val:
            loss_ax.plot([p[0] for p in val], [p[1] for p in val], marker=".", label=name, **style)
    lr_ax.set(title="Learning rate", xlabel="samples seen", ylabel="LR")
    loss_ax.set(title="Validation loss", xlabel="samples seen", ylabel="val_loss")
    loss_ax.set_yscale("log")
    width = 0.8 / max(len(devices), 1)
    for i, device in enumerate(devices):
        heights = []
        for label in labels:
            values = [
                r.get("best_val_loss", math.nan) for r in records if r["label"] == label and r["device"] == device
            ]
            finite = [v for v in values if _finite(v)]
            heights.append(sum(finite) / len(finite) if finite else 0.0)
        bar_ax.bar([j + i * width for j in range(len(labels))], heights, width, label=device)
    bar_ax.set_xticks([j + width * (len(devices) - 1) / 2 for j in range(len(labels))], labels, rotation=30)
    bar_ax.set(title="Best validation loss (mean over seeds)", ylabel="val_loss")
    for ax in (lr_ax, loss_ax, bar_ax):
        ax.grid(alpha=0.3)
    lr_ax.legend(fontsize="x-small", ncols=2)
    bar_ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    records: Sequence[dict[str, Any]],
    output: Path,
    *,
    title: str,
    tolerance: float,
    skipped: Sequence[tuple[str, str]] = (),
    wandb_hint: str | None = None,
    mode_notes: Sequence[str] = (),
) -> list[DeviceCheck]:
    """Write report.csv, report.md and report.png into ``output``; return the cross-device checks."""
    output.mkdir(parents=True, exist_ok=True)
    checks = cross_device(records, tolerance)
    write_csv(records, output / "report.csv")
    text = markdown(
        records, checks, skipped, title=title, tolerance=tolerance, wandb_hint=wandb_hint, mode_notes=mode_notes
    )
    (output / "report.md").write_text(text)
    if records:
        figure(records, output / "report.png")
    return checks


def print_report(records: Sequence[dict[str, Any]], checks: Sequence[DeviceCheck], console: Console) -> None:
    console.print(terminal_table(records))
    if records:
        console.print(mode_line(records))
    failed = [c for c in checks if not c.passed]
    if checks:
        verdict = "[green]all match[/]" if not failed else f"[red]{len(failed)} mismatch(es)[/]"
        console.print(f"Cross-device check: {len(checks)} comparison(s), {verdict}")
        for c in failed:
            console.print(
                f"  [red]{c.label} seed {c.seed}: {c.device} vs {c.reference}: "
                f"LR diff {c.lr_max_diff:.3g}, val loss diff {c.val_loss_diff:.3g}[/]"
            )
