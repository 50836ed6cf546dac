"""`trials.jsonl`: every configuration of a search, one JSON line each, appended as its search ends.

Lines are appended as compare's ``results.jsonl`` lines are (:mod:`lightning_lrsched.compare.jsonlines`:
one ``write`` under an exclusive lock, then flushed to disk), so a killed search keeps the
configurations decided so far. Each line names its search (a digest of everything that decides
what the search trains) and the attempt:

- ``{"kind": "trial", "search": ..., "attempt": n, ...}``: a :class:`~.search.TrialResult`;
- ``{"kind": "done", "search": ..., "attempt": n, "rungs": [...], "steps_per_epoch": ...}``: that
  attempt's search ended.

A rerun of the same search whose attempt ended reads its trials back instead of training; one that
did not end (killed mid-run) trains the search again as the next attempt: the earlier attempt's
lines stay, the newest attempt counts. Lines that do not parse (a write cut short) are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lightning_lrsched.compare.jsonlines import append_lines, dumps, raw_lines
from lightning_lrsched.tune.search import TrialResult


def _trial_number(trial: TrialResult) -> tuple[int, str]:
    head = trial.label.split("-")[0][1:]
    return (int(head) if head.isdigit() else -1, trial.label)


class TrialsFile:
    """The append-only record of a tune folder's searches."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, line: dict[str, Any]) -> None:
        append_lines(self.path, [dumps(line)])

    def lines(self) -> Iterator[dict[str, Any]]:
        for raw in raw_lines(self.path):
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # a write cut short
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
