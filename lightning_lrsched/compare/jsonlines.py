"""JSON-lines files that a killed process leaves whole: strict lines, appended atomically, torn lines ended.

One line is written with a single ``write`` on a file opened for appending, under an exclusive
lock, then flushed to disk, so a process killed at any moment leaves whole lines, except when the
machine itself dies mid-write. Such a torn last line is ended by the next append (every line
starts on a fresh line); readers skip or set aside what does not parse. Compare's
``results.jsonl`` and tune's ``trials.jsonl`` are written this way.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``: strict JSON (RFC 8259), readable by any tool.

    Example:
        >>> strict({"loss": float("nan"), "curve": [[1, float("inf")], (2, 0.5)]})
        {'loss': None, 'curve': [[1, None], [2, 0.5]]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """One strict JSON line (no newline), keys sorted."""
    return json.dumps(strict(value), sort_keys=True, allow_nan=False)


def append_lines(path: Path, lines: list[str]) -> None:
    """Append ``lines`` (each without its newline) to ``path`` in one write, under a lock, flushed to disk."""
    data = "".join(line + "\n" for line in lines).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # the last line was torn: ours must not continue it
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)


def raw_lines(path: Path) -> Iterator[bytes]:
    """The non-blank lines of ``path`` as bytes (none if it does not exist)."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                yield raw
