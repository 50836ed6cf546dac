"""What a comparison's records say, apart from how it is shown: cross-device checks, ranking, global batch.

The renderers (:mod:`lightning_lrsched.compare.report`) and the W&B summary
(:mod:`lightning_lrsched.compare.tracking`) read these. The cross-device check compares each
schedule's runs across device configs: the LR by samples seen must match exactly, and the final
validation loss within a stated relative tolerance. The statistics over seeds are
:mod:`lightning_lrsched.compare.statistics`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lightning_lrsched.compare.record import RunRecord

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
"""The columns of the results table, as (heading, record field): every view of the report shows these."""
LR_RTOL = 1e-12
"""The cross-device check's relative tolerance on the LR: the same schedule must give the same LR."""


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
        loss = r.best_val_loss if finite(r.best_val_loss) else math.inf
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
            if finite(loss, ref_loss):
                loss_diff = abs(loss - ref_loss) / max(abs(ref_loss), 1e-12)
            else:  # two runs without a final loss (both diverged before validating) agree
                loss_diff = 0.0 if not (finite(loss) or finite(ref_loss)) else math.inf
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


def finite(*values: Any) -> bool:
    """Every value is a finite number."""
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


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
