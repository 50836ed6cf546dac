"""`results.jsonl`: one JSON line per finished run, appended atomically.

A run's line is written with a single ``write`` on a file opened for appending, under an
exclusive lock, then flushed to disk, so a grid killed at any moment leaves whole lines only. A
line that does not parse (a disk that lied) is reported and ignored, never rewritten.
"""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class ResultsFile:
    """The append-only record of a comparison's finished runs."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                try:
                    yield json.loads(raw)
                except json.JSONDecodeError:
                    warnings.warn(f"{self.path}:{number} is not a whole JSON line; ignoring it", stacklevel=2)

    def latest(self) -> dict[str, dict[str, Any]]:
        """The last record of every run key (a ``--force`` rerun supersedes, never deletes)."""
        return {record["key"]: record for record in self if "key" in record}
