"""Statistics over seeds: which schedule is best, and which are indistinguishable from it.

Pure functions on :class:`RunRecord` lists (no training). Per (schedule, device config) the mean,
the sample standard deviation and a 95 % Student-t interval of the mean of four metrics; per device
config a paired comparison of every schedule with the best one. Seed ``s`` of every schedule starts
from the same initial weights and sees the same batches (the worker seeds before building the
model, and the data module takes the seed; ``tests/compare/test_statistics.py`` checks it), so
the difference seed by seed removes the seed-to-seed spread that the schedules share, and a paired
t interval of the mean difference says how sure the ranking is. The intervals come from
:mod:`scipy.stats`.

Only runs that ended ``ok`` count: a diverged or failed run has no loss to average, and a schedule
left with fewer than :data:`MIN_SEEDS` seeds gets no statistics (the report says so).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lightning_lrsched.compare.record import RunRecord

MIN_SEEDS = 3
"""Fewer seeds give no interval worth the name (with 2, the 95 % t interval is ±12.7 standard errors)."""
CONFIDENCE = 0.95
METRICS = (
    ("best_val_loss", "Best val loss"),
    ("final_val_loss", "Final val loss"),
    ("best_val_acc", "Best val acc"),
    ("final_val_acc", "Final val acc"),
)
"""The metrics summarised per (schedule, device config): record field and heading."""
RANK_METRIC = "best_val_loss"
"""Schedules are ranked, and compared with the best one, on the best validation loss (lower is better)."""


@dataclass(frozen=True)
class Estimate:
    """A metric over seeds: mean, sample standard deviation, and the 95 % interval of the mean."""

    mean: float
    std: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class GroupStats:
    """One schedule on one device config, over the seeds whose run ended ``ok``.

    Attributes:
        seeds: the seeds counted.
        excluded: how many runs of the group did not end ``ok`` (diverged or failed): not counted.
        metrics: an :class:`Estimate` per field of :data:`METRICS` (empty below :data:`MIN_SEEDS` seeds).
    """

    label: str
    device: str
    seeds: tuple[int, ...]
    excluded: int
    metrics: dict[str, Estimate]

    @property
    def enough(self) -> bool:
        return len(self.seeds) >= MIN_SEEDS and RANK_METRIC in self.metrics


@dataclass(frozen=True)
class Paired:
    """One schedule against the best one on the same device config, seed by seed, in best validation loss.

    Attributes:
        diff: mean over the shared seeds of (this schedule's − the best one's) best validation loss.
        low, high: the 95 % paired t interval of ``diff``.
        agree: the shared seeds on which the best schedule is better (lower loss).
        seeds: how many seeds both have.
    """

    label: str
    device: str
    best: str
    diff: float
    low: float
    high: float
    agree: int
    seeds: int

    @property
    def indistinguishable(self) -> bool:
        """The interval of the difference reaches zero: these seeds cannot tell the two apart."""
        return self.low <= 0.0


@dataclass(frozen=True)
class SeedStatistics:
    """What :func:`seed_statistics` found; ``missing`` says why there is nothing (``""`` when there is)."""

    groups: list[GroupStats]
    paired: list[Paired]
    missing: str = ""

    def best(self, device: str) -> GroupStats | None:
        ranked = [g for g in self.groups if g.device == device and g.enough]
        return ranked[0] if ranked else None

    def devices(self) -> list[str]:
        return list(dict.fromkeys(g.device for g in self.groups if g.enough))

    def verdict(self, device: str) -> str:
        """One sentence: which schedules the seeds cannot tell from the best one on ``device``."""
        best = self.best(device)
        if best is None:
            return ""
        others = [p for p in self.paired if p.device == device]
        same = [p.label for p in others if p.indistinguishable]
        worse = [p.label for p in others if not p.indistinguishable]
        n = min((p.seeds for p in others), default=len(best.seeds))
        where = f"On {device}, the best schedule by mean best validation loss is {best.label}"
        interval = f"(the {CONFIDENCE:.0%} interval of the paired difference over {n} seeds"
        if not others:
            return f"{where}; no other schedule has {MIN_SEEDS} seeds to compare with it."
        if not same:
            return f"{where}, and every other schedule is worse {interval} excludes 0)."
        tail = f"; {_join(worse)} {'is' if len(worse) == 1 else 'are'} worse" if worse else ""
        verb = "is" if len(same) == 1 else "are"
        return f"{where}; {_join(same)} {verb} indistinguishable from it {interval} includes 0){tail}."


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def estimate(values: Sequence[float]) -> Estimate:
    """Mean, sample standard deviation and the 95 % Student-t interval of the mean of ``values``.

    Example:
        >>> e = estimate([1.0, 2.0, 3.0])
        >>> e.mean, e.std, round(e.low, 3), round(e.high, 3)
        (2.0, 1.0, -0.484, 4.484)
    """
    from scipy import stats

    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if data.size < 2:
        return Estimate(mean, math.nan, math.nan, math.nan, int(data.size))
    if _all_equal(data):  # scipy's interval is undefined (zero scale, or rounding noise): the mean is exact
        return Estimate(mean, 0.0, mean, mean, int(data.size))
    std = float(data.std(ddof=1))
    low, high = stats.t.interval(CONFIDENCE, data.size - 1, loc=mean, scale=stats.sem(data))
    return Estimate(mean, std, float(low), float(high), int(data.size))


def paired(label: str, device: str, best: str, values: Sequence[float], best_values: Sequence[float]) -> Paired:
    """The paired comparison of ``values`` with ``best_values`` (same seeds, same order).

    Example:
        >>> p = paired("step", "cpu:1", "cosine", [0.5, 0.6, 0.7], [0.3, 0.35, 0.45])
        >>> round(p.diff, 3), p.agree, p.indistinguishable
        (0.233, 3, False)
    """
    from scipy import stats

    a, b = np.asarray(values, dtype=float), np.asarray(best_values, dtype=float)
    diffs = a - b
    diff = float(diffs.mean())
    if _all_equal(diffs):  # the same difference on every seed: no spread, the interval is the point
        low = high = diff
    else:
        interval = stats.ttest_rel(a, b).confidence_interval(CONFIDENCE)
        low, high = float(interval.low), float(interval.high)
    return Paired(label, device, best, diff, low, high, int((diffs > 0).sum()), int(diffs.size))


def _all_equal(values: np.ndarray) -> bool:
    """Equal up to float rounding (0.7 − 0.65 and 0.55 − 0.5 differ in their last bits)."""
    return bool(np.allclose(values, values[0], rtol=1e-9, atol=1e-12))


def seed_statistics(records: Sequence[RunRecord]) -> SeedStatistics:
    """The statistics over seeds of a grid's records (see the module docstring).

    Groups come best first on each device config (by mean best validation loss), groups with too
    few seeds last.
    """
    runs: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for record in records:
        runs[(record.label, record.device)].append(record)
    groups = []
    for (label, device), group in runs.items():
        ok = sorted((r for r in group if r.status == "ok"), key=lambda r: r.seed)
        metrics = {}
        if len(ok) >= MIN_SEEDS:
            for field, _ in METRICS:
                values = [getattr(r, field) for r in ok]
                if all(math.isfinite(v) for v in values):
                    metrics[field] = estimate(values)
        groups.append(GroupStats(label, device, tuple(r.seed for r in ok), len(group) - len(ok), metrics))
    devices = sorted({g.device for g in groups}, key=lambda d: (d != "cpu:1", d))

    def order(g: GroupStats) -> tuple[int, int, float, str]:
        mean = g.metrics[RANK_METRIC].mean if g.enough else math.inf
        return devices.index(g.device), not g.enough, mean, g.label

    groups.sort(key=order)
    if not any(g.enough for g in groups):
        return SeedStatistics(groups, [], _why_missing(records, groups))
    by_seed = {(r.label, r.device, r.seed): getattr(r, RANK_METRIC) for r in records if r.status == "ok"}
    comparisons = []
    for device in devices:
        ranked = [g for g in groups if g.device == device and g.enough]
        if not ranked:
            continue
        best = ranked[0]
        for other in ranked[1:]:
            seeds = [s for s in other.seeds if s in best.seeds]
            if len(seeds) < MIN_SEEDS:
                continue
            values = [by_seed[(other.label, device, s)] for s in seeds]
            best_values = [by_seed[(best.label, device, s)] for s in seeds]
            comparisons.append(paired(other.label, device, best.label, values, best_values))
    return SeedStatistics(groups, comparisons)


def _why_missing(records: Sequence[RunRecord], groups: Sequence[GroupStats]) -> str:
    seeds = sorted({r.seed for r in records})
    if len(seeds) < MIN_SEEDS:
        given = f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})" if seeds else "none"
        return (
            f"Not computed: they need at least {MIN_SEEDS} seeds per schedule and this grid has {given}; "
            f"give e.g. seeds: [0, 1, 2] (or --seeds 0,1,2)."
        )
    short = [f"{g.label} on {g.device}" for g in groups if not g.enough]
    return (
        f"Not computed: no schedule has {MIN_SEEDS} seeds whose run ended ok "
        f"({_join(short)} diverged, failed or has not run yet on some seeds)."
    )
