"""Worker processes: their command, environment and end, and the :class:`Standby` worker started ahead of its batch.

Standard library only, so that ``lrsched compare`` can start a standby worker before it imports
torch itself (the worker's imports then overlap the command's own).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import ClassVar

WORKER = (sys.executable, "-m", "lightning_lrsched.compare.worker")
"""The command of a worker process (see :mod:`lightning_lrsched.compare.worker`)."""
STANDBY = "--standby"
"""The worker's flag for a standby worker: ``WORKER + (STANDBY, OUTPUT)``."""


def environment(processes: int) -> dict[str, str]:
    """The environment of a worker of a device config with ``processes`` processes."""
    env = dict(os.environ)
    # One BLAS thread per process: N DDP processes on N cores must not each start N threads.
    threads = max(1, (os.cpu_count() or 1) // processes)
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env.setdefault("WANDB_SILENT", "true")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def kill(process: subprocess.Popen) -> None:
    """End a worker and everything it started (its DDP processes), and reap it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


class Standby:
    """A worker process started before its batch exists, for a single-process device config.

    Its imports (torch, Lightning: seconds) overlap whatever the caller does meanwhile (checking the
    grid, reading the results file). :func:`~lightning_lrsched.compare.executors.run_batch` hands it
    the first batch it trains; one never handed a batch is stopped by :meth:`close` (or ends by
    itself when the caller does: its standard input closes). Use it as a context manager.

    :meth:`early` starts one before the caller has even imported torch (``lrsched compare`` does,
    before parsing its arguments); the next grid of this process takes it (:meth:`take`).
    """

    _early: ClassVar[Standby | None] = None

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="lrsched-standby-")
        self._output = Path(self._dir.name) / "output.log"
        with self._output.open("wb") as handle:
            self.process: subprocess.Popen | None = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [*WORKER, STANDBY, str(self._output)],
                stdin=subprocess.PIPE,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=environment(1),
                start_new_session=True,  # as a worker started for its batch: a kill reaches all it started
                text=True,
            )

    @classmethod
    def early(cls) -> Standby:
        """Start a standby worker for the next grid of this process (:meth:`take`); close it when done."""
        cls._early = cls()
        return cls._early

    @classmethod
    def take(cls) -> Standby:
        """The standby worker started :meth:`early`, if it is still waiting; a new one otherwise."""
        early, cls._early = cls._early, None
        return early if early is not None and early.process is not None else cls()

    @classmethod
    def drop_early(cls) -> None:
        """Stop the standby worker started :meth:`early`, if any: this process's grid has no batch for it."""
        if cls._early is not None:
            cls._early.close()

    def hand_over(self, batch: Path, out: Path, log: Path) -> subprocess.Popen | None:
        """The worker, now training ``batch`` (see :mod:`.worker`); ``None`` if it is gone or was handed over."""
        process, self.process = self.process, None
        if process is None or process.stdin is None:
            return None
        if process.poll() is not None:  # it ended (a broken install, say): a fresh worker's log then shows why
            return None
        try:
            process.stdin.write(json.dumps({"batch": str(batch), "out": str(out), "log": str(log)}) + "\n")
            process.stdin.close()
        except OSError:  # it ended just now
            kill(process)
            return None
        return process

    def close(self) -> None:
        if self.process is not None:
            kill(self.process)
            self.process = None
        if Standby._early is self:
            Standby._early = None
        self._dir.cleanup()

    def __enter__(self) -> Standby:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
