"""`results.jsonl`: one `RunRecord` per line, appended atomically, and the lock of a grid's folder.

A record's line is appended as :mod:`~lightning_lrsched.compare.jsonlines` appends lines (one
locked write, flushed to disk), so a grid killed at any moment leaves whole lines, except when the
machine itself dies mid-write. Such a torn last line is handled twice: an append first ends it
(every line starts on a fresh line), and :meth:`ResultsFile.set_aside_unreadable` moves
lines that are not valid records (torn, or with a field of the wrong kind) into a side file, so
their runs are trained again and the file parses whole.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from types import TracebackType

from lightning_lrsched.compare.jsonlines import append_lines, raw_lines
from lightning_lrsched.compare.layout import OutputLayout
from lightning_lrsched.compare.record import InvalidRecord, RunRecord
from lightning_lrsched.errors import InvalidValue


class ResultsFile:
    """The append-only record of a comparison's runs."""

    def __init__(self, layout: OutputLayout) -> None:
        self.layout = layout
        self.path = layout.results

    def append(self, *records: RunRecord) -> None:
        """Append the records' lines in one write and one flush to disk (a stacked run's records end together)."""
        append_lines(self.path, [record.to_json() for record in records])

    def __iter__(self) -> Iterator[RunRecord]:
        for _, record, _ in self._lines():
            if record is not None:
                yield record

    def _lines(self) -> Iterator[tuple[bytes, RunRecord | None, str]]:
        """Each line, its record (``None`` if it is not one) and why it is not one."""
        for raw in raw_lines(self.path):
            try:
                yield raw, RunRecord.from_json(raw), ""
            except InvalidRecord as error:
                yield raw, None, f"not a valid record: {error}"
            except (ValueError, TypeError):
                yield raw, None, "not a whole JSON line (a write cut short)"

    def set_aside_unreadable(self) -> list[str]:
        """Move the lines that are not valid records into the side file; return why each was moved.

        A torn line (a write cut short) and a line that parses but is not a record (a field of the
        wrong kind, written by another tool or by hand) go alike: their runs train again, and every
        other record still counts. Call it with the grid's lock held (:class:`GridLock`): the file
        is rewritten (atomically).
        """
        lines = list(self._lines())
        unreadable = [(raw, why) for raw, record, why in lines if record is None]
        if not unreadable:
            return []
        with self.layout.torn.open("ab") as side:
            side.write(b"".join(raw.rstrip(b"\n") + b"\n" for raw, _ in unreadable))
            side.flush()
            os.fsync(side.fileno())
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_bytes(b"".join(raw.rstrip(b"\n") + b"\n" for raw, record, _ in lines if record is not None))
        os.replace(tmp, self.path)
        return [why for _, why in unreadable]

    def latest(self) -> dict[str, RunRecord]:
        """The last record of every run key (a rerun supersedes, never deletes)."""
        return {record.key: record for record in self}


class GridLock:
    """Held while a grid runs on an output folder: a second grid on it is an error, not a second copy.

    ``command`` (``"compare"``, ``"tune"``) is written into the lock beside the pid, so that a second
    grid names what holds the folder.

    Raises:
        InvalidValue: another process holds the folder's lock (its command and pid are in the message).
    """

    def __init__(self, layout: OutputLayout, command: str = "compare") -> None:
        self.path = layout.lock
        self.command = command
        self._fd: int | None = None

    def __enter__(self) -> GridLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except IsADirectoryError:
            raise InvalidValue(
                f"`output`: {self.path} is a folder, but lrsched {self.command} keeps its lock file there: "
                "move that folder away (or use another --output)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, _, command = os.pread(fd, 64, 0).decode(errors="replace").strip().partition(" ")
            os.close(fd)
            raise InvalidValue(
                f"`output`: another lrsched {command or 'compare'} (pid {pid or '?'}) is running on "
                f"{self.path.parent}: "
                "wait for it to finish (a rerun then skips its runs) or use another --output"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {self.command}".encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock; the file stays (another grid may hold it now)
            self._fd = None
