"""``report.csv``: one row per run, best first."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

from lightning_lrsched.compare.analysis import COLUMNS, ranked
from lightning_lrsched.compare.record import RunRecord


def write_csv(records: Sequence[RunRecord], path: Path) -> None:
    """One row per run, every column of the table plus the schedule, its params (JSON) and the reason."""
    keys = [key for _, key in COLUMNS] + [
        "schedule",
        "params",
        "best_val_acc",
        "steps",
        "mode",
        "mode_reason",
        "reason",
    ]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        for record in ranked(records):
            row = {k: getattr(record, k) for k in keys}
            row["params"] = json.dumps(record.params, sort_keys=True)
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})
