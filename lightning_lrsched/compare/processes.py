"""Worker processes: their command, environment and end, and the :class:`Standby` worker started ahead of its batch.

Standard library only, so that ``lrsched compare`` can start a standby worker before it imports
torch itself (the worker's imports then overlap the command's own).

A worker runs in a session of its own (one kill of its process group reaches the DDP processes
Lightning starts from it), so no signal sent to its caller, or to the caller's process group,
reaches it. Two things end it with its caller instead: ``lrsched compare`` turns SIGTERM, SIGHUP
and SIGINT into an exception that kills its workers' groups on the way out
(:func:`stop_on_signals`), and each worker process watches its parent (:func:`watch_parent`), so
that a caller killed with SIGKILL takes its workers with it within a fraction of a second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

WORKER = (sys.executable, "-m", "lightning_lrsched.compare.worker")
"""The command of a worker process (see :mod:`lightning_lrsched.compare.worker`)."""
STANDBY = "--standby"
"""The worker's flag for a standby worker: ``WORKER + (STANDBY, OUTPUT)``."""
CALLER = "LRSCHED_COMPARE_CALLER"
"""The environment variable that gives a worker its caller's pid: the worker's group ends when the caller does."""
WATCH_S = 0.2
"""How often a worker checks that its parent is still there."""


class Stopped(KeyboardInterrupt):
    """``lrsched compare`` was sent SIGTERM or SIGHUP: raised where it runs, so its workers are killed on the way out.

    A ``KeyboardInterrupt`` (as SIGINT raises), so no ``except Exception`` stops it on its way.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Stopped` in the main thread while in the block (SIGINT already raises).

    Every worker runs in a ``try/finally`` that kills its process group, so the exception ends them
    all. A second signal while they are being ended is ignored: the cleanup is a few system calls.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        for each in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(each, signal.SIG_IGN)
        raise Stopped(signum)

    previous = {each: signal.signal(each, stop) for each in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)


def watch_parent() -> None:
    """End this process (and, in a worker started by a caller, its whole process group) when its parent ends.

    A daemon thread compares ``os.getppid()`` with the parent this process started under (the
    caller's pid from :data:`CALLER` for a worker, so a caller that died before the worker started
    is noticed too). A worker leads its own process group and its DDP processes are in it, so
    killing the group ends them all; a DDP process whose worker died does the same. Outside a
    compare grid (no :data:`CALLER`) it ends only this process.
    """
    caller = os.environ.get(CALLER)
    in_group = caller is not None
    # Lightning starts the other DDP processes with LOCAL_RANK set: their parent is the worker, not the caller.
    parent = int(caller) if caller and "LOCAL_RANK" not in os.environ else os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_S)
        if in_group:
            try:
                os.killpg(os.getpgrp(), signal.SIGKILL)
            except OSError:
                pass
        os._exit(1)

    threading.Thread(target=watch, name="lrsched-parent-watch", daemon=True).start()


def environment(processes: int) -> dict[str, str]:
    """The environment of a worker of a device config with ``processes`` processes."""
    env = dict(os.environ)
    # One BLAS thread per process: N DDP processes on N cores must not each start N threads.
    threads = max(1, (os.cpu_count() or 1) // processes)
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env.setdefault("WANDB_SILENT", "true")
    env["PYTHONUNBUFFERED"] = "1"
    env[CALLER] = str(os.getpid())
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
