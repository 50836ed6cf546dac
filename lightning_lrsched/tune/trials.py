"""`trials.jsonl`: every configuration of a search, one JSON line each, appended as its search ends.

Lines are appended as compare's ``results.jsonl`` lines are (:mod:`lightning_lrsched.compare.jsonlines`:
one ``write`` under an exclusive lock, then flushed to disk), so a killed search keeps the
configurations decided so far. Each line names its search (a digest of everything that decides
what the search trains) and the attempt:

- ``{"kind": "trial", "search": ..., "attempt": n, ...}``: a :class:`~.search.TrialResult`;
- ``{"kind": "rung", "search": ..., "attempt": n, ...}``: a :class:`~.search.Rung`: the
  configurations still training after a rung (local search), their curves, and the checkpoint
  (``<output>/rungs/<search>-epoch<N>.ckpt``) of the stacked run as the rung left it;
- ``{"kind": "done", "search": ..., "attempt": n, "rungs": [...], "steps_per_epoch": ...}``: that
  attempt's search ended (its rung checkpoints are then deleted).

A rerun of the same search whose attempt ended reads its trials back instead of training. One that
did not end (killed mid-run) continues that attempt from its last rung whose checkpoint is there:
the configurations decided by then stay decided, the survivors train on from the checkpoint as
they would have; without a rung (killed before the first) the search is trained again as the next
attempt, the earlier attempt's lines staying. A configuration decided twice (after the rung, then
again by the continued run) counts by its last line. Lines that do not parse (a write cut short)
are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lightning_lrsched.compare.jsonlines import append_lines, dumps, raw_lines
from lightning_lrsched.tune.search import Rung, TrialResult
from lightning_lrsched.tune.space import Config


def trial_number(trial: TrialResult | Config) -> tuple[int, str]:
    """The sort key of copy order: the Optuna trial number in the label (``t007-cosine``)."""
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
        return self._trials(lines, last.get("attempt")), last

    def resumable(self, search: str) -> tuple[int, Rung, list[TrialResult]] | None:
        """Where the newest attempt of ``search`` can continue: its attempt, last rung and the trials decided by then.

        ``None`` when that attempt ended, reached no rung, or its rung's checkpoint is gone.
        """
        lines = [line for line in self.lines() if line.get("search") == search]
        if not lines:
            return None
        attempt = max(int(line.get("attempt", 0)) for line in lines)
        lines = [line for line in lines if line.get("attempt") == attempt]
        rungs = [line for line in lines if line["kind"] == "rung"]
        if any(line["kind"] == "done" for line in lines) or not rungs:
            return None
        try:
            rung = Rung.from_dict(rungs[-1])
        except (KeyError, TypeError, ValueError):
            return None
        if not Path(rung.checkpoint).is_file():
            return None
        training = {c.label for c in rung.survivors}
        decided = [t for t in self._trials(lines, attempt) if t.label not in training]
        return attempt, rung, decided

    @staticmethod
    def _trials(lines: list[dict[str, Any]], attempt: Any) -> list[TrialResult]:
        """An attempt's trials in copy order; a configuration decided twice (a continued search) by its last line."""
        by_label = {
            line["label"]: TrialResult.from_dict(line)
            for line in lines
            if line["kind"] == "trial" and line.get("attempt") == attempt
        }
        return sorted(by_label.values(), key=trial_number)
