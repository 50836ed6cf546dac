"""`trials.jsonl`: every configuration of a search, one JSON line each, appended as its search ends.

Lines are appended as compare's ``results.jsonl`` lines are (one ``write`` under an exclusive lock,
then flushed to disk), so a killed search keeps the configurations decided so far. Each line names
its search (a digest of everything that decides what the search trains) and the attempt:

- ``{"kind": "trial", "search": ..., "attempt": n, ...}``: a :class:`~.search.TrialResult`;
- ``{"kind": "done", "search": ..., "attempt": n, "rungs": [...], "steps_per_epoch": ...}``: that
  attempt's search ended.

A rerun of the same search whose attempt ended reads its trials back instead of training; one that
did not end (killed mid-run) trains the search again as the next attempt: the earlier attempt's
lines stay, the newest attempt counts. Lines that do not parse (a write cut short) are skipped.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lightning_lrsched.tune.search import TrialResult


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _trial_number(trial: TrialResult) -> tuple[int, str]:
    head = trial.label.split("-")[0][1:]
    return (int(head) if head.isdigit() else -1, trial.label)


class TrialsFile:
    """The append-only record of a tune folder's searches."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, line: dict[str, Any]) -> None:
        data = (json.dumps(_strict(line), sort_keys=True, allow_nan=False) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # the last line was torn: ours must not continue it
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def lines(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            for raw in handle:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(line, dict) and "kind" in line:
                    yield line

    def attempts(self, search: str) -> int:
        """How many attempts of ``search`` the file holds."""
        return max((int(line.get("attempt", 0)) for line in self.lines() if line.get("search") == search), default=0)

    def finished(self, search: str) -> tuple[list[TrialResult], dict[str, Any]] | None:
        """The trials and the ``done`` line of the newest attempt of ``search`` that ended, or ``None``."""
        lines = [line for line in self.lines() if line.get("search") == search]
        done = [line for line in lines if line["kind"] == "done"]
        if not done:
            return None
        last = done[-1]
        trials = [
            TrialResult.from_dict(line)
            for line in lines
            if line["kind"] == "trial" and line.get("attempt") == last.get("attempt")
        ]
        trials.sort(key=_trial_number)  # copy order (the lines come in the order the copies were decided)
        return trials, last
